"""Samples, splits and scenes: which action, subject and camera a sample has, and its animation."""

from dataclasses import dataclass
import math

from iospstl_ros.datasets.occlusion import apply_occlusion, OCCLUSION_MODES, realistic_occlusion
from iospstl_ros.datasets.splits import ACTION_NAMES, parse_sample_name, SampleName
from iospstl_ros.datasets.synthetic.actions import _base_pose, _Context, ANIMATIONS
from iospstl_ros.datasets.synthetic.body import _place_on_floor, forward_kinematics, make_subject
from iospstl_ros.datasets.synthetic.kinect import (
    add_spurious_body, infer_joints, tracker_noise)
from iospstl_ros.layout import FRAME_RATE, MAX_BODIES, NUM_JOINTS
from iospstl_ros.validation import check_int
import numpy as np

#: Version of the generator; bump when the output for a given seed changes.
GENERATOR_VERSION = 4

#: NTU action number of each class, in label order (label = index).
ACTION_IDS = tuple(sorted(ANIMATIONS))
#: Action classes, NTU RGB+D's official names (:data:`iospstl_ros.datasets.splits.ACTION_NAMES`).
CLASS_NAMES = tuple(ACTION_NAMES[i - 1] for i in ACTION_IDS)
#: Number of action classes.
NUM_CLASSES = len(CLASS_NAMES)
#: Labels (0-based) of the two-person interactions (NTU A050 to A060).
TWO_PERSON_CLASSES = tuple(label for label, action in enumerate(ACTION_IDS) if action >= 50)
#: Number of subjects (performers ``P001`` to ``P020``).
NUM_SUBJECTS = 20
#: Number of cameras (``C001`` to ``C003``).
NUM_CAMERAS = 3
#: Number of replications (``R001``, ``R002``).
NUM_REPLICATIONS = 2
#: Camera azimuth on the rig, degrees, for cameras 1, 2, 3 (NTU: -45, 0 and +45 degrees, all at
#: one height). The performer faces camera 3 in replication 1 and camera 2 in replication 2, so
#: camera 1 always sees a 45-degree view and cameras 2 and 3 a front or a side view, as in NTU.
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
#: Camera height above the floor and distance to the performer's spot, metres, per setup
#: (cycled over the setup number).
SETUP_GEOMETRY = ((1.00, 3.0), (0.85, 2.5), (1.15, 3.4), (0.90, 2.7), (1.10, 3.2), (0.95, 2.4))
#: Nominal action length, seconds, per class (scaled by the subject's speed).
ACTION_SECONDS = tuple(ANIMATIONS[action][1] for action in ACTION_IDS)

# Sample index -> (action, camera, subject) is (i mod C, i mod 3, i mod 20): every block of
# C * 60 indices holds each triple once only if C is coprime with 3 and 20.
if math.gcd(NUM_CLASSES, NUM_CAMERAS * NUM_SUBJECTS) != 1:
    raise ImportError(f'{NUM_CLASSES} classes: the class count must be coprime with '
                      f'{NUM_CAMERAS * NUM_SUBJECTS} for balanced sample ids')
_LABELS = {action: label for label, action in enumerate(ACTION_IDS)}


class SyntheticSampleName(SampleName):
    """An NTU sample name whose ``label`` is the synthetic class of its action number."""

    @property
    def label(self):
        """0-based synthetic class: the index of ``action`` in :data:`ACTION_IDS`."""
        return _LABELS[self.action]


@dataclass
class SyntheticSequence:
    """One generated sample, ready for :meth:`iospstl_ros.datasets.format.SplitWriter.write`.

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


def sample_id(index):
    """Identify sample ``index`` of a synthetic benchmark.

    Parameters
    ----------
    index : int
        0-based sample index.

    Returns
    -------
    sample : SyntheticSampleName
        ``str(sample)`` is the NTU-style name (``Aaaa`` the NTU action number),
        ``sample.label`` the class.
    """
    check_int('index', index, low=0)
    index = int(index)
    block = NUM_CLASSES * NUM_CAMERAS * NUM_SUBJECTS
    return SyntheticSampleName(setup=index // (block * NUM_REPLICATIONS) + 1,
                               camera=index % NUM_CAMERAS + 1,
                               performer=index % NUM_SUBJECTS + 1,
                               replication=index // block % NUM_REPLICATIONS + 1,
                               action=ACTION_IDS[index % NUM_CLASSES])


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
        replications or actions.
    """
    sample = parse_sample_name(name)
    limits = (('camera', sample.camera, NUM_CAMERAS), ('performer', sample.performer,
              NUM_SUBJECTS), ('replication', sample.replication, NUM_REPLICATIONS))
    for what, value, limit in limits:
        if value > limit:
            raise ValueError(f'{name}: expected a synthetic sample with {what} <= {limit}, '
                             f'got {value}')
    if sample.action not in _LABELS:
        raise ValueError(f'{name}: expected a synthetic sample with an action of ACTION_IDS '
                         f'({NUM_CLASSES} NTU actions), got {sample.action}')
    block = NUM_CLASSES * NUM_CAMERAS * NUM_SUBJECTS
    offsets = np.arange(block)
    offset = offsets[(offsets % NUM_CLASSES == _LABELS[sample.action])
                     & (offsets % NUM_CAMERAS == sample.camera - 1)
                     & (offsets % NUM_SUBJECTS == sample.performer - 1)]
    blocks = (sample.setup - 1) * NUM_REPLICATIONS + sample.replication - 1
    return int(blocks * block + offset[0])


