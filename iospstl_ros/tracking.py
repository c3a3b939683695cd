"""Online recognition over a stream of skeleton frames: per-body windows, pairing, labels.

:class:`OnlineRecognizer` is everything between a decoded message
(:class:`~iospstl_ros.cloud.SkeletonFrame`) and one label per body. The ROS node and the
offline bag tool both call it, so a replayed recording gives exactly the labels the node gave.
Time is **message time** (header stamps), never the wall clock, so replay is deterministic.

Per frame (:meth:`OnlineRecognizer.process`):

0. **Axes.** The frame's coordinates are rotated from ``input_axes`` (default ``rep103``: x
   forward, y left, z up, the topic contract's convention; ``optical``: x right, y down, z
   forward; ``ntu``: as given) into the model's NTU camera axes (x left, y up, z forward) before
   anything else (:mod:`iospstl_ros.axes`). Buffers, pairing and windows are in NTU axes; the
   outputs that are positions in the sensor frame (``completed_xyz``) are rotated back into
   ``input_axes``, so they share the input message's frame.
1. **Stamp check.** A frame older than the newest one seen is rejected (:class:`StampError`,
   reason ``stamp_backwards``) unless it is older by more than ``timeout_s``: that is a
   restarted recording or a reset clock, so every track is reported STALE and dropped and the
   frame starts afresh (counted as ``time_reset``). Equal stamps are accepted.
2. **Eviction.** A body not seen for more than ``timeout_s`` of message time is dropped and
   reported once with level ``STALE``. A body that comes back after such a gap starts a new
   track.
3. **Ring buffers.** Each body's joints are appended to its own buffer of the last ``window``
   frames it appeared in. At most ``max_bodies`` bodies are tracked; further new ids are
   ignored (``body_limit``).
4. **Due windows.** A body is due when it has ``min_frames`` frames and then every ``stride``
   of its frames. All due windows go to the pipeline in **one** call.
5. **Pairing** (``pair_bodies``). Training windows hold up to two bodies: the performer in slot
   0 and, for the interactions (handshake, push, hug, ...), the partner in slot 1; one-person
   samples leave slot 1 absent (:mod:`iospstl_ros.datasets.synthetic`, NTU's first two bodies). The
   window of a due body A is built the same way: A in slot 0 and, in slot 1, the tracked body B
   nearest to A within ``pair_distance`` metres, B present in the frames where both were seen.
   The distance of two bodies is the median, over the frames of A's window in which both have a
   reference point, of the distance between their spine-shoulder joints (20), or the midpoints
   of their shoulders (4, 8) where the spine shoulder is occluded. Ties go to the lower body id.
   Pairing is per window and not exclusive: A and B can each be the other's partner, so both
   get a label, each from its own point of view. The training data hold each interaction in
   one order only (the performer, or NTU's first body, in slot 0), so the partner's label,
   from the swapped order, can be less accurate than the performer's; the classes of both
   are the same interaction.
6. **Labels.** ``smoothing`` > 1 averages the class probabilities of a body's last
   ``smoothing`` windows (classes outside a window's ``top_k`` count as 0 there; give the
   pipeline a ``top_k`` of at least the number of classes for an exact average). The level is
   ``WARN`` when the window is not full (fewer than ``window`` frames), the confidence is below
   ``min_confidence`` or more than ``max_occluded_ratio`` of the body's joint slots were
   occluded, else ``OK``.

Everything here is numpy-only.
"""

from collections import deque
from dataclasses import dataclass, field
import math

from iospstl_ros.axes import AXES, check_axes, from_ntu, to_ntu
from iospstl_ros.cloud import CloudError
from iospstl_ros.layout import CENTER_JOINT, LEFT_SHOULDER, NUM_JOINTS, RIGHT_SHOULDER
from iospstl_ros.validation import check_int
import numpy as np

#: Label levels, as in diagnostic_msgs/DiagnosticStatus.
LEVELS = ('OK', 'WARN', 'STALE')
#: Fewest visible joints needed to put an imputed frame back into the sensor frame.
MIN_FIT_JOINTS = 3


class StampError(CloudError):
    """A frame whose stamp goes backwards (reason ``stamp_backwards``)."""


