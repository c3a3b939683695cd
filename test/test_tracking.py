"""Online recognition over frame streams (iospstl_ros.tracking), on hand-made frames.

Most tests use a recording pipeline that returns scripted results, so the windows the
recognizer builds (ring buffers, stride, pairing) can be checked value by value; the last ones
run the real exported tiny model through ONNX Runtime.

Poses are written in NTU camera axes (x left, y up, z forward) and, unless a test says
otherwise, handed to the recognizer in its default input axes, REP-103 (x forward, y left,
z up): the windows that reach the pipeline must hold the NTU poses again.
"""

import math

from iospstl_ros.axes import from_ntu, to_ntu
from iospstl_ros.cloud import CloudError, SkeletonFrame
from iospstl_ros.datasets.synthetic import generate_sequence
from iospstl_ros.layout import STANDING_POSE
from iospstl_ros.pipeline import ActionResult, Pipeline
from iospstl_ros.tracking import (
    complete_in_sensor_frame, OnlineRecognizer, reference_points, StampError, TrackerConfig)
import numpy as np
import pytest

CLASSES = ('wave', 'clap', 'hug')
FRAME_NS = 33_333_333


class RecordingPipeline:
    """Records every call; returns ``probabilities`` (cycled) for each window."""

    classes = CLASSES

    def __init__(self, probabilities=((0.6, 0.3, 0.1),), fail_when=None):
        self.calls = []
        self.probabilities = [np.asarray(p) for p in probabilities]
        self.fail_when = fail_when
        self.served = 0

    def run(self, windows):
        windows = list(windows)
        self.calls.append(windows)
        if self.fail_when is not None and any(self.fail_when(w) for w in windows):
            raise ValueError('window 0: expected finite coordinates')
        results = []
        for xyz, occluded, present in windows:
            p = self.probabilities[self.served % len(self.probabilities)]
            self.served += 1
            order = np.argsort(-p, kind='stable')
            results.append(ActionResult(
                label=CLASSES[order[0]], class_index=int(order[0]),
                confidence=float(p[order[0]]),
                top_k=tuple((CLASSES[i], float(p[i])) for i in order),
                imputed=np.zeros((3, 50, 25, xyz.shape[-1]), np.float32),
                num_imputed_joints=int(occluded.sum()), cluster=0,
                timings_ms={'total': 2.5}, batch_size=len(windows)))
        return results


def body_pose(offset=(0.0, 0.0, 3.0), marker=0.0):
    """STANDING_POSE moved by ``offset``; joint 0's x also holds ``marker`` (a frame tag)."""
    pose = STANDING_POSE + np.asarray(offset)
    pose[0, 0] = marker
    return pose


def frame(t, bodies, occluded=None, frame_id='cam', axes='rep103'):
    """Frame number t (stamp t * 33.3 ms) with {body_id: (25, 3) NTU-axes pose}, in ``axes``."""
    ids = np.array(sorted(bodies), np.uint32)
    xyz = np.stack([bodies[i] for i in ids]).astype(np.float32) if len(ids) \
        else np.zeros((0, 25, 3), np.float32)
    xyz = from_ntu(xyz, axes)
    hidden = np.zeros((len(ids), 25), bool) if occluded is None else occluded
    return SkeletonFrame(t * FRAME_NS, frame_id, ids, xyz, hidden)


def run(recognizer, frames):
    """{frame number: labels} of the frames that produced labels."""
    out = {}
    for t, f in frames:
        labels = recognizer.process(f).labels
        if labels:
            out[t] = labels
    return out


def test_config_validation_names_the_setting():
    for kwargs, text in [({'window': 0}, 'window: expected an int >= 1, got 0'),
                         ({'window': 10, 'min_frames': 11},
                          'min_frames: expected at most window \\(10\\), got 11'),
                         ({'stride': 1.5}, 'stride: expected an int'),
                         ({'timeout_s': 0.0}, 'timeout_s: expected a finite number > 0.0'),
                         ({'timeout_s': math.inf}, 'timeout_s'),
                         ({'min_confidence': 1.5}, 'min_confidence: .*<= 1.0'),
                         ({'pair_bodies': 1}, 'pair_bodies: expected a bool'),
                         ({'smoothing': True}, 'smoothing: expected an int'),
                         ({'input_axes': 'enu'}, 'input_axes: expected one of rep103, optical, '
                                                 "ntu, got 'enu'")]:
        with pytest.raises(ValueError, match=text):
            TrackerConfig(**kwargs)
    with pytest.raises(ValueError, match='config: expected a TrackerConfig'):
        OnlineRecognizer(RecordingPipeline(), {'window': 3})


