"""Synthetic people: the NTU-25 bone tree, per-subject bodies and forward kinematics."""

from dataclasses import dataclass
import functools

from iospstl_ros.layout import NUM_JOINTS
from iospstl_ros.validation import check_int
import numpy as np


# Bone tree: parent of every joint (-1 for the root), in NTU joint order.
_PARENTS = (-1, 0, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1, 7, 7,
            11, 11)
# Joints in an order where every parent comes before its children.
_FK_ORDER = (0, 1, 20, 2, 3, 4, 5, 6, 7, 21, 22, 8, 9, 10, 11, 23, 24, 12, 13, 14, 15, 16, 17,
             18, 19)
# Rest direction (body frame: x = the person's right, y up, z backward; the person faces -z)
# and length (metres, height scale 1) of the bone from each joint's parent to the joint.
_REST_BONES = {
    1: ((0.0, 1.0, 0.0), 0.24), 20: ((0.0, 1.0, 0.0), 0.25), 2: ((0.0, 1.0, 0.0), 0.08),
    3: ((0.0, 1.0, 0.0), 0.14),
    8: ((1.0, -0.15, 0.05), 0.18), 9: ((0.0, -1.0, 0.0), 0.28), 10: ((0.0, -1.0, 0.0), 0.25),
    11: ((0.0, -1.0, 0.0), 0.08), 23: ((0.0, -1.0, 0.0), 0.07), 24: ((-0.35, -0.5, -0.8), 0.05),
    16: ((1.0, -0.55, 0.0), 0.09), 17: ((0.0, -1.0, 0.0), 0.43), 18: ((0.0, -1.0, 0.0), 0.41),
    19: ((0.0, -0.35, -1.0), 0.13),
}
# Left-side joints mirror these right-side ones (x negated).
_MIRROR = {4: 8, 5: 9, 6: 10, 7: 11, 21: 23, 22: 24, 12: 16, 13: 17, 14: 18, 15: 19}
# Bone groups that share one length jitter per subject (left and right together).
_BONE_GROUPS = ((1, 20), (2,), (3,), (4, 8), (5, 9), (6, 10), (7, 11), (21, 23), (22, 24),
                (12, 16), (13, 17), (14, 18), (15, 19))
# Joints of each side: shoulder, elbow, wrist, hip, knee, ankle.
_SIDE_JOINTS = {'r': (8, 9, 10, 16, 17, 18), 'l': (4, 5, 6, 12, 13, 14)}
_SIGN = {'r': 1.0, 'l': -1.0}
_OTHER = {'r': 'l', 'l': 'r'}
# Height above the floor of the ankle and foot joints when the sole is on the floor, metres.
_FLOOR_CLEARANCE = {14: 0.08, 18: 0.08, 15: 0.03, 19: 0.03}
_SUBJECT_STREAM = 2


def _rest_skeleton():
    directions = np.zeros((NUM_JOINTS, 3))
    lengths = np.zeros(NUM_JOINTS)
    for joint, (direction, length) in _REST_BONES.items():
        directions[joint] = np.asarray(direction) / np.linalg.norm(direction)
        lengths[joint] = length
    for left, right in _MIRROR.items():
        directions[left] = directions[right] * (-1.0, 1.0, 1.0)
        lengths[left] = lengths[right]
    return directions, lengths


_REST_DIRECTIONS, _REST_LENGTHS = _rest_skeleton()


#: Stature, metres, of the rest skeleton (bone lengths at height scale 1).
REST_STATURE = 1.72
#: Adult stature, metres: mean and standard deviation for men and women (NHANES 2015-2018,
#: Fryar et al. 2021; see docs/data.md).
ADULT_STATURE = {'m': (1.753, 0.075), 'f': (1.613, 0.070)}
#: Share of the synthetic subjects who are children (NTU's performers are aged 10 to 35).
CHILD_SHARE = 0.1
#: Stature range of the children, metres (CDC growth charts: median at 10 years about 1.38 m,
#: at 14 years about 1.60 to 1.64 m).
CHILD_STATURE = (1.38, 1.60)
#: Children's head and neck bones relative to an adult's of the same stature.
CHILD_HEAD_SCALE = 1.1


