"""training.convert_model: an old model directory rewritten in the joints-first form."""

import json
import os
import shutil

from helpers import rewrite_file, sha256
from iospstl_ros.model_dir import (
    CLASSIFIER_FILE, load_model_dir, METADATA_FILE, REQUIRED_FILES, STAGE1_FILE)
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from training.convert_model import main as convert, read_classifier, read_encoder
from training.evaluate import load_encoder
from training.export import export_onnx, load_classifier
from training.model import EncoderConfig
from training.windows import load_windows

#: Held-out windows of the conversions in these tests (the command's default is 200).
WINDOWS = '24'


def old_model(tiny, tmp_path):
    """Copy the tiny model, its graphs in the form of the exports before joints-first.

    The graphs are exported from the training modules as ``training.export`` did before, and
    the metadata loses the ``graph`` entries, like ``models/default`` before its conversion.
    """
    model = tmp_path / 'model'
    shutil.copytree(tiny['model'], model)
    encoder = load_encoder(tiny['stage1'], 'cpu').eval()
    classifier, _ = load_classifier(tiny['classifier'])
    for name, module, output in ((STAGE1_FILE, encoder, 'embedding'),
                                 (CLASSIFIER_FILE, classifier, 'logits')):
        export_onnx(module, str(tmp_path / name), output)
        rewrite_file(model, name, data=(tmp_path / name).read_bytes())
    meta = json.loads((model / METADATA_FILE).read_text())
    for entry in meta['models'].values():
        del entry['graph']
    (model / METADATA_FILE).write_text(json.dumps(meta))
    return model