def test_ring_buffer_and_stride():
    pipeline = RecordingPipeline()
    recognizer = OnlineRecognizer(pipeline, TrackerConfig(window=5, min_frames=3, stride=2))
    labelled = run(recognizer, [(t, frame(t, {7: body_pose(marker=t)})) for t in range(10)])
    # due at the body's 3rd, 5th, 7th and 9th frame
    assert sorted(labelled) == [2, 4, 6, 8]
    assert [len(call) for call in pipeline.calls] == [1, 1, 1, 1]
    lengths = [call[0][0].shape[1] for call in pipeline.calls]
    assert lengths == [3, 5, 5, 5]
    xyz, occluded, present = pipeline.calls[-1][0]
    assert xyz.shape == (3, 5, 25, 1) and present.shape == (5, 1) and present.all()
    assert xyz[0, :, 0, 0].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0]  # the last 5 frames, in order
    first, last = labelled[2][0], labelled[8][0]
    assert first.level == 'WARN' and first.frames_in_window == 3  # window not full yet
    assert last.level == 'OK' and last.frames_in_window == 5
    assert last.body_id == 7 and last.stamp_ns == 8 * FRAME_NS and last.frame_id == 'cam'
    assert last.label == 'wave' and last.class_index == 0 and last.confidence == 0.6
    assert last.topk == (('wave', 0.6), ('clap', 0.3), ('hug', 0.1))
    assert last.partner_id is None and last.inference_ms == 2.5 and last.imputed is None
    assert recognizer.counts == {'frames': 10, 'pipeline_calls': 4, 'windows': 4}


def test_occluded_joints_reach_the_window_masked_and_zeroed():
    pipeline = RecordingPipeline()
    recognizer = OnlineRecognizer(pipeline, TrackerConfig(window=2, min_frames=2, stride=1))
    hidden = np.zeros((1, 25), bool)
    hidden[0, 13:16] = True
    pose = body_pose()
    pose[13:16] = np.nan
    (label,) = run(recognizer, [(t, frame(t, {1: pose}, hidden)) for t in range(2)])[1]
    xyz, occluded, _ = pipeline.calls[0][0]
    assert occluded[:, 13:16, 0].all() and occluded.sum() == 6
    assert (xyz[:, :, 13:16] == 0).all() and np.isfinite(xyz).all()
    assert label.occluded_ratio == pytest.approx(3 / 25) and label.imputed_joints == 6


def test_input_axes_are_rotated_into_ntu_axes_before_the_window():
    assert TrackerConfig().input_axes == 'rep103'  # the topic contract's convention
    # one visible joint 2 m ahead of the sensor, 0.5 m to its left, 1.6 m up, in each convention
    given = {'rep103': (2.0, 0.5, 1.6), 'optical': (-0.5, -1.6, 2.0), 'ntu': (0.5, 1.6, 2.0)}
    for axes, point in given.items():
        pipeline = RecordingPipeline()
        recognizer = OnlineRecognizer(pipeline, TrackerConfig(window=1, min_frames=1,
                                                              input_axes=axes))
        xyz = np.full((1, 25, 3), np.nan, np.float32)
        xyz[0, 20] = point
        occluded = np.ones((1, 25), bool)
        occluded[0, 20] = False
        before = xyz.copy()
        recognizer.process(SkeletonFrame(0, 'cam', np.array([1], np.uint32), xyz, occluded))
        window, _, _ = pipeline.calls[0][0]
        assert window[:, 0, 20, 0].tolist() == pytest.approx([0.5, 1.6, 2.0]), axes
        np.testing.assert_array_equal(xyz, before)  # the frame itself is not changed
    # the same REP-103 point taken as NTU axes reaches the window unrotated
    pipeline = RecordingPipeline()
    wrong = OnlineRecognizer(pipeline, TrackerConfig(window=1, min_frames=1, input_axes='ntu'))
    wrong.process(frame(0, {1: body_pose()}))
    np.testing.assert_allclose(pipeline.calls[0][0][0][..., 0].transpose(1, 2, 0)[0],
                               from_ntu(body_pose(), 'rep103'), rtol=1e-6)


