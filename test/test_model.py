"""OPSTL networks: parameter count, graph, joint removal, Barlow Twins loss, FLOPs, ONNX."""

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from training.model import (
    barlow_twins_loss, BarlowTwinsHead, Classifier, count_parameters, dropout, EncoderConfig,
    flops_per_sample, normalize_digraph, spatial_adjacency, STGCNEncoder)

TINY = EncoderConfig(hidden_channels=4, hidden_dim=8)


def tiny_encoder(seed=0):
    torch.manual_seed(seed)
    return STGCNEncoder(TINY)


# ---------------------------------------------------------------------------- config / size


def test_default_parameter_count_is_the_reference_one():
    encoder = STGCNEncoder(EncoderConfig())
    assert count_parameters(encoder) == 821_380
    assert sum(p.numel() for p in encoder.edge_importance) == 10 * 3 * 25 * 25
    assert encoder.edge_importance[0].shape == (3, 25, 25)
    assert torch.equal(encoder.edge_importance[3].detach(), torch.ones(3, 25, 25))
    assert count_parameters(encoder.data_bn) == 150


def test_block_plan_follows_the_reference_table():
    plan = EncoderConfig().block_plan()
    assert [p[1] for p in plan] == [16, 16, 16, 16, 32, 32, 32, 64, 64, 256]
    assert [i + 1 for i, p in enumerate(plan) if p[2] == 2] == [5, 8]
    encoder = STGCNEncoder(EncoderConfig())
    kinds = [type(b.residual).__name__ for b in encoder.blocks]
    assert kinds == ['NoneType', 'Identity', 'Identity', 'Identity', 'Sequential',
                     'Identity', 'Identity', 'Sequential', 'Identity', 'Sequential']
    assert encoder.blocks[0].tcn[4].p == 0.0
    assert all(b.tcn[4].p == 0.5 for b in encoder.blocks[1:])


def test_config_round_trip_and_unknown_key():
    config = EncoderConfig(hidden_channels=8, dropout=0.1)
    assert EncoderConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match='unknown EncoderConfig keys'):
        EncoderConfig.from_dict({'hidden_channels': 8, 'hidden_size': 3})


def test_wrong_joint_count_is_rejected():
    with pytest.raises(ValueError, match='25 joints'):
        STGCNEncoder(EncoderConfig(num_joints=17))


# ---------------------------------------------------------------------------- graph


def test_normalize_digraph_divides_columns():
    A = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 2.0, 0.0]])
    expected = np.array([[0.5, 0.25, 0.0], [0.5, 0.25, 0.0], [0.0, 0.5, 0.0]])
    np.testing.assert_allclose(normalize_digraph(A), expected)


def test_spatial_partitions_by_hand():
    A = spatial_adjacency()
    assert A.shape == (3, 25, 25)
    # A0: self-loops only, divided by the degree incl. self-loop.
    np.testing.assert_array_equal(A[0] != 0, np.eye(25, dtype=bool))
    assert A[0, 20, 20] == pytest.approx(1 / 5)  # centre: 1, 2, 4, 8 + self
    assert A[0, 3, 3] == pytest.approx(1 / 2)  # head: neck + self
    assert A[0, 0, 0] == pytest.approx(1 / 4)  # spine base: 1, 12, 16 + self
    # edge (1, 20): the message 1 -> 20 (source farther from the centre) is in A1,
    # the message 20 -> 1 in A2; column w is divided by deg(w) + 1.
    assert A[1, 1, 20] == pytest.approx(1 / 5)
    assert A[2, 20, 1] == pytest.approx(1 / 3)
    assert A[2, 1, 20] == 0 and A[1, 20, 1] == 0
    # edge (0, 1): joint 0 is two hops from the centre, joint 1 one hop.
    assert A[1, 0, 1] == pytest.approx(1 / 3)
    assert A[2, 1, 0] == pytest.approx(1 / 4)
    # head (3) hangs off the neck (2).
    assert A[1, 3, 2] == pytest.approx(1 / 3)
    assert A[2, 2, 3] == pytest.approx(1 / 2)
    # the quirk: left hand tip (21) hangs off the left thumb (22).
    assert A[1, 21, 22] == pytest.approx(1 / 3)
    assert A[2, 22, 21] == pytest.approx(1 / 2)
    # tree: every edge once in A1 and once in A2, nothing else.
    assert (A[0] != 0).sum() == 25 and (A[1] != 0).sum() == 24 and (A[2] != 0).sum() == 24
    np.testing.assert_allclose(A.sum(axis=(0, 1)), np.ones(25), rtol=1e-6)


