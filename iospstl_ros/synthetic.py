"""Built-in synthetic occluded skeleton benchmark: procedurally animated NTU-25 actions.

No skeleton data set can be downloaded, so the demo, the default model and the tests run on
sequences this module makes. They are written by :class:`iospstl_ros.dataset.SplitWriter`
exactly like converted NTU RGB+D data (same arrays, masks, ``B``, sample names and parts), so
nothing downstream can tell them apart.

Bodies
------
Each of :data:`NUM_SUBJECTS` subjects has its own bone lengths (height scale 0.88 to 1.10 of a
1.72 m adult, every bone group jittered by about 4 %), speed, amplitude, handedness (about
85 % right-handed) and posture style, drawn from the seed and the subject id. A pose is a set of
joint angles per frame (pelvis, spine, neck, shoulders, elbows, wrists, hips, knees, ankles);
:func:`forward_kinematics` turns it into the 25 NTU joints along a bone tree, so bone lengths
are exactly constant within a sequence. Feet are kept on the floor (the lowest foot joint is
put on it every frame, a jump adds a ballistic lift) and, for the standing actions, planted.

Actions
-------
:data:`CLASS_NAMES` lists 17 classes (label = index, NTU action number = index + 1). They are
told apart by the motion of different body parts, the legs included: the hands (waves, clap,
drink, punch), the trunk (pick up), the legs (kick, march, side step), the whole body (sit
down, stand up, jump, squat, raise both arms) and three two-person interactions written as
M = 2 bodies that both move (handshake, push, hug); the second body is the subject two ids on
(same parity, so both people of a sample are in the same cross-subject part). Single-person
classes leave the second body absent (``present`` False, coordinates 0).

Scenes and cameras
------------------
Sequences are 40 to 150 frames at 30 Hz (action length / subject speed, with jitter, an idle
lead-in and tail). Like NTU, three cameras watch from azimuths of 0, +45 and -45 degrees
(cameras 1, 2, 3) around the subject, at 0.8 to 1.2 m above the floor, 2.1 to 3.7 m away,
tilted by a few degrees; the person stands with a small random offset and yaw. Coordinates are
Kinect camera space (:mod:`iospstl_ros.layout`). Gaussian sensor noise with a standard deviation
of 5 to 10 mm (drawn per sequence) is added to every joint.

Samples and splits
------------------
Sample ``index`` has action ``index % 17 + 1``, camera ``index % 3 + 1``, subject
``index % 20 + 1`` (17, 3 and 20 are pairwise coprime, so every block of 1,020 consecutive
indices holds each action x camera x subject triple once), replication
``index // 1020 % 2 + 1`` and setup ``index // 2040 + 1``; any prefix of the indices is
balanced over classes, cameras and subjects. Names follow NTU: ``SsssCcccPpppRrrrAaaa``.
Cross-subject (``xsub``) trains on the odd subjects :data:`TRAIN_SUBJECTS`; cross-view
(``xview``) trains on cameras 2 and 3 and tests on camera 1, as in NTU.

Determinism and occlusion
-------------------------
Sequence ``index`` draws its motion and its occlusion from two independent streams spawned from
``numpy.random.SeedSequence([seed, index])`` (:func:`sequence_rngs`), so the clean
(``occlusion='none'``) and the occluded versions of a data set hold identical motion, and the
same seed gives the same bytes. Occlusion comes from
:func:`iospstl_ros.occlusion.apply_occlusion`.
With ``'realistic'`` occlusion (furniture ray casting) the occluded share of a sample's present
joint slots averages 0.2 to 0.45 over a data set (measured on 2,000 sequences of seed 0: mean
0.29, median 0.24, 90th percentile 0.51, 3 % of the samples unoccluded) and never exceeds 0.7
(:data:`iospstl_ros.occlusion.MAX_HIDDEN_FRACTION`); low furniture makes it strongly skewed to
the legs (knees, ankles and feet about 0.8 of their slots, head and shoulders about 0.05).
``'random'`` hides 20 % of the slots.

Everything here is numpy-only.
"""

from dataclasses import dataclass

from iospstl_ros.layout import FRAME_RATE, MAX_BODIES, NUM_JOINTS
from iospstl_ros.occlusion import apply_occlusion, OCCLUSION_MODES, realistic_occlusion
from iospstl_ros.splits import parse_sample_name, SampleName
import numpy as np

#: Version of the generator; bump when the output for a given seed changes.
GENERATOR_VERSION = 2

