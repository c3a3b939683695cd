"""iospstl_node over real DDS: labels, tracking, bad input, fuzzing, start-up, console script.

In-process tests put the node under test and a tester node on one executor and wait for each
message to be taken by the node before sending the next (bounded spin loops), so counts are
exact. One test starts the installed console script as a separate process with a parameter
file and the Fast DDS quick-discovery profile.

The synthetic motions are NTU-axes data; they are published in the axes the node is set to:
REP-103 (the default ``input_axes``) unless a test says otherwise.
"""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from iospstl_ros.axes import from_ntu
from iospstl_ros.cloud import encode_skeletons, FLOAT32, SkeletonFrame, UINT8
from iospstl_ros.datasets.synthetic import CLASS_NAMES, generate_sequence
from iospstl_ros.model_dir import default_model_dir
from iospstl_ros.nodes._ros_helpers import (
    LABEL_KEYS, skeleton_cloud, status_values)
from iospstl_ros.nodes.action_node import ActionNode
from iospstl_ros.params import PARAMETERS
from iospstl_ros.tracking import OnlineRecognizer
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
import ros_fixtures
from ros_fixtures import fast_discovery_env, spin_for, spin_until, wait_for_match
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The installed console script (of the venv running the tests).
NODE_SCRIPT = next((path for path in (os.path.join(REPO, '.venv', 'bin', 'iospstl_node'),
                                      os.path.join(os.path.dirname(sys.executable),
                                                   'iospstl_node'),
                                      shutil.which('iospstl_node'))
                    if path and os.path.exists(path)), None)
FRAME_NS = 33_333_333
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
ros_context = ros_fixtures.ros_context
#: Small windows keep the tests short.
FAST = {'window': 12, 'min_frames': 6, 'stride': 3, 'backend': 'cpu', 'threads': 1,
        'diagnostics_period_s': 0.1, 'warning_throttle_s': 0.0}


@pytest.fixture(scope='module')
def tiny_model(tiny):
    return tiny['model']


def body_frames(index=0, seed=3, axes='rep103'):
    """(T, 25, 3) joints in ``axes`` and (T, 25) occlusion of a synthetic one-person sequence."""
    sequence = generate_sequence(seed, index)
    return from_ntu(np.moveaxis(sequence.xyz[:, :, :, 0], 0, -1), axes), \
        sequence.occluded[:, :, 0]


def core_labels(node, messages):
    """Labels of the core recognizer on the node's pipeline, fed NTU-axes data directly.

    ``messages`` is a list of (stamp_ns, {body_id: (xyz (25, 3) NTU axes, occluded (25,))}).
    An oracle for the node: same settings except ``input_axes: ntu``, no DDS, no decoding.
    """
    config = dataclasses.replace(node.recognizer.config, input_axes='ntu')
    recognizer = OnlineRecognizer(node.pipeline, config)
    labels = []
    for stamp_ns, bodies in messages:
        ids = sorted(bodies)
        labels += recognizer.process(SkeletonFrame(
            stamp_ns, 'oracle', np.array(ids, np.uint32),
            np.stack([bodies[i][0] for i in ids]).astype(np.float32),
            np.stack([bodies[i][1] for i in ids]))).labels
    return labels


def cloud_xyz(msg):
    """(B, 25, 3) x, y, z and (B, 25) imputed of an ``~/imputed_skeletons`` cloud."""
    points = np.frombuffer(bytes(msg.data), np.dtype({
        'names': ['x', 'y', 'z', 'body_id', 'imputed'],
        'formats': ['<f4', '<f4', '<f4', '<u4', 'u1'],
        'offsets': [0, 4, 8, 12, 18], 'itemsize': msg.point_step})).reshape(msg.height, 25)
    return np.stack([points['x'], points['y'], points['z']], -1), points['imputed'].astype(bool)


def header(stamp_ns, frame_id='kinect'):
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return h


def cloud(stamp_ns, bodies, frame_id='kinect'):
    """Build a skeletons message from {body_id: (xyz (25, 3), occluded (25,))}."""
    ids = sorted(bodies)
    xyz = np.stack([bodies[i][0] for i in ids]) if ids else np.zeros((0, 25, 3))
    occluded = np.stack([bodies[i][1] for i in ids]) if ids else np.zeros((0, 25), bool)
    return skeleton_cloud(header(stamp_ns, frame_id), ids, xyz, occluded)


