"""Azure Kinect body tracking (32 joints) to the NTU / Kinect v2 layout (25 joints).

The Azure Kinect ROS driver publishes ``body_tracking_data`` as a
``visualization_msgs/MarkerArray``: one SPHERE marker per joint, ``id = body_id * 100 +
joint``, 32 joints in the Body Tracking SDK order (:data:`K4A_JOINT_NAMES`), positions in
metres in the depth camera frame (``depth_camera_link``: x right, y down, z forward, as seen
from the camera), no confidence (the SDK's per-joint confidence level is dropped by the
driver, so every joint it sends counts as visible).

Joint mapping (:data:`NTU_FROM_K4A`; each NTU joint is the mean of the listed SDK joints):

====  ===============  ===============================  =======================================
NTU   name             Azure Kinect joint(s)            why
====  ===============  ===============================  =======================================
0     spine_base       PELVIS 0                         same place (centre of the hips)
1     spine_mid        SPINE_NAVEL 1 + SPINE_CHEST 2    Kinect v2's spine mid lies half way
                                                        between spine base and spine shoulder;
                                                        the SDK's navel is below and its chest
                                                        above that point
2     neck             NECK 3 + HEAD 26                 Kinect v2's neck is on the neck, above
                                                        the shoulders; the SDK's NECK sits at
                                                        its base (used for joint 20)
3     head             HEAD 26                          centre of the head in both
4-7   left arm         SHOULDER 5, ELBOW 6, WRIST 7,    one to one (CLAVICLE_LEFT 4 unused)
                       HAND 8 (left)
8-11  right arm        SHOULDER 12, ELBOW 13, WRIST 14,  one to one (CLAVICLE_RIGHT 11 unused)
                       HAND 15 (right)
12-15 left leg         HIP 18, KNEE 19, ANKLE 20,       one to one
                       FOOT 21 (left)
16-19 right leg        HIP 22, KNEE 23, ANKLE 24,       one to one
                       FOOT 25 (right)
20    spine_shoulder   NECK 3                           Kinect v2's spine shoulder is between
                                                        the shoulders at their height, where
                                                        the SDK puts NECK (SPINE_CHEST is a
                                                        hand's width lower). It is the origin of
                                                        the model's relative coordinates, so
                                                        the joint at shoulder height matters
                                                        most
21    left_hand_tip    HANDTIP_LEFT 9                   one to one
22    left_thumb       THUMB_LEFT 10                    one to one
23    right_hand_tip   HANDTIP_RIGHT 16                 one to one
24    right_thumb      THUMB_RIGHT 17                   one to one
====  ===============  ===============================  =======================================

NOSE, the eyes and the ears (27-31) and the clavicles have no NTU counterpart. Left and right
are the person's own in both layouts. An NTU joint whose source marker is missing (or not
finite) is sent as occluded.

Axes. The driver's depth frame is x right, y down, z forward: the ``optical`` convention of
:mod:`iospstl_ros.axes`. ``output_axes`` chooses the axes of the output coordinates:

* ``rep103`` (default, what ``iospstl_node`` expects by default and the topic contract names):
  x forward, y left, z up, ``(x, y, z)_rep103 = (z, -x, -y)_k4a``;
* ``optical``: the driver's coordinates unchanged (then run the node with ``input_axes:
  optical``);
* ``ntu``: Kinect v2 camera axes, x left, y up, z forward, ``(x, y, z)_ntu = (-x, -y, z)_k4a``.

Each is a proper rotation (determinant +1), so the person's left stays left (a plain y flip
``(x, -y, z)`` would be a mirror and swap left- and right-handed actions). Rotated coordinates
are in a frame of their own, named ``<frame>`` + :data:`iospstl_ros.axes.FRAME_SUFFIXES`
(``depth_camera_link_rep103``, ``depth_camera_link_ntu``): a child of the driver frame at the
same origin whose orientation relative to it is :data:`CHILD_FRAME_RPY` (roll, pitch, yaw).

Everything here is numpy-only.
"""

import math

from iospstl_ros.axes import check_axes, FRAME_SUFFIXES, from_ntu, TO_NTU, to_ntu
from iospstl_ros.layout import NUM_JOINTS
import numpy as np

