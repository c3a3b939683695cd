"""Model export (training.export) and the checks made when loading a model directory."""

import json
import os
import re
import shutil

from helpers import rewrite_file, sha256
from iospstl_ros.datasets.synthetic import ACTION_IDS, CLASS_NAMES
from iospstl_ros.imputation import ClusterBank
from iospstl_ros.layout import CENTER_JOINT
from iospstl_ros.model_dir import (
    CLASSIFIER_FILE, load_model_dir, METADATA_FILE, MODEL_FORMAT, REQUIRED_FILES, STAGE1_FILE)
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from training.evaluate import load_encoder
import training.export
from training.export import class_action_ids, load_classifier, main as export
from training.model import STGCNEncoder
from training.windows import load_windows


def copy_model(tiny, tmp_path):
    target = tmp_path / 'model'
    shutil.copytree(tiny['model'], target)
    return target


def edit_metadata(model, change):
    meta = json.loads((model / METADATA_FILE).read_text())
    change(meta)
    (model / METADATA_FILE).write_text(json.dumps(meta))


@pytest.mark.slow
def test_export_writes_a_complete_model_directory(tiny):
    model = tiny['model']
    meta = json.loads(open(os.path.join(model, METADATA_FILE)).read())
    assert (meta['format'], meta['format_version']) == (MODEL_FORMAT, 1)
    assert len(meta['classes']) == 43 and meta['classes'][0] == 'drink water'
    assert meta['action_ids'] == list(ACTION_IDS)  # from the data set's meta.json
    assert meta['window_frames'] == 50 and meta['layout']['center_joint'] == CENTER_JOINT
    assert len(meta['layout']['edges']) == 24 and len(meta['layout']['joint_names']) == 25
    assert meta['preprocessing']['align_shoulders'] is True
    assert meta['imputation'] == dict(meta['imputation'], n_neighbors=5, n_clusters=4,
                                      n_features=7500, n_donors=50, bank_dtype='float16')
    provenance = meta['provenance']
    assert provenance['command'].startswith('python -m training.export --stage1 ')
    assert provenance['git_commit'] is None or len(provenance['git_commit']) == 40
    assert provenance['data'] == os.path.abspath(tiny['data'])
    summary = json.loads(open(os.path.join(tiny['root'], 'eval', 'summary.json')).read())
    assert provenance['metrics'] == summary
    assert provenance['stage1_check'].startswith('8 training embeddings reproduced')
    for name in (STAGE1_FILE, CLASSIFIER_FILE):
        assert 0 <= meta['parity'][name] <= 1e-4
        assert 0 <= meta['parity'][f'{name} empty second slot'] <= 1e-5
        held_out = meta['parity']['held_out'][name]   # the 50 validation windows
        assert held_out['windows'] == 50 and held_out['same'] + held_out['ties'] == 50
        assert 0 <= held_out['max_difference'] <= 1e-4
    assert meta['parity']['held_out']['data'] == os.path.join(tiny['imputed'], 'val')
    assert [entry['graph'] for entry in meta['models'].values()] == ['joints-first'] * 2
    # the whole chain: here the classifier was trained on the stage-1 encoder itself
    pipeline = provenance['pipeline']
    assert [(run['stage'], run['folder']) for run in pipeline] == [
        ('stage1', os.path.join(tiny['root'], 'pre')), ('impute', tiny['imputed']),
        ('classifier', os.path.join(tiny['root'], 'eval'))]
    for run, module in zip(pipeline, ('pretrain', 'impute', 'evaluate')):
        (line,) = run['commands']
        assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d python -m training\.' + module
                            + ' --data .+', line), line
    # every file is listed with its sha256 (an independent hashlib oracle) and size
    on_disk = sorted(os.path.relpath(os.path.join(d, f), model).replace(os.sep, '/')
                     for d, _, files in os.walk(model) for f in files)
    assert sorted(meta['files']) == [f for f in on_disk if f != METADATA_FILE]
    assert set(REQUIRED_FILES) <= set(meta['files'])
    assert [f for f in sorted(meta['files']) if f.startswith('bank/')] == [
        'bank/bank.json', 'bank/centroids.npy', 'bank/donor_index.npy',
        'bank/donors/cluster_0000.npy', 'bank/donors/cluster_0001.npy',
        'bank/donors/cluster_0002.npy', 'bank/donors/cluster_0003.npy', 'bank/groups.npy',
        'bank/offsets.npy']
    for name, entry in meta['files'].items():
        assert entry == {'sha256': sha256(os.path.join(model, name)),
                         'bytes': os.path.getsize(os.path.join(model, name))}
    for name, size in ((STAGE1_FILE, 32), (CLASSIFIER_FILE, 43)):
        graph = onnx.load(os.path.join(model, name))
        assert max(o.version for o in graph.opset_import if o.domain in ('', 'ai.onnx')) >= 17
        (graph_input,) = graph.graph.input
        dims = graph_input.type.tensor_type.shape.dim
        assert graph_input.name == 'skeleton' and dims[0].dim_param == 'batch'
        assert [d.dim_value for d in dims[1:4]] == [3, 50, 25] and dims[4].dim_param == 'bodies'
        assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_value for d in graph.graph.output[0].type.tensor_type.shape.dim[1:]] \
            == [size]
        ops = [node.op_type for node in graph.graph.node]   # the joints-first form
        assert ops.count('MatMul') == 10 and 'BatchNormalization' not in ops
        assert 'Expand' not in ops and 'Slice' not in ops and ops.count('Shape') == 1
    loaded = load_model_dir(model)
    for cluster in range(4):
        donors = loaded.bank.cluster_donors(cluster)
        assert isinstance(donors, np.memmap) and donors.dtype == np.float16
    assert loaded.centroids.shape == (4, 32) and loaded.n_neighbors == 5
    assert loaded.num_classes == 43 and loaded.embedding_dim == 32
    assert not [f for f in os.listdir(os.path.dirname(model)) if f.startswith('.')]


