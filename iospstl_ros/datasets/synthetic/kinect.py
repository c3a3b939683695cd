"""What the Kinect v2 tracker does to a true skeleton: jitter, inferred joints, clipping, ghosts.

All functions take camera-space joints (x left, y up, z depth, metres) of one body, shape
(T, 25, 3), and a ``numpy.random.Generator`` (the sequence's motion stream, so the positions do
not depend on the occlusion mode). The figures and their sources are in ``docs/data.md``
(*Kinect v2 realism*).

- :func:`tracker_noise`: per-joint jitter, white frame-to-frame noise plus a slow drift, larger
  at the extremities and growing with depth.
- :func:`infer_joints`: the joints the tracker marks *inferred* (tracking state 1): limbs
  hidden behind the trunk, joints outside the depth camera's field of view or range (clamped to
  its edge: the body is clipped at the image border), and short spells on the hands and feet.
  Their positions drift and sometimes snap towards the parent joint while inferred.
- :func:`add_spurious_body`: a brief, partial extra body in the second slot, as the tracker
  reports for a passer-by or a piece of furniture.
"""

from iospstl_ros.datasets.synthetic.body import _PARENTS, forward_kinematics
from iospstl_ros.layout import NUM_JOINTS
import numpy as np

#: Field of view of the Kinect v2 depth camera, degrees (horizontal, vertical).
FIELD_OF_VIEW_DEG = (70.6, 60.0)
#: Working range of the Kinect v2 body tracker, metres of depth.
DEPTH_RANGE = (0.5, 4.5)
#: Jitter standard deviation per coordinate at 3 m depth, metres, per joint (NTU order): trunk
#: 2.5 mm, head 3.5 mm, shoulders and hips 4 to 5 mm, elbows and knees 6 mm, wrists and ankles
#: 8 mm, hands and feet 10 mm, hand tips and thumbs 15 mm.
JITTER_STD = np.array([2.5, 2.5, 3.0, 3.5, 4.0, 6.0, 8.0, 10.0, 4.0, 6.0, 8.0, 10.0, 5.0, 6.0,
                       8.0, 10.0, 5.0, 6.0, 8.0, 10.0, 2.5, 15.0, 15.0, 15.0, 15.0]) * 1e-3
#: Share of the jitter variance in the slow drift (time constant :data:`DRIFT_SECONDS`).
DRIFT_SHARE = 0.4
DRIFT_SECONDS = 0.3
#: A limb joint is hidden behind the trunk when it is this much deeper than the trunk and
#: within this distance of the spine across the image, metres.
SELF_OCCLUSION_DEPTH = 0.08
SELF_OCCLUSION_WIDTH = 0.11
#: Spells of inferred hands and feet: rate per second of a body, and length in frames.
SPELL_RATE = 0.25
SPELL_FRAMES = (4, 30)
#: Step of the random walk of an inferred joint, metres per frame, and the probability that an
#: inferred spell snaps the joint part of the way towards its parent.
INFERRED_DRIFT_STEP = 0.006
SNAP_PROBABILITY = 0.25
#: Share of the one-person samples with a spurious extra body (NTU-60: 3.1 to 4.8 % hold more
#: than one body ID, docs/data.md), and its length in frames.
SPURIOUS_BODY_SHARE = 0.04
SPURIOUS_BODY_FRAMES = (8, 45)

_LIMB_JOINTS = np.array([5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19, 21, 22, 23, 24])
_SPELL_GROUPS = ((7, 21, 22), (11, 23, 24), (6, 7, 21, 22), (10, 11, 23, 24), (15,), (19,),
                 (14, 15), (18, 19))
_PARENT = np.array([max(p, 0) for p in _PARENTS])
_FRAME_RATE = 30.0


def tracker_noise(camera, scale, rng):
    """Kinect jitter to add to ``camera`` (T, 25, 3): white plus drifting, per joint.

    The standard deviation is :data:`JITTER_STD` times ``scale`` times depth / 3 m.
    """
    num_frames = len(camera)
    std = JITTER_STD[None, :, None] * scale * np.clip(camera[..., 2:3] / 3.0, 0.3, 2.0)
    white = rng.normal(0.0, 1.0, camera.shape) * np.sqrt(1.0 - DRIFT_SHARE)
    a = np.exp(-1.0 / (DRIFT_SECONDS * _FRAME_RATE))
    steps = rng.normal(0.0, np.sqrt(1.0 - a * a), camera.shape)
    drift = np.empty_like(steps)
    drift[0] = rng.normal(0.0, 1.0, camera.shape[1:])
    for t in range(1, num_frames):
        drift[t] = a * drift[t - 1] + steps[t]
    return std * (white + np.sqrt(DRIFT_SHARE) * drift)


def _self_occluded(camera):
    """Limb joints behind the trunk as the camera sees it; (T, 25) bool."""
    base, top = camera[:, 0], camera[:, 20]
    axis = top[:, :2] - base[:, :2]                                      # image-plane spine
    length = np.maximum((axis ** 2).sum(axis=1), 1e-9)
    limbs = camera[:, _LIMB_JOINTS]                                      # (T, L, 3)
    w = ((limbs[..., :2] - base[:, None, :2]) * axis[:, None]).sum(axis=2) / length[:, None]
    w = np.clip(w, 0.0, 1.0)
    nearest = base[:, None] + w[..., None] * (top - base)[:, None]       # (T, L, 3)
    across = np.linalg.norm(limbs[..., :2] - nearest[..., :2], axis=2)
    behind = limbs[..., 2] > nearest[..., 2] + SELF_OCCLUSION_DEPTH
    hidden = np.zeros(camera.shape[:2], dtype=bool)
    hidden[:, _LIMB_JOINTS] = behind & (across < SELF_OCCLUSION_WIDTH)
    return hidden