#: Joints of the Azure Kinect Body Tracking SDK, in ``k4abt_joint_id_t`` order.
K4A_JOINT_NAMES = (
    'PELVIS', 'SPINE_NAVEL', 'SPINE_CHEST', 'NECK', 'CLAVICLE_LEFT', 'SHOULDER_LEFT',
    'ELBOW_LEFT', 'WRIST_LEFT', 'HAND_LEFT', 'HANDTIP_LEFT', 'THUMB_LEFT', 'CLAVICLE_RIGHT',
    'SHOULDER_RIGHT', 'ELBOW_RIGHT', 'WRIST_RIGHT', 'HAND_RIGHT', 'HANDTIP_RIGHT',
    'THUMB_RIGHT', 'HIP_LEFT', 'KNEE_LEFT', 'ANKLE_LEFT', 'FOOT_LEFT', 'HIP_RIGHT',
    'KNEE_RIGHT', 'ANKLE_RIGHT', 'FOOT_RIGHT', 'HEAD', 'NOSE', 'EYE_LEFT', 'EAR_LEFT',
    'EYE_RIGHT', 'EAR_RIGHT',
)
#: Number of SDK joints.
K4A_NUM_JOINTS = len(K4A_JOINT_NAMES)
#: Marker id = body id * MARKER_ID_STRIDE + joint.
MARKER_ID_STRIDE = 100

#: Source SDK joints of each NTU joint (averaged), in NTU order; see the module docstring.
NTU_FROM_K4A = (
    (0,), (1, 2), (3, 26), (26,),
    (5,), (6,), (7,), (8,),
    (12,), (13,), (14,), (15,),
    (18,), (19,), (20,), (21,),
    (22,), (23,), (24,), (25,),
    (3,), (9,), (10,), (16,), (17,),
)
#: Axes convention of the driver's depth frame (x right, y down, z forward).
DRIVER_AXES = 'optical'
#: Axes of the adapter's output by default (the node's default ``input_axes``).
DEFAULT_OUTPUT_AXES = 'rep103'
#: Rotation from the driver's depth frame to NTU camera axes.
K4A_TO_NTU = TO_NTU[DRIVER_AXES]
#: Suffix of the frame id of coordinates rotated into NTU axes (kept for older callers).
NTU_FRAME_SUFFIX = FRAME_SUFFIXES['ntu']
#: Orientation (roll, pitch, yaw; radians, as ``static_transform_publisher --roll --pitch
#: --yaw``) of the frame of each output axes relative to the driver frame, same origin.
CHILD_FRAME_RPY = {'rep103': (math.pi / 2, -math.pi / 2, 0.0), 'optical': (0.0, 0.0, 0.0),
                   'ntu': (0.0, 0.0, math.pi)}

_MAPPING = np.zeros((NUM_JOINTS, K4A_NUM_JOINTS))
for _ntu, _sources in enumerate(NTU_FROM_K4A):
    _MAPPING[_ntu, list(_sources)] = 1.0 / len(_sources)


def markers_to_bodies(marker_ids, positions):
    """Group joint markers by body.

    Parameters
    ----------
    marker_ids : array_like of shape (N,), int
        ``body_id * 100 + joint``.
    positions : array_like of shape (N, 3), float
        Metres.

    Returns
    -------
    body_ids : ndarray of shape (B,), uint32
        Ascending.
    xyz : ndarray of shape (B, 32, 3), float64
        NaN where a joint has no marker.
    missing : ndarray of shape (B, 32), bool
        True where no usable marker arrived (none, or non-finite position).
    issues : dict of str to int
        ``bad_marker_id`` (negative id or joint >= 32: ignored), ``duplicate_marker`` (a
        repeated id: the last one is kept), ``nonfinite_marker``.
    """
    ids = np.asarray(marker_ids, dtype=np.int64).reshape(-1)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if len(ids) != len(positions):
        raise ValueError(f'expected one position per marker id, got {len(ids)} ids and '
                         f'{len(positions)} positions')
    issues = {}
    joints = ids % MARKER_ID_STRIDE
    bodies = ids // MARKER_ID_STRIDE
    valid = (ids >= 0) & (joints < K4A_NUM_JOINTS) & (bodies <= np.iinfo(np.uint32).max)
    if (~valid).any():
        issues['bad_marker_id'] = int((~valid).sum())
    ids, joints, bodies, positions = ids[valid], joints[valid], bodies[valid], positions[valid]
    body_ids = np.unique(bodies)
    xyz = np.full((len(body_ids), K4A_NUM_JOINTS, 3), np.nan)
    missing = np.ones((len(body_ids), K4A_NUM_JOINTS), bool)
    rows = np.searchsorted(body_ids, bodies)
    duplicates = len(ids) - len(np.unique(ids))
    if duplicates:
        issues['duplicate_marker'] = duplicates
    xyz[rows, joints] = positions  # numpy keeps the last of repeated indices
    finite = np.isfinite(xyz).all(axis=-1)
    missing[rows, joints] = False
    nonfinite = int((~missing & ~finite).sum())
    if nonfinite:
        issues['nonfinite_marker'] = nonfinite
    missing |= ~finite
    return body_ids.astype(np.uint32), xyz, missing, issues


