"""Azure Kinect (32 joints) to NTU (25 joints): literal mapping and axes cases, real rclpy."""

import math
import os
import subprocess
import sys

from iospstl_ros.axes import from_ntu, TO_NTU, to_ntu
from iospstl_ros.datasets.synthetic import generate_sequence
from iospstl_ros.k4a import (
    CHILD_FRAME_RPY, convert_markers, K4A_JOINT_NAMES, K4A_NUM_JOINTS, K4A_TO_NTU, k4a_to_ntu,
    markers_to_bodies, NTU_FROM_K4A, output_frame_id)
from iospstl_ros.layout import JOINT_NAMES
import numpy as np
import pytest
import ros_fixtures
from ros_fixtures import adapter_under_test, fast_discovery_env, spin_until

ros_context = ros_fixtures.ros_context


#: The mapping by name, written out independently of the index table.
EXPECTED_BY_NAME = {
    'spine_base': ('PELVIS',), 'spine_mid': ('SPINE_NAVEL', 'SPINE_CHEST'),
    'neck': ('NECK', 'HEAD'), 'head': ('HEAD',),
    'left_shoulder': ('SHOULDER_LEFT',), 'left_elbow': ('ELBOW_LEFT',),
    'left_wrist': ('WRIST_LEFT',), 'left_hand': ('HAND_LEFT',),
    'right_shoulder': ('SHOULDER_RIGHT',), 'right_elbow': ('ELBOW_RIGHT',),
    'right_wrist': ('WRIST_RIGHT',), 'right_hand': ('HAND_RIGHT',),
    'left_hip': ('HIP_LEFT',), 'left_knee': ('KNEE_LEFT',), 'left_ankle': ('ANKLE_LEFT',),
    'left_foot': ('FOOT_LEFT',), 'right_hip': ('HIP_RIGHT',), 'right_knee': ('KNEE_RIGHT',),
    'right_ankle': ('ANKLE_RIGHT',), 'right_foot': ('FOOT_RIGHT',),
    'spine_shoulder': ('NECK',), 'left_hand_tip': ('HANDTIP_LEFT',),
    'left_thumb': ('THUMB_LEFT',), 'right_hand_tip': ('HANDTIP_RIGHT',),
    'right_thumb': ('THUMB_RIGHT',),
}


def test_the_joint_table_by_name():
    assert K4A_NUM_JOINTS == 32 and K4A_JOINT_NAMES[26] == 'HEAD'
    assert K4A_JOINT_NAMES[2] == 'SPINE_CHEST' and K4A_JOINT_NAMES[31] == 'EAR_RIGHT'
    got = {JOINT_NAMES[v]: tuple(K4A_JOINT_NAMES[k] for k in sources)
           for v, sources in enumerate(NTU_FROM_K4A)}
    assert got == EXPECTED_BY_NAME


def tagged_body():
    """Joint k of the SDK at (k, 10 k, 100 k) millimetres... in metres / 1000."""
    k = np.arange(K4A_NUM_JOINTS, dtype=np.float64)
    return np.stack([k, 10 * k, 100 * k], -1)[None] / 1000.0