#: Action classes; label = index, NTU-style action number = index + 1.
CLASS_NAMES = (
    'wave right hand', 'wave left hand', 'clap', 'drink water', 'pick up', 'sit down',
    'stand up', 'kick', 'march in place', 'jump', 'squat', 'side step', 'raise both arms',
    'punch', 'handshake', 'push', 'hug',
)
#: Number of action classes.
NUM_CLASSES = len(CLASS_NAMES)
#: Labels (0-based) of the two-person interactions.
TWO_PERSON_CLASSES = (14, 15, 16)
#: Number of subjects (performers ``P001`` to ``P020``).
NUM_SUBJECTS = 20
#: Number of cameras (``C001`` to ``C003``).
NUM_CAMERAS = 3
#: Number of replications (``R001``, ``R002``).
NUM_REPLICATIONS = 2
#: Camera azimuth around the subject, degrees, for cameras 1, 2, 3 (0 = in front).
CAMERA_AZIMUTHS = (0.0, 45.0, -45.0)
#: Cross-subject training subjects (the odd ids); the even ids form the test part.
TRAIN_SUBJECTS = tuple(range(1, NUM_SUBJECTS + 1, 2))
#: Cross-view training cameras; camera 1 is the test part.
TRAIN_CAMERAS = (2, 3)
#: Benchmarks written by ``training.synthesize``.
BENCHMARKS = ('xsub', 'xview')
#: Shortest and longest sequence, frames.
MIN_SEQUENCE_FRAMES = 40
MAX_SEQUENCE_FRAMES = 150
#: Range of the per-sequence sensor noise standard deviation, metres.
NOISE_STD_RANGE = (0.005, 0.010)
#: Camera height above the floor and distance to the subject, metres, per setup (cycled).
SETUP_GEOMETRY = ((1.00, 3.0), (0.85, 2.5), (1.15, 3.4), (0.90, 2.7), (1.10, 3.2), (0.95, 2.4))
#: Nominal action length, seconds, per class (scaled by the subject's speed).
ACTION_SECONDS = (2.6, 2.6, 2.6, 3.0, 3.2, 2.8, 2.6, 2.4, 3.6, 2.4, 3.4, 3.6, 3.0, 2.4, 3.2,
                  2.8, 4.0)

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