def test_two_bodies_are_tracked_independently_in_one_call_per_frame():
    pipeline = RecordingPipeline()
    config = TrackerConfig(window=4, min_frames=4, stride=4, pair_bodies=False)
    recognizer = OnlineRecognizer(pipeline, config)
    frames = []
    for t in range(10):
        bodies = {1: body_pose(marker=100 + t)}
        if t >= 2:
            bodies[2] = body_pose((2.0, 0.0, 3.0), marker=200 + t)
        frames.append((t, frame(t, bodies)))
    labelled = run(recognizer, frames)
    assert {t: [x.body_id for x in labels] for t, labels in labelled.items()} == {
        3: [1], 5: [2], 7: [1], 9: [2]}
    assert pipeline.calls[1][0][0][0, :, 0, 0].tolist() == [202, 203, 204, 205]
    both = OnlineRecognizer(RecordingPipeline(), config)
    same_time = [(t, frame(t, {1: body_pose(), 2: body_pose((2.0, 0.0, 3.0))}))
                 for t in range(4)]
    assert [x.body_id for x in run(both, same_time)[3]] == [1, 2]
    assert [len(call) for call in both.pipeline.calls] == [2]  # one batched call


def test_a_body_that_leaves_is_reported_stale_once():
    pipeline = RecordingPipeline()
    config = TrackerConfig(window=3, min_frames=3, stride=3, timeout_s=0.1)
    recognizer = OnlineRecognizer(pipeline, config)
    frames = [(t, frame(t, {1: body_pose(), 2: body_pose((2.5, 0, 3))} if t < 6 else
                        {1: body_pose()})) for t in range(14)]
    labelled = run(recognizer, frames)
    stale = [(t, x) for t, labels in labelled.items() for x in labels if x.level == 'STALE']
    # body 2 was last seen at frame 5; 100 ms later is frame 8 (8 - 5 = 3 frames = 100 ms is not
    # more than the timeout), so frame 9 evicts it
    assert [(t, x.body_id) for t, x in stale] == [(9, 2)]
    label = stale[0][1]
    assert label.stamp_ns == 9 * FRAME_NS and label.label == 'wave' and label.frames_in_window == 3
    assert recognizer.tracked_ids == [1] and recognizer.counts['stale'] == 1
    # STALE comes first in its frame; body 1 keeps getting labels
    assert [x.level for x in labelled[11]] == ['OK']
    # back after the gap: a new track that needs min_frames again
    later = run(recognizer, [(t, frame(t, {1: body_pose(), 2: body_pose((2.5, 0, 3))}))
                             for t in range(14, 17)])
    assert [(t, x.body_id, x.frames_in_window) for t, labels in later.items()
            for x in labels] == [(14, 1, 3), (16, 2, 3)]


def test_stamps_going_backwards_are_rejected_and_a_big_jump_back_resets():
    recognizer = OnlineRecognizer(RecordingPipeline(), TrackerConfig(
        window=2, min_frames=2, stride=1, timeout_s=0.1))
    run(recognizer, [(t, frame(t, {1: body_pose()})) for t in range(10, 13)])
    newest = 12 * FRAME_NS
    with pytest.raises(StampError, match=f'stamp_backwards: expected a stamp >= {newest} ns') \
            as caught:
        recognizer.process(frame(11, {1: body_pose()}))  # 33 ms back: within the timeout
    assert caught.value.reason == 'stamp_backwards' and isinstance(caught.value, CloudError)
    assert recognizer.counts['stamp_backwards'] == 1
    # an equal stamp is accepted
    assert len(recognizer.process(frame(12, {1: body_pose()})).labels) == 1
    # 400 ms back, more than the timeout: a restarted recording; old tracks end STALE
    labels = recognizer.process(frame(0, {3: body_pose()})).labels
    assert [(x.body_id, x.level, x.stamp_ns) for x in labels] == [(1, 'STALE', 0)]
    assert recognizer.counts['time_reset'] == 1 and recognizer.tracked_ids == [3]
    assert [x.body_id for x in recognizer.process(frame(1, {3: body_pose()})).labels] == [3]