def split_part(sample, benchmark):
    """Part (``'train'`` or ``'val'``) of a sample in a benchmark.

    Parameters
    ----------
    sample : iospstl_ros.datasets.splits.SampleName
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
    check_int('seed', seed, low=0)
    check_int('index', index, low=0)
    motion, occlusion = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
    return np.random.default_rng(motion), np.random.default_rng(occlusion)


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
    """Camera-space joints (3, T, 25, 2), presence (T, 2) and Kinect-inferred joints (T, 25, 2)."""
    label = sample.label
    animate, _ = ANIMATIONS[sample.action]
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
        anchors, contacts, contact_phase = animate(poses, contexts)
    else:
        anchors = (animate(poses[0], contexts[0]),)
    bodies = []
    for pose, ctx, anchor in zip(poses, contexts, anchors):
        joints = forward_kinematics(pose, ctx.subject.bone_lengths, num_frames)
        bodies.append(_place_on_floor(joints, anchor, pose))
    # NTU: the performer faces one side camera in each replication (3 in R001, 2 in R002).
    facing = CAMERA_AZIMUTHS[1 if sample.replication == 1 else 2] + rng.uniform(-12.0, 12.0)
    facing = np.deg2rad(facing)
    position = np.array([rng.uniform(-0.4, 0.4), 0.0, rng.uniform(-0.4, 0.4)])
    if pair:
        # The two face each other across the line of sight of the camera the performer faces;
        # the second is placed so that the contact points meet.
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
    inferred = np.zeros((num_frames, NUM_JOINTS, MAX_BODIES), dtype=bool)
    noise_scale = rng.uniform(0.8, 1.25)
    for body, joints in enumerate(scene):
        camera = (joints - centre) @ axes.T                              # (T, 25, 3)
        camera, inferred[:, :, body] = infer_joints(camera, rng)
        camera = camera + tracker_noise(camera, noise_scale, rng)
        xyz[:, :, :, body] = np.moveaxis(camera, -1, 0)
        present[:, body] = True
    if not pair:
        add_spurious_body(xyz, present, inferred, make_subject(seed, sample.performer % 20 + 1),
                          rng)
    return xyz, present, inferred


def generate_sequence(seed, index, occlusion='realistic'):
    """Generate sample ``index`` of the synthetic benchmark of ``seed``.

    Parameters
    ----------
    seed : int
        Data set seed, >= 0.
    index : int
        Sample index, >= 0 (see :func:`sample_id`).
    occlusion : {'none', 'realistic', 'random'}
        Occlusion model of :func:`iospstl_ros.datasets.occlusion.apply_occlusion`.

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
    xyz, present, inferred = _animate(sample, int(seed), motion_rng)
    xyz = xyz.astype(np.float32)
    # Kinect's inferred joints are flagged like real files read with OCCLUDED_STATES, except in
    # 'none' (the clean reference: positions as the tracker gave them, no flags).
    tracked = inferred if occlusion != 'none' else np.zeros_like(inferred)
    occluded = apply_occlusion(xyz, tracked, present, occlusion, occlusion_rng)
    return SyntheticSequence(str(sample), sample.label, xyz, occluded, present)


def realistic_scene(seed, index):
    """Sample ``index`` with realistic occlusion, and the occluders that hide its joints.

    Returns
    -------
    sequence : SyntheticSequence
        Identical to ``generate_sequence(seed, index, 'realistic')``.
    scene : iospstl_ros.datasets.occlusion.Scene
        The boxes (``centers`` (K, 3), ``half_sizes`` (K, 3), ``yaws`` (K,), ``kinds``).
    """
    sample = sample_id(index)
    motion_rng, occlusion_rng = sequence_rngs(seed, index)
    xyz, present, inferred = _animate(sample, int(seed), motion_rng)
    xyz = xyz.astype(np.float32)
    occluded, scene = realistic_occlusion(xyz, present, occlusion_rng)
    occluded |= inferred
    return SyntheticSequence(str(sample), sample.label, xyz, occluded, present), scene