@dataclass(frozen=True)
class Subject:
    """Body and movement style of one performer.

    Attributes
    ----------
    subject : int
        1-based id.
    bone_lengths : ndarray of shape (25,), float64
        Length, metres, of the bone from each joint's parent to the joint (0 for the root).
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
    speed: float
    amplitude: float
    tempo: float
    hand: str
    arm_rest: float
    elbow_rest: float
    posture: float
    stance: float
    side_raise: bool


@dataclass
class SyntheticSequence:
    """One generated sample, ready for :meth:`iospstl_ros.dataset.SplitWriter.write`.

    Attributes
    ----------
    name : str
    label : int
    xyz : ndarray of shape (3, T, 25, 2), float32
        Camera-space joints, metres, with sensor noise; the true values also at occluded joints;
        0 for an absent body.
    occluded : ndarray of shape (T, 25, 2), bool
    present : ndarray of shape (T, 2), bool
    """

    name: str
    label: int
    xyz: np.ndarray
    occluded: np.ndarray
    present: np.ndarray


def _check_seed(seed):
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f'expected seed to be an integer >= 0, got {seed!r}')


def _check_index(index, what='index'):
    if (isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer))
            or index < 0):
        raise ValueError(f'expected {what} to be an integer >= 0, got {index!r}')


def sample_id(index):
    """Identify sample ``index`` of a synthetic benchmark.

    Parameters
    ----------
    index : int
        0-based sample index.

    Returns
    -------
    sample : iospstl_ros.splits.SampleName
        ``str(sample)`` is the NTU-style name, ``sample.label`` the class.
    """
    _check_index(index)
    index = int(index)
    block = NUM_CLASSES * NUM_CAMERAS * NUM_SUBJECTS
    return SampleName(setup=index // (block * NUM_REPLICATIONS) + 1,
                      camera=index % NUM_CAMERAS + 1,
                      performer=index % NUM_SUBJECTS + 1,
                      replication=index // block % NUM_REPLICATIONS + 1,
                      action=index % NUM_CLASSES + 1)


def sample_index(name):
    """Invert :func:`sample_id`: the index of a synthetic sample name.

    Parameters
    ----------
    name : str
        ``SsssCcccPpppRrrrAaaa``.

    Returns
    -------
    index : int

    Raises
    ------
    ValueError
        If the name is malformed or outside the synthetic benchmark's cameras, subjects,
        replications or classes.
    """
    sample = parse_sample_name(name)
    limits = (('camera', sample.camera, NUM_CAMERAS), ('performer', sample.performer,
              NUM_SUBJECTS), ('replication', sample.replication, NUM_REPLICATIONS),
              ('action', sample.action, NUM_CLASSES))
    for what, value, limit in limits:
        if value > limit:
            raise ValueError(f'{name}: expected a synthetic sample with {what} <= {limit}, '
                             f'got {value}')
    block = NUM_CLASSES * NUM_CAMERAS * NUM_SUBJECTS
    offsets = np.arange(block)
    offset = offsets[(offsets % NUM_CLASSES == sample.action - 1)
                     & (offsets % NUM_CAMERAS == sample.camera - 1)
                     & (offsets % NUM_SUBJECTS == sample.performer - 1)]
    blocks = (sample.setup - 1) * NUM_REPLICATIONS + sample.replication - 1
    return int(blocks * block + offset[0])


def split_part(sample, benchmark):
    """Part (``'train'`` or ``'val'``) of a sample in a benchmark.

    Parameters
    ----------
    sample : iospstl_ros.splits.SampleName
    benchmark : {'xsub', 'xview'}

    Returns
    -------
    part : str
    """
    if benchmark == 'xsub':
        return 'train' if sample.performer in TRAIN_SUBJECTS else 'val'
    if benchmark == 'xview':
        return 'train' if sample.camera in TRAIN_CAMERAS else 'val'
    raise ValueError(f'expected benchmark in {BENCHMARKS}, got {benchmark!r}')


def sequence_rngs(seed, index):
    """Independent motion and occlusion generators of sequence ``index``.

    Returns
    -------
    motion : numpy.random.Generator
    occlusion : numpy.random.Generator
        Children 0 and 1 of ``numpy.random.SeedSequence([seed, index])``.
    """
    _check_seed(seed)
    _check_index(index)
    motion, occlusion = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
    return np.random.default_rng(motion), np.random.default_rng(occlusion)


def make_subject(seed, subject):
    """Draw the body and style of a subject (the same for every sequence of a seed).

    Parameters
    ----------
    seed : int
    subject : int
        1-based subject id.

    Returns
    -------
    subject : Subject
    """
    _check_seed(seed)
    _check_index(subject, 'subject')
    sequence = np.random.SeedSequence([int(seed), int(subject)], spawn_key=(_SUBJECT_STREAM,))
    rng = np.random.default_rng(sequence)
    lengths = _REST_LENGTHS * rng.uniform(0.88, 1.10)
    for group in _BONE_GROUPS:
        lengths[list(group)] *= 1.0 + np.clip(rng.normal(0.0, 0.04), -0.1, 0.1)
    return Subject(
        subject=int(subject), bone_lengths=lengths, speed=rng.uniform(0.8, 1.25),
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
    _check_index(num_frames, 'num_frames')

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


# --------------------------------------------------------------------------- motion helpers


def _ease(u, times, values):
    """Cosine-eased interpolation through key frames, held constant outside them."""
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    k = np.clip(np.searchsorted(times, u, side='right') - 1, 0, len(times) - 2)
    w = np.clip((u - times[k]) / (times[k + 1] - times[k]), 0.0, 1.0)
    return values[k] + (values[k + 1] - values[k]) * (0.5 - 0.5 * np.cos(np.pi * w))


def _repeat(u, count):
    """Local phase in [0, 1] of each of ``count`` repetitions spread over u in [0, 1]."""
    x = u * count
    return x - np.minimum(np.floor(x), count - 1)


def _add(pose, name, values):
    pose[name] = pose.get(name, 0.0) + values


@dataclass
class _Context:
    """What an action needs to animate one person."""

    u: np.ndarray             # (T,) action phase in [0, 1]
    seconds: float            # duration of the action phase
    subject: Subject
    amp: float                # amplitude multiplier of this sequence
    rng: np.random.Generator

    def cycles(self, low, high, share=1.0, minimum=2):
        rate = self.rng.uniform(low, high) * self.subject.tempo
        return max(minimum, int(round(rate * self.seconds * share)))


def _base_pose(ctx):
    """Resting posture plus slow idle sway of one person."""
    subject, rng = ctx.subject, ctx.rng
    t = np.arange(len(ctx.u)) / FRAME_RATE
    pose = {'pelvis_pitch': np.full(len(t), subject.posture)}
    for side in 'rl':
        _add(pose, f'shoulder_abd_{side}', subject.arm_rest)
        _add(pose, f'elbow_{side}', subject.elbow_rest)
        _add(pose, f'hip_abd_{side}', subject.stance)
    sway = (('spine_pitch', 0.03), ('spine_roll', 0.02), ('neck_pitch', 0.05), ('yaw', 0.03),
            ('shoulder_flex_r', 0.04), ('shoulder_flex_l', 0.04), ('elbow_r', 0.05),
            ('elbow_l', 0.05), ('lateral', 0.01), ('forward', 0.01))
    for name, amplitude in sway:
        frequency = rng.uniform(0.1, 0.5, size=2)
        phase = rng.uniform(0.0, 2.0 * np.pi, size=2)
        wave = np.sin(2.0 * np.pi * frequency[:, None] * t + phase[:, None]).sum(axis=0)
        _add(pose, name, 0.5 * amplitude * wave)
    return pose


def _wave(pose, ctx, side):
    u, rng, amp = ctx.u, ctx.rng, ctx.amp
    up = _ease(u, (0.0, 0.2, 0.8, 1.0), (0.0, 1.0, 1.0, 0.0))
    swing = _ease(u, (0.15, 0.3, 0.7, 0.85), (0.0, 1.0, 1.0, 0.0))
    cycles = ctx.cycles(1.6, 2.6, share=0.55)
    oscillation = np.sin(2.0 * np.pi * cycles * u)
    _add(pose, f'shoulder_abd_{side}', up * rng.uniform(1.2, 1.6) * amp)
    _add(pose, f'shoulder_flex_{side}', up * rng.uniform(0.0, 0.5))
    _add(pose, f'shoulder_twist_{side}', -1.45 * up)
    _add(pose, f'elbow_{side}', up * rng.uniform(1.2, 1.6) + swing * 0.45 * amp * oscillation)
    _add(pose, f'wrist_{side}', 0.2 * swing * oscillation)
    return None


def _wave_right(pose, ctx):
    return _wave(pose, ctx, 'r')


def _wave_left(pose, ctx):
    return _wave(pose, ctx, 'l')


def _clap(pose, ctx):
    u, amp = ctx.u, ctx.amp
    up = _ease(u, (0.0, 0.2, 0.85, 1.0), (0.0, 1.0, 1.0, 0.0))
    swing = _ease(u, (0.15, 0.25, 0.8, 0.9), (0.0, 1.0, 1.0, 0.0))
    cycles = ctx.cycles(1.5, 2.5, share=0.6)
    opening = 0.5 - 0.5 * np.cos(2.0 * np.pi * cycles * u)
    for side in 'rl':
        _add(pose, f'shoulder_flex_{side}', 0.5 * up)
        _add(pose, f'shoulder_abd_{side}', -ctx.subject.arm_rest * up)
        _add(pose, f'shoulder_twist_{side}', 0.45 * up - 0.5 * amp * swing * opening)
        _add(pose, f'elbow_{side}', (1.5 - ctx.subject.elbow_rest) * up)
    return 'both'


def _drink(pose, ctx):
    u, hand = ctx.u, ctx.subject.hand
    lift = _ease(u, (0.0, 0.3, 0.75, 1.0), (0.0, 1.0, 1.0, 0.0))
    sip = _ease(u, (0.3, 0.4, 0.65, 0.75), (0.0, 1.0, 1.0, 0.0))
    _add(pose, f'shoulder_flex_{hand}', 1.5 * lift)
    _add(pose, f'shoulder_abd_{hand}', (0.5 - ctx.subject.arm_rest) * lift)
    _add(pose, f'shoulder_twist_{hand}', 0.3 * lift)
    _add(pose, f'elbow_{hand}', (2.2 - ctx.subject.elbow_rest) * lift)
    _add(pose, f'wrist_{hand}', 0.3 * lift)
    _add(pose, 'neck_pitch', -0.25 * sip * ctx.amp)
    return 'both'


def _pick_up(pose, ctx):
    u, hand, amp = ctx.u, ctx.subject.hand, ctx.amp
    bow = _ease(u, (0.0, 0.35, 0.55, 0.9), (0.0, 1.0, 1.0, 0.0)) * min(amp, 1.0)
    _add(pose, 'pelvis_pitch', 1.2 * bow)
    _add(pose, 'spine_pitch', 0.5 * bow)
    _add(pose, 'neck_pitch', -0.5 * bow)
    for side in 'rl':
        _add(pose, f'knee_{side}', 0.7 * bow)
        _add(pose, f'hip_flex_{side}', 0.4 * bow)
        _add(pose, f'shoulder_flex_{side}', (1.7 if side == hand else 1.2) * bow)
        _add(pose, f'elbow_{side}', 0.2 * bow)
    return 'both'


def _sit(pose, ctx, seated, lean_amplitude):
    lean = np.sin(np.pi * seated)
    _add(pose, 'pelvis_pitch', lean_amplitude * ctx.amp * lean + 0.12 * seated)
    _add(pose, 'spine_pitch', 0.15 * lean)
    _add(pose, 'neck_pitch', -0.3 * lean)
    for side in 'rl':
        _add(pose, f'hip_flex_{side}', 1.45 * seated)
        _add(pose, f'knee_{side}', 1.55 * seated)
        _add(pose, f'shoulder_flex_{side}', 0.6 * lean + 0.35 * seated)
        _add(pose, f'elbow_{side}', 0.7 * seated)
    return 'both'


def _sit_down(pose, ctx):
    return _sit(pose, ctx, _ease(ctx.u, (0.05, 0.8), (0.0, 1.0)), 0.55)


def _stand_up(pose, ctx):
    return _sit(pose, ctx, _ease(ctx.u, (0.2, 0.9), (1.0, 0.0)), 0.75)


def _kick(pose, ctx):
    u, leg, amp = ctx.u, ctx.subject.hand, ctx.amp
    v = _repeat(u, int(ctx.rng.integers(1, 3)))
    times = (0.0, 0.3, 0.5, 0.7, 1.0)
    extension = _ease(v, times, (0.0, 0.3, 1.0, 0.3, 0.0))
    _add(pose, f'hip_flex_{leg}', _ease(v, times, (0.0, 0.9, 1.25, 0.8, 0.0)) * amp)
    _add(pose, f'knee_{leg}', _ease(v, times, (0.0, 1.4, 0.1, 1.2, 0.0)))
    _add(pose, f'ankle_{leg}', -0.4 * extension)
    balance = ctx.rng.uniform(0.0, 1.0) * extension      # how much the upper body helps
    _add(pose, 'pelvis_pitch', -0.15 * balance)
    _add(pose, f'shoulder_flex_{_OTHER[leg]}', 0.4 * balance)
    for side in 'rl':
        _add(pose, f'shoulder_abd_{side}', 0.25 * balance)
    return _OTHER[leg]


def _march(pose, ctx):
    u, amp = ctx.u, ctx.amp
    active = _ease(u, (0.0, 0.12, 0.88, 1.0), (0.0, 1.0, 1.0, 0.0))
    phase = 2.0 * np.pi * ctx.cycles(0.8, 1.15) * u
    lift = ctx.rng.uniform(0.6, 1.0) * amp
    swing = ctx.rng.uniform(0.0, 0.45)
    steps = {'r': np.maximum(np.sin(phase), 0.0) ** 1.3,
             'l': np.maximum(-np.sin(phase), 0.0) ** 1.3}
    for side in 'rl':
        _add(pose, f'hip_flex_{side}', active * lift * steps[side])
        _add(pose, f'knee_{side}', active * 1.4 * lift * steps[side])
        _add(pose, f'shoulder_flex_{side}', active * swing * (steps[_OTHER[side]] - steps[side]))
        _add(pose, f'elbow_{side}', swing * active)
    return None


def _jump(pose, ctx):
    u, amp = ctx.u, ctx.amp
    v = _repeat(u, int(ctx.rng.integers(1, 3)))
    crouch = _ease(v, (0.0, 0.3, 0.42, 0.62, 0.75, 1.0), (0.0, 1.0, 0.0, 0.15, 0.8, 0.0))
    flight = np.where((v > 0.42) & (v < 0.62), np.sin(np.pi * (v - 0.42) / 0.2), 0.0)
    _add(pose, 'air', ctx.rng.uniform(0.12, 0.3) * amp * flight)
    _add(pose, 'pelvis_pitch', 0.45 * crouch)
    arms = _ease(v, (0.0, 0.3, 0.45, 0.62, 0.75, 1.0), (0.0, -0.6, 2.2, 1.0, -0.2, 0.0))
    arms = arms * ctx.rng.uniform(0.1, 1.0)
    for side in 'rl':
        _add(pose, f'hip_flex_{side}', 0.8 * crouch)
        _add(pose, f'knee_{side}', 1.25 * crouch)
        _add(pose, f'ankle_{side}', -0.5 * flight)
        _add(pose, f'shoulder_flex_{side}', arms * amp)
    return 'both'


def _squat(pose, ctx):
    u = ctx.u
    v = _repeat(u, int(ctx.rng.integers(1, 4)))
    depth = _ease(v, (0.0, 0.4, 0.6, 1.0), (0.0, 1.0, 1.0, 0.0)) * ctx.rng.uniform(0.75, 1.0)
    depth = depth * min(ctx.amp, 1.0)
    _add(pose, 'pelvis_pitch', 0.6 * depth)
    _add(pose, 'neck_pitch', -0.3 * depth)
    for side in 'rl':
        _add(pose, f'hip_flex_{side}', 1.3 * depth)
        _add(pose, f'knee_{side}', 2.0 * depth)
        _add(pose, f'shoulder_flex_{side}', 1.35 * depth)
    return 'both'


def _side_step(pose, ctx):
    u, rng, subject = ctx.u, ctx.rng, ctx.subject
    direction = 1.0 if rng.random() < 0.5 else -1.0
    out = int(rng.integers(1, 3))
    directions = [direction] * out + [-direction] * out
    step = rng.uniform(0.25, 0.4) * ctx.amp
    arms = rng.uniform(0.0, 0.12)
    leg = subject.bone_lengths[[17, 18]].sum()
    pelvis = np.zeros(len(u))
    feet = {'r': np.zeros(len(u)), 'l': np.zeros(len(u))}
    lifts = {'r': np.zeros(len(u)), 'l': np.zeros(len(u))}
    for i, sign in enumerate(directions):
        v = np.clip(u * len(directions) - i, 0.0, 1.0)
        lead, trail = ('r', 'l') if sign > 0 else ('l', 'r')
        pelvis += sign * step * _ease(v, (0.0, 1.0), (0.0, 1.0))
        feet[lead] += sign * step * _ease(v, (0.0, 0.45), (0.0, 1.0))
        feet[trail] += sign * step * _ease(v, (0.5, 0.95), (0.0, 1.0))
        lifts[lead] += np.sin(np.pi * np.clip(v / 0.45, 0.0, 1.0))
        lifts[trail] += np.sin(np.pi * np.clip((v - 0.5) / 0.45, 0.0, 1.0))
    _add(pose, 'lateral', pelvis)
    for side in 'rl':
        outward = _SIGN[side] * (feet[side] - pelvis) / leg
        _add(pose, f'hip_abd_{side}', np.arcsin(np.clip(outward, -0.9, 0.9)))
        _add(pose, f'hip_flex_{side}', 0.15 * lifts[side])
        _add(pose, f'knee_{side}', 0.35 * lifts[side])
        _add(pose, f'shoulder_abd_{side}', arms * (lifts['r'] + lifts['l']))
    return None


def _raise_arms(pose, ctx):
    u, amp = ctx.u, ctx.amp
    v = _repeat(u, int(ctx.rng.integers(1, 3)))
    up = _ease(v, (0.0, 0.35, 0.65, 1.0), (0.0, 1.0, 1.0, 0.0)) * min(2.8 * amp, 3.0)
    channel = 'shoulder_abd' if ctx.subject.side_raise else 'shoulder_flex'
    for side in 'rl':
        _add(pose, f'{channel}_{side}', up)
        _add(pose, f'elbow_{side}', 0.05 * up)
    _add(pose, 'neck_pitch', -0.05 * up)
    return 'both'


def _punch(pose, ctx):
    u, hand = ctx.u, ctx.subject.hand
    guard = _ease(u, (0.0, 0.15, 0.85, 1.0), (0.0, 1.0, 1.0, 0.0))
    for side in 'rl':
        _add(pose, f'shoulder_flex_{side}', 0.55 * guard)
        _add(pose, f'shoulder_twist_{side}', 0.45 * guard)
        _add(pose, f'shoulder_abd_{side}', -0.05 * guard)
        _add(pose, f'elbow_{side}', 2.0 * guard)
    v = _repeat(np.clip((u - 0.15) / 0.7, 0.0, 1.0), int(ctx.rng.integers(1, 4)))
    strike = _ease(v, (0.0, 0.25, 0.4, 1.0), (0.0, 1.0, 1.0, 0.0)) * min(ctx.amp, 1.0)
    _add(pose, f'shoulder_flex_{hand}', 0.95 * strike)
    _add(pose, f'elbow_{hand}', -1.9 * strike)
    _add(pose, f'shoulder_twist_{hand}', -0.2 * strike)
    _add(pose, f'shoulder_abd_{hand}', -0.15 * strike)
    _add(pose, 'spine_yaw', 0.35 * _SIGN[hand] * strike)
    return 'both'


def _handshake(poses, contexts):
    delay = contexts[1].rng.uniform(-0.04, 0.04)
    cycles = contexts[0].cycles(1.8, 2.8, share=0.45)
    for pose, ctx, shift in zip(poses, contexts, (0.0, delay)):
        u = np.clip(ctx.u + shift, 0.0, 1.0)
        reach = _ease(u, (0.0, 0.25, 0.8, 1.0), (0.0, 1.0, 1.0, 0.0))
        shake = _ease(ctx.u, (0.25, 0.35, 0.7, 0.8), (0.0, 1.0, 1.0, 0.0))
        _add(pose, 'shoulder_flex_r', 0.85 * reach + 0.13 * shake * np.sin(
            2.0 * np.pi * cycles * ctx.u))
        _add(pose, 'shoulder_abd_r', -0.25 * reach)
        _add(pose, 'shoulder_twist_r', 0.3 * reach)
        _add(pose, 'elbow_r', 0.55 * reach)
        _add(pose, 'forward', 0.12 * reach)
        _add(pose, 'pelvis_pitch', 0.08 * reach)
    # Right hands meet at the middle of the shake.
    return (None, None), ((11, 0.0), (11, 0.0)), 0.55


def _push(poses, contexts):
    (pusher, pushed), (ctx, other) = poses, contexts
    u = ctx.u
    times = (0.0, 0.3, 0.5, 0.75, 1.0)
    push = _ease(u, times, (0.0, 0.7, 1.0, 0.6, 0.0))
    for side in 'rl':
        _add(pusher, f'shoulder_flex_{side}', _ease(u, times, (0.0, 1.2, 1.45, 1.3, 0.0)))
        _add(pusher, f'elbow_{side}', _ease(u, times, (0.0, 1.6, 0.25, 0.6, 0.0)))
        _add(pusher, f'shoulder_twist_{side}', 0.3 * push)
    _add(pusher, 'forward', _ease(u, (0.05, 0.5), (0.0, 0.3)) * ctx.amp)
    _add(pusher, 'pelvis_pitch', 0.2 * push)
    step = np.sin(np.pi * np.clip((u - 0.2) / 0.25, 0.0, 1.0))
    lead = ctx.subject.hand
    _add(pusher, f'hip_flex_{lead}', 0.4 * step)
    _add(pusher, f'knee_{lead}', 0.6 * step)
    shock = _ease(u, (0.45, 0.55, 0.8), (0.0, 1.0, 0.0))
    _add(pushed, 'forward', -_ease(u, (0.48, 0.75), (0.0, 0.45)) * other.amp)
    _add(pushed, 'pelvis_pitch', -0.25 * shock)
    back = np.sin(np.pi * np.clip((u - 0.5) / 0.2, 0.0, 1.0))
    _add(pushed, 'hip_flex_l', -0.4 * back)
    _add(pushed, 'knee_l', 0.5 * back)
    for side in 'rl':
        _add(pushed, f'shoulder_flex_{side}', 0.6 * shock)
        _add(pushed, f'shoulder_abd_{side}', 0.5 * shock)
    # The pusher's hands reach the pushed person's chest (spine mid, 10 cm in front).
    return ('both', None), (('hands', 0.0), (1, 0.1)), 0.5


def _hug(poses, contexts):
    for pose, ctx in zip(poses, contexts):
        u = ctx.u
        walk = np.clip(u / 0.55, 0.0, 1.0)
        walking = np.sin(np.pi * walk)
        _add(pose, 'forward', ctx.rng.uniform(0.35, 0.6) * _ease(walk, (0.0, 1.0), (0.0, 1.0)))
        phase = 2.0 * np.pi * 2.0 * walk
        for side, offset in (('r', 0.0), ('l', np.pi)):
            _add(pose, f'hip_flex_{side}', 0.4 * walking * np.sin(phase + offset))
            bend = np.maximum(np.sin(phase + offset + 0.5), 0.0)
            _add(pose, f'knee_{side}', 0.6 * walking * bend)
        wrap = _ease(u, (0.35, 0.6, 0.9, 1.0), (0.0, 1.0, 1.0, 0.3))
        for side in 'rl':
            _add(pose, f'shoulder_flex_{side}', 1.35 * wrap)
            _add(pose, f'shoulder_abd_{side}', 0.45 * wrap)
            _add(pose, f'shoulder_twist_{side}', 0.9 * wrap)
            _add(pose, f'elbow_{side}', 1.3 * wrap)
        _add(pose, 'pelvis_pitch', 0.1 * wrap)
    # The spine shoulders are 28 cm apart when the hug is held.
    return (None, None), ((20, 0.14), (20, 0.14)), 0.8


_SINGLE_ACTIONS = (_wave_right, _wave_left, _clap, _drink, _pick_up, _sit_down, _stand_up,
                   _kick, _march, _jump, _squat, _side_step, _raise_arms, _punch)
_PAIR_ACTIONS = (_handshake, _push, _hug)


# --------------------------------------------------------------------------- scene


def _contact_point(joints, spec, frame):
    """Horizontal body-frame point (x, z) where a person touches the partner."""
    joint, ahead = spec
    if joint == 'hands':
        point = joints[frame, [7, 11]].mean(axis=0)
    else:
        point = joints[frame, joint].copy()
    return point[[0, 2]] - (0.0, ahead)


def _yaw_matrix(yaw):
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _camera_frame(sample, rng):
    """Camera centre (3,) and axes (3, 3) (rows: x left, y up, z depth) in the scene frame."""
    height, distance = SETUP_GEOMETRY[(sample.setup - 1) % len(SETUP_GEOMETRY)]
    height = height + rng.uniform(-0.04, 0.04)
    distance = distance + rng.uniform(-0.3, 0.3)
    azimuth = np.deg2rad(CAMERA_AZIMUTHS[sample.camera - 1] + rng.uniform(-3.0, 3.0))
    centre = np.array([distance * np.sin(azimuth), height, -distance * np.cos(azimuth)])
    aim = azimuth + np.deg2rad(rng.uniform(-4.0, 4.0))
    forward = np.array([-np.sin(aim), 0.0, np.cos(aim)])
    up = np.array([0.0, 1.0, 0.0])
    left = np.array([forward[2], 0.0, -forward[0]])                    # up x forward
    tilt, roll = np.deg2rad(rng.uniform(-2.0, 4.0)), np.deg2rad(rng.uniform(-1.5, 1.5))
    depth = np.cos(tilt) * forward - np.sin(tilt) * up
    up = np.cos(tilt) * up + np.sin(tilt) * forward
    left, up = np.cos(roll) * left + np.sin(roll) * up, -np.sin(roll) * left + np.cos(roll) * up
    return centre, np.stack([left, up, depth])


def _animate(sample, seed, rng):
    """Camera-space joints (3, T, 25, 2) and presence (T, 2) of one sample."""
    label = sample.label
    pair = label in TWO_PERSON_CLASSES
    subjects = [make_subject(seed, sample.performer)]
    if pair:
        # The partner is the subject two ids on: same parity, so the same xsub part.
        subjects.append(make_subject(seed, (sample.performer + 1) % NUM_SUBJECTS + 1))
    speed = subjects[0].speed * rng.uniform(0.9, 1.1)
    seconds = ACTION_SECONDS[label] / speed * rng.uniform(0.9, 1.1)
    num_frames = int(np.clip(round(seconds * FRAME_RATE), MIN_SEQUENCE_FRAMES,
                             MAX_SEQUENCE_FRAMES))
    lead, tail = rng.uniform(0.0, 0.12, size=2)
    active = num_frames * (1.0 - lead - tail)
    u = np.clip((np.arange(num_frames) - lead * num_frames) / active, 0.0, 1.0)
    contexts = [_Context(u, active / FRAME_RATE, subject,
                         subject.amplitude * rng.uniform(0.9, 1.1), rng)
                for subject in subjects]
    poses = [_base_pose(ctx) for ctx in contexts]
    if pair:
        anchors, contacts, contact_phase = _PAIR_ACTIONS[label - len(_SINGLE_ACTIONS)](
            poses, contexts)
    else:
        anchors = (_SINGLE_ACTIONS[label](poses[0], contexts[0]),)
    bodies = []
    for pose, ctx, anchor in zip(poses, contexts, anchors):
        joints = forward_kinematics(pose, ctx.subject.bone_lengths, num_frames)
        bodies.append(_place_on_floor(joints, anchor, pose))
    facing = np.deg2rad(rng.uniform(-12.0, 12.0) + (10.0 if sample.replication == 1 else -10.0))
    position = np.array([rng.uniform(-0.3, 0.3), 0.0, rng.uniform(-0.3, 0.3)])
    if pair:
        # The first person faces the second across the camera's line of sight (profile view
        # from camera 1); the second is placed so that the contact points meet.
        frame = int(np.argmin(np.abs(u - contact_phase)))
        a = _contact_point(bodies[0], contacts[0], frame)
        b = _contact_point(bodies[1], contacts[1], frame)
        offset = a + b                                  # b's point seen from a: rotated by pi
        placement = [(np.zeros(3), 0.0), (np.array([offset[0], 0.0, offset[1]]), np.pi)]
        turn = facing + (np.pi / 2 if rng.random() < 0.5 else -np.pi / 2)
        middle = 0.5 * offset
        scene = []
        for joints, (shift, yaw) in zip(bodies, placement):
            local = joints @ _yaw_matrix(yaw).T + shift - (middle[0], 0.0, middle[1])
            scene.append(local @ _yaw_matrix(turn).T + position)
    else:
        scene = [bodies[0] @ _yaw_matrix(facing).T + position]
    centre, axes = _camera_frame(sample, rng)
    xyz = np.zeros((3, num_frames, NUM_JOINTS, MAX_BODIES))
    present = np.zeros((num_frames, MAX_BODIES), dtype=bool)
    noise = rng.uniform(*NOISE_STD_RANGE)
    for body, joints in enumerate(scene):
        camera = (joints - centre) @ axes.T                              # (T, 25, 3)
        camera = camera + rng.normal(0.0, noise, size=camera.shape)
        xyz[:, :, :, body] = np.moveaxis(camera, -1, 0)
        present[:, body] = True
    return xyz, present


def generate_sequence(seed, index, occlusion='realistic'):
    """Generate sample ``index`` of the synthetic benchmark of ``seed``.

    Parameters
    ----------
    seed : int
        Data set seed, >= 0.
    index : int
        Sample index, >= 0 (see :func:`sample_id`).
    occlusion : {'none', 'realistic', 'random'}
        Occlusion model of :func:`iospstl_ros.occlusion.apply_occlusion`.

    Returns
    -------
    sequence : SyntheticSequence
        ``xyz`` (3, T, 25, 2) float32 with 40 <= T <= 150, ``occluded`` (T, 25, 2),
        ``present`` (T, 2). ``xyz`` does not depend on ``occlusion``.
    """
    if occlusion not in OCCLUSION_MODES:
        raise ValueError(f'expected occlusion in {OCCLUSION_MODES}, got {occlusion!r}')
    sample = sample_id(index)
    motion_rng, occlusion_rng = sequence_rngs(seed, index)
    xyz, present = _animate(sample, int(seed), motion_rng)
    xyz = xyz.astype(np.float32)
    occluded = apply_occlusion(xyz, np.zeros(xyz.shape[1:], dtype=bool), present, occlusion,
                               occlusion_rng)
    return SyntheticSequence(str(sample), sample.label, xyz, occluded, present)


def realistic_scene(seed, index):
    """Sample ``index`` with realistic occlusion, and the occluders that hide its joints.

    Returns
    -------
    sequence : SyntheticSequence
        Identical to ``generate_sequence(seed, index, 'realistic')``.
    scene : iospstl_ros.occlusion.Scene
        The boxes (``centers`` (K, 3), ``half_sizes`` (K, 3), ``yaws`` (K,), ``kinds``).
    """
    sample = sample_id(index)
    motion_rng, occlusion_rng = sequence_rngs(seed, index)
    xyz, present = _animate(sample, int(seed), motion_rng)
    xyz = xyz.astype(np.float32)
    occluded, scene = realistic_occlusion(xyz, present, occlusion_rng)
    return SyntheticSequence(str(sample), sample.label, xyz, occluded, present), scene