def test_flush_reports_every_body_stale_once():
    recognizer = OnlineRecognizer(RecordingPipeline(), TrackerConfig(window=5, min_frames=5))
    run(recognizer, [(t, frame(t, {5: body_pose(), 2: body_pose((3, 0, 3))}))
                     for t in range(3)])
    labels = recognizer.flush()
    assert [(x.body_id, x.level, x.label, x.class_index, x.stamp_ns, x.frame_id)
            for x in labels] == [(2, 'STALE', '', -1, 2 * FRAME_NS, 'cam'),
                                 (5, 'STALE', '', -1, 2 * FRAME_NS, 'cam')]
    assert recognizer.flush() == [] and recognizer.tracked_ids == []


def test_smoothing_averages_the_last_windows():
    pipeline = RecordingPipeline(probabilities=[(0.7, 0.2, 0.1), (0.1, 0.5, 0.4),
                                                (0.1, 0.6, 0.3)])
    recognizer = OnlineRecognizer(pipeline, TrackerConfig(window=1, min_frames=1, stride=1,
                                                          smoothing=2))
    labels = [x for _, ls in run(recognizer, [(t, frame(t, {1: body_pose()}))
                                              for t in range(3)]).items() for x in ls]
    assert [x.label for x in labels] == ['wave', 'wave', 'clap']
    assert [x.confidence for x in labels] == pytest.approx([0.7, 0.4, 0.55])
    assert [name for name, _ in labels[1].topk] == ['wave', 'clap', 'hug']
    assert [p for _, p in labels[1].topk] == pytest.approx([0.4, 0.35, 0.25])
    assert [name for name, _ in labels[2].topk] == ['clap', 'hug', 'wave']
    assert labels[2].class_index == 1
    plain = OnlineRecognizer(RecordingPipeline(probabilities=pipeline.probabilities),
                             TrackerConfig(window=1, min_frames=1, stride=1, top_k=2))
    unsmoothed = [x for _, ls in run(plain, [(t, frame(t, {1: body_pose()}))
                                             for t in range(3)]).items() for x in ls]
    assert [x.label for x in unsmoothed] == ['wave', 'clap', 'clap']
    assert unsmoothed[1].topk == (('clap', 0.5), ('hug', 0.4))


def test_warn_levels_for_confidence_and_occlusion():
    config = TrackerConfig(window=1, min_frames=1, stride=1, min_confidence=0.5,
                           max_occluded_ratio=0.3)
    low = OnlineRecognizer(RecordingPipeline(probabilities=[(0.4, 0.35, 0.25)]), config)
    assert [x.level for x in low.process(frame(0, {1: body_pose()})).labels] == ['WARN']
    hidden = np.zeros((1, 25), bool)
    hidden[0, :8] = True  # 8 / 25 = 0.32 > 0.3
    occluded = OnlineRecognizer(RecordingPipeline(), config)
    (label,) = occluded.process(frame(0, {1: body_pose()}, hidden)).labels
    assert label.level == 'WARN' and label.occluded_ratio == pytest.approx(0.32)
    hidden[0, 7] = False  # 0.28
    fine = OnlineRecognizer(RecordingPipeline(), config)
    assert [x.level for x in fine.process(frame(0, {1: body_pose()}, hidden)).labels] == ['OK']