def test_literal_positions_and_axes():
    xyz = tagged_body()
    missing = np.zeros((1, 32), bool)
    ntu, occluded = k4a_to_ntu(xyz, missing, output_axes='optical')  # driver axes unchanged
    assert not occluded.any() and ntu.dtype == np.float32
    np.testing.assert_allclose(ntu[0, 0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(ntu[0, 1], [0.0015, 0.015, 0.15], rtol=1e-6)     # (1 + 2) / 2
    np.testing.assert_allclose(ntu[0, 2], [0.0145, 0.145, 1.45], rtol=1e-6)     # (3 + 26) / 2
    np.testing.assert_allclose(ntu[0, 20], [0.003, 0.03, 0.3], rtol=1e-6)       # NECK
    np.testing.assert_allclose(ntu[0, 24], [0.017, 0.17, 1.7], rtol=1e-6)       # THUMB_RIGHT
    converted, _ = k4a_to_ntu(xyz, missing, output_axes='ntu')  # (-x, -y, z)
    np.testing.assert_allclose(converted[0, 20], [-0.003, -0.03, 0.3], rtol=1e-6)
    np.testing.assert_allclose(converted[0, 1], [-0.0015, -0.015, 0.15], rtol=1e-6)
    # default REP-103: x forward = driver z, y left = -driver x, z up = -driver y
    rep103, _ = k4a_to_ntu(xyz, missing)
    np.testing.assert_allclose(rep103[0, 20], [0.3, -0.003, -0.03], rtol=1e-6)
    np.testing.assert_allclose(rep103[0, 1], [0.15, -0.0015, -0.015], rtol=1e-6)
    assert np.linalg.det(K4A_TO_NTU) == pytest.approx(1.0)  # a rotation, not a mirror
    assert K4A_TO_NTU.tolist() == TO_NTU['optical'].tolist()
    with pytest.raises(ValueError, match='output_axes: expected one of rep103, optical, ntu, '
                                         "got 'enu'"):
        k4a_to_ntu(xyz, missing, output_axes='enu')


def rotation_from_rpy(roll, pitch, yaw):
    """Rz(yaw) Ry(pitch) Rx(roll), the convention of tf2 and static_transform_publisher."""
    cr, sr, cp, sp = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]]) @ \
        np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]]) @ \
        np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])


