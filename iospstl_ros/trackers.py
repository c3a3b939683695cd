"""Body trackers with other joint sets, mapped to the NTU / Kinect v2 layout (25 joints).

Each supported tracker format (:data:`FORMATS`) has a literal table that says, for every NTU
joint (:data:`iospstl_ros.layout.JOINT_NAMES`), where it comes from:

* **one tracker joint** at the same place (``SHOULDER_LEFT`` -> ``left_shoulder``);
* **a derivation rule**: a weighted mean of tracker joints that the geometry defines (spine
  base = midpoint of the hips, spine shoulder = midpoint of the shoulders, spine mid = midpoint
  of those two, head = midpoint of the ears, neck = midpoint of the spine shoulder and the head,
  hand = midpoint of the index and pinky knuckles, foot = midpoint of the big and small toe);
* **nothing**: the format does not have the joint, and it is sent **occluded**. The node's
  cluster-KNN imputation then fills it from training skeletons, as it fills a joint hidden
  behind furniture.

A derived joint is occluded when any of its sources is (never a partial mean). A source is
unusable when the tracker did not send it, sent NaN / inf, or gave it a confidence below the
adapter's ``min_confidence``.

===========  ===============================================  ===========================
format       joint table (the vendor's documentation)          NTU joints not provided
===========  ===============================================  ===========================
k4a          Azure Kinect Body Tracking SDK, 32 joints         none (see :mod:`.k4a`)
             (``k4abt_joint_id_t``), https://microsoft.github.
             io/Azure-Kinect-Body-Tracking/release/1.x.x/
             group__btenums.html
zed_body18   Stereolabs ZED SDK ``BODY_18`` (COCO-18 order),   hands, feet, hand tips,
             https://www.stereolabs.com/docs/body-tracking/   thumbs (8)
zed_body34   ZED SDK ``BODY_34`` (the Azure Kinect's first     none
             32 joints in the same order, plus heels), same
             page
zed_body38   ZED SDK ``BODY_38`` (``BODY_38_PARTS``), same     none (5 derived)
             page
coco17       COCO keypoints (17, as yolo_ros and most 2D       hands, feet, hand tips,
             pose models give them, lifted to 3D with depth),  thumbs (8)
             https://cocodataset.org/#format-data
mediapipe33  MediaPipe Pose Landmarker (BlazePose, 33          hand tips (2)
             landmarks), https://ai.google.dev/edge/mediapipe/
             solutions/vision/pose_landmarker
===========  ===============================================  ===========================

The rule of every NTU joint of every format is in :data:`TABLES` (and, written out, in
docs/trackers.md). Choices worth knowing:

* The Azure Kinect and ``BODY_34`` put ``NECK`` at shoulder height: it is the spine shoulder,
  and the NTU neck is the midpoint of ``NECK`` and ``HEAD`` (the reasoning is in :mod:`.k4a`).
* ``BODY_18`` follows COCO-18, whose ``NECK`` is the shoulder midpoint: it is the spine
  shoulder. ``BODY_38`` has ``NECK`` at the top of its spine chain and three spine joints;
  its spine shoulder is the shoulder midpoint and its spine mid ``SPINE_2``.
* MediaPipe's ``left_index`` / ``left_pinky`` are knuckles (no fingertip: the hand tips are not
  provided); its ``left_thumb`` is the thumb's knuckle, the nearest it has to NTU's thumb;
  ``left_foot_index`` is the tip of the foot, NTU's foot.
* Eyes, nose, mouth, clavicles, heels, ``SPINE_1`` / ``SPINE_3`` of ``BODY_38`` have no NTU
  counterpart and are unused.

Left and right are the person's own in every format. Coordinates are passed through in the
tracker's axes; the adapter (``iospstl_skeleton_adapter``) rotates them
(:mod:`iospstl_ros.axes`). :data:`DEFAULT_AXES` gives the axes each format is usually published
in (Azure Kinect driver: ``optical``; the ZED ROS 2 wrapper and yolo_ros with a ``target_frame``
such as ``base_link``: ``rep103``; MediaPipe landmarks deprojected with a depth camera's optical
frame: ``optical``).

For the benchmark (benchmarks/bench_trackers.py), :func:`simulate_tracker` turns an NTU skeleton
into a tracker's joints: every tracker joint takes the position of the NTU joint at (about) the
same place (:attr:`SkeletonFormat.stand_ins`), joints with no NTU counterpart are not sent.

Everything here is numpy-only.
"""

