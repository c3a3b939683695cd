"""Tracker joint sets to NTU-25: literal tables and positions, the joint cloud, real rclpy."""

import gc
import os
import subprocess
import sys

from iospstl_ros.cloud import CloudError, decode_joint_points, FLOAT32, FLOAT64, UINT16
from iospstl_ros.k4a import k4a_to_ntu
from iospstl_ros.layout import JOINT_NAMES
from iospstl_ros.trackers import (
    FORMATS, group_points, rotate, rotated_frame_id, simulate_tracker, skeleton_format,
    to_ntu25)
import numpy as np
import pytest
import ros_fixtures
from ros_fixtures import adapter_under_test, fast_discovery_env, spin_until

ros_context = ros_fixtures.ros_context


@pytest.fixture(scope='module', autouse=True)
def collect_ros_garbage():
    """Finalize this module's rclpy objects here, not in a forked child (see test_k4a)."""
    yield
    gc.collect()


LIMBS = ('shoulder', 'elbow', 'wrist', 'hip', 'knee', 'ankle')


def limbs(upper):
    """One-to-one limb rules, written out: left_shoulder <- LEFT_SHOULDER / left_shoulder."""
    return {f'{side}_{joint}': {(f'{side}_{joint}'.upper() if upper else f'{side}_{joint}'): 1.0}
            for side in ('left', 'right') for joint in LIMBS}


#: Every rule by name, written out independently of the module's tables (weights by hand).
EXPECTED = {
    'zed_body18': {
        **limbs(True),
        'spine_base': {'LEFT_HIP': 0.5, 'RIGHT_HIP': 0.5},
        'spine_mid': {'LEFT_HIP': 0.25, 'RIGHT_HIP': 0.25, 'NECK': 0.5},
        'neck': {'NECK': 0.5, 'LEFT_EAR': 0.25, 'RIGHT_EAR': 0.25},
        'head': {'LEFT_EAR': 0.5, 'RIGHT_EAR': 0.5},
        'spine_shoulder': {'NECK': 1.0},
    },
    'zed_body38': {
        **limbs(True),
        'spine_base': {'PELVIS': 1.0}, 'spine_mid': {'SPINE_2': 1.0},
        'neck': {'NECK': 0.5, 'LEFT_EAR': 0.25, 'RIGHT_EAR': 0.25},
        'head': {'LEFT_EAR': 0.5, 'RIGHT_EAR': 0.5},
        'left_hand': {'LEFT_HAND_INDEX_1': 0.5, 'LEFT_HAND_PINKY_1': 0.5},
        'right_hand': {'RIGHT_HAND_INDEX_1': 0.5, 'RIGHT_HAND_PINKY_1': 0.5},
        'left_foot': {'LEFT_BIG_TOE': 0.5, 'LEFT_SMALL_TOE': 0.5},
        'right_foot': {'RIGHT_BIG_TOE': 0.5, 'RIGHT_SMALL_TOE': 0.5},
        'spine_shoulder': {'LEFT_SHOULDER': 0.5, 'RIGHT_SHOULDER': 0.5},
        'left_hand_tip': {'LEFT_HAND_MIDDLE_4': 1.0}, 'left_thumb': {'LEFT_HAND_THUMB_4': 1.0},
        'right_hand_tip': {'RIGHT_HAND_MIDDLE_4': 1.0},
        'right_thumb': {'RIGHT_HAND_THUMB_4': 1.0},
    },
    'coco17': {
        **limbs(False),
        'spine_base': {'left_hip': 0.5, 'right_hip': 0.5},
        'spine_mid': {'left_hip': 0.25, 'right_hip': 0.25, 'left_shoulder': 0.25,
                      'right_shoulder': 0.25},
        'neck': {'left_shoulder': 0.25, 'right_shoulder': 0.25, 'left_ear': 0.25,
                 'right_ear': 0.25},
        'head': {'left_ear': 0.5, 'right_ear': 0.5},
        'spine_shoulder': {'left_shoulder': 0.5, 'right_shoulder': 0.5},
    },
}
EXPECTED['mediapipe33'] = {
    **EXPECTED['coco17'],
    'left_hand': {'left_index': 0.5, 'left_pinky': 0.5},
    'right_hand': {'right_index': 0.5, 'right_pinky': 0.5},
    'left_foot': {'left_foot_index': 1.0}, 'right_foot': {'right_foot_index': 1.0},
    'left_thumb': {'left_thumb': 1.0}, 'right_thumb': {'right_thumb': 1.0},
}
#: Joint numbering spot checks against the vendors' tables.
NUMBERING = {
    'zed_body18': {0: 'NOSE', 1: 'NECK', 2: 'RIGHT_SHOULDER', 11: 'LEFT_HIP', 17: 'LEFT_EAR'},
    'zed_body34': {1: 'NAVAL_SPINE', 3: 'NECK', 26: 'HEAD', 32: 'LEFT_HEEL', 33: 'RIGHT_HEEL'},
    'zed_body38': {2: 'SPINE_2', 4: 'NECK', 12: 'LEFT_SHOULDER', 30: 'LEFT_HAND_THUMB_4',
                   34: 'LEFT_HAND_MIDDLE_4', 37: 'RIGHT_HAND_PINKY_1'},
    'coco17': {0: 'nose', 3: 'left_ear', 5: 'left_shoulder', 12: 'right_hip',
               16: 'right_ankle'},
    'mediapipe33': {7: 'left_ear', 11: 'left_shoulder', 17: 'left_pinky', 21: 'left_thumb',
                    23: 'left_hip', 32: 'right_foot_index'},
}