def test_pairing_puts_the_nearest_body_within_the_distance_into_slot_1():
    pipeline = RecordingPipeline()
    config = TrackerConfig(window=4, min_frames=4, stride=4, pair_distance=1.5)
    recognizer = OnlineRecognizer(pipeline, config)
    frames = []
    for t in range(4):
        bodies = {1: body_pose((0.0, 0.0, 3.0), marker=10 + t),
                  9: body_pose((3.0, 0.0, 3.0), marker=90 + t)}       # 3 m from body 1
        if t >= 1:
            bodies[4] = body_pose((1.0, 0.0, 3.0), marker=40 + t)     # 1 m from body 1
        if t >= 2:
            bodies[6] = body_pose((-1.2, 0.0, 3.0), marker=60 + t)    # 1.2 m from body 1
        frames.append((t, frame(t, bodies)))
    (labels,) = run(recognizer, frames).values()
    assert [(x.body_id, x.partner_id) for x in labels] == [(1, 4), (9, None)]
    (window_1, window_9) = pipeline.calls[0]
    xyz, occluded, present = window_1
    assert xyz.shape == (3, 4, 25, 2)
    assert present.tolist() == [[True, False], [True, True], [True, True], [True, True]]
    assert xyz[0, :, 0, 0].tolist() == [10, 11, 12, 13]
    assert xyz[0, 1:, 0, 1].tolist() == [41, 42, 43] and (xyz[:, 0, :, 1] == 0).all()
    assert window_9[0].shape[-1] == 1
    # from body 4's point of view body 1 is the partner (each gets its own label)
    recognizer = OnlineRecognizer(RecordingPipeline(), TrackerConfig(window=2, min_frames=2))
    pair = [(t, frame(t, {1: body_pose(), 4: body_pose((0.8, 0, 3))})) for t in range(2)]
    assert [(x.body_id, x.partner_id) for x in run(recognizer, pair)[1]] == [(1, 4), (4, 1)]
    # a tie goes to the lower id; pairing can be switched off
    tie = [(t, frame(t, {5: body_pose(), 8: body_pose((1, 0, 3)), 2: body_pose((-1, 0, 3))}))
           for t in range(2)]
    labels = run(OnlineRecognizer(RecordingPipeline(), TrackerConfig(window=2, min_frames=2)),
                 tie)[1]
    assert {x.body_id: x.partner_id for x in labels}[5] == 2
    off = OnlineRecognizer(RecordingPipeline(), TrackerConfig(window=2, min_frames=2,
                                                              pair_bodies=False))
    assert [x.partner_id for x in run(off, pair)[1]] == [None, None]


def partner_by_loop(recognizer, body):
    """Apply the partner rule body by body (the oracle of the batched search)."""
    frames, xyz, occluded = recognizer._tracks[body].window()
    reference = reference_points(xyz, occluded)
    best = None
    for other in sorted(recognizer._tracks):
        if other == body:
            continue
        o_frames, o_xyz, o_occluded = recognizer._tracks[other].window()
        where = np.searchsorted(o_frames, frames).clip(0, len(o_frames) - 1)
        common = o_frames[where] == frames
        o_reference = reference_points(o_xyz[where[common]], o_occluded[where[common]])
        distance = np.linalg.norm(reference[common] - o_reference, axis=-1)
        distance = distance[np.isfinite(distance)]
        if distance.size:
            median = float(np.median(distance))
            if median <= recognizer.config.pair_distance and (best is None or median < best[0]):
                best = (median, other)
    return None if best is None else best[1]


@pytest.mark.parametrize('seed', range(4))
def test_the_partner_search_agrees_with_the_rule_body_by_body(seed):
    # 14 bodies walking about within 4 m, each seen in 80 % of the frames, reference joints
    # often hidden; every body is due at every frame (ties: the test above)
    rng = np.random.default_rng(seed)
    config = TrackerConfig(window=12, min_frames=1, stride=1, pair_distance=1.0,
                           max_bodies=20, input_axes='ntu')
    recognizer = OnlineRecognizer(RecordingPipeline(), config)
    start = rng.uniform(-2.0, 2.0, (14, 3)) * (1, 0, 1) + (0, 0, 3)
    start[1] = start[0] + (0.5, 0, 0)
    start[2] = start[0] - (0.5, 0, 0)            # bodies 1 and 2 start next to body 0
    checked = paired = 0
    for t in range(30):
        seen = np.flatnonzero(rng.random(14) < 0.8)
        poses = {int(i): body_pose(start[i] + 0.02 * t * rng.normal(size=3) * (1, 0, 1))
                 for i in seen}
        hidden = rng.random((len(seen), 25)) < 0.3
        labels = recognizer.process(frame(t, poses, hidden, axes='ntu')).labels
        for label in labels:
            if label.level != 'STALE':
                assert label.partner_id == partner_by_loop(recognizer, label.body_id)
                checked += 1
                paired += label.partner_id is not None
    assert checked > 250 and 0.2 * checked < paired < checked