from dataclasses import dataclass

from iospstl_ros.axes import check_axes, FRAME_SUFFIXES, from_ntu, to_ntu
from iospstl_ros.k4a import K4A_JOINT_NAMES, NTU_FROM_K4A
from iospstl_ros.layout import JOINT_NAMES, NUM_JOINTS
import numpy as np

#: Tracker formats, in the order of the adapter's ``format`` parameter.
FORMATS = ('k4a', 'zed_body18', 'zed_body34', 'zed_body38', 'coco17', 'mediapipe33')

ZED_BODY18_NAMES = (
    'NOSE', 'NECK', 'RIGHT_SHOULDER', 'RIGHT_ELBOW', 'RIGHT_WRIST', 'LEFT_SHOULDER',
    'LEFT_ELBOW', 'LEFT_WRIST', 'RIGHT_HIP', 'RIGHT_KNEE', 'RIGHT_ANKLE', 'LEFT_HIP',
    'LEFT_KNEE', 'LEFT_ANKLE', 'RIGHT_EYE', 'LEFT_EYE', 'RIGHT_EAR', 'LEFT_EAR',
)
ZED_BODY34_NAMES = (
    'PELVIS', 'NAVAL_SPINE', 'CHEST_SPINE', 'NECK', 'LEFT_CLAVICLE', 'LEFT_SHOULDER',
    'LEFT_ELBOW', 'LEFT_WRIST', 'LEFT_HAND', 'LEFT_HANDTIP', 'LEFT_THUMB', 'RIGHT_CLAVICLE',
    'RIGHT_SHOULDER', 'RIGHT_ELBOW', 'RIGHT_WRIST', 'RIGHT_HAND', 'RIGHT_HANDTIP',
    'RIGHT_THUMB', 'LEFT_HIP', 'LEFT_KNEE', 'LEFT_ANKLE', 'LEFT_FOOT', 'RIGHT_HIP',
    'RIGHT_KNEE', 'RIGHT_ANKLE', 'RIGHT_FOOT', 'HEAD', 'NOSE', 'LEFT_EYE', 'LEFT_EAR',
    'RIGHT_EYE', 'RIGHT_EAR', 'LEFT_HEEL', 'RIGHT_HEEL',
)
ZED_BODY38_NAMES = (
    'PELVIS', 'SPINE_1', 'SPINE_2', 'SPINE_3', 'NECK', 'NOSE', 'LEFT_EYE', 'RIGHT_EYE',
    'LEFT_EAR', 'RIGHT_EAR', 'LEFT_CLAVICLE', 'RIGHT_CLAVICLE', 'LEFT_SHOULDER',
    'RIGHT_SHOULDER', 'LEFT_ELBOW', 'RIGHT_ELBOW', 'LEFT_WRIST', 'RIGHT_WRIST', 'LEFT_HIP',
    'RIGHT_HIP', 'LEFT_KNEE', 'RIGHT_KNEE', 'LEFT_ANKLE', 'RIGHT_ANKLE', 'LEFT_BIG_TOE',
    'RIGHT_BIG_TOE', 'LEFT_SMALL_TOE', 'RIGHT_SMALL_TOE', 'LEFT_HEEL', 'RIGHT_HEEL',
    'LEFT_HAND_THUMB_4', 'RIGHT_HAND_THUMB_4', 'LEFT_HAND_INDEX_1', 'RIGHT_HAND_INDEX_1',
    'LEFT_HAND_MIDDLE_4', 'RIGHT_HAND_MIDDLE_4', 'LEFT_HAND_PINKY_1', 'RIGHT_HAND_PINKY_1',
)
COCO17_NAMES = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
    'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip',
    'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle',
)
MEDIAPIPE33_NAMES = (
    'nose', 'left_eye_inner', 'left_eye', 'left_eye_outer', 'right_eye_inner', 'right_eye',
    'right_eye_outer', 'left_ear', 'right_ear', 'mouth_left', 'mouth_right', 'left_shoulder',
    'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_pinky',
    'right_pinky', 'left_index', 'right_index', 'left_thumb', 'right_thumb', 'left_hip',
    'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle', 'left_heel',
    'right_heel', 'left_foot_index', 'right_foot_index',
)