def rules_by_name(fmt):
    return {JOINT_NAMES[v]: {fmt.joint_names[j]: pytest.approx(row[j])
                             for j in np.flatnonzero(row)}
            for v, row in enumerate(fmt.weights) if row.any()}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_each_table_by_name(name):
    fmt = skeleton_format(name)
    assert rules_by_name(fmt) == EXPECTED[name]
    assert {k: fmt.joint_names[k] for k in NUMBERING[name]} == NUMBERING[name]
    assert fmt.num_joints == {'zed_body18': 18, 'zed_body38': 38, 'coco17': 17,
                              'mediapipe33': 33}[name]
    assert fmt.source.startswith('https://')


def test_k4a_and_zed_body34_share_the_azure_kinect_table():
    k4a, zed = skeleton_format('k4a'), skeleton_format('zed_body34')
    assert zed.num_joints == 34 and k4a.num_joints == 32
    np.testing.assert_array_equal(zed.weights[:, :32], k4a.weights)
    assert not zed.weights[:, 32:].any() and zed.provided.all()
    assert rules_by_name(k4a)['neck'] == {'NECK': 0.5, 'HEAD': 0.5}
    assert rules_by_name(zed)['spine_mid'] == {'NAVAL_SPINE': 0.5, 'CHEST_SPINE': 0.5}


def test_not_provided_joints_per_format():
    missing = {name: np.flatnonzero(~skeleton_format(name).provided).tolist()
               for name in FORMATS}
    assert missing == {'k4a': [], 'zed_body18': [7, 11, 15, 19, 21, 22, 23, 24],
                       'zed_body34': [], 'zed_body38': [],
                       'coco17': [7, 11, 15, 19, 21, 22, 23, 24], 'mediapipe33': [21, 23]}


def tagged(num_joints, offset=0.0):
    """Tracker joint k at (k, 10 k, 100 k) mm, one body."""
    k = np.arange(num_joints, dtype=np.float64) + offset
    return np.stack([k, 10 * k, 100 * k], -1)[None] / 1000.0


