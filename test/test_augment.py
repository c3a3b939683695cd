"""OPSTL augmentations, views, MATM and the CSM / ASM joint masks: literal checks."""

import math
import random

from iospstl_ros.layout import FLIP_PERMUTATION
import numpy as np
import pytest
import torch
from training.augment import (
    asm_joints, augment, bone, crop, csm_joints, frequency_degrees, input_view, matm, motion,
    random_rotate, random_spatial_flip, rotation_matrix, shear)


class ScriptedRandom:
    """A stand-in for ``random.Random`` that returns scripted draws and records the ranges."""

    def __init__(self, uniforms=(), ints=(), randoms=()):
        self.uniforms, self.ints, self.randoms = list(uniforms), list(ints), list(randoms)
        self.uniform_ranges, self.int_ranges = [], []

    def uniform(self, a, b):
        self.uniform_ranges.append((a, b))
        return self.uniforms.pop(0)

    def randint(self, a, b):
        self.int_ranges.append((a, b))
        return self.ints.pop(0)

    def random(self):
        return self.randoms.pop(0)


def point(xyz, T=1, V=25, M=1):
    """Build a batch (1, 3, T, V, M) holding the same 3-vector everywhere."""
    return torch.tensor(xyz, dtype=torch.float64)[None, :, None, None, None].expand(
        1, 3, T, V, M).clone()


def joint_ids(T=2, M=1):
    """Build a batch (1, 3, T, 25, M) whose x coordinate is the joint index."""
    x = torch.zeros(1, 3, T, 25, M)
    x[:, 0] = torch.arange(25, dtype=torch.float32)[None, None, :, None]
    return x


# ---------------------------------------------------------------------------- views


def test_motion_view_literal():
    x = torch.zeros(1, 3, 4, 25, 1)
    x[0, 0, :, 5, 0] = torch.tensor([1.0, 4.0, 9.0, 16.0])
    m = input_view(x, 'motion')
    assert m[0, 0, :, 5, 0].tolist() == [3.0, 5.0, 7.0, 0.0]
    assert torch.count_nonzero(m) == 3
    torch.testing.assert_close(motion(x), m)


def test_bone_view_literal():
    b = input_view(joint_ids(), 'bone')[0, 0, 0, :, 0]
    # bone[v1] = x[v1] - x[v2]: (0, 1) -> 0 - 1; (1, 20) -> 1 - 20; (21, 22) -> -1;
    # (22, 7) -> 15; (24, 11) -> 13; the centre 20 -> 0
    assert b[0] == -1 and b[1] == -19 and b[3] == 1 and b[21] == -1
    assert b[22] == 15 and b[24] == 13 and b[20] == 0
    assert torch.count_nonzero(bone(joint_ids())[:, 1:]) == 0


def test_joint_view_and_bad_view():
    x = torch.randn(2, 3, 5, 25, 2)
    assert input_view(x, 'joint') is x
    with pytest.raises(ValueError, match="view must be one of .*got 'angle'"):
        input_view(x, 'angle')
    with pytest.raises(ValueError, match=r'\(N, C, T, V, M\)'):
        input_view(x[0], 'joint')


# ---------------------------------------------------------------------------- crop


def test_crop_mirror_padding_and_shift():
    x = torch.arange(12, dtype=torch.float32)[None, None, :, None, None].expand(
        2, 3, 12, 25, 2).clone()
    # T = 12 -> pad 2: padded frames [1, 0, 0, 1, ..., 11, 11, 10]
    rng = ScriptedRandom(ints=[0, 4, 2])
    assert crop(x, rng)[0, 0, :, 0, 0].tolist() == [1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert crop(x, rng)[1, 2, :, 7, 1].tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 10]
    torch.testing.assert_close(crop(x, rng), x)
    assert rng.int_ranges == [(0, 4)] * 3
    big = torch.randn(3, 3, 50, 25, 2)
    cropped = crop(big, random.Random(0))
    assert cropped.shape == big.shape
    rng = ScriptedRandom(ints=[16])
    assert crop(big, rng).shape == big.shape and rng.int_ranges == [(0, 16)]


# ---------------------------------------------------------------------------- shear / rotate