def _mean(*names):
    """Rule: the plain mean of tracker joints ({name: weight})."""
    return {name: 1.0 / len(names) for name in names}


def _mid(a, b):
    """Rule: the midpoint of two rules."""
    rule = {}
    for part in (a, b):
        for name, weight in part.items():
            rule[name] = rule.get(name, 0.0) + 0.5 * weight
    return rule


def _k4a_rules(names):
    """Rules of a layout in the Azure Kinect order (k4a, ZED BODY_34)."""
    return {JOINT_NAMES[v]: _mean(*(names[k] for k in sources))
            for v, sources in enumerate(NTU_FROM_K4A)}


def _upper_spine(left_shoulder, right_shoulder, left_hip, right_hip, left_ear, right_ear):
    """Spine, neck and head derived from shoulders, hips and ears (COCO-like formats)."""
    spine_shoulder = _mean(left_shoulder, right_shoulder)
    spine_base = _mean(left_hip, right_hip)
    head = _mean(left_ear, right_ear)
    return {'spine_base': spine_base, 'spine_mid': _mid(spine_base, spine_shoulder),
            'neck': _mid(spine_shoulder, head), 'head': head, 'spine_shoulder': spine_shoulder}


#: Limb joints every format has one to one: the NTU names are COCO's (ZED's in capitals).
_LIMB_JOINTS = ('left_shoulder', 'left_elbow', 'left_wrist', 'right_shoulder', 'right_elbow',
                'right_wrist', 'left_hip', 'left_knee', 'left_ankle', 'right_hip', 'right_knee',
                'right_ankle')
_COCO_LIMBS = {joint: _mean(joint) for joint in _LIMB_JOINTS}
_ZED_LIMBS = {joint: _mean(joint.upper()) for joint in _LIMB_JOINTS}

