"""The robot's pipeline (iospstl_ros.pipeline) and the ONNX back-ends (iospstl_ros.runtime)."""

import json
import os
import shutil

from helpers import rewrite_file
from iospstl_ros.completion import complete_windows
from iospstl_ros.datasets.format import open_split
from iospstl_ros.datasets.synthetic import generate_sequence
from iospstl_ros.model_dir import CLASSIFIER_FILE, METADATA_FILE, STAGE1_FILE
import iospstl_ros.pipeline as pipeline_module
from iospstl_ros.pipeline import Pipeline, softmax, STAGES
from iospstl_ros.preprocess import preprocess_sequence
from iospstl_ros.runtime import (
    available_backends, engine_cache_dir, GPU_UNAVAILABLE, NATIVE_PROVIDER, OnnxRunner,
    open_runner)
import numpy as np
import onnxruntime as ort
import pytest
from threadpoolctl import threadpool_info

from training.windows import load_windows

HAS_CUDA = 'CUDAExecutionProvider' in ort.get_available_providers()
HAS_TENSORRT = 'TensorrtExecutionProvider' in ort.get_available_providers()
HAS_NATIVE_TENSORRT = 'tensorrt-native' in available_backends()


@pytest.fixture(scope='module')
def pipeline(tiny):
    pipeline = Pipeline(tiny['model'], backend='cpu', threads=1, top_k=5)
    pipeline.warm_up()
    return pipeline


def raw_windows(tiny, count):
    """Return the first ``count`` validation sequences, as a tracker would give them."""
    split = open_split(tiny['data'], 'val')
    windows = []
    for i in range(count):
        frames = int(split.num_frames[i])
        windows.append((np.array(split.data[i, :, :frames]), np.array(split.occluded[i, :frames]),
                        np.array(split.present[i, :frames])))
    return windows


def one_body(window):
    xyz, occluded, present = window
    return xyz[..., :1], occluded[..., :1], present[:, :1]


@pytest.mark.slow
def test_results_are_complete_and_consistent(tiny, pipeline):
    windows = raw_windows(tiny, 6)
    windows[1] = one_body(windows[1])
    results = pipeline.run(windows)
    assert len(results) == 6
    for window, result in zip(windows, results):
        assert result.label in pipeline.classes
        assert pipeline.classes[result.class_index] == result.label
        assert len(result.top_k) == 5 and result.top_k[0] == (result.label, result.confidence)
        probabilities = [p for _, p in result.top_k]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0.0 < result.confidence <= 1.0 and sum(probabilities) <= 1.0 + 1e-12
        xyz, occluded, present = window
        bodies = xyz.shape[-1]
        assert result.imputed.shape == (3, 50, 25, bodies)
        assert result.imputed.dtype == np.float32 and np.isfinite(result.imputed).all()
        expected = preprocess_sequence(xyz, occluded, present)
        hidden = expected.occluded & expected.present[:, None, :]
        assert result.num_imputed_joints == int(hidden.sum()) > 0
        # visible joints are the preprocessed coordinates; absent bodies stay 0
        visible = np.broadcast_to(~expected.occluded & expected.present[:, None, :],
                                  expected.data.shape)
        assert np.array_equal(result.imputed[visible], expected.data[visible])
        absent = np.broadcast_to(~expected.present[None, :, None, :], expected.data.shape)
        assert (result.imputed[absent] == 0).all()
        assert 0 <= result.cluster < 4 and result.batch_size == 6
        assert list(result.timings_ms) == list(STAGES)
        assert all(t >= 0 for t in result.timings_ms.values())
    everything = Pipeline(pipeline.model, backend='cpu', top_k=100).run(windows[:2])
    for result in everything:
        assert len(result.top_k) == 43
        assert sum(p for _, p in result.top_k) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.slow
def test_pipeline_reproduces_the_offline_imputation(tiny, pipeline):
    """Same clusters and completed windows as training.impute (float16 bank: within 1e-3)."""
    count = 12
    results = pipeline.run(raw_windows(tiny, count))
    offline, _, _ = load_windows(tiny['imputed'], 'val')
    clusters = np.load(os.path.join(tiny['imputed'], 'val_cluster.npy'))[:count]
    assert [r.cluster for r in results] == clusters.tolist()
    completed = np.stack([r.imputed for r in results])
    assert np.abs(completed - offline[:count]).max() < 1e-3