class Harness:
    """The node under test plus a tester node on one executor."""

    def __init__(self, context, model, input_reliability='best_effort', **params):
        values = {**FAST, 'model_dir': model, 'input_reliability': input_reliability, **params}
        self.node = ActionNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()])
        self.tester = Node('iospstl_tester', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.tester)
        self.labels, self.health, self.markers, self.imputed = [], [], [], []
        self.tester.create_subscription(DiagnosticArray, 'action_labels', self.labels.append,
                                        RELIABLE)
        self.tester.create_subscription(DiagnosticArray, '/diagnostics', self._on_health,
                                        RELIABLE)
        self.tester.create_subscription(MarkerArray, '/iospstl_node/action_markers',
                                        self.markers.append, RELIABLE)
        self.tester.create_subscription(PointCloud2, '/iospstl_node/imputed_skeletons',
                                        self.imputed.append, RELIABLE)
        self.publisher = self.tester.create_publisher(PointCloud2, 'skeletons', RELIABLE)

    def _on_health(self, msg):
        for status in msg.status:
            if status.name.endswith(': health'):
                self.health.append(status_values(status))

    def start(self):
        assert self.node.start(), self.node.lifecycle_state
        assert wait_for_match(self.executor, self.publisher)
        spin_for(self.executor, 0.2)

    def send(self, msg, timeout=10.0):
        """Publish and spin until the node has taken the message."""
        before = self.node._received
        self.publisher.publish(msg)
        assert spin_until(self.executor, lambda: self.node._received > before, timeout), \
            'the node did not take the message'

    def statuses(self):
        """(stamp_ns, frame_id, status) of every received label status."""
        return [(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec,
                 msg.header.frame_id, status) for msg in self.labels for status in msg.status]

    def wait_health(self, condition, timeout=10.0):
        def ok():
            return any(condition(values) for values in self.health)
        return spin_until(self.executor, ok, timeout)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.tester.destroy_node()


@pytest.fixture
def harness_factory(ros_context, tiny_model):
    made = []

    def make(**params):
        harness = Harness(ros_context, tiny_model, **params)
        made.append(harness)
        return harness
    yield make
    for harness in made:
        harness.close()