#: Rules by NTU joint name: {tracker joint name: weight} (weights sum to 1); absent = not
#: provided (occluded).
RULES = {
    'k4a': _k4a_rules(K4A_JOINT_NAMES),
    'zed_body34': _k4a_rules(ZED_BODY34_NAMES),
    'zed_body18': {
        **_ZED_LIMBS,
        'spine_base': _mean('LEFT_HIP', 'RIGHT_HIP'),
        'spine_mid': _mid(_mean('LEFT_HIP', 'RIGHT_HIP'), _mean('NECK')),
        'neck': _mid(_mean('NECK'), _mean('LEFT_EAR', 'RIGHT_EAR')),
        'head': _mean('LEFT_EAR', 'RIGHT_EAR'),
        'spine_shoulder': _mean('NECK'),
    },
    'zed_body38': {
        **_ZED_LIMBS,
        'spine_base': _mean('PELVIS'),
        'spine_mid': _mean('SPINE_2'),
        'neck': _mid(_mean('NECK'), _mean('LEFT_EAR', 'RIGHT_EAR')),
        'head': _mean('LEFT_EAR', 'RIGHT_EAR'),
        'left_hand': _mean('LEFT_HAND_INDEX_1', 'LEFT_HAND_PINKY_1'),
        'right_hand': _mean('RIGHT_HAND_INDEX_1', 'RIGHT_HAND_PINKY_1'),
        'left_foot': _mean('LEFT_BIG_TOE', 'LEFT_SMALL_TOE'),
        'right_foot': _mean('RIGHT_BIG_TOE', 'RIGHT_SMALL_TOE'),
        'spine_shoulder': _mean('LEFT_SHOULDER', 'RIGHT_SHOULDER'),
        'left_hand_tip': _mean('LEFT_HAND_MIDDLE_4'),
        'left_thumb': _mean('LEFT_HAND_THUMB_4'),
        'right_hand_tip': _mean('RIGHT_HAND_MIDDLE_4'),
        'right_thumb': _mean('RIGHT_HAND_THUMB_4'),
    },
    'coco17': {
        **_COCO_LIMBS,
        **_upper_spine('left_shoulder', 'right_shoulder', 'left_hip', 'right_hip',
                       'left_ear', 'right_ear'),
    },
    'mediapipe33': {
        **_COCO_LIMBS,
        **_upper_spine('left_shoulder', 'right_shoulder', 'left_hip', 'right_hip',
                       'left_ear', 'right_ear'),
        'left_hand': _mean('left_index', 'left_pinky'),
        'right_hand': _mean('right_index', 'right_pinky'),
        'left_foot': _mean('left_foot_index'),
        'right_foot': _mean('right_foot_index'),
        'left_thumb': _mean('left_thumb'),
        'right_thumb': _mean('right_thumb'),
    },
}

_K4A_STAND_INS = {'NECK': 'spine_shoulder', 'HEAD': 'head', 'NOSE': 'head', 'EYE_LEFT': 'head',
                  'EYE_RIGHT': 'head', 'EAR_LEFT': 'head', 'EAR_RIGHT': 'head',
                  'SPINE_NAVEL': 'spine_mid', 'SPINE_CHEST': 'spine_mid'}
_FACE = ('nose', 'eye', 'ear', 'mouth')  # face points: the head's stand-in

#: NTU joint at (about) the place of each tracker joint, by tracker joint name, where it is
#: not the joint the rules take one to one (used by :func:`simulate_tracker` only).
STAND_INS = {
    'k4a': _K4A_STAND_INS,
    'zed_body34': {'NAVAL_SPINE': 'spine_mid', 'CHEST_SPINE': 'spine_mid', 'NECK':
                   'spine_shoulder', 'HEAD': 'head', 'LEFT_EYE': 'head', 'RIGHT_EYE': 'head',
                   'LEFT_EAR': 'head', 'RIGHT_EAR': 'head', 'NOSE': 'head'},
    'zed_body18': {'NECK': 'spine_shoulder', 'NOSE': 'head', 'LEFT_EYE': 'head',
                   'RIGHT_EYE': 'head', 'LEFT_EAR': 'head', 'RIGHT_EAR': 'head'},
    'zed_body38': {'NECK': 'spine_shoulder', 'NOSE': 'head', 'LEFT_EYE': 'head',
                   'RIGHT_EYE': 'head', 'LEFT_EAR': 'head', 'RIGHT_EAR': 'head',
                   'LEFT_HAND_INDEX_1': 'left_hand', 'LEFT_HAND_PINKY_1': 'left_hand',
                   'RIGHT_HAND_INDEX_1': 'right_hand', 'RIGHT_HAND_PINKY_1': 'right_hand',
                   'LEFT_BIG_TOE': 'left_foot', 'LEFT_SMALL_TOE': 'left_foot',
                   'RIGHT_BIG_TOE': 'right_foot', 'RIGHT_SMALL_TOE': 'right_foot'},
    'coco17': {name: 'head' for name in COCO17_NAMES if any(p in name for p in _FACE)},
    'mediapipe33': {**{name: 'head' for name in MEDIAPIPE33_NAMES
                       if any(p in name for p in _FACE)},
                    'left_index': 'left_hand', 'left_pinky': 'left_hand',
                    'right_index': 'right_hand', 'right_pinky': 'right_hand'},
}