@dataclass(frozen=True)
class Subject:
    """Body and movement style of one performer.

    Attributes
    ----------
    subject : int
        1-based id.
    bone_lengths : ndarray of shape (25,), float64
        Length, metres, of the bone from each joint's parent to the joint (0 for the root).
    stature : float
        Standing height, metres (``bone_lengths`` are the rest skeleton's scaled to it).
    child : bool
        A child (aged 10 to 14): shorter, with a relatively larger head.
    speed, amplitude, tempo : float
        Multipliers of the action speed, the joint-angle amplitudes and oscillation rates.
    hand : {'r', 'l'}
        Dominant side (drink, pick up, kick, punch).
    arm_rest, elbow_rest, posture, stance : float
        Resting shoulder abduction, elbow flexion, forward lean and hip abduction, radians.
    side_raise : bool
        Raises the arms sideways (True) or forwards (False).
    """

    subject: int
    bone_lengths: np.ndarray
    stature: float
    child: bool
    speed: float
    amplitude: float
    tempo: float
    hand: str
    arm_rest: float
    elbow_rest: float
    posture: float
    stance: float
    side_raise: bool


def make_subject(seed, subject):
    """Draw the body and style of a subject (the same for every sequence of a seed).

    A subject is a child with probability :data:`CHILD_SHARE` (stature uniform in
    :data:`CHILD_STATURE`, head and neck :data:`CHILD_HEAD_SCALE` times longer), otherwise a man
    or a woman with equal probability and a normal stature from :data:`ADULT_STATURE` (clipped
    to 2.5 standard deviations; women's shoulders 5 % narrower, hips 3 % wider). Every bone
    group then gets its own length jitter of about 4 %.

    Parameters
    ----------
    seed : int
    subject : int
        1-based subject id.

    Returns
    -------
    subject : Subject
    """
    check_int('seed', seed, low=0)
    check_int('subject', subject, low=0)
    return _make_subject(int(seed), int(subject))


@functools.lru_cache(maxsize=256)
def _make_subject(seed, subject):
    """:func:`make_subject` for validated ints; cached (every sequence draws its subjects)."""
    sequence = np.random.SeedSequence([int(seed), int(subject)], spawn_key=(_SUBJECT_STREAM,))
    rng = np.random.default_rng(sequence)
    child = bool(rng.random() < CHILD_SHARE)
    lengths = _REST_LENGTHS.copy()
    if child:
        stature = rng.uniform(*CHILD_STATURE)
        lengths[[2, 3]] *= CHILD_HEAD_SCALE
    else:
        sex = 'm' if rng.random() < 0.5 else 'f'
        mean, std = ADULT_STATURE[sex]
        stature = mean + std * np.clip(rng.normal(), -2.5, 2.5)
        if sex == 'f':
            lengths[[4, 8]] *= 0.95
            lengths[[12, 16]] *= 1.03
    lengths *= stature / REST_STATURE
    for group in _BONE_GROUPS:
        lengths[list(group)] *= 1.0 + np.clip(rng.normal(0.0, 0.04), -0.1, 0.1)
    return Subject(
        subject=int(subject), bone_lengths=lengths, stature=float(stature), child=child,
        speed=rng.uniform(0.8, 1.25) * (1.1 if child else 1.0),
        amplitude=rng.uniform(0.8, 1.1), tempo=rng.uniform(0.85, 1.2),
        hand='r' if rng.random() < 0.85 else 'l', arm_rest=rng.uniform(0.05, 0.2),
        elbow_rest=rng.uniform(0.05, 0.35), posture=rng.uniform(-0.04, 0.12),
        stance=rng.uniform(0.0, 0.08), side_raise=bool(rng.random() < 0.4))


# --------------------------------------------------------------------------- kinematics


def _channel(pose, name, num_frames):
    """One pose channel as an array of shape (T,) (0 when missing)."""
    values = np.asarray(pose.get(name, 0.0), dtype=np.float64)
    if values.ndim > 1 or values.size not in (1, num_frames):
        raise ValueError(f'expected pose channel {name!r} of shape ({num_frames},) or a scalar, '
                         f'got shape {values.shape}')
    return np.broadcast_to(values.reshape(-1) if values.ndim else values, (num_frames,))