def _check_float(name, value, low, high=math.inf, low_open=False):
    ok = isinstance(value, (int, float, np.integer, np.floating)) \
        and not isinstance(value, (bool, np.bool_)) and math.isfinite(value) \
        and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = f'> {low}' if low_open else f'>= {low}'
        raise ValueError(f'{name}: expected a finite number {bound} and <= {high}, got '
                         f'{value!r}')


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of :class:`OnlineRecognizer`.

    Attributes
    ----------
    window : int
        Frames per body window (ring buffer length); 90 = 3 s at 30 Hz (training sequences are
        40 to 150 frames, resampled to the model's 50).
    min_frames : int
        Frames a body needs before its first window (<= ``window``); until the window is full
        labels are WARN.
    stride : int
        Frames of a body between two of its windows.
    timeout_s : float
        Message time after which an unseen body is dropped and reported STALE.
    pair_bodies : bool
        Put the nearest other body into slot 1 (see the module docstring).
    pair_distance : float
        Largest distance of a partner, metres.
    smoothing : int
        Windows whose probabilities are averaged (1 = off).
    max_bodies : int
        Bodies tracked at once.
    top_k : int
        Classes listed in a label.
    min_confidence : float
        Labels below this confidence are WARN.
    max_occluded_ratio : float
        Labels of windows with a larger share of occluded joint slots are WARN.
    keep_imputed : bool
        Return the completed window and the completed newest frame with each label.
    input_axes : str
        Axes of the frames' coordinates, one of :data:`iospstl_ros.axes.AXES`: ``rep103`` (x
        forward, y left, z up; default), ``optical`` (x right, y down, z forward) or ``ntu`` (x
        left, y up, z forward). Changing it while bodies are tracked mixes axes in their
        buffers; the node makes it read-only.
    """

    window: int = 90
    min_frames: int = 40
    stride: int = 10
    timeout_s: float = 1.0
    pair_bodies: bool = True
    pair_distance: float = 1.5
    smoothing: int = 1
    max_bodies: int = 16
    top_k: int = 5
    min_confidence: float = 0.3
    max_occluded_ratio: float = 0.5
    keep_imputed: bool = False
    input_axes: str = AXES[0]

    def __post_init__(self):
        check_int('window', self.window, 1)
        check_int('min_frames', self.min_frames, 1)
        if self.min_frames > self.window:
            raise ValueError(f'min_frames: expected at most window ({self.window}), got '
                             f'{self.min_frames}')
        check_int('stride', self.stride, 1)
        _check_float('timeout_s', self.timeout_s, 0.0, low_open=True)
        _check_float('pair_distance', self.pair_distance, 0.0)
        check_int('smoothing', self.smoothing, 1)
        check_int('max_bodies', self.max_bodies, 1)
        check_int('top_k', self.top_k, 1)
        _check_float('min_confidence', self.min_confidence, 0.0, 1.0)
        _check_float('max_occluded_ratio', self.max_occluded_ratio, 0.0, 1.0)
        for name in ('pair_bodies', 'keep_imputed'):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f'{name}: expected a bool, got {getattr(self, name)!r}')
        check_axes(self.input_axes, 'input_axes')


@dataclass(frozen=True, eq=False)
class BodyLabel:
    """The action of one body at one frame, or the end of its track.

    Attributes
    ----------
    body_id : int
    stamp_ns : int
        Stamp of the frame that produced the label (the newest frame of the window).
    frame_id : str
    level : str
        ``OK``, ``WARN`` or ``STALE`` (track lost; reported once).
    label : str
        Class name ('' for a STALE body that never got a label; else its last label).
    class_index : int
        -1 where ``label`` is ''.
    confidence : float
    topk : tuple of (str, float)
    frames_in_window : int
    occluded_ratio : float
        Occluded share of the body's joint slots in the window.
    imputed_joints : int
        Joint-frames the imputation filled (both slots, 50-frame window).
    inference_ms : float
        Pipeline time of the call that produced the label.
    partner_id : int or None
        Body in slot 1.
    imputed : ndarray of shape (3, 50, 25, M), float32, or None
        The completed window as the model sees it: relative, rotated, NTU axes
        (``keep_imputed`` only).
    completed_xyz : ndarray of shape (25, 3), float32, or None
        The body's newest frame in the sensor frame and in the input's axes (``input_axes``)
        with occluded joints filled from the completed window (:func:`complete_in_sensor_frame`
        in NTU axes, then rotated back; ``keep_imputed`` only; None when fewer than
        :data:`MIN_FIT_JOINTS` joints are visible). Visible joints are the measured values.
    filled : ndarray of shape (25,), bool, or None
        Joints of ``completed_xyz`` that were filled.
    """

    body_id: int
    stamp_ns: int
    frame_id: str
    level: str
    label: str
    class_index: int
    confidence: float
    topk: tuple
    frames_in_window: int
    occluded_ratio: float
    imputed_joints: int
    inference_ms: float
    partner_id: object = None
    imputed: object = None
    completed_xyz: object = None
    filled: object = None


def reference_points(xyz, occluded):
    """Spine shoulder of each frame, or the shoulders' midpoint where it is occluded.

    Parameters
    ----------
    xyz : ndarray of shape (L, 25, 3)
    occluded : ndarray of shape (L, 25), bool

    Returns
    -------
    points : ndarray of shape (L, 3), float64
        NaN in frames without either.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    centre = np.where(occluded[:, CENTER_JOINT, None], np.nan, xyz[:, CENTER_JOINT])
    both = ~occluded[:, LEFT_SHOULDER] & ~occluded[:, RIGHT_SHOULDER]
    middle = 0.5 * (xyz[:, LEFT_SHOULDER] + xyz[:, RIGHT_SHOULDER])
    middle = np.where(both[:, None], middle, np.nan)
    return np.where(np.isnan(centre), middle, centre)