# ---------------------------------------------------------------------------- forward


def reference_forward(encoder, x, remain):
    """Run an independent eval-mode ST-GCN forward on the sub-graph of ``remain`` (oracle)."""
    N, C, T, V, M = x.shape
    bn = encoder.data_bn
    h = x.permute(0, 4, 3, 1, 2).reshape(N * M, V * C, T)
    h = (h - bn.running_mean[:, None]) / torch.sqrt(bn.running_var[:, None] + bn.eps)
    h = h * bn.weight[:, None] + bn.bias[:, None]
    h = h.reshape(N * M, V, C, T)[:, remain].permute(0, 2, 3, 1)
    sub = np.ix_(range(3), remain, remain)
    for block, importance in zip(encoder.blocks, encoder.edge_importance):
        A = (encoder.A * importance)[sub]
        gcn = F.conv2d(h, block.gcn.conv.weight, block.gcn.conv.bias)
        gcn = gcn.reshape(h.shape[0], 3, -1, h.shape[2], len(remain))
        agg = sum(gcn[:, k] @ A[k] for k in range(3))
        bn1, conv, bn2 = block.tcn[0], block.tcn[2], block.tcn[3]
        out = F.batch_norm(agg, bn1.running_mean, bn1.running_var, bn1.weight, bn1.bias)
        out = F.conv2d(F.relu(out), conv.weight, conv.bias, conv.stride, conv.padding)
        out = F.batch_norm(out, bn2.running_mean, bn2.running_var, bn2.weight, bn2.bias)
        if block.residual is not None:
            out = out + block.residual(h)
        h = F.relu(out)
    return h.mean(dim=(2, 3)).reshape(N, M, -1).mean(dim=1)


def randomised_eval_encoder():
    encoder = tiny_encoder(1)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.normal_(0, 0.3, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.2, generator=generator)
        for importance in encoder.edge_importance:
            importance.uniform_(0.0, 2.0, generator=generator)
    return encoder.eval()