#: NTU joint -> the k of its expected position (k, 10 k, 100 k) mm for a tagged body, by hand.
EXPECTED_K = {
    'coco17': {0: 11.5, 1: 8.5, 2: 4.5, 3: 3.5, 4: 5, 6: 9, 8: 6, 12: 11, 14: 15, 18: 16,
               20: 5.5},
    'mediapipe33': {0: 23.5, 1: 17.5, 2: 9.5, 3: 7.5, 4: 11, 7: 18, 11: 19, 15: 31, 19: 32,
                    20: 11.5, 22: 21, 24: 22},
    'zed_body18': {0: 9.5, 1: 5.25, 2: 8.75, 3: 16.5, 4: 5, 8: 2, 17: 9, 20: 1},
    'zed_body38': {0: 0, 1: 2, 2: 6.25, 3: 8.5, 7: 34, 11: 35, 15: 25, 19: 26, 20: 12.5, 21: 34,
                   22: 30, 23: 35, 24: 31},
}


@pytest.mark.parametrize('name', sorted(EXPECTED_K))
def test_literal_positions(name):
    fmt = skeleton_format(name)
    xyz = tagged(fmt.num_joints)
    ntu, occluded = to_ntu25(name, xyz, np.ones((1, fmt.num_joints), bool))
    assert ntu.dtype == np.float32 and ntu.shape == (1, 25, 3)
    assert occluded[0].tolist() == (~fmt.provided).tolist()
    for v, k in EXPECTED_K[name].items():
        np.testing.assert_allclose(ntu[0, v], [k / 1000, k / 100, k / 10], rtol=1e-6,
                                   err_msg=f'{name} {JOINT_NAMES[v]}')
    assert np.isnan(ntu[0, occluded[0]]).all() and np.isfinite(ntu[0, ~occluded[0]]).all()


def test_a_derived_joint_is_occluded_when_any_source_is():
    xyz = tagged(17)
    valid = np.ones((1, 17), bool)
    valid[0, 4] = False          # right_ear: head and neck
    xyz[0, 11] = np.nan          # left_hip as NaN: left_hip, spine_base, spine_mid
    ntu, occluded = to_ntu25('coco17', xyz, valid)
    assert np.flatnonzero(occluded[0]).tolist() == [0, 1, 2, 3, 7, 11, 12, 15, 19, 21, 22, 23,
                                                    24]
    np.testing.assert_allclose(ntu[0, 20], [0.0055, 0.055, 0.55], rtol=1e-6)


def test_bad_input_is_refused_with_what_was_expected():
    with pytest.raises(ValueError, match='format: expected one of k4a, zed_body18, zed_body34, '
                                         "zed_body38, coco17, mediapipe33, got 'body25'"):
        skeleton_format('body25')
    with pytest.raises(ValueError, match=r'coco17: expected xyz \(B, 17, 3\) and valid '
                                         r'\(B, 17\), got \(1, 18, 3\) and \(1, 18\)'):
        to_ntu25('coco17', np.zeros((1, 18, 3)), np.ones((1, 18), bool))
    with pytest.raises(ValueError, match='expected one body id and one position per joint id, '
                                         'got 2 joint ids, 1 body ids and 2 positions'):
        group_points('coco17', [0], [0, 1], np.zeros((2, 3)))
    with pytest.raises(ValueError, match='expected one confidence per joint id, got 1 for 2'):
        group_points('coco17', [0, 0], [0, 1], np.zeros((2, 3)), confidence=[1.0])


def test_the_k4a_table_agrees_with_the_k4a_module():
    rng = np.random.default_rng(3)
    xyz = rng.normal(0.0, 1.0, (4, 32, 3))
    missing = rng.random((4, 32)) < 0.2
    ours, occluded = to_ntu25('k4a', xyz, ~missing)
    theirs, their_occluded = k4a_to_ntu(xyz, missing, output_axes='optical')
    np.testing.assert_array_equal(occluded, their_occluded)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, equal_nan=True)