@pytest.mark.ros
@pytest.mark.slow
def test_labels_arrive_for_every_body_with_the_input_stamp_and_frame(harness_factory):
    h = harness_factory(pair_bodies=False)
    h.start()
    (xyz1, occ1), (xyz2, occ2) = body_frames(0), body_frames(1)
    for t in range(15):
        bodies = {11: (xyz1[t], occ1[t])}
        if t >= 4:  # body 22 appears 4 frames later, 2 m to the side
            bodies[22] = (xyz2[t] + (2.0, 0.0, 0.0), occ2[t])
        h.send(cloud(1_000_000_000 + t * FRAME_NS, bodies, frame_id='camera_link'))
    # body 11: 6th, 9th, 12th, 15th frame (t = 5, 8, 11, 14); body 22: t = 9, 12
    expected = sorted([(5, 11), (8, 11), (11, 11), (14, 11), (9, 22), (12, 22)])
    assert spin_until(h.executor, lambda: len(h.statuses()) >= len(expected), 10.0)
    got = sorted(((stamp - 1_000_000_000) // FRAME_NS, int(status.hardware_id))
                 for stamp, _, status in h.statuses())
    assert got == expected
    for stamp, frame_id, status in h.statuses():
        values = status_values(status)
        assert frame_id == 'camera_link' and (stamp - 1_000_000_000) % FRAME_NS == 0
        assert list(values) == list(LABEL_KEYS)
        assert status.name == f'body/{values["body_id"]}' and status.message == values['label']
        assert values['label'] in CLASS_NAMES
        assert CLASS_NAMES[int(values['class_index'])] == values['label']
        assert 0.0 < float(values['confidence']) <= 1.0 and len(json.loads(values['topk'])) == 5
        assert float(values['inference_ms']) > 0 and values['partner_id'] == ''
        frames = int(values['frames_in_window'])
        assert status.level == (DiagnosticStatus.WARN if frames < 12 or
                                float(values['confidence']) < 0.3 or
                                float(values['occluded_ratio']) > 0.5 else DiagnosticStatus.OK)
    first = [s for stamp, _, s in h.statuses() if s.hardware_id == '11'][0]
    assert status_values(first)['frames_in_window'] == '6' and first.level == DiagnosticStatus.WARN
    assert h.wait_health(lambda v: v.get('labels_published') == '6')
    values = h.health[-1]
    assert values['state'] == 'active' and values['provider/classifier'] == 'CPUExecutionProvider'
    assert values['messages_received'] == '15' and values['tracker/windows'] == '6'
    assert any(float(v.get('latency_ms/pipeline_total/mean', 0)) > 0 for v in h.health)
    assert any(float(v.get('latency_ms/decode/max', 0)) > 0 for v in h.health)


@pytest.mark.ros
@pytest.mark.slow
def test_a_body_that_leaves_is_stale_once_and_silence_evicts_the_rest(harness_factory):
    h = harness_factory(timeout_s=0.2, pair_bodies=True, publish_markers=True)
    h.start()
    (xyz1, occ1), (xyz2, occ2) = body_frames(0), body_frames(1)
    for t in range(20):
        bodies = {1: (xyz1[t], occ1[t])}
        if t < 8:
            bodies[2] = (xyz2[t] + (0.8, 0.0, 0.0), occ2[t])
        h.send(cloud(t * FRAME_NS, bodies))
    spin_for(h.executor, 0.1)
    stale = [(stamp // FRAME_NS, s.hardware_id) for stamp, _, s in h.statuses()
             if s.level == DiagnosticStatus.STALE]
    # body 2 last seen at t = 7; 0.2 s later is t = 13; t = 14 is more than 0.2 s
    assert stale == [(14, '2')]
    paired = {status_values(s)['partner_id'] for _, _, s in h.statuses()
              if s.hardware_id == '1' and s.level != DiagnosticStatus.STALE}
    assert '2' in paired  # while both were there, body 2 filled the second slot
    # messages stop: after timeout_s of node-clock time the remaining body goes STALE
    assert spin_until(h.executor, lambda: any(
        s.level == DiagnosticStatus.STALE and s.hardware_id == '1'
        for _, _, s in h.statuses()), 5.0)
    spin_for(h.executor, 0.3)
    stale_ids = [s.hardware_id for _, _, s in h.statuses() if s.level == DiagnosticStatus.STALE]
    assert stale_ids == ['2', '1']
    texts = [m for array in h.markers for m in array.markers if m.action == Marker.ADD]
    assert texts and all(m.type == Marker.TEXT_VIEW_FACING for m in texts)
    marker = texts[0]
    t = marker.header.stamp.sec * 1_000_000_000 + marker.header.stamp.nanosec
    head = xyz1[t // FRAME_NS, 3] if marker.id == 1 else xyz2[t // FRAME_NS, 3] + (0.8, 0, 0)
    # REP-103 input: the text sits 0.25 m above the head along +z
    assert (marker.pose.position.x, marker.pose.position.y) == pytest.approx(
        (head[0], head[1]), abs=1e-5)
    assert marker.pose.position.z == pytest.approx(head[2] + 0.25, abs=1e-5)
    deleted = [m.id for array in h.markers for m in array.markers if m.action == Marker.DELETE]
    assert deleted == [2, 1]


def bad_messages():
    """(name, message, counter) for every kind of bad input."""
    xyz, occ = body_frames(0)
    good = cloud(0, {5: (xyz[0], occ[0])})
    cases = []

    def variant(**changes):
        msg = cloud(0, {5: (xyz[0], occ[0])})
        for key, value in changes.items():
            setattr(msg, key, value)
        return msg

    fields = list(good.fields)
    cases.append(('missing field', variant(fields=[f for f in fields if f.name != 'y']),
                  'rejected/missing_field'))
    retyped = [PointField(name=f.name, offset=f.offset, count=1,
                          datatype=UINT8 if f.name == 'x' else f.datatype) for f in fields]
    cases.append(('mistyped field', variant(fields=retyped), 'rejected/bad_field_type'))
    narrow = cloud(0, {})
    narrow.height, narrow.width, narrow.fields = 1, 24, fields
    narrow.point_step, narrow.row_step = 18, 18 * 24
    narrow.data = bytes(18 * 24)
    cases.append(('width 24', narrow, 'rejected/bad_width'))
    cases.append(('truncated data', variant(data=bytes(good.data)[:-7]), 'rejected/truncated'))
    nan_xyz = xyz[0].copy()
    nan_xyz[~occ[0]] = np.nan
    cases.append(('NaN in visible joints', cloud(0, {5: (nan_xyz, occ[0])}),
                  'handled/nonfinite_joint'))
    inf_xyz = xyz[0].copy()
    inf_xyz[3] = np.inf
    cases.append(('inf', cloud(0, {6: (inf_xyz, np.zeros(25, bool))}),
                  'handled/nonfinite_joint'))
    cases.append(('zero bodies', cloud(0, {}), 'frames_without_bodies'))
    many = {i: (xyz[0], occ[0]) for i in range(300)}
    cases.append(('hundreds of bodies', cloud(0, many), 'rejected/too_many_bodies'))
    duplicate = variant()
    raw = bytearray(encode_skeletons([5, 5], np.stack([xyz[0], xyz[0]]),
                                     np.stack([occ[0], occ[0]]))['data'])
    duplicate.height, duplicate.data = 2, bytes(raw)
    cases.append(('duplicate body ids', duplicate, 'handled/duplicate_body_id'))
    cases.append(('huge message', variant(data=bytes(2_000_000)), 'rejected/oversized'))
    cases.append(('empty fields', variant(fields=[]), 'rejected/missing_field'))
    float_ids = [PointField(name=f.name, offset=f.offset, count=1,
                            datatype=FLOAT32 if f.name == 'body_id' else f.datatype)
                 for f in fields]
    cases.append(('float body id', variant(fields=float_ids), 'rejected/bad_field_type'))
    return cases


@pytest.mark.ros
@pytest.mark.slow
def test_every_bad_input_is_counted_and_the_node_keeps_answering(harness_factory):
    h = harness_factory(max_bodies=3, pair_bodies=False)
    h.start()
    xyz, occ = body_frames(0)
    stamp = 10 * 1_000_000_000
    expected = {}
    t = 0
    for name, msg, counter in bad_messages():
        # a valid frame of body 1, then the bad message with a later stamp
        h.send(cloud(stamp + t * FRAME_NS, {1: (xyz[t], occ[t])}))
        t += 1
        msg.header = header(stamp + t * FRAME_NS)
        h.send(msg)
        t += 1
        expected[counter] = expected.get(counter, 0) + 1
    # stamps going backwards (by less than timeout_s)
    h.send(cloud(stamp + (t - 3) * FRAME_NS, {1: (xyz[t], occ[t])}))
    expected['rejected/stamp_backwards'] = 1
    # more new bodies than max_bodies (3): tracked 1, 5, 6 already
    h.send(cloud(stamp + t * FRAME_NS, {1: (xyz[t], occ[t]), 8: (xyz[t], occ[t])}))
    expected['handled/body_limit'] = 1
    # the node keeps answering: body 1 still gets labels
    before = len(h.statuses())
    for k in range(t + 1, t + 8):
        h.send(cloud(stamp + k * FRAME_NS, {1: (xyz[k], occ[k])}))
    assert spin_until(h.executor, lambda: any(
        int(s.hardware_id) == 1 and s.level != DiagnosticStatus.STALE
        for _, _, s in h.statuses()[before:]), 10.0)

    def counted(values):
        return all(int(values.get(key, 0)) >= n for key, n in expected.items())
    assert h.wait_health(counted), (expected, h.health[-1] if h.health else None)
    values = [v for v in h.health if counted(v)][0]
    for key, n in expected.items():
        if key in ('handled/nonfinite_joint',):
            assert int(values[key]) == 25 - int(occ[0].sum()) + 1  # every visible joint + inf
        else:
            assert int(values[key]) == n, key
    assert any(v['messages_rejected'] != '0' for v in h.health)
    assert h.node.lifecycle_state == 'active'


def random_message(rng, valid_ids, stamp_ns):
    """Build a skeletons message and mutate it at random (fields, lengths, values, layout)."""
    count = int(rng.integers(0, 4))
    xyz = rng.normal(0.0, 1.0, (count, 25, 3)) + (0.0, 1.0, 3.0)
    occluded = rng.random((count, 25)) < 0.3
    ids = rng.choice(valid_ids, size=count, replace=True) if count else []
    msg = cloud(stamp_ns, {int(i): (x, o) for i, x, o in zip(ids, xyz, occluded)})
    if rng.random() < 0.3:
        return msg  # left valid, so that windows become due and the pipeline runs
    data = bytearray(msg.data)
    fields = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 12))
        if kind == 0 and fields:
            fields.pop(int(rng.integers(len(fields))))
        elif kind == 1 and fields:
            i = int(rng.integers(len(fields)))
            fields[i] = (fields[i][0], fields[i][1], int(rng.integers(0, 10)), fields[i][3])
        elif kind == 2 and fields:
            i = int(rng.integers(len(fields)))
            fields[i] = (fields[i][0], int(rng.integers(0, 40)), fields[i][2],
                         int(rng.integers(0, 3)))
        elif kind == 3:
            fields.append((str(rng.choice(['x', 'confidence', 'joint_id', '', 'zz'])),
                           int(rng.integers(0, 30)), int(rng.integers(1, 9)), 1))
        elif kind == 4 and data:
            del data[int(rng.integers(len(data))):]
        elif kind == 5:
            data += bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        elif kind == 6 and data:
            at = rng.integers(0, len(data), int(rng.integers(1, 50)))
            for i in at:
                data[int(i)] = int(rng.integers(0, 256))
        elif kind == 7:
            msg.height = int(rng.choice([0, 1, 2, 5, 64, 65, 1000, 2 ** 32 - 1]))
        elif kind == 8:
            msg.width = int(rng.choice([0, 1, 24, 25, 26, 2 ** 31]))
        elif kind == 9:
            msg.point_step = int(rng.choice([0, 1, 17, 18, 19, 2 ** 32 - 1]))
        elif kind == 10:
            msg.row_step = int(rng.choice([0, 450, 449, 10 ** 6, 2 ** 32 - 1]))
        else:
            msg.is_bigendian = not msg.is_bigendian
    msg.fields = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields]
    msg.data = bytes(data)
    return msg