def _clip_to_view(camera):
    """Clamp joints into the field of view and range; return them and the clipped mask."""
    x, y, z = camera[..., 0], camera[..., 1], camera[..., 2]
    depth = np.clip(z, *DEPTH_RANGE)
    half = np.tan(np.deg2rad(np.asarray(FIELD_OF_VIEW_DEG) / 2.0))
    xs = np.clip(x, -half[0] * depth, half[0] * depth)
    ys = np.clip(y, -half[1] * depth, half[1] * depth)
    clipped = (xs != x) | (ys != y) | (depth != z)
    return np.stack([xs, ys, depth], axis=-1), clipped


def _spells(num_frames, rng):
    """Random spells of inferred hands and feet; (T, 25) bool."""
    spells = np.zeros((num_frames, NUM_JOINTS), dtype=bool)
    for _ in range(rng.poisson(SPELL_RATE * num_frames / _FRAME_RATE)):
        group = _SPELL_GROUPS[rng.integers(len(_SPELL_GROUPS))]
        length = int(rng.integers(*SPELL_FRAMES))
        start = int(rng.integers(0, max(1, num_frames - length)))
        spells[start:start + length, list(group)] = True
    return spells


def _run_offsets(inferred, camera, rng):
    """Drift and snap offsets of inferred joints, restarted at each run; (T, 25, 3)."""
    num_frames = len(inferred)
    starts = inferred & ~np.vstack([np.zeros((1, NUM_JOINTS), dtype=bool), inferred[:-1]])
    run = np.cumsum(starts, axis=0)                                      # run number per joint
    steps = rng.normal(0.0, INFERRED_DRIFT_STEP, (num_frames, NUM_JOINTS, 3))
    walk = np.cumsum(np.where(inferred[..., None], steps, 0.0), axis=0)
    # value of the walk just before each run began, carried over the run
    first = np.where(starts[..., None], walk - steps, 0.0)
    index = np.where(starts, np.arange(num_frames)[:, None], 0)
    index = np.maximum.accumulate(index, axis=0)
    base = np.take_along_axis(first, index[..., None], axis=0)
    drift = np.where(inferred[..., None], walk - base, 0.0)
    runs = int(run.max()) + 1
    snap = np.where(rng.random((runs, NUM_JOINTS)) < SNAP_PROBABILITY,
                    rng.uniform(0.3, 0.8, (runs, NUM_JOINTS)), 0.0)
    fraction = np.take_along_axis(snap, run, axis=0)                     # (T, 25)
    towards = camera[:, _PARENT] - camera
    return drift + np.where(inferred, fraction, 0.0)[..., None] * towards


def infer_joints(camera, rng):
    """Joints the tracker infers and their unstable positions.

    Parameters
    ----------
    camera : ndarray of shape (T, 25, 3)
        True camera-space joints of one body.
    rng : numpy.random.Generator

    Returns
    -------
    camera : ndarray of shape (T, 25, 3)
        Joints as the tracker reports them: clipped to the field of view, inferred ones
        drifting and snapping.
    inferred : ndarray of shape (T, 25), bool
    """
    clipped_camera, clipped = _clip_to_view(camera)
    inferred = clipped | _self_occluded(camera) | _spells(len(camera), rng)
    return clipped_camera + _run_offsets(inferred, camera, rng), inferred


def add_spurious_body(xyz, present, inferred, subject, rng):
    """Maybe add a brief partial body in slot 1 of a one-person sample; in place.

    With probability :data:`SPURIOUS_BODY_SHARE`, a standing ``subject`` appears at the edge of
    the view 3.3 to 4.4 m away for :data:`SPURIOUS_BODY_FRAMES` frames. It comes after the
    performer in the file's body list (a body detected later), so the layout's first two
    bodies hold it in the second slot. Most of its limbs are inferred.

    Parameters
    ----------
    xyz : ndarray of shape (3, T, 25, 2)
    present : ndarray of shape (T, 2), bool
    inferred : ndarray of shape (T, 25, 2), bool
    subject : iospstl_ros.datasets.synthetic.body.Subject
    rng : numpy.random.Generator
    """
    if rng.random() >= SPURIOUS_BODY_SHARE:
        return
    num_frames = xyz.shape[1]
    length = min(num_frames, int(rng.integers(*SPURIOUS_BODY_FRAMES)))
    start = int(rng.integers(0, num_frames - length + 1))
    frames = slice(start, start + length)
    rest = forward_kinematics({}, subject.bone_lengths, 1)[0]            # body frame
    yaw = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(yaw), np.sin(yaw)
    rest = rest @ np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]).T
    floor = xyz[1, :, [15, 19], 0].min()                                 # performer's feet
    depth = rng.uniform(3.3, 4.4)
    half = np.tan(np.deg2rad(FIELD_OF_VIEW_DEG[0] / 2.0)) * depth
    side = 1.0 if rng.random() < 0.5 else -1.0
    root = np.array([side * half * rng.uniform(0.8, 1.05), floor - rest[[15, 19], 1].min(),
                     depth])
    sway = rng.normal(0.0, 0.01, (length, 1, 3)).cumsum(axis=0)
    camera = rest[None] + root + sway               # body frame = camera frame: faces it
    camera, hidden = infer_joints(camera, rng)
    for group in ((4, 5, 6, 7, 21, 22), (8, 9, 10, 11, 23, 24), (12, 13, 14, 15),
                  (16, 17, 18, 19)):
        if rng.random() < 0.6:
            hidden[:, list(group)] = True
    camera = camera + tracker_noise(camera, 1.5, rng)
    xyz[:, frames, :, 1] = np.moveaxis(camera, -1, 0)
    present[frames, 1] = True
    inferred[frames, :, 1] = hidden