def test_points_are_grouped_by_body_with_confidence_and_nan():
    bodies = [7, 7, 7, 3, 7, -1, 3, 7, 3]
    joints = [5, 6, 99, 5, 5, 0, 11, 11, 12]
    xyz = [[1, 1, 1], [2, 2, 2], [0, 0, 0], [3, 3, 3], [4, 4, 4], [0, 0, 0], [np.nan, 0, 0],
           [5, 5, 5], [6, 6, 6]]
    confidence = [0.9, 0.2, 1.0, 0.5, 0.8, 1.0, 1.0, np.nan, 0.4]
    body_ids, out, valid, issues = group_points('coco17', bodies, joints, xyz, confidence, 0.4)
    assert body_ids.tolist() == [3, 7] and body_ids.dtype == np.uint32
    assert issues == {'bad_joint_id': 1, 'bad_body_id': 1, 'duplicate_joint': 1}
    assert np.flatnonzero(valid[0]).tolist() == [5, 12]   # 11 is NaN
    assert np.flatnonzero(valid[1]).tolist() == [5]       # 6 below 0.4, 11 NaN confidence
    assert out[1, 5].tolist() == [4, 4, 4]                # the last of a repeated joint
    assert np.isnan(out[1, 6]).all() and out[0, 12].tolist() == [6, 6, 6]
    empty = group_points('mediapipe33', [], [], np.zeros((0, 3)))
    assert empty[0].shape == (0,) and empty[1].shape == (0, 33, 3) and empty[3] == {}


@pytest.mark.parametrize('name', FORMATS)
def test_simulated_tracker_gives_back_the_joints_it_has(name):
    fmt = skeleton_format(name)
    rng = np.random.default_rng(7)
    ntu = rng.normal(0.0, 1.0, (3, 25, 3))
    xyz, valid = simulate_tracker(name, ntu, np.zeros((3, 25), bool))
    assert xyz.shape == (3, fmt.num_joints, 3) and np.isnan(xyz[~valid]).all()
    back, occluded = to_ntu25(name, xyz, valid)
    assert occluded[0].tolist() == (~fmt.provided).tolist()
    direct = fmt.provided & ~fmt.derived
    np.testing.assert_allclose(back[:, direct], ntu[:, direct], rtol=1e-6, atol=1e-6)
    hidden = np.zeros((3, 25), bool)
    hidden[:, 4] = True  # the left shoulder: hidden in every format that has it
    _, valid = simulate_tracker(name, ntu, hidden)
    _, occluded = to_ntu25(name, xyz, valid)
    assert occluded[:, 4].all()


def test_frames_and_rotations():
    assert rotated_frame_id('cam', 'rep103', 'rep103') == 'cam'
    assert rotated_frame_id('cam', 'optical', 'rep103') == 'cam_rep103'
    assert rotated_frame_id('cam', 'rep103', 'optical') == 'cam_optical'
    assert rotated_frame_id('cam', 'optical', 'ntu', '_flu') == 'cam_flu'
    assert rotated_frame_id('cam', 'optical', 'optical', '_flu') == 'cam'
    # optical (x right, y down, z forward) -> rep103 (x forward, y left, z up)
    np.testing.assert_array_equal(rotate([[1.0, 2.0, 3.0]], 'optical', 'rep103'),
                                  [[3.0, -1.0, -2.0]])
    with pytest.raises(ValueError, match='input_axes: expected one of rep103, optical, ntu, '
                                         "got 'enu'"):
        rotated_frame_id('cam', 'enu', 'rep103')


def joint_cloud_bytes(points, layout):
    """Pack points {field: values} with layout [(name, offset, numpy type)] by hand."""
    step = max(offset + np.dtype(kind).itemsize for _, offset, kind in layout)
    dtype = np.dtype({'names': [n for n, _, _ in layout], 'formats': [k for _, _, k in layout],
                      'offsets': [o for _, o, _ in layout], 'itemsize': step})
    array = np.zeros(len(points['x']), dtype)
    for name, _, _ in layout:
        array[name] = points[name]
    return array.tobytes(), step