@pytest.mark.slow
@pytest.mark.parametrize('batch', [1, 3])
def test_onnx_graphs_match_pytorch(tiny, batch):
    encoder = load_encoder(tiny['stage1'], 'cpu').eval()
    classifier, _ = load_classifier(tiny['classifier'])
    data, _, _ = load_windows(tiny['imputed'], 'val')
    rng = np.random.default_rng(batch)
    real = np.array(data[:batch], np.float32)
    noise = rng.normal(0.0, 0.1, real.shape).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # spinning ONNX Runtime threads would slow torch down
    for x in (real, real + noise):
        for name, module in ((STAGE1_FILE, encoder), (CLASSIFIER_FILE, classifier)):
            session = ort.InferenceSession(os.path.join(tiny['model'], name), options,
                                           providers=['CPUExecutionProvider'])
            got = session.run(None, {'skeleton': x})[0]
            with torch.no_grad():
                expected = module(torch.from_numpy(x)).numpy()
            assert got.shape == expected.shape == (batch, 32 if name == STAGE1_FILE else 43)
            assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.slow
def test_a_failed_export_leaves_no_directory(tiny, tmp_path, monkeypatch):
    args = ['--stage1', tiny['stage1'], '--classifier', tiny['classifier'],
            '--imputed', tiny['imputed']]

    def broken_copy(imputed, target):
        assert os.path.exists(os.path.join(target, CLASSIFIER_FILE))  # half written
        raise OSError('disk full')

    monkeypatch.setattr(training.export, '_copy_bank', broken_copy)
    with pytest.raises(OSError, match='disk full'):
        export(args + ['--out', str(tmp_path / 'models' / 'new')])
    assert os.listdir(tmp_path / 'models') == []
    # replacing an existing model: a failure keeps the old one untouched
    old = copy_model(tiny, tmp_path)
    before = {f: sha256(old / f) for f in REQUIRED_FILES}
    with pytest.raises(OSError, match='disk full'):
        export(args + ['--out', str(old), '--force'])
    assert {f: sha256(old / f) for f in REQUIRED_FILES} == before
    assert sorted(os.listdir(tmp_path)) == ['model', 'models']
    with pytest.raises(ValueError, match='exists; pass --force'):
        export(args + ['--out', str(old)])


@pytest.mark.slow
def test_a_format_v1_bank_is_exported_as_v2_with_the_same_donors(tiny, tmp_path):
    imputed = tmp_path / 'imputed'
    shutil.copytree(tiny['imputed'], imputed)
    bank = ClusterBank.load(imputed / 'bank', mmap=False)
    shutil.rmtree(imputed / 'bank' / 'donors')          # as training.impute wrote it before v2
    np.save(imputed / 'bank' / 'donors.npy',
            np.concatenate([bank.cluster_donors(cluster) for cluster in range(4)]))
    bank_meta = json.loads((imputed / 'bank' / 'bank.json').read_text())
    bank_meta.update(format_version=1, arrays=bank_meta['arrays'] + ['donors'])
    (imputed / 'bank' / 'bank.json').write_text(json.dumps(bank_meta))
    export(['--stage1', tiny['stage1'], '--classifier', tiny['classifier'],
            '--imputed', str(imputed), '--out', str(tmp_path / 'model')])
    assert json.loads((tmp_path / 'model' / 'bank' / 'bank.json').read_text())[
        'format_version'] == 2
    assert not os.path.exists(tmp_path / 'model' / 'bank' / 'donors.npy')
    model = load_model_dir(tmp_path / 'model')
    for cluster in range(4):
        assert model.bank.cluster_donors(cluster).tobytes() == \
            bank.cluster_donors(cluster).tobytes()
    np.testing.assert_array_equal(model.bank.donor_index_, bank.donor_index_)