@pytest.mark.slow
def test_warm_up_prepares_the_largest_clusters_of_the_bank(tiny):
    pipeline = Pipeline(tiny['model'], backend='cpu', threads=1, max_cached_clusters=2)
    bank = pipeline.model.bank
    sizes = np.diff(bank.offsets_).tolist()
    assert bank.n_clusters >= 3 and not bank._prepared
    largest = sorted((c for c in range(len(sizes)) if sizes[c]), key=lambda c: (-sizes[c], c))
    prepared = pipeline.warm_up()
    assert prepared == largest[:2][::-1] and list(bank._prepared) == prepared
    windows = raw_windows(tiny, 12)
    fresh = Pipeline(tiny['model'], backend='cpu').run(windows)
    for result, expected in zip(pipeline.run(windows), fresh):
        assert np.array_equal(result.imputed, expected.imputed)
    without = Pipeline(tiny['model'], backend='cpu', threads=1, imputation=False)
    assert without.warm_up() == [] and not without.model.bank._prepared


@pytest.mark.slow
def test_a_window_without_occlusion_is_not_changed_by_imputation(pipeline):
    sequence = generate_sequence(5, 3, occlusion='none')
    assert not sequence.occluded.any()
    window = (sequence.xyz, sequence.occluded, sequence.present)
    (result,) = pipeline.run([window])
    expected = preprocess_sequence(*window)
    assert result.num_imputed_joints == 0
    assert np.array_equal(result.imputed, expected.data)


@pytest.mark.slow
def test_the_same_window_gives_the_same_result(tiny, pipeline):
    window = raw_windows(tiny, 1)[0]
    pairs = [pipeline.run([window, window]), pipeline.run([window]) + pipeline.run([window])]
    for first, second in pairs:  # in one call, and in two calls
        assert second.top_k == first.top_k and second.cluster == first.cluster
        assert np.array_equal(second.imputed, first.imputed)
        assert second.num_imputed_joints == first.num_imputed_joints


@pytest.mark.slow
def test_batching_does_not_change_results(tiny, pipeline):
    windows = raw_windows(tiny, 4)
    batched = pipeline.run(windows)
    for window, together in zip(windows, batched):
        (alone,) = pipeline.run([window])
        assert alone.cluster == together.cluster and alone.label == together.label
        # the KNN distances are float32 matrix products whose rounding depends on the batch
        np.testing.assert_allclose(alone.imputed, together.imputed, atol=1e-5, rtol=0)
        np.testing.assert_allclose([p for _, p in alone.top_k],
                                   [p for _, p in together.top_k], atol=1e-6)


@pytest.mark.slow
def test_a_one_body_window_equals_two_slots_with_the_second_absent(tiny, pipeline):
    xyz, occluded, present = one_body(raw_windows(tiny, 1)[0])
    padded = (np.concatenate([xyz, np.zeros_like(xyz)], -1),
              np.concatenate([occluded, np.zeros_like(occluded)], -1),
              np.concatenate([present, np.zeros_like(present)], -1))
    single, double = pipeline.run([(xyz, occluded, present), padded])
    assert single.top_k == double.top_k and single.cluster == double.cluster
    assert np.array_equal(single.imputed[..., 0], double.imputed[..., 0])
    assert single.imputed.shape[-1] == 1 and (double.imputed[..., 1] == 0).all()


class RecordingRunner:
    """Wraps a real runner and records the input shapes it is given."""

    def __init__(self, runner):
        self.runner, self.shapes = runner, []

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def run(self, x):
        self.shapes.append(tuple(np.shape(x)))
        return self.runner.run(x)