def _rotation(axis, angle):
    """Rotation matrices about a body axis; angle (T,) -> (T, 3, 3)."""
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    if axis == 'x':
        rows = ((one, zero, zero), (zero, c, -s), (zero, s, c))
    elif axis == 'y':
        rows = ((c, zero, s), (zero, one, zero), (-s, zero, c))
    else:
        rows = ((c, -s, zero), (s, c, zero), (zero, zero, one))
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def forward_kinematics(pose, bone_lengths, num_frames):
    """Place the 25 joints of one body from its joint angles.

    Body frame: x = the person's right, y up, z backward (the person faces -z), metres, the
    root (spine base) at the origin. The bone from joint ``p`` to its child ``j`` is the rest
    direction of ``j`` rotated by the accumulated rotation at ``p``, times ``bone_lengths[j]``.

    Parameters
    ----------
    pose : dict of str to ndarray of shape (T,)
        Angles, radians; missing channels are 0. ``'yaw'``, ``'pelvis_pitch'`` (forward lean),
        ``'pelvis_roll'``, ``'spine_pitch'``, ``'spine_roll'``, ``'spine_yaw'``,
        ``'neck_pitch'`` and, per side ``s`` in ``r``/``l``: ``shoulder_flex_s`` (arm forward),
        ``shoulder_abd_s`` (arm outward), ``shoulder_twist_s`` (internal rotation),
        ``elbow_s``, ``wrist_s``, ``hip_flex_s`` (thigh forward of vertical, independent of the
        pelvis lean), ``hip_abd_s`` (leg outward), ``knee_s`` (flexion), ``ankle_s`` (foot
        rotation relative to flat on the floor). Other channels (the placement's
        ``'forward'``, ``'lateral'``, ``'air'``) are ignored.
    bone_lengths : array_like of shape (25,)
        Metres, from each joint's parent to the joint (entry 0, the root, is unused).
    num_frames : int

    Returns
    -------
    joints : ndarray of shape (T, 25, 3), float64

    Raises
    ------
    ValueError
        If ``bone_lengths`` is not (25,) or a channel does not broadcast to (T,).
    """
    bone_lengths = np.asarray(bone_lengths, dtype=np.float64)
    if bone_lengths.shape != (NUM_JOINTS,):
        raise ValueError(f'expected bone_lengths of shape ({NUM_JOINTS},), '
                         f'got {bone_lengths.shape}')
    check_int('num_frames', num_frames, low=0)

    def angle(name):
        return _channel(pose, name, num_frames)

    local = [None] * NUM_JOINTS
    pelvis_pitch = angle('pelvis_pitch')
    local[0] = (_rotation('y', angle('yaw')) @ _rotation('z', -angle('pelvis_roll'))
                @ _rotation('x', -pelvis_pitch))
    spine = (_rotation('x', -0.5 * angle('spine_pitch'))
             @ _rotation('z', -0.5 * angle('spine_roll'))
             @ _rotation('y', 0.5 * angle('spine_yaw')))
    local[1] = local[20] = spine
    local[2] = _rotation('x', -angle('neck_pitch'))
    for side, (shoulder, elbow, wrist, hip, knee, ankle) in _SIDE_JOINTS.items():
        sign = _SIGN[side]
        local[shoulder] = (_rotation('z', sign * angle(f'shoulder_abd_{side}'))
                           @ _rotation('x', angle(f'shoulder_flex_{side}'))
                           @ _rotation('y', sign * angle(f'shoulder_twist_{side}')))
        local[elbow] = _rotation('x', angle(f'elbow_{side}'))
        local[wrist] = _rotation('x', angle(f'wrist_{side}'))
        hip_flex, knee_flex = angle(f'hip_flex_{side}'), angle(f'knee_{side}')
        local[hip] = (_rotation('z', sign * angle(f'hip_abd_{side}'))
                      @ _rotation('x', hip_flex + pelvis_pitch))
        local[knee] = _rotation('x', -knee_flex)
        # Keeps the foot flat on the floor unless the ankle channel says otherwise.
        local[ankle] = _rotation('x', angle(f'ankle_{side}') - hip_flex + knee_flex)
    offsets = _REST_DIRECTIONS * bone_lengths[:, None]
    joints = np.zeros((num_frames, NUM_JOINTS, 3))
    frames = [None] * NUM_JOINTS
    frames[0] = local[0]
    for joint in _FK_ORDER[1:]:
        parent = _PARENTS[joint]
        joints[:, joint] = joints[:, parent] + frames[parent] @ offsets[joint]
        frames[joint] = frames[parent] if local[joint] is None else frames[parent] @ local[joint]
    return joints


def _place_on_floor(joints, anchor, pose):
    """Put the lowest foot on the floor (y = 0), plant feet, add translation; in place."""
    num_frames = len(joints)
    if anchor is not None:
        ankles = {'both': [14, 18], 'r': [18], 'l': [14]}[anchor]
        foot = joints[:, ankles][:, :, [0, 2]].mean(axis=1)                    # (T, 2)
        joints[:, :, [0, 2]] -= (foot - foot[0])[:, None, :]
    joints[:, :, 0] += _channel(pose, 'lateral', num_frames)[:, None]
    joints[:, :, 2] -= _channel(pose, 'forward', num_frames)[:, None]
    heights = np.stack([joints[:, joint, 1] - clearance
                        for joint, clearance in _FLOOR_CLEARANCE.items()], axis=1)
    joints[:, :, 1] -= heights.min(axis=1)[:, None]
    joints[:, :, 1] += _channel(pose, 'air', num_frames)[:, None]
    return joints