def complete_in_sensor_frame(window_frame, xyz, occluded):
    """Put a completed (relative, shoulder-aligned) frame back into the sensor frame.

    Preprocessing subtracts the spine shoulder and rotates about the y axis, so the completed
    frame and the measured one differ by a rotation about y and a translation. Both are fitted
    (least squares, closed form) on the joints visible in the measured frame; the fitted
    transform then maps the filled joints. Visible joints keep their measured coordinates. Both
    frames are in NTU camera axes (y up): rotate other input axes first
    (:func:`iospstl_ros.axes.to_ntu`).

    Parameters
    ----------
    window_frame : ndarray of shape (25, 3)
        Completed joints of one window frame, relative coordinates.
    xyz : ndarray of shape (25, 3)
        The measured frame, sensor coordinates in NTU axes (anything where occluded).
    occluded : ndarray of shape (25,), bool

    Returns
    -------
    completed : ndarray of shape (25, 3), float32, or None
        None when fewer than :data:`MIN_FIT_JOINTS` joints are visible.
    """
    a = np.asarray(window_frame, dtype=np.float64)
    x = np.asarray(xyz, dtype=np.float64)
    visible = ~np.asarray(occluded, dtype=bool)
    if visible.sum() < MIN_FIT_JOINTS:
        return None
    pa, px = a[visible], x[visible]
    ca, cx = pa.mean(axis=0), px.mean(axis=0)
    da, dx = pa - ca, px - cx
    # rotation in the x-z plane: maximise sum x . R a, R a = (c a_x - s a_z, s a_x + c a_z)
    sine = (dx[:, 2] * da[:, 0] - dx[:, 0] * da[:, 2]).sum()
    cosine = (dx[:, 0] * da[:, 0] + dx[:, 2] * da[:, 2]).sum()
    theta = math.atan2(sine, cosine)
    c, s = math.cos(theta), math.sin(theta)
    d = a - ca
    mapped = np.stack([c * d[:, 0] - s * d[:, 2], d[:, 1], s * d[:, 0] + c * d[:, 2]], -1) + cx
    return np.where(visible[:, None], x, mapped).astype(np.float32)