@pytest.mark.ros
@pytest.mark.slow
def test_a_seeded_fuzz_run_leaves_the_node_alive_and_answering(harness_factory):
    h = harness_factory(pair_bodies=True, timeout_s=0.5)
    h.start()
    rng = np.random.default_rng(20240607)
    started = time.monotonic()
    stamp = 5 * 1_000_000_000
    sent = 0
    while sent < 3000 and time.monotonic() - started < 15.0:
        step = int(rng.choice([1, 1, 1, 1, 0, -1, -40]))  # some repeated / backwards stamps
        stamp = max(0, stamp + step * FRAME_NS)
        h.send(random_message(rng, [1, 2, 3, 4], stamp))
        sent += 1
    assert sent >= 1000, f'only {sent} messages in 15 s'
    xyz, occ = body_frames(2)
    stamp += 10 * 1_000_000_000  # far ahead: every old track times out
    before = len(h.statuses())
    for t in range(12):
        h.send(cloud(stamp + t * FRAME_NS, {77: (xyz[t], occ[t])}))
    assert spin_until(h.executor, lambda: any(s.hardware_id == '77'
                                              for _, _, s in h.statuses()[before:]), 10.0)
    total = sent + 12
    assert h.wait_health(lambda v: v.get('messages_received') == str(total))
    values = [v for v in h.health if v.get('messages_received') == str(total)][-1]
    assert int(values['messages_rejected']) > sent // 3
    assert int(values.get('tracker/windows', 0)) > 0
    assert h.node.lifecycle_state == 'active'