#: Axes each format's coordinates usually come in (the adapter's default ``input_axes``).
DEFAULT_AXES = {'k4a': 'optical', 'zed_body18': 'rep103', 'zed_body34': 'rep103',
                'zed_body38': 'rep103', 'coco17': 'rep103', 'mediapipe33': 'optical'}

#: The vendor documentation of each format's joint table.
SOURCES = {
    'k4a': 'https://microsoft.github.io/Azure-Kinect-Body-Tracking/release/1.x.x/'
           'group__btenums.html',
    'zed_body18': 'https://www.stereolabs.com/docs/body-tracking/',
    'zed_body34': 'https://www.stereolabs.com/docs/body-tracking/',
    'zed_body38': 'https://www.stereolabs.com/docs/body-tracking/',
    'coco17': 'https://cocodataset.org/#format-data',
    'mediapipe33': 'https://ai.google.dev/edge/mediapipe/solutions/vision/pose_landmarker',
}

_NAMES = {'k4a': K4A_JOINT_NAMES, 'zed_body18': ZED_BODY18_NAMES,
          'zed_body34': ZED_BODY34_NAMES, 'zed_body38': ZED_BODY38_NAMES,
          'coco17': COCO17_NAMES, 'mediapipe33': MEDIAPIPE33_NAMES}


@dataclass(frozen=True, eq=False)
class SkeletonFormat:
    """One tracker's joint set and its map to NTU-25 (built by :func:`skeleton_format`).

    Attributes
    ----------
    name : str
    joint_names : tuple of str
        The tracker's joints in its own numbering (index = ``joint_id``).
    weights : ndarray of shape (25, J), float64
        Row v: the weights of the tracker joints whose mean is NTU joint v; an all-zero row is
        a joint the format does not provide.
    stand_ins : ndarray of shape (J,), int
        NTU joint at (about) the place of each tracker joint, -1 where none.
    axes : str
        Default axes of the format (:data:`DEFAULT_AXES`).
    source : str
        URL of the vendor's joint table.
    """

    name: str
    joint_names: tuple
    weights: np.ndarray
    stand_ins: np.ndarray
    axes: str
    source: str

    @property
    def num_joints(self):
        """Give the number of tracker joints J."""
        return len(self.joint_names)

    @property
    def provided(self):
        """NTU joints the format gives (one to one or derived), (25,) bool."""
        return self.weights.any(axis=1)

    @property
    def derived(self):
        """NTU joints made from more than one tracker joint, (25,) bool."""
        return (self.weights > 0).sum(axis=1) > 1


def _build(name):
    names = _NAMES[name]
    index = {joint: k for k, joint in enumerate(names)}
    weights = np.zeros((NUM_JOINTS, len(names)))
    for ntu, rule in RULES[name].items():
        for joint, weight in rule.items():
            weights[JOINT_NAMES.index(ntu), index[joint]] += weight
    stand_ins = np.full(len(names), -1, np.int64)
    for v, row in enumerate(weights):
        if (row > 0).sum() == 1:
            stand_ins[np.flatnonzero(row)[0]] = v
    for joint, ntu in STAND_INS[name].items():
        stand_ins[index[joint]] = JOINT_NAMES.index(ntu)
    weights.setflags(write=False)
    stand_ins.setflags(write=False)
    return SkeletonFormat(name, names, weights, stand_ins, DEFAULT_AXES[name], SOURCES[name])


_FORMATS = {name: _build(name) for name in FORMATS}