def test_the_body_limit_and_a_failing_window():
    config = TrackerConfig(window=1, min_frames=1, stride=1, max_bodies=2, pair_bodies=False)
    limited = OnlineRecognizer(RecordingPipeline(), config)
    step = limited.process(frame(0, {1: body_pose(), 2: body_pose((2, 0, 3)),
                                     3: body_pose((4, 0, 3))}))
    assert [x.body_id for x in step.labels] == [1, 2]
    assert step.counts == {'frames': 1, 'body_limit': 1, 'pipeline_calls': 1, 'windows': 2}
    assert step.errors == () and set(step.timings_ms) == {'total'}
    assert limited.counts['body_limit'] == 1
    failing = RecordingPipeline(fail_when=lambda w: w[0][0, 0, 0, 0] == 666)
    recognizer = OnlineRecognizer(failing, config)
    step = recognizer.process(frame(0, {1: body_pose(marker=666), 2: body_pose((2, 0, 3))}))
    assert [x.body_id for x in step.labels] == [2]
    assert step.counts['pipeline_error'] == 1 and recognizer.counts['pipeline_error'] == 1
    (error,) = step.errors
    assert 'expected finite coordinates' in error
    quiet = recognizer.process(frame(1, {2: body_pose((2, 0, 3))}))
    assert quiet.errors == () and 'pipeline_error' not in quiet.counts
    assert recognizer.counts['pipeline_error'] == 1 and recognizer.counts['frames'] == 2


def test_reference_points_fall_back_to_the_shoulders():
    xyz = np.zeros((3, 25, 3))
    xyz[:, 20] = (1.0, 2.0, 3.0)
    xyz[:, 4] = (0.0, 1.0, 0.0)
    xyz[:, 8] = (2.0, 1.0, 0.0)
    occluded = np.zeros((3, 25), bool)
    occluded[1, 20] = True
    occluded[2, [20, 8]] = True
    points = reference_points(xyz, occluded)
    assert points[0].tolist() == [1.0, 2.0, 3.0] and points[1].tolist() == [1.0, 1.0, 0.0]
    assert np.isnan(points[2]).all()


def test_completed_frame_goes_back_to_the_sensor_frame():
    relative = STANDING_POSE - STANDING_POSE[20]
    theta = 0.7
    rotation = np.array([[np.cos(theta), 0, -np.sin(theta)], [0, 1, 0],
                         [np.sin(theta), 0, np.cos(theta)]])
    sensor = relative @ rotation.T + (0.5, -0.2, 2.5)
    occluded = np.zeros(25, bool)
    occluded[[5, 6, 7, 13]] = True
    measured = np.where(occluded[:, None], np.nan, sensor)
    completed = complete_in_sensor_frame(relative, measured, occluded)
    np.testing.assert_allclose(completed, sensor, atol=1e-5)
    assert complete_in_sensor_frame(relative, measured, np.arange(25) > 1) is None


@pytest.fixture(scope='module')
def tiny_pipeline(tiny):
    pipeline = Pipeline(tiny['model'], backend='cpu', top_k=5)
    pipeline.warm_up()
    return pipeline


def sequence_frames(seed, index, body_id=3, axes='rep103'):
    """Make a synthetic one-person sequence (NTU axes) and its frames given in ``axes``."""
    sequence = generate_sequence(seed, index)
    frames = []
    for t in range(sequence.xyz.shape[1]):
        xyz = from_ntu(np.moveaxis(sequence.xyz[:, t, :, 0], 0, -1)[None], axes)
        frames.append(SkeletonFrame(t * FRAME_NS, 'cam', np.array([body_id], np.uint32),
                                    xyz.astype(np.float32), sequence.occluded[t, :, 0][None]))
    return sequence, frames