@pytest.mark.slow
def test_export_refuses_a_stage1_encoder_that_did_not_make_the_bank(tiny, tmp_path):
    state = torch.load(tiny['stage1'], weights_only=False)
    torch.manual_seed(0)
    other = STGCNEncoder(load_encoder(tiny['stage1'], 'cpu').config)
    torch.save(dict(state, state_dict=other.state_dict()), tmp_path / 'other.pt')
    with pytest.raises(ValueError, match='does not reproduce .*train_embedding.npy'):
        export(['--stage1', str(tmp_path / 'other.pt'), '--classifier', tiny['classifier'],
                '--imputed', tiny['imputed'], '--out', str(tmp_path / 'm')])
    assert not os.path.exists(tmp_path / 'm')


@pytest.mark.slow
def test_an_unchanged_copy_loads(tiny, tmp_path):
    model = load_model_dir(copy_model(tiny, tmp_path))
    assert model.classes[-1] == 'walking apart from each other'
    assert model.checksums[CLASSIFIER_FILE] == sha256(tmp_path / 'model' / CLASSIFIER_FILE)
    assert model.action_ids == ACTION_IDS and model.action_ids[-1] == 60  # walking apart
    # a directory exported before action ids existed: classes are matched by name only
    edit_metadata(tmp_path / 'model', lambda d: d.pop('action_ids'))
    assert load_model_dir(tmp_path / 'model').action_ids is None


def test_action_ids_come_from_the_classifier_else_from_matching_data_set_classes():
    classes = list(CLASS_NAMES)
    meta = {'classes': classes, 'action_ids': list(ACTION_IDS)}
    assert class_action_ids({}, meta, classes) == ACTION_IDS
    own = [0] * (len(classes) - 1) + [55]
    assert class_action_ids({'action_ids': own}, meta, classes) == tuple(own)
    assert class_action_ids({}, dict(meta, classes=classes[::-1]), classes) is None
    assert class_action_ids({}, {'classes': classes}, classes) is None
    with pytest.raises(ValueError, match=r'NTU action ids of the classes: expected 43 NTU '
                       r'action ids \(one per class\), got 2'):
        class_action_ids({'action_ids': [1, 2]}, meta, classes)