class _Track:
    """Ring buffer of one body: its last ``capacity`` frames and their reference points."""

    def __init__(self, body_id, capacity, smoothing):
        self.body_id = body_id
        self.xyz = np.zeros((capacity, NUM_JOINTS, 3), np.float32)
        self.occluded = np.ones((capacity, NUM_JOINTS), bool)
        self.reference = np.full((capacity, 3), np.nan)
        self.frame_index = np.full(capacity, -1, np.int64)
        self.count = 0
        self.last_stamp_ns = None
        self.history = deque(maxlen=smoothing)
        self.last = None  # (label, class_index, confidence, topk)

    def append(self, frame_index, stamp_ns, xyz, occluded, reference):
        """Add one frame: xyz (25, 3) float32 with occluded joints at 0, its reference point."""
        slot = self.count % len(self.frame_index)
        self.xyz[slot] = xyz
        self.occluded[slot] = occluded
        self.reference[slot] = reference
        self.frame_index[slot] = frame_index
        self.count += 1
        self.last_stamp_ns = stamp_ns

    def window(self):
        """Frame indices (L,), xyz (L, 25, 3) and occluded (L, 25), oldest first."""
        order = self._order()
        return self.frame_index[order], self.xyz[order], self.occluded[order]

    def references(self):
        """Return the reference points (L, 3) of :meth:`window`'s frames, oldest first."""
        return self.reference[self._order()]

    def _order(self):
        capacity = len(self.frame_index)
        length = min(self.count, capacity)
        return (np.arange(self.count - length, self.count)) % capacity


@dataclass(frozen=True)
class StepResult:
    """What one :meth:`OnlineRecognizer.process` call produced.

    Attributes
    ----------
    labels : tuple of BodyLabel
        STALE labels of evicted bodies first, then one label per due body; each group in
        ascending body id.
    counts : dict of str to int
        This call's additions to :attr:`OnlineRecognizer.counts` (keys with 0 left out).
    errors : tuple of str
        Messages of the windows that failed in the pipeline (skipped; the others served).
    timings_ms : dict of str to float
        Per-stage milliseconds of this call's pipeline run; empty when no window was due.
    """

    labels: tuple
    counts: dict
    errors: tuple = ()
    timings_ms: dict = field(default_factory=dict)