@pytest.mark.ros
@pytest.mark.slow
def test_imputed_skeletons_fill_occluded_joints_in_the_sensor_frame(harness_factory):
    h = harness_factory(publish_imputed=True, window=8, min_frames=8, stride=8)
    h.start()
    assert h.node.recognizer.config.input_axes == 'rep103'  # the default
    xyz, occ = body_frames(0)
    assert occ[:8].any()
    for t in range(8):
        h.send(cloud(t * FRAME_NS, {4: (xyz[t], occ[t])}, frame_id='camera_link'))
    assert spin_until(h.executor, lambda: h.imputed, 10.0)
    msg = h.imputed[0]
    names = [f.name for f in msg.fields]
    assert names[-1] == 'imputed' and msg.height == 1 and msg.width == 25
    assert msg.header.frame_id == 'camera_link' and msg.header.stamp.nanosec == 7 * FRAME_NS
    body = np.frombuffer(bytes(msg.data), np.dtype({
        'names': ['body_id'], 'formats': ['<u4'], 'offsets': [12],
        'itemsize': msg.point_step}))['body_id']
    assert body.tolist() == [4] * 25
    (got,), (imputed,) = cloud_xyz(msg)
    assert imputed.tolist() == occ[7].tolist()
    np.testing.assert_array_equal(got[~occ[7]], xyz[7][~occ[7]].astype(np.float32))
    assert np.isfinite(got).all()
    # filled joints land near the body (within 1.5 m of its visible joints' centre)
    centre = xyz[7][~occ[7]].mean(axis=0)
    assert (np.linalg.norm(got[occ[7]] - centre, axis=-1) < 1.5).all()
    # and are the core's completion of the same motion in NTU axes, rotated back to REP-103
    ntu, _ = body_frames(0, axes='ntu')
    (oracle,) = core_labels(h.node, [(t * FRAME_NS, {4: (ntu[t], occ[t])}) for t in range(8)])
    np.testing.assert_array_equal(got, from_ntu(oracle.completed_xyz, 'rep103'))