@pytest.mark.slow
def test_an_empty_second_slot_runs_as_one_body_with_the_same_results(tiny, pipeline):
    assert pipeline.single_body == {'stage1_encoder': True, 'classifier': True}
    both = Pipeline(tiny['model'], backend='cpu', threads=1, top_k=43, skip_empty_slot=False)
    assert both.single_body == {'stage1_encoder': False, 'classifier': False}
    windows = raw_windows(tiny, 30)
    pairs = [i for i, (_, _, present) in enumerate(windows) if present[:, 1].any()]
    assert 0 < len(pairs) < 30                       # a mix of one- and two-body windows
    windows[0] = one_body(windows[0])                # and one given with M = 1
    quick = Pipeline(tiny['model'], backend='cpu', threads=1, top_k=43)
    runners = quick._stage1, quick._classifier
    quick._stage1, quick._classifier = map(RecordingRunner, runners)
    quick._empty = {quick._stage1: quick._empty[runners[0]],
                    quick._classifier: quick._empty[runners[1]]}
    fast, slow = quick.run(windows), both.run(windows)
    alone = 30 - len([i for i in pairs if i != 0])
    for recorder in (quick._stage1, quick._classifier):
        assert sorted(recorder.shapes) == sorted([(alone, 3, 50, 25, 1),
                                                  (30 - alone, 3, 50, 25, 2)])
    for a, b in zip(fast, slow):
        assert a.cluster == b.cluster and a.label == b.label
        np.testing.assert_allclose([p for _, p in a.top_k], [p for _, p in b.top_k],
                                   atol=1e-6, rtol=0)
        np.testing.assert_allclose(a.imputed, b.imputed, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_a_graph_with_two_fixed_slots_still_serves(tiny, tmp_path):
    from training.export import export_onnx, load_classifier

    model = tmp_path / 'model'
    shutil.copytree(tiny['model'], model)
    classifier, _ = load_classifier(tiny['classifier'])
    export_onnx(classifier, str(tmp_path / 'fixed.onnx'), 'logits', dynamic_bodies=False)
    rewrite_file(model, CLASSIFIER_FILE, data=(tmp_path / 'fixed.onnx').read_bytes())
    old = Pipeline(str(model), backend='cpu', threads=1, top_k=43)
    assert old.single_body == {'stage1_encoder': True, 'classifier': False}
    with pytest.raises(ValueError, match=r'expected float32 of shape \(N >= 1, 3, 50, 25, '
                                         r'2\), got \(1, 3, 50, 25, 1\)'):
        old._classifier.run(np.zeros((1, 3, 50, 25, 1), np.float32))
    new = Pipeline(tiny['model'], backend='cpu', threads=1, top_k=43)
    windows = raw_windows(tiny, 8)
    for a, b in zip(old.run(windows), new.run(windows)):
        assert a.cluster == b.cluster and a.label == b.label
        np.testing.assert_allclose([p for _, p in a.top_k], [p for _, p in b.top_k],
                                   atol=1e-6, rtol=0)


@pytest.mark.slow
def test_batched_arrays_are_accepted(tiny, pipeline):
    windows = raw_windows(tiny, 3)
    frames = min(w[0].shape[1] for w in windows)
    batch = tuple(np.stack([w[k][..., :frames, :, :] if k == 0 else w[k][:frames]
                            for w in windows]) for k in range(3))
    from_batch = pipeline.run(batch)
    from_list = pipeline.run(list(zip(*batch)))
    from_tuple = pipeline.run(tuple(zip(*batch)))  # a tuple of three windows, not a batch
    assert [r.top_k for r in from_batch] == [r.top_k for r in from_list] \
        == [r.top_k for r in from_tuple]
    assert pipeline.run([]) == []


@pytest.mark.slow
def test_no_nan_reaches_a_network(tiny, pipeline):
    runner = OnnxRunner(os.path.join(tiny['model'], CLASSIFIER_FILE), 'cpu')
    x = np.zeros((2, 3, 50, 25, 2), np.float32)
    x[1, 0, 3, 4, 0] = np.nan
    with pytest.raises(ValueError, match=r'classifier\.onnx input: 1 NaN or infinite values '
                                         'would reach the network'):
        runner.run(x)
    with pytest.raises(ValueError, match=r'expected float32 of shape \(N >= 1, 3, 50, 25, 2 or '
                                         r'1\), got \(2, 3, 50, 25, 3\)'):
        runner.run(np.zeros((2, 3, 50, 25, 3), np.float32))
    xyz, occluded, present = raw_windows(tiny, 1)[0]
    xyz = xyz.copy()
    visible = np.argwhere(~occluded & present[:, None, :])[0]
    xyz[0, visible[0], visible[1], visible[2]] = np.nan
    with pytest.raises(ValueError, match='window 1: expected finite coordinates at visible'):
        pipeline.run([raw_windows(tiny, 1)[0], (xyz, occluded, present)])


def test_a_corrupt_onnx_file_is_a_clear_error(tiny, tmp_path):
    corrupt = tmp_path / CLASSIFIER_FILE
    data = bytearray(open(os.path.join(tiny['model'], CLASSIFIER_FILE), 'rb').read())
    corrupt.write_bytes(bytes(data[:len(data) // 3]))           # a truncated copy
    with pytest.raises(ValueError, match=rf'{corrupt}: ONNX Runtime cannot load it '
                                         r'\(InvalidProtobuf: '):
        OnnxRunner(str(corrupt), 'cpu')
    corrupt.write_bytes(b'not a model at all')
    with pytest.raises(ValueError, match='ONNX Runtime cannot load it'):
        open_runner(str(corrupt), 'auto')


@pytest.mark.slow
def test_malformed_windows_are_named(tiny, pipeline):
    xyz, occluded, present = raw_windows(tiny, 1)[0]
    three = (np.concatenate([xyz, xyz[..., :1]], -1), np.concatenate([occluded] * 2, -1)[..., :3],
             np.concatenate([present] * 2, -1)[:, :3])
    with pytest.raises(ValueError, match=r'window 0: expected xyz of shape \(3, T, 25, M\) with '
                                         r'M = 1 or 2, got \(3, \d+, 25, 3\)'):
        pipeline.run([three])
    with pytest.raises(ValueError, match='window 0: expected a triple'):
        pipeline.run([xyz])
    with pytest.raises(ValueError, match='threads: expected an int >= 1, got 0'):
        Pipeline(tiny['model'], backend='cpu', threads=0)
    with pytest.raises(ValueError, match="backend: expected one of .*, got 'gpu'"):
        Pipeline(tiny['model'], backend='gpu')


@pytest.mark.slow
def test_classifier_output_must_match_the_class_list(tiny, tmp_path):
    model = tmp_path / 'model'
    shutil.copytree(tiny['model'], model)
    meta = json.loads((model / METADATA_FILE).read_text())
    meta['classes'].pop()
    meta['action_ids'].pop()
    meta['models']['classifier']['num_classes'] = 42
    (model / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r'classifier\.onnx: output shape \(\'batch\', 43\), but '
                                         'metadata.json gives the class count as 42'):
        Pipeline(str(model), backend='cpu')


@pytest.mark.slow
def test_threads_and_auto_backend(tiny, pipeline):
    windows = raw_windows(tiny, 3)
    reference = pipeline.run(windows)
    automatic = Pipeline(pipeline.model, backend='auto', threads=2)
    assert set(automatic.providers) == {'stage1_encoder', 'classifier'}
    if not HAS_CUDA:
        assert automatic.providers['classifier'] == 'CPUExecutionProvider'
    for ours, theirs in zip(reference, automatic.run(windows)):
        assert ours.cluster == theirs.cluster
        np.testing.assert_allclose([p for _, p in ours.top_k], [p for _, p in theirs.top_k],
                                   atol=1e-5)


def test_a_batch_is_imputed_with_blas_on_the_pipelines_threads(tiny, pipeline, monkeypatch):
    # More than DIRECT_MAX_ROWS (8) windows can reach the BLAS products: numpy's BLAS then runs
    # on `threads` (1 here) whatever the machine has; a window alone leaves BLAS as it is.
    seen = []

    def recording(*args, **kwargs):
        seen.append({info['num_threads'] for info in threadpool_info()
                     if info['user_api'] == 'blas'})
        return complete_windows(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, 'complete_windows', recording)
    before = {info['num_threads'] for info in threadpool_info() if info['user_api'] == 'blas'}
    pipeline.run(raw_windows(tiny, 9))
    pipeline.run(raw_windows(tiny, 1))
    assert seen == [{1}, before]
    assert {info['num_threads'] for info in threadpool_info()
            if info['user_api'] == 'blas'} == before


@pytest.mark.skipif(HAS_CUDA, reason='this machine has CUDA')
def test_asking_for_a_gpu_without_one_fails_at_start_up(tiny):
    with pytest.raises(ValueError, match="backend 'cuda': ONNX Runtime .* offers .*, not "
                                         'CUDAExecutionProvider'):
        open_runner(os.path.join(tiny['model'], STAGE1_FILE), 'cuda')


def test_engine_cache_directory_is_keyed_and_must_be_writable(tmp_path):
    checksum = 'ab' * 32
    path = engine_cache_dir(checksum, cache_root=str(tmp_path), tag='trt10.0')
    assert os.path.isdir(path) and os.path.dirname(path) == str(tmp_path / 'tensorrt')
    name = os.path.basename(path)
    assert name.startswith('abababababababab_') and name.endswith('_trt10.0')
    (tmp_path / 'file').write_text('')
    with pytest.raises(ValueError, match='cannot create the TensorRT cache directory'):
        engine_cache_dir(checksum, cache_root=str(tmp_path / 'file'))
    with pytest.raises(ValueError, match='expected a hex sha256'):
        engine_cache_dir('../x', cache_root=str(tmp_path))


def test_softmax_is_stable_and_normalised():
    p = softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, np.log(3.0), 0.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0], [0.2, 0.6, 0.2]], atol=1e-12)


def _gpu_agrees_with_cpu(tiny, pipeline, backend, cache_dir):
    windows = raw_windows(tiny, 10)
    gpu = Pipeline(pipeline.model, backend=backend, cache_dir=str(cache_dir))
    gpu.warm_up(batch_sizes=(1, 10))
    for ours, theirs in zip(pipeline.run(windows), gpu.run(windows)):
        assert ours.cluster == theirs.cluster
        np.testing.assert_allclose([p for _, p in ours.top_k], [p for _, p in theirs.top_k],
                                   atol=1e-3)
    return gpu


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not HAS_CUDA, reason=GPU_UNAVAILABLE)
def test_cuda_backend_agrees_with_cpu(tiny, pipeline, tmp_path):
    gpu = _gpu_agrees_with_cpu(tiny, pipeline, 'cuda', tmp_path)
    assert set(gpu.providers.values()) == {'CUDAExecutionProvider'}


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not HAS_TENSORRT, reason=GPU_UNAVAILABLE)
def test_tensorrt_provider_agrees_with_cpu_and_caches_engines(tiny, pipeline, tmp_path):
    gpu = _gpu_agrees_with_cpu(tiny, pipeline, 'tensorrt', tmp_path)
    assert set(gpu.providers.values()) == {'TensorrtExecutionProvider'}
    assert os.listdir(tmp_path / 'tensorrt')  # engines cached, keyed by model and GPU


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not HAS_NATIVE_TENSORRT, reason=GPU_UNAVAILABLE)
def test_native_tensorrt_engine_agrees_with_cpu_and_is_reused(tiny, pipeline, tmp_path):
    gpu = _gpu_agrees_with_cpu(tiny, pipeline, 'tensorrt-native', tmp_path)
    assert set(gpu.providers.values()) == {NATIVE_PROVIDER}
    again = open_runner(os.path.join(tiny['model'], STAGE1_FILE), 'tensorrt-native',
                        cache_dir=str(tmp_path))
    assert not again.built and os.path.exists(again.engine_path)
    x = np.random.default_rng(0).normal(0, 0.1, (40, 3, 50, 25, 2)).astype(np.float32)
    cpu = open_runner(os.path.join(tiny['model'], STAGE1_FILE), 'cpu')
    np.testing.assert_allclose(again.run(x), cpu.run(x), atol=1e-3)  # 40 > max_batch: sliced


@pytest.mark.slow
def test_mean_filling_puts_the_training_mean_at_occluded_joints(tiny):
    sequence = generate_sequence(5, 3, occlusion='none')
    occluded = sequence.occluded.copy()
    occluded[:, [7, 11], 0] = True  # both hands of the person, in every frame
    window = (sequence.xyz, occluded, sequence.present)
    (result,) = Pipeline(tiny['model'], backend='cpu', imputation='mean').run([window])
    mean = np.load(os.path.join(tiny['model'], 'feature_mean.npy')).reshape(3, 50, 25, 2)
    np.testing.assert_array_equal(result.imputed[:, :, [7, 11], 0],
                                  np.nan_to_num(mean[:, :, [7, 11], 0], nan=0.0))
    visible = preprocess_sequence(*window).data
    assert np.array_equal(result.imputed[:, :, :7, 0], visible[:, :, :7, 0])
    assert result.num_imputed_joints == 2 * 50
    with pytest.raises(ValueError, match='imputation: expected True, False or one of '
                                         "cluster-knn, mean, none, got 'zeros'"):
        Pipeline(tiny['model'], backend='cpu', imputation='zeros')