def test_joint_cloud_fields_are_found_by_name():
    points = {'x': [1.5, 2.5], 'y': [0.25, np.nan], 'z': [3.0, 4.0], 'joint_id': [16, 2]}
    data, step = joint_cloud_bytes(points, [('joint_id', 0, '<u2'), ('z', 2, '<f8'),
                                            ('x', 10, '<f8'), ('y', 18, '<f8')])
    fields = [('joint_id', 0, UINT16, 1), ('z', 2, FLOAT64, 1), ('x', 10, FLOAT64, 1),
              ('y', 18, FLOAT64, 1), ('rgb', 26, FLOAT32, 1)]  # unknown: ignored
    got = decode_joint_points(1, 2, fields, False, step + 4, 2 * (step + 4),
                              data[:step] + bytes(4) + data[step:] + bytes(4))
    assert got['joint_id'].tolist() == [16, 2] and got['body_id'].tolist() == [0, 0]
    assert got['x'].tolist() == [1.5, 2.5] and got['z'].tolist() == [3.0, 4.0]
    assert got['y'][0] == 0.25 and np.isnan(got['y'][1]) and 'confidence' not in got
    with pytest.raises(CloudError, match='missing_field: expected fields x, y, z, joint_id; '
                                         'missing joint_id'):
        decode_joint_points(1, 1, [('x', 0, FLOAT32, 1), ('y', 4, FLOAT32, 1),
                                   ('z', 8, FLOAT32, 1)], False, 12, 12, bytes(12))
    with pytest.raises(CloudError, match=r'bad_field_type: field \'body_id\''):
        decode_joint_points(1, 1, fields + [('body_id', 0, FLOAT32, 1)], False, 30, 30,
                            bytes(30))
    with pytest.raises(CloudError, match='truncated: expected 60 bytes'):
        decode_joint_points(1, 2, fields, False, 30, 60, bytes(59))


# ------------------------------------------------------------------------- the node, real DDS

def tracker_cloud(header, bodies, joints, xyz, confidence):
    """Build a tracker joint PointCloud2 (x y z, body_id uint32, joint_id uint8, confidence)."""
    from sensor_msgs.msg import PointCloud2, PointField

    layout = [('x', 0, '<f4'), ('y', 4, '<f4'), ('z', 8, '<f4'), ('body_id', 12, '<u4'),
              ('joint_id', 16, '<u1'), ('confidence', 17, '<f4')]
    points = {'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2], 'body_id': bodies,
              'joint_id': joints, 'confidence': confidence}
    data, step = joint_cloud_bytes(points, layout)
    types = {'<f4': PointField.FLOAT32, '<u4': PointField.UINT32, '<u1': PointField.UINT8}
    return PointCloud2(header=header, height=1, width=len(joints), is_bigendian=False,
                       point_step=step, row_step=step * len(joints), data=data, is_dense=False,
                       fields=[PointField(name=n, offset=o, datatype=types[k], count=1)
                               for n, o, k in layout])