@pytest.mark.ros
@pytest.mark.slow
def test_optical_input_gives_the_ntu_labels_and_outputs_stay_in_optical_axes(harness_factory):
    h = harness_factory(input_axes='optical', publish_imputed=True, publish_markers=True,
                        window=8, min_frames=8, stride=4)
    h.start()
    assert h.node.recognizer.config.input_axes == 'optical'
    xyz, occ = body_frames(1, axes='optical')
    ntu, _ = body_frames(1, axes='ntu')
    for t in range(12):
        h.send(cloud(t * FRAME_NS, {4: (xyz[t], occ[t])}, frame_id='camera_optical_frame'))
    assert spin_until(h.executor, lambda: len(h.statuses()) >= 2 and len(h.imputed) >= 2
                      and len(h.markers) >= 2, 10.0)
    oracle = core_labels(h.node, [(t * FRAME_NS, {4: (ntu[t], occ[t])}) for t in range(12)])
    assert [(stamp, frame_id, s.message, status_values(s)['confidence'])
            for stamp, frame_id, s in h.statuses() if s.level != DiagnosticStatus.STALE] == \
        [(x.stamp_ns, 'camera_optical_frame', x.label, f'{x.confidence:.6f}') for x in oracle]
    assert [x.stamp_ns // FRAME_NS for x in oracle] == [7, 11]
    for msg, label in zip(h.imputed, oracle):
        assert msg.header.frame_id == 'camera_optical_frame'
        (got,), (imputed,) = cloud_xyz(msg)
        t = label.stamp_ns // FRAME_NS
        np.testing.assert_array_equal(got, from_ntu(label.completed_xyz, 'optical'))
        np.testing.assert_array_equal(got[~occ[t]], xyz[t][~occ[t]].astype(np.float32))
        assert imputed.tolist() == occ[t].tolist()
    for array, label in zip(h.markers, oracle):
        (marker,) = array.markers
        assert marker.header.frame_id == 'camera_optical_frame' and marker.action == Marker.ADD
        t = label.stamp_ns // FRAME_NS
        anchor = xyz[t, 3] if not occ[t, 3] else xyz[t, 20]
        assert not (occ[t, 3] and occ[t, 20])
        # optical input: up is -y, so the text sits 0.25 m above the head at y - 0.25
        assert (marker.pose.position.x, marker.pose.position.y, marker.pose.position.z) == \
            pytest.approx((anchor[0], anchor[1] - 0.25, anchor[2]), abs=1e-5)


@pytest.mark.ros
def test_parameters_are_described_mirrored_in_the_yaml_and_validated(ros_context, tiny_model):
    yaml = pytest.importorskip('yaml')
    with open(os.path.join(REPO, 'config', 'iospstl.yaml')) as f:
        config = yaml.safe_load(f)
    file_values = config['/**']['ros__parameters']
    node = ActionNode(context=ros_context, parameter_overrides=[
        Parameter('model_dir', value=tiny_model), Parameter('backend', value='cpu'),
        Parameter('cached_clusters', value=7)])
    try:
        declared = {p.name: p.default for p in PARAMETERS}
        assert file_values == declared
        names = set(node._parameters) - {'use_sim_time', 'start_type_description_service'}
        assert names == set(declared)
        for param in PARAMETERS:
            descriptor = node.describe_parameter(param.name)
            assert descriptor.description
            assert descriptor.read_only == param.read_only
        for name in ('model_dir', 'window', 'backend', 'threads', 'min_frames', 'smoothing'):
            assert node.describe_parameter(name).read_only
        axes = node.describe_parameter('input_axes')
        assert axes.read_only and axes.additional_constraints == 'one of: rep103, optical, ntu'
        for text in ('rep103 = x forward, y left, z up', 'optical = x right, y down, z forward',
                     'ntu = x left, y up, z forward'):
            assert text in axes.description
        assert file_values['input_axes'] == 'rep103'
        stride = node.describe_parameter('stride').integer_range[0]
        assert (stride.from_value, stride.to_value) == (1, 300)
        confidence = node.describe_parameter('min_confidence').floating_point_range[0]
        assert (confidence.from_value, confidence.to_value) == (0.0, 1.0)
        assert node.start()
        assert node.pipeline.model.bank.max_cached_clusters == 7
        results = node.set_parameters([Parameter('stride', value=4)])
        assert results[0].successful and node.recognizer.config.stride == 4
        assert not node.set_parameters([Parameter('stride', value=0)])[0].successful
        assert not node.set_parameters([Parameter('window', value=20)])[0].successful
        assert not node.set_parameters([Parameter('min_confidence', value=1.5)])[0].successful
        assert not node.set_parameters([Parameter('input_axes', value='ntu')])[0].successful
        assert node.recognizer.config.stride == 4 and node.recognizer.config.window == 90
        assert node.recognizer.config.input_axes == 'rep103'
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_an_unknown_input_axes_fails_configure_with_one_clear_error(
        ros_context, tiny_model, capfd):
    node = ActionNode(context=ros_context, parameter_overrides=[
        Parameter('model_dir', value=tiny_model), Parameter('backend', value='cpu'),
        Parameter('input_axes', value='enu')])
    try:
        assert not node.start()
        assert node.lifecycle_state == 'unconfigured' and node.pipeline is None
        errors = [line for line in capfd.readouterr().err.splitlines() if '[ERROR]' in line]
        assert len(errors) == 1, errors
        assert 'configure failed: parameter input_axes: expected one of rep103, optical, ntu, ' \
            "got 'enu'" in errors[0]
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_a_missing_model_fails_configure_with_one_clear_error(ros_context, tmp_path):
    node = ActionNode(context=ros_context, parameter_overrides=[
        Parameter('model_dir', value=str(tmp_path / 'nowhere'))])
    try:
        assert not node.start()
        assert node.lifecycle_state == 'unconfigured' and node.pipeline is None
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_a_corrupt_network_without_checksums_fails_configure_with_one_clear_error(
        ros_context, tiny_model, tmp_path, capfd):
    corrupt = tmp_path / 'corrupt'
    shutil.copytree(tiny_model, corrupt)
    onnx = corrupt / 'classifier.onnx'
    data = bytearray(onnx.read_bytes())
    data[:256] = b'\xff' * 256                  # same size, so only ONNX Runtime can tell
    onnx.write_bytes(bytes(data))
    node = ActionNode(context=ros_context, parameter_overrides=[
        Parameter('model_dir', value=str(corrupt)), Parameter('backend', value='cpu'),
        Parameter('verify_checksums', value=False)])
    try:
        assert not node.start()
        assert node.lifecycle_state == 'unconfigured' and node.pipeline is None
        errors = [line for line in capfd.readouterr().err.splitlines() if '[ERROR]' in line]
        assert len(errors) == 1, errors
        assert f'configure failed: {onnx}: ONNX Runtime cannot load it (InvalidProtobuf' \
            in errors[0]
    finally:
        node.destroy_node()


def test_the_default_model_dir_comes_from_ament_or_the_source_tree(tmp_path, monkeypatch):
    monkeypatch.delenv('AMENT_PREFIX_PATH', raising=False)
    assert default_model_dir() == os.path.join(REPO, 'models', 'default')
    prefix = tmp_path / 'install'
    (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages').mkdir(parents=True)
    (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'iospstl_ros').touch()
    (prefix / 'share' / 'iospstl_ros').mkdir()
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    assert default_model_dir() == str(prefix / 'share' / 'iospstl_ros' / 'models' / 'default')
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path / 'elsewhere'))
    assert default_model_dir() == os.path.join(REPO, 'models', 'default')


