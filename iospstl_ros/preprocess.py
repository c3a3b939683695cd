"""Preprocessing shared by training and the robot: relative coordinates, 50 frames, facing +x.

This is CrosSCLR's "frame50" preprocessing (the one OPSTL / IosPSTL train on), rewritten so that
occlusion survives every step. For one sequence (see :func:`preprocess_sequence`):

1. **Valid frames.** Frames in which no body is present are dropped (order kept). A body that
   is absent in a valid frame stays absent there (``present`` False, data 0).
2. **Relative coordinates.** Every joint of a body minus that body's centre joint
   (``CENTER_JOINT`` = 20, spine shoulder), per frame. Where the centre joint is occluded the
   centre is interpolated linearly in time (original frame index) from the body's frames where
   it is visible, held constant beyond the first / last such frame. If the centre is never
   visible, the midpoint of the two shoulders (``LEFT_SHOULDER``, ``RIGHT_SHOULDER``) is used
   the same way, from the frames where both are visible. If neither is ever visible the body
   has no reference point, and every joint of it is occluded in the whole sequence. The centre
   joint keeps its own occlusion flag: an occluded centre stays occluded (NaN) even when a
   centre was estimated for its frame.
3. **Resampling** of the L valid frames to ``window`` frames, linear with half-pixel centres
   (OpenCV ``INTER_LINEAR`` / ``align_corners=False``): output frame i reads source position
   ``s = clip((i + 0.5) * L / window - 0.5, 0, L - 1)``, ``lo = floor(s)``,
   ``hi = min(lo + 1, L - 1)``, ``w = s - lo`` and takes ``(1 - w) x[lo] + w x[hi]``. An output
   joint is occluded if it is occluded in a source frame of non-zero weight; an output body is
   present only if it is present in every source frame of non-zero weight.
4. **Shoulder alignment** (CrosSCLR's ``parallel_skeleton``), per body: each frame is rotated
   about y so that its shoulder vector (right minus left, projected on x-z) points along +x.
   Only frames with both shoulders visible give an angle; the others take the angle
   interpolated linearly in time (held at the ends); a body without such a frame is not
   rotated. The sign of all angles follows the sum of the shoulder vectors' z over the frames
   that give an angle, exactly as in the reference, so a frame whose shoulder vector disagrees
   with the sequence's sign is mapped onto -x as there.

Two bugs of the reference are deliberately not reproduced: it turns occluded joints (stored as
0) into minus the centre, and its sequence length counts the frames in which body 0's joint 0
is non-zero. Here occluded joints are NaN in every output and the length is the number of
frames that hold a body.

The view transforms of the encoder input (:func:`joint_stream`, :func:`motion_stream`,
:func:`bone_stream`) and :func:`fill_occluded` (the network input without imputation) are here
too. Arrays follow :mod:`iospstl_ros.layout`.
"""

import functools
from typing import NamedTuple

from iospstl_ros.layout import (
    BONE_PAIRS, CENTER_JOINT, LEFT_SHOULDER, NUM_CHANNELS, NUM_JOINTS, RIGHT_SHOULDER,
    WINDOW_FRAMES)
from iospstl_ros.validation import check_int
import numpy as np

#: Views of the encoder input, in the reference's ``get_stream`` names.
STREAMS = ('joint', 'motion', 'bone')
#: Added to the shoulder vector's length before the arccos, as in ``parallel_skeleton``.
SHOULDER_NORM_EPS = 1e-4

_BONE_CHILD = np.array([a for a, _ in BONE_PAIRS], dtype=np.intp)
_BONE_PARENT = np.array([b for _, b in BONE_PAIRS], dtype=np.intp)


class Preprocessed(NamedTuple):
    """Output of :func:`preprocess_sequence` (no N axis) or :func:`preprocess_batch`.

    Attributes
    ----------
    data : ndarray of shape ([N,] 3, window, 25, M), float32
        Coordinates relative to the centre joint; NaN at occluded joints, 0 for absent bodies.
    occluded : ndarray of shape ([N,] window, 25, M), bool
        True where a joint is occluded (only where the body is present).
    present : ndarray of shape ([N,] window, M), bool
        True where body m exists at frame t.
    """

    data: np.ndarray
    occluded: np.ndarray
    present: np.ndarray