def output_frame_id(driver_frame_id, output_axes=DEFAULT_OUTPUT_AXES):
    """Frame id of coordinates in ``output_axes``: the driver's, suffixed when rotated.

    Returns
    -------
    str
        ``depth_camera_link`` -> ``depth_camera_link_rep103`` / ``depth_camera_link`` /
        ``depth_camera_link_ntu``.
    """
    return driver_frame_id + FRAME_SUFFIXES[check_axes(output_axes, 'output_axes')]


def k4a_to_ntu(xyz, missing, output_axes=DEFAULT_OUTPUT_AXES):
    """Map SDK joints to the 25 NTU joints, in the chosen output axes.

    Parameters
    ----------
    xyz : ndarray of shape (B, 32, 3)
        SDK joints, driver depth frame (x right, y down, z forward).
    missing : ndarray of shape (B, 32), bool
    output_axes : str
        Axes of the result (:data:`iospstl_ros.axes.AXES`): ``rep103`` (x forward, y left, z
        up), ``optical`` (the driver's axes, unchanged) or ``ntu`` (x left, y up, z forward).

    Returns
    -------
    ntu_xyz : ndarray of shape (B, 25, 3), float32
        The 25 NTU joints in ``output_axes``; NaN where occluded.
    occluded : ndarray of shape (B, 25), bool
        True where any source joint is missing.
    """
    check_axes(output_axes, 'output_axes')
    xyz = np.asarray(xyz, dtype=np.float64)
    missing = np.asarray(missing, dtype=bool)
    if xyz.ndim != 3 or xyz.shape[1:] != (K4A_NUM_JOINTS, 3) \
            or missing.shape != xyz.shape[:2]:
        raise ValueError(f'expected xyz (B, {K4A_NUM_JOINTS}, 3) and missing (B, '
                         f'{K4A_NUM_JOINTS}), got {xyz.shape} and {missing.shape}')
    occluded = (missing.astype(np.float64) @ (_MAPPING > 0).T) > 0
    ntu = np.einsum('vk,bkc->bvc', _MAPPING, np.where(missing[..., None], 0.0, xyz))
    if output_axes != DRIVER_AXES:
        ntu = from_ntu(to_ntu(ntu, DRIVER_AXES), output_axes)
    return np.where(occluded[..., None], np.nan, ntu).astype(np.float32), occluded


def convert_markers(marker_ids, positions, output_axes=DEFAULT_OUTPUT_AXES):
    """Azure Kinect joint markers to NTU bodies (:func:`markers_to_bodies` + :func:`k4a_to_ntu`).

    Parameters
    ----------
    marker_ids : array_like of shape (N,), int
    positions : array_like of shape (N, 3), float
        Driver depth frame, metres.
    output_axes : str
        See :func:`k4a_to_ntu`.

    Returns
    -------
    body_ids : ndarray of shape (B,), uint32
    xyz : ndarray of shape (B, 25, 3), float32
    occluded : ndarray of shape (B, 25), bool
    issues : dict of str to int
    """
    body_ids, xyz, missing, issues = markers_to_bodies(marker_ids, positions)
    ntu, occluded = k4a_to_ntu(xyz, missing, output_axes)
    return body_ids, ntu, occluded, issues