def skeleton_format(name):
    """Return the :class:`SkeletonFormat` called ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`FORMATS`.
    """
    if not isinstance(name, str) or name not in _FORMATS:
        raise ValueError(f'format: expected one of {", ".join(FORMATS)}, got {name!r}')
    return _FORMATS[name]


def to_ntu25(fmt, xyz, valid):
    """Map tracker joints to the 25 NTU joints, with occlusion flags.

    Parameters
    ----------
    fmt : str or SkeletonFormat
        One of :data:`FORMATS`.
    xyz : array_like of shape (B, J, 3), float
        The tracker's joints in its numbering, in any axes (kept), metres.
    valid : array_like of shape (B, J), bool
        True where a joint is usable; a non-finite position counts as not usable.

    Returns
    -------
    ntu_xyz : ndarray of shape (B, 25, 3), float32
        NaN where occluded.
    occluded : ndarray of shape (B, 25), bool
        True where the format lacks the joint or any of its sources is not usable.

    Raises
    ------
    ValueError
        On an unknown format or shapes other than (B, J, 3) and (B, J).
    """
    fmt = fmt if isinstance(fmt, SkeletonFormat) else skeleton_format(fmt)
    xyz = np.asarray(xyz, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    J = fmt.num_joints
    if xyz.ndim != 3 or xyz.shape[1:] != (J, 3) or valid.shape != xyz.shape[:2]:
        raise ValueError(f'{fmt.name}: expected xyz (B, {J}, 3) and valid (B, {J}), got '
                         f'{xyz.shape} and {valid.shape}')
    usable = valid & np.isfinite(xyz).all(axis=-1)
    uses = fmt.weights > 0
    occluded = ((~usable).astype(np.float64) @ uses.T > 0) | ~fmt.provided
    ntu = np.einsum('vj,bjc->bvc', fmt.weights, np.where(usable[..., None], xyz, 0.0))
    return np.where(occluded[..., None], np.nan, ntu).astype(np.float32), occluded


def simulate_tracker(fmt, ntu_xyz, ntu_occluded):
    """Give the joints a tracker of ``fmt`` would send for NTU skeletons (benchmark, tests).

    Each tracker joint takes the position of its stand-in NTU joint
    (:attr:`SkeletonFormat.stand_ins`); joints without one, and joints whose stand-in is
    occluded, are not valid.

    Parameters
    ----------
    fmt : str or SkeletonFormat
    ntu_xyz : array_like of shape (..., 25, 3)
    ntu_occluded : array_like of shape (..., 25), bool

    Returns
    -------
    xyz : ndarray of shape (..., J, 3), float64
        NaN where not valid.
    valid : ndarray of shape (..., J), bool
    """
    fmt = fmt if isinstance(fmt, SkeletonFormat) else skeleton_format(fmt)
    ntu_xyz = np.asarray(ntu_xyz, dtype=np.float64)
    ntu_occluded = np.asarray(ntu_occluded, dtype=bool)
    if ntu_xyz.shape[-2:] != (NUM_JOINTS, 3) or ntu_occluded.shape != ntu_xyz.shape[:-1]:
        raise ValueError(f'expected ntu_xyz (..., {NUM_JOINTS}, 3) and ntu_occluded (..., '
                         f'{NUM_JOINTS}), got {ntu_xyz.shape} and {ntu_occluded.shape}')
    has = fmt.stand_ins >= 0
    take = np.where(has, fmt.stand_ins, 0)
    valid = has & ~ntu_occluded[..., take]
    xyz = np.where(valid[..., None], ntu_xyz[..., take, :], np.nan)
    return xyz, valid


def group_points(fmt, body_ids, joint_ids, xyz, confidence=None, min_confidence=0.0):
    """Group one-point-per-joint tracker output by body.

    Parameters
    ----------
    fmt : str or SkeletonFormat
    body_ids : array_like of shape (N,), int
        Tracker body id of each point (>= 0, < 2**32).
    joint_ids : array_like of shape (N,), int
        Joint of each point in the tracker's numbering.
    xyz : array_like of shape (N, 3), float
        NaN marks a joint the tracker did not see (the ZED convention).
    confidence : array_like of shape (N,), float, optional
    min_confidence : float
        Points with a lower confidence (or a NaN one) are not usable.

    Returns
    -------
    body_ids : ndarray of shape (B,), uint32
        Ascending.
    xyz : ndarray of shape (B, J, 3), float64
        NaN where no usable point arrived.
    valid : ndarray of shape (B, J), bool
    issues : dict of str to int
        ``bad_joint_id`` (outside 0..J-1: ignored), ``bad_body_id`` (negative or >= 2**32:
        ignored), ``duplicate_joint`` (a repeated body and joint: the last one is kept).
        NaN coordinates and low confidence are how trackers mark unseen joints, not issues.
    """
    fmt = fmt if isinstance(fmt, SkeletonFormat) else skeleton_format(fmt)
    joints = np.asarray(joint_ids, dtype=np.int64).reshape(-1)
    bodies = np.asarray(body_ids, dtype=np.int64).reshape(-1)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    n = len(joints)
    if len(bodies) != n or len(xyz) != n:
        raise ValueError(f'expected one body id and one position per joint id, got {n} joint '
                         f'ids, {len(bodies)} body ids and {len(xyz)} positions')
    usable = np.ones(n, bool)
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
        if len(confidence) != n:
            raise ValueError(f'expected one confidence per joint id, got {len(confidence)} for '
                             f'{n}')
        usable = confidence >= min_confidence  # NaN compares False
    issues = {}
    bad_joint = (joints < 0) | (joints >= fmt.num_joints)
    bad_body = (bodies < 0) | (bodies > np.iinfo(np.uint32).max)
    for key, bad in (('bad_joint_id', bad_joint), ('bad_body_id', bad_body & ~bad_joint)):
        if bad.any():
            issues[key] = int(bad.sum())
    keep = ~(bad_joint | bad_body)
    joints, bodies, xyz, usable = joints[keep], bodies[keep], xyz[keep], usable[keep]
    unique_bodies = np.unique(bodies)
    rows = np.searchsorted(unique_bodies, bodies)
    duplicates = len(joints) - len(np.unique(rows * fmt.num_joints + joints))
    if duplicates:
        issues['duplicate_joint'] = duplicates
    out = np.full((len(unique_bodies), fmt.num_joints, 3), np.nan)
    valid = np.zeros((len(unique_bodies), fmt.num_joints), bool)
    out[rows, joints] = xyz  # numpy keeps the last of repeated indices
    valid[rows, joints] = usable
    valid &= np.isfinite(out).all(axis=-1)
    out[~valid] = np.nan
    return unique_bodies.astype(np.uint32), out, valid, issues


def rotated_frame_id(frame_id, input_axes, output_axes, frame_suffix=''):
    """Frame id of coordinates rotated from ``input_axes`` into ``output_axes``.

    Unchanged when the axes agree; else ``frame_id`` + ``frame_suffix``, or + ``_<axes>``
    (:data:`iospstl_ros.axes.FRAME_SUFFIXES`, ``_optical`` for ``optical``) when empty.
    """
    check_axes(input_axes, 'input_axes')
    check_axes(output_axes, 'output_axes')
    if input_axes == output_axes:
        return frame_id
    return frame_id + (frame_suffix or FRAME_SUFFIXES[output_axes] or '_' + output_axes)


def rotate(xyz, input_axes, output_axes):
    """Rotate coordinates between two axes conventions (exact; NaN stays in place)."""
    check_axes(input_axes, 'input_axes')
    check_axes(output_axes, 'output_axes')
    if input_axes == output_axes:
        return np.asarray(xyz)
    return from_ntu(to_ntu(xyz, input_axes), output_axes)