def _check_sequence(xyz, occluded, present):
    xyz = np.asarray(xyz)
    occluded = np.asarray(occluded)
    present = np.asarray(present)
    if xyz.ndim != 4 or xyz.shape[0] != NUM_CHANNELS or xyz.shape[2] != NUM_JOINTS \
            or xyz.shape[3] < 1:
        raise ValueError(f'expected xyz of shape (3, T, {NUM_JOINTS}, M), got {xyz.shape}')
    if not np.issubdtype(xyz.dtype, np.floating) and not np.issubdtype(xyz.dtype, np.integer):
        raise ValueError(f'expected xyz of a real number dtype, got {xyz.dtype}')
    _, t, v, m = xyz.shape
    if occluded.shape != (t, v, m) or present.shape != (t, m):
        raise ValueError(f'expected occluded of shape {(t, v, m)} and present of shape '
                         f'{(t, m)} for xyz {xyz.shape}, got {occluded.shape} and '
                         f'{present.shape}')
    if occluded.dtype != np.bool_ or present.dtype != np.bool_:
        raise ValueError(f'expected bool occluded and present, got {occluded.dtype} and '
                         f'{present.dtype}')
    if t == 0:
        raise ValueError('expected at least one frame, got a sequence of 0 frames')
    return xyz, occluded, present


def _interpolate_gaps(values, known, times):
    """Fill unknown frames linearly in time from known ones, held constant beyond the ends.

    Parameters
    ----------
    values : ndarray of shape (C, L, K)
        Finite where ``known``.
    known : ndarray of shape (L, K), bool
    times : ndarray of shape (L,)
        Increasing time of each frame.

    Returns
    -------
    filled : ndarray of shape (C, L, K)
        Equal to ``values`` at known frames and in columns without a known frame.
    has_known : ndarray of shape (K,), bool
    """
    has_known = known.any(axis=0)
    gaps = np.flatnonzero(has_known & ~known.all(axis=0))
    if gaps.size == 0:
        return values, has_known
    filled = values.copy()
    for k in gaps:
        rows = known[:, k]
        for c in range(values.shape[0]):
            filled[c, :, k] = np.interp(times, times[rows], values[c, rows, k])
    return filled, has_known


def _relative(xyz, visible, present, times):
    """Subtract each body's (estimated) centre; zero where not visible.

    Parameters
    ----------
    xyz : ndarray of shape (3, L, V, M), float64
        Finite where ``visible``; 0 elsewhere.
    visible : ndarray of shape (L, V, M), bool
    present : ndarray of shape (L, M), bool
    times : ndarray of shape (L,)

    Returns
    -------
    relative : ndarray of shape (3, L, V, M), float64
        0 where not visible.
    visible : ndarray of shape (L, V, M), bool
        Input visibility, with bodies that have no reference point made fully invisible.
    """
    center = xyz[:, :, CENTER_JOINT]
    known = visible[:, CENTER_JOINT]
    if not (known | ~present).all():
        shoulders = visible[:, LEFT_SHOULDER] & visible[:, RIGHT_SHOULDER]
        fallback = ~known.any(axis=0)
        if fallback.any():
            midpoint = 0.5 * (xyz[:, :, LEFT_SHOULDER] + xyz[:, :, RIGHT_SHOULDER])
            center = np.where(fallback, midpoint, center)
            known = np.where(fallback, shoulders, known)
        center, has_center = _interpolate_gaps(center, known, times)
        if not has_center.all():
            visible = visible & has_center
    # np.repeat first: broadcasting along a non-final axis with M innermost is slow.
    relative = xyz - np.repeat(center[:, :, None, :], xyz.shape[2], axis=2)
    return np.where(visible, relative, 0.0), visible