class Recorder:
    """The real pipeline, with every window it was given recorded."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.classes = pipeline.classes
        self.windows = []

    def run(self, windows):
        windows = list(windows)
        self.windows.extend(windows)
        return self.pipeline.run(windows)


@pytest.mark.slow
def test_real_pipeline_labels_equal_a_direct_call_and_replay_is_deterministic(tiny_pipeline):
    sequence, frames = sequence_frames(3, 0)
    config = TrackerConfig(window=40, min_frames=30, stride=10, keep_imputed=True)
    recognizer = OnlineRecognizer(tiny_pipeline, config)
    first = [x for f in frames for x in recognizer.process(f).labels]
    again = OnlineRecognizer(tiny_pipeline, config)
    second = [x for f in frames for x in again.process(f).labels]
    assert len(first) == 1 + (len(frames) - 30) // 10 and len(first) >= 2
    assert [(x.stamp_ns, x.label, x.confidence, x.topk) for x in first] == \
        [(x.stamp_ns, x.label, x.confidence, x.topk) for x in second]
    last = first[-1]
    end = last.stamp_ns // FRAME_NS + 1
    window = (sequence.xyz[:, end - 40:end, :, :1], sequence.occluded[end - 40:end, :, :1],
              sequence.present[end - 40:end, :1])
    (direct,) = tiny_pipeline.run([window])
    assert last.label == direct.label and last.confidence == pytest.approx(direct.confidence)
    assert last.imputed.shape == (3, 50, 25, 1)
    np.testing.assert_allclose(last.imputed, direct.imputed, atol=1e-5)
    assert last.completed_xyz.shape == (25, 3) and np.isfinite(last.completed_xyz).all()
    visible = ~sequence.occluded[end - 1, :, 0]
    # back in the input's (REP-103) axes: visible joints exactly as measured
    np.testing.assert_array_equal(last.completed_xyz[visible], frames[end - 1].xyz[0][visible])
    np.testing.assert_array_equal(
        to_ntu(last.completed_xyz[visible], 'rep103'),
        np.moveaxis(sequence.xyz[:, end - 1, :, 0], 0, -1)[visible].astype(np.float32))
    assert last.filled.tolist() == (~visible).tolist()


def labels_and_windows(pipeline, frames, axes):
    recorder = Recorder(pipeline)
    recognizer = OnlineRecognizer(recorder, TrackerConfig(
        window=40, min_frames=30, stride=10, keep_imputed=True, input_axes=axes))
    return [x for f in frames for x in recognizer.process(f).labels], recorder.windows


def summary(labels):
    return [(x.stamp_ns, x.level, x.label, x.class_index, x.confidence, x.topk) for x in labels]


@pytest.mark.slow
def test_the_same_motion_in_every_axes_gives_the_same_windows_and_labels(tiny_pipeline):
    sequence, ntu_frames = sequence_frames(5, 1, axes='ntu')
    ntu_labels, ntu_windows = labels_and_windows(tiny_pipeline, ntu_frames, 'ntu')
    assert len(ntu_labels) >= 2 and len(ntu_windows) == len(ntu_labels)
    for axes in ('rep103', 'optical'):
        _, frames = sequence_frames(5, 1, axes=axes)
        assert not np.allclose(frames[0].xyz, ntu_frames[0].xyz, equal_nan=True)
        labels, windows = labels_and_windows(tiny_pipeline, frames, axes)
        assert len(windows) == len(ntu_windows)
        for window, ntu_window in zip(windows, ntu_windows):
            for part, ntu_part in zip(window, ntu_window):  # xyz, occluded, present
                np.testing.assert_array_equal(part, ntu_part)
        assert summary(labels) == summary(ntu_labels)
        for label, ntu_label in zip(labels, ntu_labels):
            np.testing.assert_array_equal(label.imputed, ntu_label.imputed)
            # completed frames come back in each input's own axes
            np.testing.assert_array_equal(to_ntu(label.completed_xyz, axes),
                                          ntu_label.completed_xyz)
            measured = frames[label.stamp_ns // FRAME_NS]
            visible = ~measured.occluded[0]
            np.testing.assert_array_equal(label.completed_xyz[visible],
                                          measured.xyz[0][visible])
    # REP-103 data declared as NTU axes: the body lies on its back for the model
    _, rep103_frames = sequence_frames(5, 1, axes='rep103')
    wrong_labels, wrong_windows = labels_and_windows(tiny_pipeline, rep103_frames, 'ntu')
    assert len(wrong_windows) == len(ntu_windows)
    assert not np.allclose(wrong_windows[0][0], ntu_windows[0][0])
    assert [(x.stamp_ns, x.confidence) for x in wrong_labels] != \
        [(x.stamp_ns, x.confidence) for x in ntu_labels]