def run_graph(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    return session.run(None, {'skeleton': x})[0]


@pytest.mark.slow
def test_the_weights_read_back_from_an_old_graph_give_the_checkpoint_function(tiny, tmp_path):
    model = old_model(tiny, tmp_path)
    meta = json.loads((model / METADATA_FILE).read_text())
    data, _, _ = load_windows(tiny['imputed'], 'val')
    x = torch.from_numpy(np.nan_to_num(np.array(data[:6], np.float32)))
    checkpoint_encoder = load_encoder(tiny['stage1'], 'cpu').eval()
    checkpoint_classifier, _ = load_classifier(tiny['classifier'])
    encoder = read_encoder(str(model / STAGE1_FILE), EncoderConfig.from_dict(
        meta['models']['stage1_encoder']['config']))
    classifier = read_classifier(str(model / CLASSIFIER_FILE), meta['models']['classifier'])
    with torch.no_grad():
        for rebuilt, original in ((encoder, checkpoint_encoder),
                                  (classifier, checkpoint_classifier)):
            expected = original(x)
            torch.testing.assert_close(rebuilt(x), expected,
                                       atol=1e-5 * float(expected.abs().max()), rtol=0)


@pytest.mark.slow
def test_conversion_rewrites_both_graphs_and_the_result_loads(tiny, tmp_path):
    model = old_model(tiny, tmp_path)
    before = {name: sha256(model / name) for name in REQUIRED_FILES}
    convert([str(model), '--windows', WINDOWS])
    loaded = load_model_dir(model)          # every sha256 and size verified
    meta = loaded.metadata
    assert {name: entry['graph'] for name, entry in meta['models'].items()} == {
        'stage1_encoder': 'joints-first', 'classifier': 'joints-first'}
    for name in REQUIRED_FILES:
        assert (sha256(model / name) != before[name]) == (name in (STAGE1_FILE,
                                                                   CLASSIFIER_FILE))
    conversion = meta['provenance']['conversion']
    assert conversion['command'] == f'python -m training.convert_model {model} --windows 24'
    assert conversion['previous_graphs'] == {STAGE1_FILE: before[STAGE1_FILE],
                                             CLASSIFIER_FILE: before[CLASSIFIER_FILE]}
    assert meta['provenance']['command'].startswith('python -m training.export ')
    parity = meta['parity']
    for name in (STAGE1_FILE, CLASSIFIER_FILE):
        assert 0 <= parity[name] <= 1e-4 and 0 <= parity[f'{name} read back'] <= 1e-4
        ops = {node.op_type for node in onnx.load(str(model / name)).graph.node}
        assert 'BatchNormalization' not in ops and 'Expand' not in ops and 'MatMul' in ops
    held_out = parity['held_out']
    assert held_out['windows'] == 24 and held_out['same_cluster'] == 24
    assert held_out['same_class'] + held_out['ties'] == 24
    # the independent oracle: the checkpoint's PyTorch forward on held-out windows
    data, _, _ = load_windows(tiny['imputed'], 'val')
    x = np.nan_to_num(np.array(data[:16], np.float32))
    checkpoint, _ = load_classifier(tiny['classifier'])
    with torch.no_grad():
        expected = checkpoint(torch.from_numpy(x)).numpy()
    got = run_graph(model / CLASSIFIER_FILE, x)
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert not [f for f in os.listdir(tmp_path) if f.startswith('.')]


@pytest.mark.slow
def test_a_converted_directory_is_not_converted_again(tiny):
    with pytest.raises(ValueError, match='already in the joints-first form .*nothing to '
                                         'convert'):
        convert([tiny['model'], '--windows', WINDOWS])


def _flip_a_byte(model, tiny):
    data = bytearray((model / STAGE1_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (model / STAGE1_FILE).write_bytes(bytes(data))


def _not_onnx(model, tiny):
    rewrite_file(model, STAGE1_FILE, data=b'not an onnx file')


def _joints_first_graph_declared_old(model, tiny):
    with open(os.path.join(tiny['model'], STAGE1_FILE), 'rb') as f:
        rewrite_file(model, STAGE1_FILE, data=f.read())


BROKEN = {
    'a changed file': (_flip_a_byte, r'stage1_encoder\.onnx: sha256 mismatch'),
    'not an ONNX file': (_not_onnx, r'stage1_encoder\.onnx: not a readable ONNX file'),
    'another graph form': (_joints_first_graph_declared_old,
                           r'stage1_encoder\.onnx: found 0 nodes named .*data_bn/'
                           r'BatchNormalization; expected a graph written by python -m '
                           r'training\.export before the joints-first form'),
}


@pytest.mark.slow
@pytest.mark.parametrize('case', sorted(BROKEN))
def test_a_damaged_or_unsupported_directory_is_refused_and_left_as_it_was(tiny, tmp_path, case):
    model = old_model(tiny, tmp_path)
    break_it, message = BROKEN[case]
    break_it(model, tiny)
    files = sorted(os.listdir(model))
    before = {name: (model / name).read_bytes() for name in files if name != 'bank'}
    with pytest.raises(ValueError, match=message):
        convert([str(model), '--windows', WINDOWS])
    assert sorted(os.listdir(model)) == files
    assert {name: (model / name).read_bytes() for name in before} == before
    assert not [f for f in os.listdir(model.parent) if f.startswith('.')]


def test_the_shipped_default_model_is_joints_first():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    model = load_model_dir(os.path.join(root, 'models', 'default'))
    meta = model.metadata
    assert [entry['graph'] for entry in meta['models'].values()] == ['joints-first'] * 2
    held_out = meta['parity']['held_out']
    for name in (STAGE1_FILE, CLASSIFIER_FILE):
        assert meta['parity'][name] <= 1e-5
    if 'conversion' in meta['provenance']:          # converted from an older export
        assert held_out['windows'] == 200 and held_out['same_cluster'] == 200
        assert held_out['same_class'] == 200
        for name in (STAGE1_FILE, CLASSIFIER_FILE):
            assert (meta['provenance']['conversion']['previous_graphs'][name]
                    != model.checksums[name])
    else:                                           # exported in the joints-first form
        for name in (STAGE1_FILE, CLASSIFIER_FILE):
            assert held_out[name]['windows'] >= 200 and held_out[name]['flips'] == 0
            assert held_out[name]['same'] == held_out[name]['windows']