@functools.lru_cache(maxsize=64)
def _resize_matrix(length, window):
    """Weights of the half-pixel linear resize from ``length`` to ``window`` frames.

    The source position is computed in integers, so an output frame that falls exactly on a
    source frame gives its neighbour a weight of exactly 0.

    Returns
    -------
    weights : ndarray of shape (window, length), float64, read-only
        Row i holds ``1 - w`` at ``lo`` and ``w`` at ``hi`` (summed where ``lo == hi``).
    support : ndarray of shape (window, length), float64, read-only
        1 where ``weights`` is non-zero, else 0.
    """
    denominator = 2 * window
    numerator = (2 * np.arange(window) + 1) * length - window
    numerator = numerator.clip(0, denominator * (length - 1))
    lo = numerator // denominator
    hi = np.minimum(lo + 1, length - 1)
    weight = (numerator - lo * denominator) / denominator
    weights = np.zeros((window, length))
    rows = np.arange(window)
    np.add.at(weights, (rows, lo), 1.0 - weight)
    np.add.at(weights, (rows, hi), weight)
    support = (weights > 0).astype(np.float64)
    weights.flags.writeable = False
    support.flags.writeable = False
    return weights, support


def _resample(relative, visible, present, window):
    """Resize the frame axis to ``window`` frames (see the module docstring).

    Parameters
    ----------
    relative : ndarray of shape (3, L, V, M), float64, 0 where not visible
    visible : ndarray of shape (L, V, M), bool
    present : ndarray of shape (L, M), bool
    window : int

    Returns
    -------
    data : ndarray of shape (3, window, V, M), float64, 0 where not visible
    occluded : ndarray of shape (window, V, M), bool
    present : ndarray of shape (window, M), bool
    """
    c, length, v, m = relative.shape
    if length == window:
        return relative, present[:, None, :] & ~visible, present
    weights, support = _resize_matrix(length, window)
    data = (weights @ relative.reshape(c, length, v * m)).reshape(c, window, v, m)
    hidden = present[:, None, :] & ~visible
    occluded = (support @ hidden.reshape(length, v * m)).reshape(window, v, m) > 0
    present = (support @ ~present) == 0
    occluded &= present[:, None, :]
    visible = present[:, None, :] & ~occluded
    return np.where(visible, data, 0.0), occluded, present


def _align_shoulders(data, visible):
    """Rotate each frame about y so that the shoulder vector points along +x.

    Parameters
    ----------
    data : ndarray of shape (3, W, V, M), float64, 0 where not visible
    visible : ndarray of shape (W, V, M), bool

    Returns
    -------
    rotated : ndarray of shape (3, W, V, M), float64
    """
    known = visible[:, LEFT_SHOULDER] & visible[:, RIGHT_SHOULDER]
    if not known.any():
        return data
    vx = data[0, :, RIGHT_SHOULDER] - data[0, :, LEFT_SHOULDER]
    vz = data[2, :, RIGHT_SHOULDER] - data[2, :, LEFT_SHOULDER]
    theta = np.arccos(vx / (np.sqrt(vx * vx + vz * vz) + SHOULDER_NORM_EPS))
    theta = np.where(np.where(known, vz, 0.0).sum(axis=0) >= 0, -theta, theta)
    theta, has_angle = _interpolate_gaps(theta[None], known, np.arange(known.shape[0]))
    theta = np.where(has_angle, theta[0], 0.0)[:, None, :]
    # np.repeat first: broadcasting along a non-final axis with M innermost is slow.
    cos = np.repeat(np.cos(theta), data.shape[2], axis=1)
    sin = np.repeat(np.sin(theta), data.shape[2], axis=1)
    x, y, z = data
    return np.stack([cos * x - sin * z, y, sin * x + cos * z])