def rotation_from_quaternion(x, y, z, w):
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def test_output_frames_and_their_documented_transforms():
    assert output_frame_id('depth_camera_link') == 'depth_camera_link_rep103'
    assert output_frame_id('depth_camera_link', 'optical') == 'depth_camera_link'
    assert output_frame_id('depth_camera_link', 'ntu') == 'depth_camera_link_ntu'
    # the child frame's axes written in the driver frame (columns): REP-103 x forward is the
    # driver's +z, y left its -x, z up its -y
    child_in_driver = {'rep103': [[0, -1, 0], [0, 0, -1], [1, 0, 0]],
                       'optical': [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                       'ntu': [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]}
    for axes, expected in child_in_driver.items():
        np.testing.assert_allclose(rotation_from_rpy(*CHILD_FRAME_RPY[axes]), expected,
                                   atol=1e-12)
        # a point given in the child frame is the same point as its driver coordinates
        point = np.array([0.3, -0.2, 2.5])
        np.testing.assert_allclose(np.array(expected) @ from_ntu(to_ntu(point, 'optical'), axes),
                                   point, atol=1e-12)
    # the quaternion of docs/trackers.md for static_transform_publisher (..._rep103 frame)
    np.testing.assert_allclose(rotation_from_quaternion(0.5, -0.5, 0.5, 0.5),
                               child_in_driver['rep103'], atol=1e-12)


def test_missing_sources_make_their_ntu_joints_occluded():
    xyz = tagged_body()
    missing = np.zeros((1, 32), bool)
    missing[0, [2, 26, 31]] = True  # SPINE_CHEST, HEAD, EAR_RIGHT (unused)
    ntu, occluded = k4a_to_ntu(xyz, missing)
    assert np.flatnonzero(occluded[0]).tolist() == [1, 2, 3]
    assert np.isnan(ntu[0, [1, 2, 3]]).all() and np.isfinite(ntu[0, [0, 4, 20]]).all()
    with pytest.raises(ValueError, match=r'expected xyz \(B, 32, 3\)'):
        k4a_to_ntu(np.zeros((1, 25, 3)), np.zeros((1, 25), bool))


def test_markers_are_grouped_by_body_and_bad_ones_counted():
    ids = [1205, 300, 326, -4, 1240, 300, 1226]
    positions = [[1, 1, 1], [2, 2, 2], [3, 3, 3], [0, 0, 0], [0, 0, 0], [4, 4, 4],
                 [np.nan, 0, 0]]
    body_ids, xyz, missing, issues = markers_to_bodies(ids, positions)
    assert body_ids.tolist() == [3, 12]
    assert issues == {'bad_marker_id': 2, 'duplicate_marker': 1, 'nonfinite_marker': 1}
    assert np.flatnonzero(~missing[0]).tolist() == [0, 26]
    assert np.flatnonzero(~missing[1]).tolist() == [5]
    assert xyz[0, 0].tolist() == [4, 4, 4]  # the last of a repeated id
    assert xyz[1, 5].tolist() == [1, 1, 1]
    body_ids, ntu, occluded, _ = convert_markers([], np.zeros((0, 3)))
    assert body_ids.shape == (0,) and ntu.shape == (0, 25, 3) and occluded.shape == (0, 25)


def k4a_person_facing_the_camera():
    """SDK joints of someone 2.5 m in front of the camera, facing it (driver frame)."""
    # synthetic NTU data from camera 1 (frontal) gives NTU joint positions; build the SDK
    # skeleton from them in the driver frame (x right, y down) by the inverse rotation
    sequence = generate_sequence(0, 0, occlusion='none')
    ntu = np.moveaxis(sequence.xyz[:, 0, :, 0], 0, -1).astype(np.float64)
    k4a = np.zeros((K4A_NUM_JOINTS, 3))
    for v, sources in enumerate(NTU_FROM_K4A):
        if len(sources) == 1:
            k4a[sources[0]] = ntu[v] * (-1, -1, 1)  # x right = -x left, y down = -y up
    k4a[1] = ntu[1] * (-1, -1, 1)  # navel and chest both at spine mid
    k4a[2] = ntu[1] * (-1, -1, 1)
    return ntu, k4a


def test_a_frontal_person_keeps_left_and_up():
    ntu, k4a = k4a_person_facing_the_camera()
    # driver frame: the person's left shoulder is on the camera's right (+x), the head above
    # the pelvis (smaller y, y points down)
    assert k4a[5, 0] > k4a[12, 0] and k4a[26, 1] < k4a[0, 1]
    converted, occluded = k4a_to_ntu(k4a[None], np.zeros((1, 32), bool), output_axes='ntu')
    assert not occluded.any()
    # NTU data: left shoulder x < right shoulder x for a frontal person, head above the base
    assert converted[0, 4, 0] < converted[0, 8, 0] and converted[0, 3, 1] > converted[0, 0, 1]
    assert ntu[4, 0] < ntu[8, 0]
    for v in (0, 4, 8, 12, 16, 21, 24):
        np.testing.assert_allclose(converted[0, v], ntu[v], atol=1e-6)
    # REP-103 (default): the person's left shoulder is on the sensor's right (smaller y), the
    # head above the pelvis (larger z), everyone ahead of the sensor (x > 0)
    rep103, _ = k4a_to_ntu(k4a[None], np.zeros((1, 32), bool))
    assert rep103[0, 4, 1] < rep103[0, 8, 1] and rep103[0, 3, 2] > rep103[0, 0, 2]
    assert (rep103[0, :, 0] > 1.0).all()
    for v in (0, 4, 8, 12, 16, 21, 24):
        np.testing.assert_allclose(to_ntu(rep103[0, v], 'rep103'), ntu[v], atol=1e-6)


@pytest.mark.ros
@pytest.mark.parametrize('params, axes, frame_id, shift', [
    # default: REP-103, the node's default input_axes; +1 m along driver x (right) is -1 m
    # along REP-103 y (left)
    ({}, 'rep103', 'depth_camera_link_rep103', (0.0, -1.0, 0.0)),
    ({'output_axes': 'optical'}, 'optical', 'depth_camera_link', (1.0, 0.0, 0.0)),
    ({'output_axes': 'ntu'}, 'ntu', 'depth_camera_link_ntu', (-1.0, 0.0, 0.0)),
    ({'frame_suffix': '_flu'}, 'rep103', 'depth_camera_link_flu', (0.0, -1.0, 0.0)),
    ({'output_axes': 'optical', 'frame_suffix': '_flu'}, 'optical', 'depth_camera_link',
     (1.0, 0.0, 0.0)),
])
def test_adapter_round_trip_over_dds(ros_context, params, axes, frame_id, shift):
    from builtin_interfaces.msg import Time
    from iospstl_ros.cloud import decode_skeletons
    from iospstl_ros.nodes.skeleton_adapter import K4A_NODE_NAME, SkeletonAdapter
    from rclpy.parameter import Parameter
    from visualization_msgs.msg import Marker, MarkerArray

    _, k4a = k4a_person_facing_the_camera()
    adapter = SkeletonAdapter(K4A_NODE_NAME, 'k4a', context=ros_context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    with adapter_under_test(ros_context, adapter, MarkerArray, 'body_tracking_data') as (
            executor, publisher, received):
        markers = MarkerArray()
        for body in (7, 2):
            for joint in range(32):
                if body == 2 and joint == 26:
                    continue  # no HEAD marker: NTU head and neck occluded
                marker = Marker(id=body * 100 + joint, type=Marker.SPHERE, action=Marker.ADD)
                marker.header.frame_id = 'depth_camera_link'
                marker.header.stamp = Time(sec=12, nanosec=345)
                marker.pose.position.x, marker.pose.position.y, marker.pose.position.z = (
                    float(v) for v in k4a[joint] + (0.0 if body == 7 else 1.0, 0.0, 0.0))
                markers.markers.append(marker)
        markers.markers.append(Marker(action=Marker.DELETEALL))
        assert spin_until(executor, lambda: received or publisher.publish(markers), 10.0)
        msg = received[0]
        assert msg.header.frame_id == frame_id
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345)
        frame, issues = decode_skeletons(msg.height, msg.width, msg.fields, msg.is_bigendian,
                                         msg.point_step, msg.row_step, msg.data)
        assert issues == {} and frame.body_ids.tolist() == [2, 7]
        expected, _ = k4a_to_ntu(k4a[None], np.zeros((1, 32), bool), output_axes=axes)
        np.testing.assert_allclose(frame.xyz[1], expected[0], atol=1e-6)
        if axes == 'optical':  # the driver's coordinates, unchanged
            np.testing.assert_allclose(frame.xyz[1, 3], k4a[26], atol=1e-6)
        assert np.flatnonzero(frame.occluded[0]).tolist() == [2, 3]
        np.testing.assert_allclose(frame.xyz[0, 4], expected[0, 4] + shift, atol=1e-6)

        def empty():
            return [m for m in received if m.height == 0]

        assert spin_until(executor, lambda: empty() or publisher.publish(MarkerArray()), 10.0)
        assert empty()[0].header.frame_id == frame_id
        assert adapter.converted >= 2


@pytest.mark.ros
def test_an_unknown_output_axes_is_refused_at_start_up(ros_context):
    from iospstl_ros.nodes.skeleton_adapter import K4A_NODE_NAME, SkeletonAdapter
    from rclpy.parameter import Parameter

    with pytest.raises(ValueError, match='parameter output_axes: expected one of rep103, '
                                         "optical, ntu, got 'enu'"):
        SkeletonAdapter(K4A_NODE_NAME, 'k4a', context=ros_context, parameter_overrides=[
            Parameter('output_axes', value='enu')])
    script = os.path.join(os.path.dirname(sys.executable), 'iospstl_k4a_adapter')
    if not os.path.exists(script):
        pytest.skip(f'{script} is not installed')
    result = subprocess.run([script, '--ros-args', '-p', 'output_axes:=enu'], timeout=60,
                            capture_output=True, text=True, env=fast_discovery_env())
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'bad parameter: parameter output_axes: expected one of rep103, optical, ntu' \
        in result.stderr and 'Traceback' not in result.stderr