def _flip_a_byte(model):
    data = bytearray((model / CLASSIFIER_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (model / CLASSIFIER_FILE).write_bytes(bytes(data))


def _other_centroids(model):
    centroids = np.load(model / 'centroids.npy')
    rewrite_file(model, 'centroids.npy', centroids + 1.0)


def _more_clusters(model):
    centroids = np.load(model / 'centroids.npy')
    rewrite_file(model, 'centroids.npy', np.concatenate([centroids, centroids[:1]]))
    edit_metadata(model, lambda m: m['imputation'].update(n_clusters=5))


BROKEN = {
    'missing metadata': (lambda m: os.remove(m / METADATA_FILE),
                         r'metadata\.json: missing'),
    'missing file': (lambda m: os.remove(m / CLASSIFIER_FILE),
                     r'classifier\.onnx: missing \(listed in metadata\.json\)'),
    'missing bank file': (lambda m: os.remove(m / 'bank' / 'donors' / 'cluster_0002.npy'),
                          r'bank/donors/cluster_0002\.npy: missing'),
    'unlisted bank file': (
        lambda m: edit_metadata(m, lambda d: d['files'].pop('bank/donors/cluster_0003.npy')),
        r'"files" does not list bank/donors/cluster_0003\.npy'),
    'unlisted required file': (lambda m: edit_metadata(m, lambda d: d['files'].pop(STAGE1_FILE)),
                               r'"files" does not list stage1_encoder\.onnx'),
    'checksum mismatch': (_flip_a_byte,
                          r'classifier\.onnx: sha256 mismatch: expected [0-9a-f]{64}, got'),
    'truncated file': (lambda m: (m / STAGE1_FILE).write_bytes(b'onnx'),
                       r'stage1_encoder\.onnx: 4 bytes, expected \d+'),
    'unknown format version': (
        lambda m: edit_metadata(m, lambda d: d.update(format_version=2)),
        r'metadata\.json: unknown format version 2 of iospstl-model; this code reads version 1'),
    'other format': (lambda m: edit_metadata(m, lambda d: d.update(format='onnx-zoo')),
                     r"expected format 'iospstl-model', got 'onnx-zoo'"),
    'wrong shape': (lambda m: rewrite_file(m, 'centroids.npy', np.zeros((4, 31), np.float32)),
                    r'centroids\.npy: expected float32 of shape \(4, 32\), got float32 of '
                    r'shape \(4, 31\)'),
    'wrong dtype': (lambda m: rewrite_file(m, 'feature_mean.npy', np.zeros(7500)),
                    r'feature_mean\.npy: expected float32 of shape \(7500,\), got float64'),
    'bank and centroids disagree (values)': (
        _other_centroids, r'bank/centroids\.npy: the bank and centroids\.npy disagree: .* '
                          'with different values'),
    'bank and centroids disagree (cluster count)': (
        _more_clusters, r'the bank and centroids\.npy disagree: bank centroids \(4, 32\), '
                        r'centroids\.npy \(5, 32\)'),
    'class count vs classifier output': (
        lambda m: edit_metadata(m, lambda d: d['classes'].pop()),
        r'42 class names for a classifier with 43 outputs'),
    'another joint layout': (
        lambda m: edit_metadata(m, lambda d: d['layout']['edges'].pop()),
        r'layout\.edges differs from the joint layout of iospstl_ros\.layout'),
    'missing key': (lambda m: edit_metadata(m, lambda d: d['imputation'].pop('n_neighbors')),
                    r"missing key 'imputation\.n_neighbors'"),
    'action ids of another class count': (
        lambda m: edit_metadata(m, lambda d: d['action_ids'].pop()),
        r'"action_ids": expected 43 NTU action ids \(one per class\), got 42'),
    'action id out of range': (
        lambda m: edit_metadata(m, lambda d: d['action_ids'].__setitem__(3, 121)),
        r'"action_ids": action id of class 3: expected an int in 1\.\.120 \(or 0 = no NTU '
        r'action\), got 121'),
    'an action id given twice': (
        lambda m: edit_metadata(m, lambda d: d['action_ids'].__setitem__(3, 1)),
        r'"action_ids": action id 1 belongs to classes 0 and 3; expected each NTU action at '
        'most once'),
}


@pytest.mark.slow
@pytest.mark.parametrize('case', sorted(BROKEN))
def test_loading_a_broken_model_directory_fails_with_one_clear_error(tiny, tmp_path, case):
    break_it, message = BROKEN[case]
    model = copy_model(tiny, tmp_path)
    break_it(model)
    with pytest.raises(ValueError, match=message):
        load_model_dir(model)


@pytest.mark.slow
def test_checksums_can_be_skipped_but_sizes_are_always_checked(tiny, tmp_path):
    model = copy_model(tiny, tmp_path)
    _flip_a_byte(model)
    assert load_model_dir(model, verify_checksums=False).num_classes == 43
    (model / CLASSIFIER_FILE).write_bytes(b'x')
    with pytest.raises(ValueError, match=r'classifier\.onnx: 1 bytes'):
        load_model_dir(model, verify_checksums=False)


@pytest.mark.slow
def test_skipping_the_empty_body_slot_is_not_the_same_function(tiny):
    """The pipeline pads one-body windows with a zero slot instead of encoding M = 1."""
    encoder = load_encoder(tiny['stage1'], 'cpu').eval()
    data, _, present = load_windows(tiny['imputed'], 'val')
    one_body = np.flatnonzero(~np.asarray(present)[:, :, 1].any(axis=1))[:8]
    x = torch.from_numpy(np.array(data[one_body], np.float32))
    assert (x[..., 1] == 0).all()
    with torch.no_grad():
        padded = encoder(x)
        alone = encoder(x[..., :1])
        empty = encoder(torch.zeros(1, 3, 50, 25, 1))
    assert empty.abs().max() > 0.01  # an all-zero slot has a non-zero feature
    assert (padded - alone).abs().max() > 1e-3
    torch.testing.assert_close((alone + empty) / 2, padded, atol=1e-6, rtol=0)