def preprocess_sequence(xyz, occluded, present, window=WINDOW_FRAMES, align_shoulders=True):
    """Turn one camera-space sequence into a network window.

    The steps, and how an occluded centre joint, a body without any reference point and the
    masks are handled, are described in the module docstring. Occluded joints never receive a
    coordinate: they are NaN in ``data``.

    Parameters
    ----------
    xyz : ndarray of shape (3, T, 25, M), float
        Camera-space coordinates. Values at occluded joints and absent bodies are ignored (they
        may be NaN, 0 or anything); values at visible joints must be finite.
    occluded : ndarray of shape (T, 25, M), bool
        True where a joint is occluded.
    present : ndarray of shape (T, M), bool
        True where body m exists in frame t.
    window : int
        Frames of the output.
    align_shoulders : bool
        Apply the shoulder alignment rotation (step 4 of the module docstring).

    Returns
    -------
    Preprocessed
        ``data`` float32 (3, window, 25, M), ``occluded`` bool (window, 25, M), ``present``
        bool (window, M).

    Raises
    ------
    ValueError
        If shapes or dtypes are wrong, T is 0, no frame holds a body, or a visible joint is not
        finite.
    """
    xyz, occluded, present = _check_sequence(xyz, occluded, present)
    window = check_int('window', window)
    frames = np.flatnonzero(present.any(axis=1))
    if frames.size == 0:
        raise ValueError(f'expected at least one frame with a present body, got {len(present)} '
                         'frames without any')
    if frames.size < len(present):
        xyz, occluded, present = xyz[:, frames], occluded[frames], present[frames]
    visible = present[:, None, :] & ~occluded
    xyz = np.where(visible, xyz, 0.0).astype(np.float64, copy=False)
    if not np.isfinite(xyz).all():
        frame, joint, body = np.argwhere(~np.isfinite(xyz).all(axis=0))[0]
        raise ValueError('expected finite coordinates at visible joints, got a non-finite '
                         f'value at frame {frames[frame]}, joint {joint}, body {body}')
    relative, visible = _relative(xyz, visible, present, frames)
    data, occluded, present = _resample(relative, visible, present, window)
    if align_shoulders:
        data = _align_shoulders(data, present[:, None, :] & ~occluded)
    data = np.where(occluded, np.nan, data).astype(np.float32)
    return Preprocessed(data, occluded, present)