@pytest.mark.ros
@pytest.mark.parametrize('name, params, frame_id, to_output', [
    # coco17 is rep103 by default, as the node wants it: nothing rotated, frame kept
    ('coco17', {'format': 'coco17'}, 'camera_link', lambda k: [k / 1000, k / 100, k / 10]),
    # mediapipe33 is optical by default: (x, y, z)_rep103 = (z, -x, -y)_optical
    ('mediapipe33', {'format': 'mediapipe33', 'min_confidence': 0.5}, 'camera_link_rep103',
     lambda k: [k / 10, -k / 1000, -k / 100]),
])
def test_adapter_point_cloud_over_dds(ros_context, name, params, frame_id, to_output):
    from builtin_interfaces.msg import Time
    from iospstl_ros.cloud import decode_skeletons
    from iospstl_ros.nodes.skeleton_adapter import SkeletonAdapter
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Header

    adapter = SkeletonAdapter(context=ros_context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    with adapter_under_test(ros_context, adapter, PointCloud2, 'tracker_joints') as (
            executor, publisher, received):
        J = skeleton_format(name).num_joints
        order = np.random.default_rng(0).permutation(2 * J)  # points in any order
        bodies = np.repeat([4, 9], J)[order]
        joints = np.tile(np.arange(J), 2)[order]
        xyz = np.concatenate([tagged(J)[0], tagged(J, offset=1000.0)[0]])[order]
        ear = skeleton_format(name).joint_names.index('left_ear')
        confidence = np.where((bodies == 9) & (joints == ear), 0.1, 0.9)  # body 9: left ear
        header = Header(stamp=Time(sec=5, nanosec=77), frame_id='camera_link')
        msg = tracker_cloud(header, bodies, joints, xyz, confidence)
        assert spin_until(executor, lambda: received or publisher.publish(msg), 10.0)
        out = received[0]
        assert out.header.frame_id == frame_id
        assert (out.header.stamp.sec, out.header.stamp.nanosec) == (5, 77)
        frame, issues = decode_skeletons(out.height, out.width, out.fields, out.is_bigendian,
                                         out.point_step, out.row_step, out.data)
        assert issues == {} and frame.body_ids.tolist() == [4, 9]
        for v, k in EXPECTED_K[name].items():
            np.testing.assert_allclose(frame.xyz[0, v], to_output(k), rtol=1e-6)
        np.testing.assert_allclose(frame.xyz[1, 4], to_output(EXPECTED_K[name][4] + 1000.0),
                                   rtol=1e-6)
        missing = np.flatnonzero(~skeleton_format(name).provided).tolist()
        assert np.flatnonzero(frame.occluded[0]).tolist() == missing
        below = 'min_confidence' in params  # the left ear below it: head and neck occluded
        assert np.flatnonzero(frame.occluded[1]).tolist() == sorted(
            missing + ([2, 3] if below else []))

        def empty():
            return [m for m in received if m.height == 0]

        nothing = tracker_cloud(header, np.zeros(0), np.zeros(0), np.zeros((0, 3)), np.zeros(0))
        assert spin_until(executor, lambda: empty() or publisher.publish(nothing), 10.0)
        assert empty()[0].header.frame_id == frame_id
        assert adapter.converted >= 2 and adapter.rejected == 0


@pytest.mark.ros
def test_adapter_parameters_are_checked_at_start_up(ros_context):
    from iospstl_ros.nodes.skeleton_adapter import SkeletonAdapter
    from rclpy.parameter import Parameter

    with pytest.raises(ValueError, match='parameter format: expected one of k4a, zed_body18, '
                                         "zed_body34, zed_body38, coco17, mediapipe33, got ''"):
        SkeletonAdapter(context=ros_context)
    with pytest.raises(ValueError, match='parameter input_axes: expected empty or one of '
                                         "rep103, optical, ntu, got 'enu'"):
        SkeletonAdapter(context=ros_context, parameter_overrides=[
            Parameter('format', value='coco17'), Parameter('input_axes', value='enu')])
    script = os.path.join(os.path.dirname(sys.executable), 'iospstl_skeleton_adapter')
    if not os.path.exists(script):
        pytest.skip(f'{script} is not installed')
    result = subprocess.run([script, '--ros-args', '-p', 'format:=body25'], timeout=60,
                            capture_output=True, text=True, env=fast_discovery_env())
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'bad parameter: parameter format: expected one of k4a, zed_body18, zed_body34, ' \
        "zed_body38, coco17, mediapipe33, got 'body25'" in result.stderr
    assert 'Traceback' not in result.stderr


def test_the_config_file_lists_every_adapter_parameter_with_its_default():
    import yaml
    from iospstl_ros.nodes.skeleton_adapter import PARAMETERS

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'config',
                        'skeleton_adapter.yaml')
    with open(path) as f:
        values = yaml.safe_load(f)['/**']['ros__parameters']
    assert values == {p.name: p.default for p in PARAMETERS}