def test_shear_known_vector():
    # off-diagonals in row-major order S01, S02, S10, S12, S20, S21
    rng = ScriptedRandom(uniforms=[0.5, 0.0, 0.0, 0.0, 0.0, -0.25])
    out = shear(point([1.0, 2.0, 3.0]), rng)
    # S = [[1, .5, 0], [0, 1, 0], [0, -.25, 1]]; x' = S^T x = (1, .5 + 2 - .75, 3)
    np.testing.assert_allclose(out[0, :, 0, 0, 0].numpy(), [1.0, 1.75, 3.0])
    assert rng.uniform_ranges == [(-1.0, 1.0)] * 6


def test_rotate_about_z_by_thirty_degrees():
    rng = ScriptedRandom(ints=[2], uniforms=[0.0, 0.0, 30.0])
    out = random_rotate(point([1.0, 0.0, 0.0]), rng)
    # Rz = [[c, s, 0], [-s, c, 0], [0, 0, 1]], x' = Rz x = (cos 30, -sin 30, 0)
    np.testing.assert_allclose(out[0, :, 0, 0, 0].numpy(), [0.8660254, -0.5, 0.0], atol=1e-7)
    assert rng.int_ranges == [(0, 2)]
    assert rng.uniform_ranges == [(0, 1.0), (0, 1.0), (0, 30.0)]


def test_rotate_applies_x_first_then_z():
    rng = ScriptedRandom(ints=[0], uniforms=[30.0, 0.0, 1.0])
    out = random_rotate(point([0.0, 1.0, 0.0]), rng)
    # Rx(30) (0, 1, 0) = (0, .8660254, -.5); Rz(1) of that = (sin1 * .8660254, cos1 * .8660254,
    # -.5) = (0.0151142, 0.8658935, -0.5); the other order would give z = -0.4999238
    np.testing.assert_allclose(out[0, :, 0, 0, 0].numpy(), [0.0151142, 0.8658935, -0.5],
                               atol=1e-6)
    assert rng.uniform_ranges == [(0, 30.0), (0, 1.0), (0, 1.0)]


def test_rotation_matrices_as_coded():
    c, s = math.cos(math.radians(10)), math.sin(math.radians(10))
    np.testing.assert_allclose(rotation_matrix(1, 10).numpy(),
                               [[c, 0, -s], [0, 1, 0], [s, 0, c]])
    with pytest.raises(ValueError, match='axis must be 0, 1 or 2'):
        rotation_matrix(3, 10)


def test_random_rotate_keeps_lengths_and_dtype():
    x = torch.randn(4, 3, 6, 25, 2)
    out = random_rotate(x, random.Random(3))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), x.norm(dim=1), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- flip


def test_spatial_flip_permutation():
    x = joint_ids()
    flipped = random_spatial_flip(x, ScriptedRandom(randoms=[0.49]))
    ids = flipped[0, 0, 0, :, 0].tolist()
    assert ids[4] == 8 and ids[8] == 4 and ids[21] == 23 and ids[24] == 22 and ids[20] == 20
    assert ids == list(FLIP_PERMUTATION)
    assert torch.equal(flipped[:, 1:], x[:, 1:])  # coordinates are not mirrored
    kept = random_spatial_flip(x, ScriptedRandom(randoms=[0.5]))
    assert torch.equal(kept, x)


def test_augment_shapes_and_reproducibility():
    x = torch.randn(3, 3, 50, 25, 2)
    a, b = augment(x, random.Random(7)), augment(x, random.Random(7))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, augment(x, random.Random(8)))


# ---------------------------------------------------------------------------- MATM


def motion_batch():
    """Build two samples of 50 frames; sample 0 moves fast over frames 5..14, sample 1 over 30..39.

    The y channel holds the frame index / 1000 (tiny motion) to identify frames afterwards.
    """
    x = torch.zeros(2, 3, 50, 25, 2)
    t = torch.arange(50, dtype=torch.float32)
    for n, start in enumerate((5, 30)):
        # x_{t+1} - x_t = 100 exactly for t in start..start+9
        x[n, 0] = ((t - start).clamp(0, 10) * 100)[:, None, None]
    x[:, 1] = (t / 1000)[None, :, None, None]
    return x


def frame_ids(out):
    return torch.round(out[:, 1, :, 0, 0] * 1000).long()