def preprocess_batch(data, occluded, present, num_frames, window=WINDOW_FRAMES,
                     align_shoulders=True, out=None, chunk_size=256, progress=None):
    """Apply :func:`preprocess_sequence` to every sample of a data set split.

    Inputs may be memory-mapped; they are read ``chunk_size`` samples at a time.

    Parameters
    ----------
    data : ndarray of shape (N, 3, T, 25, M), float
        As stored by :class:`iospstl_ros.datasets.format.SplitWriter` (NaN where occluded).
    occluded : ndarray of shape (N, T, 25, M), bool
    present : ndarray of shape (N, T, M), bool
    num_frames : ndarray of shape (N,), int
        Frames of each sample (1 <= num_frames[n] <= T); later frames are ignored.
    window : int
    align_shoulders : bool
    out : Preprocessed or tuple of three arrays, optional
        Arrays of shape (N, 3, window, 25, M) float32, (N, window, 25, M) bool and
        (N, window, M) bool to write into (for example ``np.lib.format.open_memmap`` files).
        Allocated in memory when omitted.
    chunk_size : int
        Samples read from the inputs at a time.
    progress : callable, optional
        Called as ``progress(k)`` after each chunk of k samples (for example ``tqdm.update``).

    Returns
    -------
    Preprocessed
        The arrays of ``out`` (or new ones), filled.

    Raises
    ------
    ValueError
        If shapes or dtypes are wrong or a sample cannot be preprocessed (the message names it).
    """
    window = check_int('window', window)
    chunk_size = check_int('chunk_size', chunk_size)
    if getattr(data, 'ndim', 0) != 5 or data.shape[1] != NUM_CHANNELS \
            or data.shape[3] != NUM_JOINTS:
        raise ValueError(f'expected data of shape (N, 3, T, {NUM_JOINTS}, M), got '
                         f'{getattr(data, "shape", type(data).__name__)}')
    n, _, t, v, m = data.shape
    num_frames = np.asarray(num_frames)
    if getattr(occluded, 'shape', None) != (n, t, v, m) \
            or getattr(present, 'shape', None) != (n, t, m) or num_frames.shape != (n,):
        raise ValueError(f'expected occluded {(n, t, v, m)}, present {(n, t, m)} and '
                         f'num_frames {(n,)} for data {data.shape}, got '
                         f'{getattr(occluded, "shape", None)}, {getattr(present, "shape", None)}'
                         f' and {num_frames.shape}')
    if not np.issubdtype(num_frames.dtype, np.integer):
        raise ValueError(f'expected integer num_frames, got {num_frames.dtype}')
    if n and (num_frames.min() < 1 or num_frames.max() > t):
        raise ValueError(f'expected 1 <= num_frames <= {t}, got values in '
                         f'[{num_frames.min()}, {num_frames.max()}]')
    shapes = ((n, NUM_CHANNELS, window, v, m), (n, window, v, m), (n, window, m))
    dtypes = (np.float32, np.bool_, np.bool_)
    if out is None:
        out = Preprocessed(*(np.zeros(s, d) for s, d in zip(shapes, dtypes)))
    else:
        out = Preprocessed(*out)
        got = [(getattr(a, 'shape', None), getattr(a, 'dtype', None)) for a in out]
        if got != [(s, np.dtype(d)) for s, d in zip(shapes, dtypes)]:
            raise ValueError(f'expected out arrays {list(zip(shapes, map(np.dtype, dtypes)))}, '
                             f'got {got}')
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        length = int(num_frames[start:stop].max())
        chunk_data = np.asarray(data[start:stop, :, :length])
        chunk_occluded = np.asarray(occluded[start:stop, :length])
        chunk_present = np.asarray(present[start:stop, :length])
        for i in range(stop - start):
            frames = int(num_frames[start + i])
            try:
                result = preprocess_sequence(
                    chunk_data[i, :, :frames], chunk_occluded[i, :frames],
                    chunk_present[i, :frames], window, align_shoulders)
            except ValueError as error:
                raise ValueError(f'sample {start + i}: {error}') from error
            for target, value in zip(out, result):
                target[start + i] = value
        if progress is not None:
            progress(stop - start)
    return out


def fill_occluded(data, occluded, value=0.0):
    """Copy of ``data`` with occluded joints set to ``value`` (the input without imputation).

    In relative coordinates ``value=0`` puts a hidden joint at the centre joint.

    Parameters
    ----------
    data : ndarray of shape (..., C, T, V, M), float
    occluded : ndarray of shape (..., T, V, M), bool
    value : float
        Finite fill value.

    Returns
    -------
    filled : ndarray of shape (..., C, T, V, M), same dtype as ``data``
        Finite everywhere.

    Raises
    ------
    ValueError
        On mismatched shapes, a non-finite ``value``, or a non-finite entry at a joint that is
        not occluded.
    """
    data = np.asarray(data)
    occluded = np.asarray(occluded, dtype=bool)
    if data.ndim < 4 or occluded.shape != data.shape[:-4] + data.shape[-3:]:
        raise ValueError('expected data (..., C, T, V, M) and occluded (..., T, V, M), got '
                         f'{data.shape} and {occluded.shape}')
    if not np.isfinite(value):
        raise ValueError(f'expected a finite fill value, got {value!r}')
    hidden = np.expand_dims(occluded, -4)
    filled = np.where(hidden, np.asarray(value, dtype=data.dtype), data)
    if not np.isfinite(filled).all():
        count = int((~np.isfinite(filled)).sum())
        raise ValueError(f'expected finite values at joints that are not occluded, got {count} '
                         'non-finite entries there')
    return filled


def _check_stream_input(x, what, min_ndim):
    x = np.asarray(x)
    if x.ndim < min_ndim or x.shape[-2] != NUM_JOINTS:
        layout = '(..., C, T, V, M)' if min_ndim == 4 else '(..., T, V, M)'
        raise ValueError(f'expected {what} of shape {layout} with V = {NUM_JOINTS}, got '
                         f'{x.shape}')
    return x