class OnlineRecognizer:
    """Per-body windows over a frame stream, one batched pipeline call per frame.

    See the module docstring for the rules. Deterministic: the same frames in the same order
    give the same labels.

    Parameters
    ----------
    pipeline : Pipeline
        Anything with ``classes`` and ``run(windows) -> list of ActionResult``
        (:class:`iospstl_ros.pipeline.Pipeline`).
    config : TrackerConfig, optional

    Attributes
    ----------
    counts : dict of str to int
        Running totals: ``frames``, ``windows``, ``pipeline_calls``, ``stale``,
        ``stamp_backwards``, ``time_reset``, ``body_limit``, ``pipeline_error``.
    """

    def __init__(self, pipeline, config=None):
        self.pipeline = pipeline
        self.config = TrackerConfig() if config is None else config
        if not isinstance(self.config, TrackerConfig):
            raise ValueError(f'config: expected a TrackerConfig, got '
                             f'{type(self.config).__name__}')
        self.counts = {}
        self._step = {}             # this process call's counts
        self._errors = []
        self._timings_ms = {}
        self._class_index = {name: i for i, name in enumerate(pipeline.classes)}
        self.reset()

    def reset(self):
        """Forget every track and the newest stamp (no STALE labels)."""
        self._tracks = {}
        self._frame_index = 0
        self._last_stamp_ns = None
        self._last_frame_id = ''

    @property
    def tracked_ids(self):
        """Ids of the tracked bodies, ascending."""
        return sorted(self._tracks)

    def _count(self, key, n=1):
        self.counts[key] = self.counts.get(key, 0) + n
        self._step[key] = self._step.get(key, 0) + n

    def _stale(self, track, stamp_ns, frame_id):
        label, index, confidence, topk = track.last or ('', -1, 0.0, ())
        _, _, occluded = track.window()
        ratio = float(occluded.mean()) if len(occluded) else 0.0
        self._count('stale')
        return BodyLabel(body_id=track.body_id, stamp_ns=stamp_ns, frame_id=frame_id,
                         level='STALE', label=label, class_index=index, confidence=confidence,
                         topk=topk, frames_in_window=min(track.count, self.config.window),
                         occluded_ratio=ratio, imputed_joints=0, inference_ms=0.0)

    def flush(self, stamp_ns=None):
        """Report every tracked body STALE and forget it (the end of a recording).

        Parameters
        ----------
        stamp_ns : int, optional
            Stamp of the labels; default the newest frame's.

        Returns
        -------
        list of BodyLabel
            Ascending body id.
        """
        if stamp_ns is None:
            stamp_ns = self._last_stamp_ns or 0
        labels = [self._stale(self._tracks[i], int(stamp_ns), self._last_frame_id)
                  for i in sorted(self._tracks)]
        self._tracks = {}
        return labels

    def process(self, frame):
        """Add one frame; return the labels it produces, with this call's counts and timings.

        Parameters
        ----------
        frame : SkeletonFrame
            Coordinates in ``config.input_axes`` (rotated into NTU axes here; ``frame`` itself
            is not changed).

        Returns
        -------
        StepResult
            Every label carries this frame's stamp and frame id.

        Raises
        ------
        StampError
            If the frame's stamp is older than the newest seen by at most ``timeout_s``.
        """
        config = self.config
        self._step, self._errors, self._timings_ms = {}, [], {}
        stamp, frame_id = int(frame.stamp_ns), frame.frame_id
        timeout_ns = int(config.timeout_s * 1e9)
        labels = []
        if self._last_stamp_ns is not None and stamp < self._last_stamp_ns:
            if self._last_stamp_ns - stamp <= timeout_ns:
                self._count('stamp_backwards')
                raise StampError('stamp_backwards', f'expected a stamp >= {self._last_stamp_ns} '
                                 f'ns (the newest frame so far), got {stamp} ns')
            self._count('time_reset')
            labels.extend(self.flush(stamp))
            self.reset()
        self._last_stamp_ns, self._last_frame_id = stamp, frame_id
        self._count('frames')
        for body in sorted(self._tracks):
            track = self._tracks[body]
            if stamp - track.last_stamp_ns > timeout_ns:
                labels.append(self._stale(track, stamp, frame_id))
                del self._tracks[body]
        index = self._frame_index
        self._frame_index += 1
        occluded = np.asarray(frame.occluded, bool)
        xyz = np.where(occluded[..., None], 0.0, to_ntu(frame.xyz, config.input_axes)) \
            .astype(np.float32)
        references = reference_points(xyz, occluded) if len(xyz) else xyz
        due = []
        for b, body in enumerate(int(i) for i in frame.body_ids):
            track = self._tracks.get(body)
            if track is None:
                if len(self._tracks) >= config.max_bodies:
                    self._count('body_limit')
                    continue
                track = self._tracks[body] = _Track(body, config.window, config.smoothing)
            track.append(index, stamp, xyz[b], occluded[b], references[b])
            if track.count >= config.min_frames \
                    and (track.count - config.min_frames) % config.stride == 0:
                due.append(body)
        labels.extend(self._recognise(sorted(due), stamp, frame_id))
        return StepResult(tuple(labels), dict(self._step), tuple(self._errors),
                          dict(self._timings_ms))

    def _partner(self, body, frames, reference):
        """Nearest other body within ``pair_distance`` over A's window, or None.

        All other tracks at once: their ring buffers' frame indices and reference points are
        matched to A's frames by index (the order of the ring does not matter to a median).
        """
        others = [other for other in sorted(self._tracks) if other != body]
        if not others:
            return None
        other_frames = np.stack([self._tracks[other].frame_index for other in others])
        other_reference = np.stack([self._tracks[other].reference for other in others])
        where = np.searchsorted(frames, other_frames).clip(0, len(frames) - 1)
        common = frames[where] == other_frames          # free slots (-1) never match
        with np.errstate(invalid='ignore'):
            distance = np.linalg.norm(reference[where] - other_reference, axis=-1)
        distance[~common] = np.nan
        count = np.isfinite(distance).sum(axis=1)
        ordered = np.sort(distance, axis=1)             # NaN last
        rows = np.arange(len(others))
        low = ordered[rows, np.maximum(count - 1, 0) // 2]
        high = ordered[rows, count // 2]
        median = (low + high) / 2.0                     # np.median of the finite distances
        near = (count > 0) & (median <= self.config.pair_distance)
        if not near.any():
            return None
        return others[int(np.argmin(np.where(near, median, np.inf)))]  # ties: the lower id

    def _window(self, body):
        """(xyz (3, L, 25, M), occluded (L, 25, M), present (L, M)), partner id, own occluded."""
        frames, xyz, occluded = self._tracks[body].window()
        partner = None
        if self.config.pair_bodies and len(self._tracks) > 1:
            partner = self._partner(body, frames, self._tracks[body].references())
        length = len(frames)
        bodies = 1 if partner is None else 2
        window_xyz = np.zeros((3, length, NUM_JOINTS, bodies), np.float32)
        window_occluded = np.zeros((length, NUM_JOINTS, bodies), bool)
        present = np.zeros((length, bodies), bool)
        window_xyz[..., 0] = np.moveaxis(xyz, -1, 0)
        window_occluded[..., 0] = occluded
        present[:, 0] = True
        if partner is not None:
            o_frames, o_xyz, o_occluded = self._tracks[partner].window()
            where = np.searchsorted(o_frames, frames).clip(0, len(o_frames) - 1)
            common = o_frames[where] == frames
            window_xyz[..., 1][:, common] = np.moveaxis(o_xyz[where[common]], -1, 0)
            window_occluded[..., 1][common] = o_occluded[where[common]]
            present[:, 1] = common
        return (window_xyz, window_occluded, present), partner, occluded

    def _run(self, windows):
        """Pipeline results per window (None where that window failed)."""
        if not windows:
            return []
        self._count('pipeline_calls')
        try:
            return self.pipeline.run(windows)
        except ValueError:
            pass                    # find the failing window(s) below
        results = []
        for window in windows:  # serve the others
            try:
                (result,) = self.pipeline.run([window])
            except ValueError as error:
                self._errors.append(str(error))
                self._count('pipeline_error')
                result = None
            results.append(result)
        return results

    def _smoothed(self, track, result):
        track.history.append(dict(result.top_k))
        if len(track.history) == 1 and track.history.maxlen == 1:
            return result.label, result.class_index, result.confidence, tuple(result.top_k)
        totals = {}
        for probabilities in track.history:
            for name, p in probabilities.items():
                totals[name] = totals.get(name, 0.0) + p
        n = len(track.history)
        ranked = sorted(totals.items(), key=lambda item: (-item[1],
                                                          self._class_index.get(item[0], 0)))
        topk = tuple((name, total / n) for name, total in ranked)
        label, confidence = topk[0]
        return label, self._class_index.get(label, -1), confidence, topk

    def _recognise(self, due, stamp, frame_id):
        config = self.config
        built = [self._window(body) for body in due]
        results = self._run([w for w, _, _ in built])
        labels = []
        for body, (window, partner, occluded), result in zip(due, built, results):
            if result is None:
                continue
            self._timings_ms = dict(result.timings_ms)
            self._count('windows')
            track = self._tracks[body]
            label, index, confidence, topk = self._smoothed(track, result)
            topk = tuple((name, float(p)) for name, p in topk[:config.top_k])
            track.last = (label, index, float(confidence), topk)
            frames = len(occluded)
            ratio = float(occluded.mean())
            warn = frames < config.window or confidence < config.min_confidence \
                or ratio > config.max_occluded_ratio
            completed = filled = imputed = None
            if config.keep_imputed:
                imputed = result.imputed
                completed = complete_in_sensor_frame(imputed[:, -1, :, 0].T,
                                                     window[0][:, -1, :, 0].T, occluded[-1])
                if completed is not None:
                    completed = from_ntu(completed, config.input_axes)
                    filled = occluded[-1].copy()
            labels.append(BodyLabel(
                body_id=body, stamp_ns=stamp, frame_id=frame_id,
                level='WARN' if warn else 'OK', label=label, class_index=index,
                confidence=float(confidence), topk=topk, frames_in_window=frames,
                occluded_ratio=ratio, imputed_joints=int(result.num_imputed_joints),
                inference_ms=float(result.timings_ms.get('total', 0.0)), partner_id=partner,
                imputed=imputed, completed_xyz=completed, filled=filled))
        return labels