def run_node_process(args, env, timeout=60):
    return subprocess.run([NODE_SCRIPT, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.mark.ros
def test_the_console_script_exits_non_zero_with_one_error_line_on_a_missing_model(tmp_path):
    params = tmp_path / 'params.yaml'
    params.write_text(f"/**:\n  ros__parameters:\n    model_dir: '{tmp_path / 'missing'}'\n")
    result = run_node_process(['--ros-args', '--params-file', str(params)],
                              fast_discovery_env())
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    errors = [line for line in output.splitlines() if '[ERROR]' in line]
    assert len(errors) == 1, output
    assert f'configure failed: {tmp_path / "missing"}: not a directory' in errors[0]
    assert 'Traceback' not in output
    bad = run_node_process(['--ros-args', '-p', 'stride:=0'], fast_discovery_env())
    assert bad.returncode == 1 and 'Traceback' not in bad.stderr
    assert 'bad parameter' in bad.stderr and 'stride out of range' in bad.stderr


@pytest.mark.ros
@pytest.mark.slow
def test_the_installed_console_script_serves_labels_over_dds(ros_context, tiny_model,
                                                             tmp_path):
    assert os.path.exists(NODE_SCRIPT), NODE_SCRIPT
    params = tmp_path / 'params.yaml'
    params.write_text(
        '/**:\n  ros__parameters:\n'
        f"    model_dir: '{tiny_model}'\n    backend: 'cpu'\n    threads: 1\n"
        '    window: 12\n    min_frames: 6\n    stride: 3\n'
        "    input_reliability: 'reliable'\n    diagnostics_period_s: 0.2\n")
    process = subprocess.Popen([NODE_SCRIPT, '--ros-args', '--params-file', str(params),
                                '-r', '__ns:=/proc_test'],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=fast_discovery_env())
    tester = Node('iospstl_process_tester', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(tester)
    labels, health = [], []
    tester.create_subscription(DiagnosticArray, '/proc_test/action_labels', labels.append,
                               RELIABLE)
    tester.create_subscription(DiagnosticArray, '/diagnostics', health.append, RELIABLE)
    publisher = tester.create_publisher(PointCloud2, '/proc_test/skeletons', RELIABLE)
    try:
        assert wait_for_match(executor, publisher, timeout=60.0), 'the node did not subscribe'

        def taken():
            return any(kv.key == 'messages_received' and int(kv.value) > 0
                       for m in health for s in m.status
                       if s.hardware_id == '/proc_test/iospstl_node' for kv in s.values)

        # the publisher can see the match before the node's reader knows the writer (a sample
        # sent then is lost): send empty frames (no bodies, stamp 0) until the node took one
        assert spin_until(executor, lambda: taken() or publisher.publish(
            cloud(0, {}, frame_id='cam_proc')), 20.0), 'the node took no message'
        (xyz1, occ1), (xyz2, occ2) = body_frames(0), body_frames(1)
        for t in range(9):
            publisher.publish(cloud(t * FRAME_NS, {3: (xyz1[t], occ1[t]),
                                                   9: (xyz2[t] + (2.5, 0, 0), occ2[t])},
                                    frame_id='cam_proc'))
            spin_for(executor, 0.01)
        statuses = lambda: [(m.header.stamp.nanosec, m.header.frame_id, s.hardware_id)  # noqa
                            for m in labels for s in m.status]
        assert spin_until(executor, lambda: len(statuses()) >= 4, 20.0), statuses()
        assert sorted(statuses()) == sorted([(5 * FRAME_NS, 'cam_proc', '3'),
                                             (5 * FRAME_NS, 'cam_proc', '9'),
                                             (8 * FRAME_NS, 'cam_proc', '3'),
                                             (8 * FRAME_NS, 'cam_proc', '9')])
        assert spin_until(executor, lambda: any(
            s.hardware_id == '/proc_test/iospstl_node' for m in health for s in m.status), 10.0)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        assert process.returncode == 0, process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        executor.shutdown()
        tester.destroy_node()


@pytest.mark.ros
@pytest.mark.slow
def test_lifecycle_services_drive_the_node_when_autostart_is_off(
        ros_context, tiny_model, tmp_path, capfd):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    import shutil as sh

    corrupt = tmp_path / 'corrupt'
    sh.copytree(tiny_model, corrupt)
    with open(corrupt / 'centroids.npy', 'r+b') as f:
        f.seek(-4, os.SEEK_END)
        f.write(b'\x00\x01\x02\x03')
    node = ActionNode(context=ros_context, parameter_overrides=[
        Parameter('autostart', value=False), Parameter('model_dir', value=str(corrupt)),
        Parameter('backend', value='cpu')])
    tester = Node('iospstl_lifecycle_tester', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(tester)
    change = tester.create_client(ChangeState, '/iospstl_node/change_state')
    get = tester.create_client(GetState, '/iospstl_node/get_state')

    def call(client, request):
        future = client.call_async(request)
        assert spin_until(executor, future.done, 30.0)
        return future.result()

    def transition(transition_id):
        return call(change, ChangeState.Request(
            transition=Transition(id=transition_id))).success

    try:
        assert spin_until(executor, lambda: change.service_is_ready() and get.service_is_ready())
        assert call(get, GetState.Request()).current_state.label == 'unconfigured'
        assert not transition(Transition.TRANSITION_CONFIGURE)
        assert node.lifecycle_state == 'unconfigured' and node.pipeline is None
        errors = [line for line in capfd.readouterr().err.splitlines() if '[ERROR]' in line]
        assert len(errors) == 1 and 'configure failed: ' in errors[0]
        assert 'centroids.npy: sha256 mismatch' in errors[0]
        sh.copy(os.path.join(tiny_model, 'centroids.npy'), corrupt / 'centroids.npy')
        assert transition(Transition.TRANSITION_CONFIGURE)  # retried once the file is fixed
        assert call(get, GetState.Request()).current_state.label == 'inactive'
        assert node._subscription is None and node.pipeline is not None
        assert transition(Transition.TRANSITION_ACTIVATE)
        assert node._subscription is not None and node.lifecycle_state == 'active'
        assert transition(Transition.TRANSITION_DEACTIVATE) and node._subscription is None
        assert transition(Transition.TRANSITION_CLEANUP)
        assert node.lifecycle_state == 'unconfigured' and node.pipeline is None
    finally:
        executor.shutdown()
        node.destroy_node()
        tester.destroy_node()