def joint_stream(x):
    """Joint view: the coordinates themselves (a copy).

    Parameters
    ----------
    x : ndarray of shape (..., C, T, V, M)

    Returns
    -------
    joint : ndarray of shape (..., C, T, V, M)
    """
    return np.array(_check_stream_input(x, 'x', 4))


def motion_stream(x):
    """Motion view: ``m[t] = x[t + 1] - x[t]``; the last frame is ``x[T-1] - x[T-1]`` (0).

    NaN (occluded) joints give NaN motion, also in the last frame.

    Parameters
    ----------
    x : ndarray of shape (..., C, T, V, M)

    Returns
    -------
    motion : ndarray of shape (..., C, T, V, M)
    """
    x = _check_stream_input(x, 'x', 4)
    following = np.concatenate([x[..., 1:, :, :], x[..., -1:, :, :]], axis=-3)
    return following - x


def bone_stream(x):
    """Bone view: ``b[v1] = x[v1] - x[v2]`` for ``(v1, v2)`` in ``BONE_PAIRS``; centre 0.

    Parameters
    ----------
    x : ndarray of shape (..., C, T, V, M)

    Returns
    -------
    bone : ndarray of shape (..., C, T, V, M)
        NaN where either joint of the bone is NaN.
    """
    x = _check_stream_input(x, 'x', 4)
    bone = np.empty_like(x)
    bone[..., _BONE_CHILD, :] = x[..., _BONE_CHILD, :] - x[..., _BONE_PARENT, :]
    return bone


def motion_occlusion(occluded):
    """Occlusion mask of :func:`motion_stream`: motion at t is occluded if frame t or t+1 is.

    Parameters
    ----------
    occluded : ndarray of shape (..., T, V, M), bool

    Returns
    -------
    motion_occluded : ndarray of shape (..., T, V, M), bool
        The last frame keeps its own flag (its motion compares the frame with itself).
    """
    occluded = _check_stream_input(occluded, 'occluded', 3).astype(bool, copy=False)
    following = np.concatenate([occluded[..., 1:, :, :], occluded[..., -1:, :, :]], axis=-3)
    return occluded | following


def bone_occlusion(occluded):
    """Occlusion mask of :func:`bone_stream`: a bone is occluded if either of its joints is.

    Parameters
    ----------
    occluded : ndarray of shape (..., T, V, M), bool

    Returns
    -------
    bone_occluded : ndarray of shape (..., T, V, M), bool
        The centre's bone keeps the centre's flag.
    """
    occluded = _check_stream_input(occluded, 'occluded', 3).astype(bool, copy=False)
    bone = np.empty_like(occluded)
    bone[..., _BONE_CHILD, :] = occluded[..., _BONE_CHILD, :] | occluded[..., _BONE_PARENT, :]
    return bone


def stream(x, view):
    """Return the encoder input view by name, as the reference's ``get_stream``.

    Parameters
    ----------
    x : ndarray of shape (..., C, T, V, M)
    view : {'joint', 'motion', 'bone'}

    Returns
    -------
    ndarray of shape (..., C, T, V, M)
    """
    if view not in STREAMS:
        raise ValueError(f'view must be one of {STREAMS}, got {view!r}')
    return {'joint': joint_stream, 'motion': motion_stream, 'bone': bone_stream}[view](x)


def stream_occlusion(occluded, view):
    """Return the occlusion mask of :func:`stream` by view name.

    Parameters
    ----------
    occluded : ndarray of shape (..., T, V, M), bool
    view : {'joint', 'motion', 'bone'}

    Returns
    -------
    ndarray of shape (..., T, V, M), bool
    """
    if view not in STREAMS:
        raise ValueError(f'view must be one of {STREAMS}, got {view!r}')
    if view == 'joint':
        return np.array(_check_stream_input(occluded, 'occluded', 3), dtype=bool)
    return {'motion': motion_occlusion, 'bone': bone_occlusion}[view](occluded)
