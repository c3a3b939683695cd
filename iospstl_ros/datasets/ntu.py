"""Read NTU RGB+D / Kinect v2 ``.skeleton`` text files and convert them to the project layout.

File format (one sample, e.g. ``S001C001P001R001A001.skeleton``; LF or CRLF line ends)::

    frame count
    per frame:  body count
        per body:   bodyID clippedEdges handLeftConfidence handLeftState
                    handRightConfidence handRightState isRestricted leanX leanY trackingState
                    joint count (25)
                    25 lines:  x y z depthX depthY colorX colorY
                               orientationW orientationX orientationY orientationZ trackingState

Only the camera-space ``x y z`` (metres), the joints' ``trackingState`` (0 not tracked,
1 inferred, 2 tracked) and the body ids are kept. Body ids are 17-digit integers above 2**53,
so they are parsed as exact integers into uint64, never through a float.

Occlusion has two signals in NTU-derived data: Kinect's tracking state, and (in the occluded
NTU of Peng et al. that the paper uses) joints whose ``x y z`` are all exactly 0.
:func:`occlusion_from_tracking` combines both; :func:`to_layout` gives the arrays
:meth:`iospstl_ros.datasets.format.SplitWriter.write` takes.
"""

from dataclasses import dataclass

from iospstl_ros.layout import MAX_BODIES, NUM_JOINTS
import numpy as np

#: Values on a body line (bodyID, clippedEdges, 4 hand values, isRestricted, leanX, leanY,
#: trackingState).
BODY_FIELDS = 10
#: Values on a joint line (x y z, depth x y, colour x y, orientation w x y z, trackingState).
JOINT_FIELDS = 12
#: Kinect v2 joint tracking states: not tracked, inferred, tracked.
TRACKING_STATES = (0, 1, 2)
#: Tracking states counted as occluded by default (not tracked and inferred).
OCCLUDED_STATES = (0, 1)

_UINT64_MAX = 2 ** 64 - 1


@dataclass(frozen=True)
class NtuSkeleton:
    """Contents of one ``.skeleton`` file.

    Body slot ``m`` of frame ``t`` is the ``m``-th body listed in that frame of the file; slots
    past a frame's body count are absent.

    Attributes
    ----------
    xyz : ndarray of shape (frames, bodies, 25, 3), float32
        Camera-space coordinates in metres; NaN in absent body slots.
    tracking_state : ndarray of shape (frames, bodies, 25), uint8
        0 not tracked, 1 inferred, 2 tracked; 0 in absent body slots.
    body_ids : ndarray of shape (frames, bodies), uint64
        Kinect body ids; 0 in absent body slots.
    body_counts : ndarray of shape (frames,), int64
        Bodies listed in each frame.
    """

    xyz: np.ndarray
    tracking_state: np.ndarray
    body_ids: np.ndarray
    body_counts: np.ndarray

    @property
    def num_frames(self):
        return self.xyz.shape[0]

    @property
    def num_bodies(self):
        """Most bodies in any frame (0 for a file without any body)."""
        return self.xyz.shape[1]

    @property
    def present(self):
        """Bool (frames, bodies): True where the frame lists a body in that slot."""
        return np.arange(self.num_bodies) < self.body_counts[:, None]


def _fail(path, index, message, line=None):
    where = f'{path}, line {index + 1}'
    got = '' if line is None else f', got {line.strip()[:80]!r}'
    raise ValueError(f'{where}: {message}{got}')


def _count(path, lines, index, what, expected=None):
    """Parse ``lines[index]`` as a non-negative integer count."""
    if index >= len(lines):
        _fail(path, index, f'unexpected end of file, expected {what}')
    line = lines[index]
    text = line.strip()
    if not text.isdigit():
        _fail(path, index, f'expected {what} (a non-negative integer)', line)
    value = int(text)
    if expected is not None and value != expected:
        _fail(path, index, f'expected {what} {expected}', line)
    return value