def test_full_graph_matches_the_independent_forward():
    encoder = randomised_eval_encoder()
    x = torch.randn(3, 3, 20, 25, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference_forward(encoder, x, list(range(25)))
        torch.testing.assert_close(encoder(x), expected, rtol=1e-5, atol=1e-5)


def test_joint_removal_equals_the_reduced_graph():
    encoder = randomised_eval_encoder()
    x = torch.randn(3, 3, 20, 25, 2, generator=torch.Generator().manual_seed(4))
    ignore = [20, 3, 3, 7, 11, 24]  # duplicates allowed, order irrelevant
    remain = [v for v in range(25) if v not in {3, 7, 11, 20, 24}]
    with torch.no_grad():
        got = encoder(x, ignore)
        torch.testing.assert_close(got, reference_forward(encoder, x, remain),
                                   rtol=1e-5, atol=1e-5)
        # removal is not zeroing: the full-graph output differs
        assert not torch.allclose(got, encoder(x), atol=1e-3)
        # values at removed joints do not matter at all
        x2 = x.clone()
        x2[:, :, :, [3, 7, 11, 20, 24]] = 1e3
        torch.testing.assert_close(encoder(x2, ignore), got, rtol=1e-5, atol=1e-5)


def test_forward_shapes_any_length_and_batch_one():
    encoder = tiny_encoder()
    assert encoder(torch.randn(2, 3, 50, 25, 2)).shape == (2, 8)
    assert encoder(torch.randn(2, 3, 30, 25, 2), [1, 2]).shape == (2, 8)
    assert encoder.eval()(torch.randn(1, 3, 7, 25, 1)).shape == (1, 8)


def test_forward_rejects_bad_input():
    encoder = tiny_encoder()
    with pytest.raises(ValueError, match=r'\(N, C, T, V, M\)'):
        encoder(torch.randn(2, 3, 50, 25))
    with pytest.raises(ValueError, match='V=25'):
        encoder(torch.randn(2, 3, 50, 24, 2))
    with pytest.raises(ValueError, match='got 25'):
        encoder(torch.randn(2, 3, 50, 25, 2), [3, 25])
    with pytest.raises(ValueError, match='at least one must remain'):
        encoder(torch.randn(2, 3, 50, 25, 2), list(range(25)))


def test_onnx_export_with_dynamic_batch(tmp_path):
    if importlib.util.find_spec('onnx') is None:
        pytest.skip('onnx is not installed')
    import onnxruntime
    encoder = tiny_encoder().eval()
    path = str(tmp_path / 'encoder.onnx')
    torch.onnx.export(encoder, (torch.randn(2, 3, 50, 25, 2),), path, input_names=['x'],
                      output_names=['features'],
                      dynamic_axes={'x': {0: 'N'}, 'features': {0: 'N'}},
                      opset_version=17, dynamo=False)
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    for n in (1, 5):
        x = torch.randn(n, 3, 50, 25, 2)
        got = session.run(None, {'x': x.numpy()})[0]
        with torch.no_grad():
            np.testing.assert_allclose(got, encoder(x).numpy(), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- FLOPs


def test_flops_by_hand_for_a_one_frame_toy():
    # in 3, channels 1,1,1,1,2,2,2,4,4,2, T=1, V=25, K=3, kernel 9, one body:
    # per block  gcn cin*cout*3*25 + aggregation 3*cout*625 + tcn cout^2*9*25 (+ res cin*cout*25)
    # b1 225+1875+225=2325; b2-4 3*(75+1875+225)=6525; b5 150+3750+900+50=4850;
    # b6-7 2*(300+3750+900)=9900; b8 600+7500+3600+200=11900; b9 1200+7500+3600=12300;
    # b10 600+3750+900+200=5450; total 53250
    config = EncoderConfig(hidden_channels=1, hidden_dim=2)
    assert flops_per_sample(config, T=1, num_bodies=1) == 53_250
    assert flops_per_sample(config, T=1) == 106_500


@pytest.mark.parametrize('T', [50, 30])
def test_flops_match_torch_flop_counter(T):
    config = EncoderConfig()
    encoder = STGCNEncoder(config).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        encoder(torch.randn(1, 3, T, 25, 2))
    assert flops_per_sample(config, T) == counter.get_total_flops() // 2


# ---------------------------------------------------------------------------- Barlow Twins


def test_barlow_twins_loss_by_hand():
    z1 = torch.tensor([[1.0, 2.0, 0.0], [1.0, 0.0, 2.0]])
    z2 = torch.tensor([[1.0, 0.0, 1.0], [1.0, 2.0, 1.0]])
    # C = z1^T z2 / 2 = [[1, 1, 1], [1, 0, 1], [1, 2, 1]]
    # on-diagonal (1-1)^2 + (1-0)^2 + (1-1)^2 = 1; off-diagonal squares 1+1+1+1+1+4 = 9
    assert barlow_twins_loss(z1, z2, lambd=0.5).item() == pytest.approx(1 + 0.5 * 9)
    assert barlow_twins_loss(z1, z2).item() == pytest.approx(1.0018)
    with pytest.raises(ValueError, match='same shape'):
        barlow_twins_loss(z1, z2[:, :2])


def test_head_shapes_and_parameter_counts():
    head = BarlowTwinsHead(8, 16)
    z = head(torch.randn(5, 8))
    assert z.shape == (5, 16)
    # affine-free BN in train mode: every column has mean 0 and biased variance 1
    torch.testing.assert_close(z.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(0, unbiased=False), torch.ones(16), atol=1e-3, rtol=0)
    assert count_parameters(head) == 8 * 16 + 2 * 16 * 16 + 2 * 2 * 16
    with torch.device('meta'):
        paper = BarlowTwinsHead()
    # 256*6144 + 2*6144^2 + two affine BNs 4*6144
    assert count_parameters(paper) == 77_094_912
    assert paper.projector[-1].bias is None and paper.bn.weight is None


def test_loss_falls_with_a_few_optimiser_steps():
    torch.manual_seed(0)
    encoder = STGCNEncoder(EncoderConfig(hidden_channels=4, hidden_dim=8, dropout=0.0))
    head = BarlowTwinsHead(8, 32)
    params = list(encoder.parameters()) + list(head.parameters())
    optimiser = torch.optim.Adam(params, lr=1e-2)
    x = torch.randn(16, 3, 12, 25, 2)
    losses = []
    for _ in range(8):
        z1, z2 = head(encoder(x)), head(encoder(x[:, :, 2:], [3, 7]))
        loss = barlow_twins_loss(z1, z2)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]

# ---------------------------------------------------------------------------- classifier


def test_classifier_init_and_counts():
    torch.manual_seed(0)
    model = Classifier(STGCNEncoder(EncoderConfig()), 60)
    assert torch.count_nonzero(model.fc.bias) == 0
    # xavier normal: std sqrt(2 / (256 + 60)) = 0.0796
    assert model.fc.weight.std().item() == pytest.approx(0.0796, rel=0.05)
    assert count_parameters(model) == 821_380 + 256 * 60 + 60
    model.encoder.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 256 * 60 + 60
    assert model(torch.randn(2, 3, 50, 25, 2)).shape == (2, 60)
    with pytest.raises(ValueError, match='num_classes'):
        Classifier(tiny_encoder(), 0)


# ---------------------------------------------------------------------------- fast formulation


def textbook_train_forward(encoder, x, remain):
    """Train-mode ST-GCN forward as written in the reference (einsum, strided 1×1 residual)."""
    N, C, T, V, M = x.shape
    bn = encoder.data_bn
    h = x.permute(0, 4, 3, 1, 2).reshape(N * M, V * C, T)
    h = F.batch_norm(h, None, None, bn.weight, bn.bias, training=True)
    h = h.reshape(N * M, V, C, T).permute(0, 2, 3, 1)[..., remain]
    sub = np.ix_(range(3), remain, remain)
    for block, importance in zip(encoder.blocks, encoder.edge_importance):
        A = (encoder.A * importance)[sub]
        conv = block.gcn.conv
        gcn = F.conv2d(h, conv.weight, conv.bias)
        n, kc, t, v = gcn.shape
        gcn = torch.einsum('nkctv,kvw->nctw', gcn.reshape(n, 3, kc // 3, t, v), A)
        bn1, _, tconv, bn2, _ = block.tcn
        out = F.batch_norm(gcn, None, None, bn1.weight, bn1.bias, training=True)
        out = F.conv2d(F.relu(out), tconv.weight, tconv.bias, tconv.stride, tconv.padding)
        out = F.batch_norm(out, None, None, bn2.weight, bn2.bias, training=True)
        if isinstance(block.residual, torch.nn.Sequential):
            rconv, rbn = block.residual
            res = F.conv2d(h, rconv.weight, rconv.bias, rconv.stride)
            out = out + F.batch_norm(res, None, None, rbn.weight, rbn.bias, training=True)
        elif block.residual is not None:
            out = out + h
        h = F.relu(out)
    return h.mean(dim=(2, 3)).reshape(N, M, -1).mean(dim=1)


@pytest.mark.parametrize('ignore', [None, [20, 3, 3, 7, 11, 24]])
def test_train_mode_output_and_gradients_match_the_textbook_formulation(ignore):
    # float64, so that only the formulation could make a difference; channels 4, 8 and 16
    # exercise both graph-product paths (matmul below 16 channels, bmm from 16)
    torch.manual_seed(5)
    encoder = STGCNEncoder(EncoderConfig(hidden_channels=4, hidden_dim=8, dropout=0.0)).double()
    with torch.no_grad():
        for importance in encoder.edge_importance:
            importance.uniform_(0.0, 2.0)
    x = torch.randn(4, 3, 20, 25, 2, dtype=torch.float64)
    weights = torch.randn(4, 8, dtype=torch.float64)
    remain = [v for v in range(25) if v not in set(ignore or [])]
    params = list(encoder.parameters())
    got = encoder(x, ignore)
    expected = textbook_train_forward(encoder, x, remain)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    got_grads = torch.autograd.grad((got * weights).sum(), params)
    expected_grads = torch.autograd.grad((expected * weights).sum(), params)
    scale = max(g.abs().max().item() for g in expected_grads)
    for (name, _), g, e in zip(encoder.named_parameters(), got_grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12 * scale, msg=name)


def test_state_dict_keys_shapes_and_old_contiguous_checkpoints():
    encoder = STGCNEncoder(EncoderConfig())
    state = encoder.state_dict()
    assert state['blocks.0.gcn.conv.weight'].shape == (48, 3, 1, 1)
    assert state['blocks.4.residual.0.weight'].shape == (32, 16, 1, 1)
    assert state['blocks.9.tcn.2.weight'].shape == (256, 256, 9, 1)
    # A, data_bn, per block 2 convs + 2 BatchNorms + edge importance, 3 residual conv + BN
    assert len(state) == 1 + 5 + 10 * (2 + 2 + 5 + 5 + 1) + 3 * (2 + 5)
    # checkpoints written before the 1x1 weights got channels-last strides still load
    old = {key: value.contiguous() for key, value in tiny_encoder(3).state_dict().items()}
    encoder = tiny_encoder(4)
    encoder.load_state_dict(old)
    reference = tiny_encoder(3).eval()
    x = torch.randn(2, 3, 20, 25, 2)
    with torch.no_grad():
        torch.testing.assert_close(encoder.eval()(x), reference(x))


def test_dropout_keeps_half_scales_by_two_and_follows_the_torch_seed():
    x = torch.ones(64, 8, 50, 25).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    y = dropout(x, 0.5, training=True)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert set(torch.unique(y).tolist()) == {0.0, 2.0}
    # 640,000 fair coins: the kept fraction is 0.5 within 5 standard deviations (0.003)
    assert abs((y > 0).double().mean().item() - 0.5) < 0.003
    torch.manual_seed(0)
    assert torch.equal(dropout(x, 0.5, training=True), y)
    assert not torch.equal(dropout(x, 0.5, training=True), y)
    assert dropout(x, 0.5, training=False) is x and dropout(x, 0.0, training=True) is x
    # 256·p integral: the kept fraction is exact in expectation; 0.25 keeps 3 in 4
    assert abs((dropout(x, 0.25, True) > 0).double().mean().item() - 0.75) < 0.003
    # other p fall back to F.dropout, with its random stream
    torch.manual_seed(1)
    expected = F.dropout(x, 0.3, training=True)
    torch.manual_seed(1)
    assert torch.equal(dropout(x, 0.3, training=True), expected)


def test_dropout_gradient_is_the_mask_times_the_scale():
    x = torch.randn(4, 3, 10, 25, requires_grad=True)
    y = dropout(x, 0.5, training=True)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, (y != 0).float() * 2.0)
