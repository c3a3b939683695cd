"""The joints-first export form (training.joints_first) against the training forward."""

import os

from iospstl_ros.layout import WINDOW_FRAMES
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from training.export import compare_decisions, export_onnx, held_out_check, ViewClassifier
from training.joints_first import joints_first, JointsFirstBlock
from training.model import Classifier, EncoderConfig, STGCNBlock, STGCNEncoder


def trained_like(module, seed=0):
    """Give every BatchNorm running statistics and affine values, and random edge importance.

    Fresh BatchNorms are the identity (mean 0, variance 1, weight 1, bias 0), which would let a
    wrong fold pass unnoticed.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(tensor, low, high):
        tensor.copy_(low + (high - low) * torch.rand(tensor.shape, generator=generator))

    with torch.no_grad():
        for child in module.modules():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                uniform(child.running_mean, -0.5, 0.5)
                uniform(child.running_var, 0.3, 2.0)
                uniform(child.weight, 0.5, 1.5)
                uniform(child.bias, -0.3, 0.3)
            elif isinstance(child, nn.Conv2d):
                uniform(child.bias, -0.2, 0.2)
        for importance in getattr(module, 'edge_importance', None) or []:
            uniform(importance, 0.5, 1.5)
    return module.eval()


def small_encoder(seed=0, **changes):
    torch.manual_seed(seed)
    config = EncoderConfig(**dict({'hidden_channels': 4, 'hidden_dim': 16}, **changes))
    return trained_like(STGCNEncoder(config), seed)


def skeletons(batch, bodies, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(0.0, 0.3, (batch, 3, WINDOW_FRAMES, 25, bodies))
                            .astype(np.float32))


def test_one_block_gives_the_hand_computed_values():
    # Two joints, one channel. A_0 = I, A_1 carries joint 1 -> 0... as columns: the message
    # from joint v to joint w is A[k, v, w].
    block = STGCNBlock(1, 1, residual=False)
    A = torch.tensor([[[1.0, 0.0], [0.0, 1.0]],
                      [[0.0, 1.0], [0.0, 0.0]],
                      [[0.0, 0.0], [1.0, 0.0]]])
    with torch.no_grad():
        block.gcn.conv.weight.copy_(torch.tensor([1.0, 10.0, 100.0]).reshape(3, 1, 1, 1))
        block.gcn.conv.bias.copy_(torch.tensor([0.5, 0.0, 0.0]))
        norm1, _, temporal, norm2, _ = block.tcn
        norm1.eps = norm2.eps = 0.0
        norm1.weight.fill_(2.0)
        norm1.bias.fill_(-1.0)
        temporal.weight.zero_()
        temporal.weight[0, 0, 4, 0] = 1.0          # the centre tap passes the frame through
        temporal.bias.zero_()
    block.eval()
    x = torch.tensor([1.0, 2.0]).reshape(1, 1, 1, 2)
    # joint 0: 1 * (1 + 0.5) + 10 * 0 + 100 * 2 = 201.5; joint 1: 1 * (2 + 0.5) + 10 * 1 = 12.5
    # then BatchNorm 2 x - 1, ReLU, identity temporal convolution, no residual, ReLU
    expected = torch.tensor([402.0, 24.0]).reshape(1, 1, 1, 2)
    with torch.no_grad():
        assert torch.equal(block(x, A), expected)
        fast = JointsFirstBlock(block, A)
        assert torch.equal(fast(x), expected)
    # A_cat[v, w * K + k] = A[k, v, w]; the bias map is 2 * 0.5 * colsum(A_0) - 1
    assert fast.aggregation.tolist() == [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                                         [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]]
    assert fast.bias_map.flatten().tolist() == [0.0, 0.0]
    assert fast.mix_weight.flatten().tolist() == [2.0, 20.0, 200.0]


@pytest.mark.parametrize('bodies', [1, 2])
@pytest.mark.parametrize('batch', [1, 3])
def test_the_encoder_matches_the_training_forward(batch, bodies):
    encoder = small_encoder()
    fast = joints_first(encoder, WINDOW_FRAMES)
    x = skeletons(batch, bodies, seed=batch)
    with torch.no_grad():
        expected = encoder(x)
        got = fast(x)
    assert got.shape == expected.shape == (batch, 16)
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(got, expected, atol=2e-6 * float(expected.abs().max()), rtol=0)


def test_no_edge_importance_and_a_last_block_narrower_than_its_input_match():
    encoder = small_encoder(seed=1, edge_importance=False, hidden_dim=8)
    x = skeletons(2, 2, seed=4)
    with torch.no_grad():
        expected = encoder(x)
        got = joints_first(encoder, WINDOW_FRAMES)(x)
    torch.testing.assert_close(got, expected, atol=2e-6 * float(expected.abs().max()), rtol=0)


@pytest.mark.parametrize('view', ['joint', 'motion', 'bone'])
def test_the_classifier_matches_the_training_forward_in_every_view(view):
    torch.manual_seed(2)
    classifier = Classifier(small_encoder(seed=2), 5)
    model = ViewClassifier(trained_like(classifier, seed=2), view).eval()
    fast = joints_first(model, WINDOW_FRAMES)
    x = skeletons(3, 2, seed=9)
    with torch.no_grad():
        expected = model(x)
        got = fast(x)
    assert got.shape == (3, 5)
    torch.testing.assert_close(got, expected, atol=2e-6 * float(expected.abs().max()), rtol=0)


def test_other_modules_are_refused():
    with pytest.raises(ValueError, match='expected an STGCNEncoder or a ViewClassifier, got '
                                         'Linear'):
        joints_first(nn.Linear(2, 2), WINDOW_FRAMES)
    with pytest.raises(ValueError, match="view: expected one of .*, got 'depth'"):
        torch.manual_seed(0)
        joints_first(ViewClassifier(Classifier(small_encoder(), 3), 'depth'), WINDOW_FRAMES)


def test_the_onnx_graph_has_no_layout_chains_and_matches_pytorch(tmp_path):
    torch.manual_seed(3)
    model = ViewClassifier(trained_like(Classifier(small_encoder(seed=3), 7), seed=3)).eval()
    path = str(tmp_path / 'classifier.onnx')
    export_onnx(joints_first(model, WINDOW_FRAMES), path, 'logits')
    graph = onnx.load(path).graph
    ops = [node.op_type for node in graph.node]
    for op in ('Expand', 'Slice', 'BatchNormalization', 'Where', 'ConstantOfShape'):
        assert op not in ops
    assert ops.count('MatMul') == 10 and ops.count('Conv') == 10 + 10 + 2
    assert ops.count('Transpose') == 1          # the input, once
    (shape,) = [node for node in graph.node if node.op_type == 'Shape']
    assert list(shape.input) == ['skeleton']   # only the body axis of the input is read
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    for batch, bodies in ((1, 2), (3, 2), (2, 1)):
        x = skeletons(batch, bodies, seed=batch + bodies)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {'skeleton': x.numpy()})[0]
        np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max(), rtol=0)
    assert os.path.getsize(path) < 200_000


def test_the_held_out_check_compares_decisions_and_refuses_other_weights(tmp_path):
    torch.manual_seed(4)
    model = ViewClassifier(trained_like(Classifier(small_encoder(seed=4), 6), seed=4)).eval()
    path = str(tmp_path / 'classifier.onnx')
    export_onnx(joints_first(model, WINDOW_FRAMES), path, 'logits')
    x = skeletons(40, 2, seed=5).numpy()
    figures = held_out_check(model, path, x, 1e-4)
    assert figures['windows'] == 40 and figures['same'] == 40 and figures['flips'] == 0
    assert 0 <= figures['max_difference'] <= 1e-5
    torch.manual_seed(5)
    other = ViewClassifier(trained_like(Classifier(small_encoder(seed=5), 6), seed=5)).eval()
    with pytest.raises(ValueError, match=r'ONNX Runtime and PyTorch give a different class on '
                                         r'\d+ of 40 held-out windows'):
        held_out_check(other, path, x, 1e-4)
    # clusters: the nearest of the centroids, here the embeddings of four of the windows
    encoder = small_encoder(seed=6)
    path = str(tmp_path / 'stage1.onnx')
    export_onnx(joints_first(encoder, WINDOW_FRAMES), path, 'embedding')
    with torch.no_grad():
        centroids = encoder(torch.from_numpy(x[:4])).numpy()
    figures = held_out_check(encoder, path, x, 1e-4, centroids)
    assert figures['same'] + figures['ties'] == 40
    assert held_out_check(encoder, path, x[:0], 1e-4)['windows'] == 0


def test_decisions_that_differ_are_ties_only_within_the_tolerance():
    expected = np.array([[1.0, 0.99995, -3.0], [2.0, 0.0, 1.0], [0.0, 5.0, 1.0]])
    got = np.array([[0.99995, 1.0, -3.0], [0.0, 2.0, 1.0], [0.0, 5.00002, 1.0]])
    # row 0: margin 5e-5 <= 2 * 1e-4 * 5 (the scale is the largest output, 5): a tie;
    # row 1: a margin of 1 swapped: a flip; row 2: the same class
    assert compare_decisions(expected, got, 1e-4) == {
        'windows': 3, 'same': 1, 'ties': 1, 'flips': 1, 'max_difference': 2.0 / 5.0}
    # clusters: nearest of the centroids (0, 0) and (1, 0); 0.5 is the boundary
    centroids = np.array([[0.0, 0.0], [1.0, 0.0]])
    figures = compare_decisions(np.array([[0.49999, 0.0], [0.2, 0.0]]),
                                np.array([[0.50001, 0.0], [0.8, 0.0]]), 1e-4, centroids)
    assert (figures['same'], figures['ties'], figures['flips']) == (0, 1, 1)
    with pytest.raises(ValueError, match=r'expected two \(n, D\) arrays of one shape'):
        compare_decisions(np.zeros((2, 3)), np.zeros((3, 3)), 1e-4)