def _body_id(path, lines, index):
    if index >= len(lines):
        _fail(path, index, 'unexpected end of file, expected a body line')
    line = lines[index]
    fields = line.split()
    if len(fields) != BODY_FIELDS:
        _fail(path, index, f'expected a body line of {BODY_FIELDS} values', line)
    if not fields[0].isdigit() or int(fields[0]) > _UINT64_MAX:
        _fail(path, index, 'expected an unsigned 64-bit body id first on the body line', line)
    return int(fields[0])


def _parse_rows(rows):
    """Parse text rows of ``JOINT_FIELDS`` numbers each; None if any row is not such a row."""
    try:
        values = np.loadtxt(rows, dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        return None
    return values if values.shape == (len(rows), JOINT_FIELDS) else None


def _joint_values(path, lines, starts):
    """Parse the 25 joint lines after each start index into float64 (bodies, 25, 12)."""
    rows = [index for start in starts for index in range(start, start + NUM_JOINTS)]
    if not rows:
        return np.zeros((0, NUM_JOINTS, JOINT_FIELDS))
    values = _parse_rows([lines[i] for i in rows])
    if values is None:
        # Slow path, only for a broken file: find the first bad line.
        for index in rows:
            if not lines[index].strip() or _parse_rows([lines[index]]) is None:
                _fail(path, index, f'expected a joint line of {JOINT_FIELDS} numbers',
                      lines[index])
        raise ValueError(f'{path}: the joint lines could not be parsed together')
    values = values.reshape(len(starts), NUM_JOINTS, JOINT_FIELDS)
    state = values[..., JOINT_FIELDS - 1]
    bad = ~np.isfinite(values[..., :3]).all(axis=-1) | ~np.isin(state, TRACKING_STATES)
    if bad.any():
        body, joint = np.argwhere(bad)[0]
        index = starts[body] + joint
        _fail(path, index, 'expected finite x y z and a tracking state in '
              f'{TRACKING_STATES} on the joint line', lines[index])
    return values


def read_ntu_skeleton(path):
    """Read one NTU RGB+D ``.skeleton`` file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    skeleton : NtuSkeleton
        ``xyz`` (frames, bodies, 25, 3) float32, ``tracking_state`` (frames, bodies, 25)
        uint8, ``body_ids`` (frames, bodies) uint64 and ``body_counts`` (frames,), with
        ``bodies`` the most bodies listed in any frame. Frames without a body and files
        without any body (``bodies`` = 0) are valid.

    Raises
    ------
    ValueError
        If the file is truncated or malformed (a count that is not a non-negative integer, a
        joint count other than 25, a line with the wrong number of values, a value that is not
        a number, a non-finite coordinate, a tracking state outside 0..2, non-blank text after
        the last frame). The message names the file and the 1-based line number.
    """
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        text = raw.decode('ascii')
    except UnicodeDecodeError as error:
        line = raw.count(b'\n', 0, error.start)
        _fail(path, line, 'expected ASCII text')
    lines = text.splitlines()

    num_frames = _count(path, lines, 0, 'the frame count')
    index = 1
    body_counts = []
    body_frames, body_slots, body_ids, joint_starts = [], [], [], []
    for frame in range(num_frames):
        count = _count(path, lines, index, f'the body count of frame {frame + 1}')
        body_counts.append(count)
        index += 1
        for slot in range(count):
            body_ids.append(_body_id(path, lines, index))
            _count(path, lines, index + 1, 'the joint count', expected=NUM_JOINTS)
            start = index + 2
            if start + NUM_JOINTS > len(lines):
                _fail(path, len(lines), f'unexpected end of file, expected {NUM_JOINTS} '
                      f'joint lines of frame {frame + 1}, body {slot + 1}')
            joint_starts.append(start)
            body_frames.append(frame)
            body_slots.append(slot)
            index = start + NUM_JOINTS
    for rest in range(index, len(lines)):
        if lines[rest].strip():
            _fail(path, rest, f'expected the end of the file after {num_frames} frames',
                  lines[rest])

    values = _joint_values(path, lines, joint_starts)
    body_counts = np.array(body_counts, dtype=np.int64)
    num_bodies = int(body_counts.max(initial=0))
    xyz = np.full((num_frames, num_bodies, NUM_JOINTS, 3), np.nan, dtype=np.float32)
    tracking_state = np.zeros((num_frames, num_bodies, NUM_JOINTS), dtype=np.uint8)
    ids = np.zeros((num_frames, num_bodies), dtype=np.uint64)
    if joint_starts:
        xyz[body_frames, body_slots] = values[..., :3]
        tracking_state[body_frames, body_slots] = values[..., JOINT_FIELDS - 1]
        ids[body_frames, body_slots] = np.array(body_ids, dtype=np.uint64)
    return NtuSkeleton(xyz, tracking_state, ids, body_counts)


def occlusion_from_tracking(tracking_state, xyz, occluded_states=OCCLUDED_STATES):
    """Flag occluded joints: tracking state in ``occluded_states``, or x y z exactly (0, 0, 0).

    The zero test is how the occluded NTU of Peng et al. (the paper's data) marks hidden
    joints. Absent body slots (NaN coordinates) are never flagged.

    Parameters
    ----------
    tracking_state : ndarray of shape (frames, bodies, 25), integer
    xyz : ndarray of shape (frames, bodies, 25, 3), float
    occluded_states : sequence of int
        Tracking states that count as occluded; ``(0, 1)`` (not tracked, inferred) by default,
        ``()`` to use only the zero test.

    Returns
    -------
    occluded : ndarray of shape (frames, bodies, 25), bool
    """
    tracking_state = np.asarray(tracking_state)
    xyz = np.asarray(xyz)
    if xyz.ndim != 4 or xyz.shape[-1] != 3 or tracking_state.shape != xyz.shape[:-1]:
        raise ValueError('expected tracking_state (frames, bodies, 25) and xyz '
                         f'(frames, bodies, 25, 3), got {tracking_state.shape} and {xyz.shape}')
    states = tuple(occluded_states)
    if not all(isinstance(s, (int, np.integer)) and s in TRACKING_STATES for s in states):
        raise ValueError(f'occluded_states must be values of {TRACKING_STATES}, got {states}')
    occluded = np.isin(tracking_state, states) | (xyz == 0).all(axis=-1)
    return occluded & ~np.isnan(xyz).any(axis=-1)


def to_layout(skeleton, max_bodies=MAX_BODIES, occluded_states=OCCLUDED_STATES):
    """Convert a skeleton to the arrays of :meth:`iospstl_ros.datasets.format.SplitWriter.write`.

    Bodies are kept in file order and slots beyond ``max_bodies`` are dropped (the first
    ``max_bodies`` listed bodies of each frame are kept, as the reference code and CrosSCLR
    do; there is no selection by motion and no tracking by body id, so a person may change
    slot between frames).

    Parameters
    ----------
    skeleton : NtuSkeleton
    max_bodies : int
        Body slots M of the output; slots without a body are absent.
    occluded_states : sequence of int
        Passed to :func:`occlusion_from_tracking`.

    Returns
    -------
    xyz : ndarray of shape (3, T, 25, M), float32
        Raw camera-space coordinates (occluded joints keep the file's values); 0 in absent
        slots.
    occluded : ndarray of shape (T, 25, M), bool
        False in absent slots.
    present : ndarray of shape (T, M), bool
    """
    if max_bodies < 0:
        raise ValueError(f'max_bodies must be >= 0, got {max_bodies}')
    kept = min(skeleton.num_bodies, max_bodies)
    frames = skeleton.num_frames
    xyz = np.zeros((3, frames, NUM_JOINTS, max_bodies), dtype=np.float32)
    occluded = np.zeros((frames, NUM_JOINTS, max_bodies), dtype=bool)
    present = np.zeros((frames, max_bodies), dtype=bool)
    source = skeleton.xyz[:, :kept]
    present[:, :kept] = skeleton.present[:, :kept]
    xyz[:, :, :, :kept] = np.where(np.isnan(source), 0.0, source).transpose(3, 0, 2, 1)
    occluded[:, :, :kept] = occlusion_from_tracking(
        skeleton.tracking_state[:, :kept], source, occluded_states).transpose(0, 2, 1)
    return xyz, occluded, present