def test_matm_drops_the_high_motion_frames_and_keeps_order():
    out = matm(motion_batch(), rng=random.Random(0))
    assert out.shape == (2, 3, 30, 25, 2)
    ids = frame_ids(out)
    assert (ids[:, 1:] > ids[:, :-1]).all()
    assert not set(ids[0].tolist()) & set(range(5, 15))
    assert not set(ids[1].tolist()) & set(range(30, 40))
    # one random subset of the 40 kept positions, shared by the batch
    kept0 = [t for t in range(50) if not 5 <= t < 15]
    kept1 = [t for t in range(50) if not 30 <= t < 40]
    positions0 = [kept0.index(t) for t in ids[0].tolist()]
    positions1 = [kept1.index(t) for t in ids[1].tolist()]
    assert positions0 == positions1


def test_matm_batch_of_one_and_without_random_drop():
    x = motion_batch()[:1]
    out = matm(x, mask_frames=10, remain=40, rng=random.Random(0))
    assert frame_ids(out)[0].tolist() == [t for t in range(50) if not 5 <= t < 15]
    assert matm(x, rng=random.Random(1)).shape == (1, 3, 30, 25, 2)


def test_matm_rejects_bad_arguments():
    x = torch.randn(2, 3, 50, 25, 2)
    with pytest.raises(ValueError, match='remain <= T - mask_frames = 40'):
        matm(x, mask_frames=10, remain=41, rng=random.Random(0))
    with pytest.raises(ValueError, match='needs rng'):
        matm(x)


# ---------------------------------------------------------------------------- CSM / ASM


def test_csm_draws_from_the_degree_multiset():
    rng = random.Random(1)
    draws = [csm_joints(rng) for _ in range(2000)]
    assert all(len(d) == 8 and all(0 <= j < 25 for j in d) for d in draws)
    # joint 20 has 4 of 48 entries: P(drawn) = 1 - (40*39*38*37) / (48*47*46*45) = 0.5303;
    # joint 3 has 1 entry: P = 8 / 48 = 0.1667
    share20 = np.mean([20 in d for d in draws])
    share3 = np.mean([3 in d for d in draws])
    assert 0.50 < share20 < 0.56 and 0.14 < share3 < 0.20
    # positions without replacement: duplicates happen (about half the batches) but a joint
    # never appears more often than its degree
    duplicates = np.mean([len(set(d)) < 8 for d in draws])
    assert 0.45 < duplicates < 0.62
    assert max(d.count(20) for d in draws) <= 4 and max(d.count(3) for d in draws) == 1


def test_frequency_degrees_literal():
    B = np.zeros((6, 25), dtype=np.uint8)
    for joint in range(7):
        B[:joint, joint] = 1  # joint j occluded in j samples, counts 0..6
    # floor(c * 3 / 6.001 + 1) for c = 0..6: 1, 1.49, 1.99, 2.49, 2.99, 3.49, 3.99
    assert frequency_degrees(B).tolist() == [1, 1, 1, 2, 2, 3, 3] + [1] * 18
    assert frequency_degrees(torch.ones(3, 25, dtype=torch.uint8)).tolist() == [1] * 25
    with pytest.raises(ValueError, match=r'B_batch of shape \(b, 25\)'):
        frequency_degrees(np.zeros((4, 24)))


def test_asm_prefers_frequently_occluded_joints():
    B = np.zeros((16, 25), dtype=np.uint8)
    B[:, [3, 7, 11]] = 1  # degree 3 for these, 1 for the other 22: 31 entries
    asm_rng, csm_rng = random.Random(5), random.Random(5)
    asm = [asm_joints(torch.from_numpy(B), asm_rng) for _ in range(2000)]
    csm = [csm_joints(csm_rng, mask_joint=9) for _ in range(2000)]
    assert all(len(d) == 9 for d in asm)
    # ASM: P(3 drawn) = 1 - C(28, 9) / C(31, 9) = 0.657; CSM: 9 / 48 = 0.1875
    asm_share = np.mean([3 in d for d in asm])
    csm_share = np.mean([3 in d for d in csm])
    assert asm_share > 0.6 and csm_share < 0.23
    # a never-occluded joint keeps one entry of 31: P = 9 / 31 = 0.290
    assert 0.25 < np.mean([0 in d for d in asm]) < 0.33


def test_asm_without_occlusion_is_csm():
    B = np.zeros((8, 25), dtype=np.uint8)
    for seed in range(20):
        assert asm_joints(B, random.Random(seed)) == csm_joints(random.Random(seed), 9)
    with pytest.raises(ValueError, match=r'mask_joint must be in \[0, 48\]'):
        asm_joints(B, random.Random(0), mask_joint=49)
