"""Tests of iospstl_ros.preprocess: literal hand-worked values and independent oracles."""

import math

from iospstl_ros.layout import CENTER_JOINT, LEFT_SHOULDER, RIGHT_SHOULDER
from iospstl_ros.preprocess import (
    bone_occlusion, bone_stream, fill_occluded, joint_stream, motion_occlusion, motion_stream,
    preprocess_batch, preprocess_sequence, stream, stream_occlusion)
import numpy as np
import pytest

V = 25
NAN = np.nan


def blank(frames, bodies=1):
    """Zero skeletons, nothing occluded, every body present."""
    return (np.zeros((3, frames, V, bodies)), np.zeros((frames, V, bodies), bool),
            np.ones((frames, bodies), bool))


def random_visible(rng, frames, bodies=2):
    """Fully visible, plausible skeletons (shoulders roughly left/right of the centre)."""
    xyz = rng.normal(scale=0.3, size=(3, frames, V, bodies))
    xyz[:, :, LEFT_SHOULDER] += np.array([-0.2, 0.0, 0.05])[:, None, None]
    xyz[:, :, RIGHT_SHOULDER] += np.array([0.2, 0.0, -0.05])[:, None, None]
    xyz[2] += 3.0
    return xyz, np.zeros((frames, V, bodies), bool), np.ones((frames, bodies), bool)


# ---------------------------------------------------------------- relative coordinates


def test_relative_coordinates_two_frames():
    xyz, occluded, present = blank(2)
    xyz[:, 0, CENTER_JOINT, 0] = [1.0, 2.0, 3.0]
    xyz[:, 0, 0, 0] = [2.0, 2.0, 2.0]
    xyz[:, 1, CENTER_JOINT, 0] = [0.0, 0.0, 1.0]
    xyz[:, 1, 0, 0] = [0.5, 1.0, 1.0]
    xyz[:, 1, 3, 0] = 99.0
    occluded[1, 3, 0] = True
    out = preprocess_sequence(xyz, occluded, present, window=2, align_shoulders=False)
    assert out.data.dtype == np.float32 and out.data.shape == (3, 2, V, 1)
    np.testing.assert_allclose(out.data[:, 0, 0, 0], [1.0, 0.0, -1.0])
    np.testing.assert_allclose(out.data[:, 1, 0, 0], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(out.data[:, :, CENTER_JOINT, 0], 0.0)
    # every other joint sits at 0 in camera space, so relative = -centre
    np.testing.assert_allclose(out.data[:, 0, 5, 0], [-1.0, -2.0, -3.0])
    np.testing.assert_allclose(out.data[:, 1, 5, 0], [0.0, 0.0, -1.0])
    assert np.isnan(out.data[:, 1, 3, 0]).all()
    assert out.occluded[1, 3, 0] and out.occluded.sum() == 1
    assert out.present.all()


# ---------------------------------------------------------------- resampling


def test_resample_four_to_two():
    # s = (i + 0.5) * 4 / 2 - 0.5 = 0.5, 2.5
    xyz, occluded, present = blank(4)
    xyz[0, :, 0, 0] = [0.0, 1.0, 3.0, 7.0]
    out = preprocess_sequence(xyz, occluded, present, window=2, align_shoulders=False)
    np.testing.assert_allclose(out.data[0, :, 0, 0], [0.5, 5.0])
    np.testing.assert_allclose(out.data[1:, :, 0, 0], 0.0)


def test_resample_two_to_four():
    # s = (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clipped 0, 0.25, 0.75, 1
    xyz, occluded, present = blank(2)
    xyz[0, :, 0, 0] = [0.0, 4.0]
    xyz[1, :, 0, 0] = [-2.0, 2.0]
    out = preprocess_sequence(xyz, occluded, present, window=4, align_shoulders=False)
    np.testing.assert_allclose(out.data[0, :, 0, 0], [0.0, 1.0, 3.0, 4.0])
    np.testing.assert_allclose(out.data[1, :, 0, 0], [-2.0, -1.0, 1.0, 2.0])


def test_resample_propagates_occlusion_four_to_two():
    xyz, occluded, present = blank(4)
    occluded[1, 0, 0] = True   # frame 1 feeds output 0 (weights 0.5 / 0.5 on frames 0, 1)
    occluded[3, 7, 0] = True   # frame 3 feeds output 1 (frames 2, 3)
    out = preprocess_sequence(xyz, occluded, present, window=2, align_shoulders=False)
    np.testing.assert_array_equal(out.occluded[:, 0, 0], [True, False])
    np.testing.assert_array_equal(out.occluded[:, 7, 0], [False, True])
    assert out.occluded.sum() == 2
    assert np.isnan(out.data[:, 0, 0, 0]).all() and np.isnan(out.data[:, 1, 7, 0]).all()
    np.testing.assert_allclose(out.data[:, 1, 0, 0], 0.0)
    assert np.isnan(out.data).sum() == 6


def test_resample_propagates_occlusion_two_to_four():
    xyz, occluded, present = blank(2)
    occluded[1, 0, 0] = True
    out = preprocess_sequence(xyz, occluded, present, window=4, align_shoulders=False)
    # output 0 reads frame 0 only (s = 0); the others give frame 1 a non-zero weight
    np.testing.assert_array_equal(out.occluded[:, 0, 0], [False, True, True, True])


def test_resample_zero_weight_neighbour_does_not_propagate():
    # 5 -> 3 frames: s = 1/3, 2 (exactly), 11/3. Output 1 reads frame 2 alone.
    xyz, occluded, present = blank(5, bodies=2)
    occluded[3, 0, 0] = True
    present[3, 1] = False
    out = preprocess_sequence(xyz, occluded, present, window=3, align_shoulders=False)
    np.testing.assert_array_equal(out.occluded[:, 0, 0], [False, False, True])
    np.testing.assert_array_equal(out.present[:, 1], [True, True, False])
    np.testing.assert_array_equal(out.present[:, 0], [True, True, True])


def test_one_frame_gives_window_copies():
    xyz, occluded, present = blank(1)
    xyz[:, 0, 0, 0] = [1.0, 2.0, 3.0]
    occluded[0, 9, 0] = True
    out = preprocess_sequence(xyz, occluded, present, align_shoulders=False)
    assert out.data.shape == (3, 50, V, 1)
    np.testing.assert_allclose(out.data[:, :, 0, 0], np.tile([[1.0], [2.0], [3.0]], 50))
    assert out.occluded[:, 9, 0].all() and out.occluded.sum() == 50
    assert out.present.all()


def test_invalid_frames_are_dropped():
    xyz, occluded, present = blank(4)
    xyz[0, :, 0, 0] = [1.0, 2.0, 99.0, 3.0]
    present[2] = False
    out = preprocess_sequence(xyz, occluded, present, window=3, align_shoulders=False)
    np.testing.assert_allclose(out.data[0, :, 0, 0], [1.0, 2.0, 3.0])
    assert out.present.all()


def test_every_frame_invalid_raises():
    xyz, occluded, present = blank(3, bodies=2)
    present[:] = False
    with pytest.raises(ValueError, match='at least one frame with a present body'):
        preprocess_sequence(xyz, occluded, present)


def test_zero_frames_raises():
    xyz, occluded, present = blank(0)
    with pytest.raises(ValueError, match='got a sequence of 0 frames'):
        preprocess_sequence(xyz, occluded, present)


def test_absent_second_body_stays_zero():
    xyz, occluded, present = blank(3, bodies=2)
    xyz[:, :, :, 0] = 1.0
    xyz[:, :, :, 1] = NAN   # garbage where the body is absent
    occluded[:, 4, 1] = True
    present[:, 1] = False
    out = preprocess_sequence(xyz, occluded, present, window=5)
    assert not out.present[:, 1].any() and out.present[:, 0].all()
    np.testing.assert_array_equal(out.data[..., 1], 0.0)
    assert not out.occluded.any()


def test_body_absent_in_some_frames():
    xyz, occluded, present = blank(4, bodies=2)
    xyz[0, :, 0, 1] = 5.0
    present[1, 1] = False
    out = preprocess_sequence(xyz, occluded, present, window=2, align_shoulders=False)
    # output 0 mixes frames 0 and 1: body 1 is absent in frame 1, so absent there
    np.testing.assert_array_equal(out.present[:, 1], [False, True])
    np.testing.assert_array_equal(out.data[:, 0, :, 1], 0.0)
    np.testing.assert_allclose(out.data[0, 1, 0, 1], 5.0)


# ---------------------------------------------------------------- centre estimation


def test_centre_occluded_in_middle_frame_is_interpolated():
    xyz, occluded, present = blank(3)
    xyz[:, 0, CENTER_JOINT, 0] = [0.0, 0.0, 0.0]
    xyz[:, 1, CENTER_JOINT, 0] = [100.0, 100.0, 100.0]
    xyz[:, 2, CENTER_JOINT, 0] = [2.0, 4.0, 6.0]
    occluded[1, CENTER_JOINT, 0] = True
    xyz[:, 1, 0, 0] = [1.0, 2.0, 4.0]
    out = preprocess_sequence(xyz, occluded, present, window=3, align_shoulders=False)
    # estimated centre in frame 1: (1, 2, 3)
    np.testing.assert_allclose(out.data[:, 1, 0, 0], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(out.data[:, 1, 5, 0], [-1.0, -2.0, -3.0])
    assert np.isnan(out.data[:, 1, CENTER_JOINT, 0]).all()
    assert out.occluded[1, CENTER_JOINT, 0] and out.occluded.sum() == 1
    np.testing.assert_allclose(out.data[:, 2, 5, 0], [-2.0, -4.0, -6.0])


def test_centre_held_before_first_visible_frame():
    xyz, occluded, present = blank(3)
    xyz[:, 1, CENTER_JOINT, 0] = [1.0, 1.0, 1.0]
    xyz[:, 2, CENTER_JOINT, 0] = [3.0, 3.0, 3.0]
    occluded[0, CENTER_JOINT, 0] = True
    out = preprocess_sequence(xyz, occluded, present, window=3, align_shoulders=False)
    np.testing.assert_allclose(out.data[:, 0, 0, 0], [-1.0, -1.0, -1.0])


def test_centre_interpolated_in_time_across_dropped_frame():
    # frames 0, 1, 3 hold the body; frame 2 is dropped. The centre, visible at frames 0 and 3,
    # is interpolated at time 1 (1/3 of the way), not at the middle of the kept frames.
    xyz, occluded, present = blank(4)
    xyz[:, 3, CENTER_JOINT, 0] = [3.0, 0.0, 0.0]
    occluded[1, CENTER_JOINT, 0] = True
    xyz[:, 1, 0, 0] = [1.0, 0.0, 0.0]
    present[2] = False
    out = preprocess_sequence(xyz, occluded, present, window=3, align_shoulders=False)
    np.testing.assert_allclose(out.data[:, 1, 0, 0], [0.0, 0.0, 0.0], atol=1e-7)


def test_centre_never_visible_uses_shoulder_midpoint():
    xyz, occluded, present = blank(2)
    occluded[:, CENTER_JOINT, 0] = True
    xyz[:, 0, LEFT_SHOULDER, 0] = [0.0, 1.0, 0.0]
    xyz[:, 0, RIGHT_SHOULDER, 0] = [2.0, 1.0, 0.0]
    occluded[1, LEFT_SHOULDER, 0] = True   # frame 1 holds the midpoint of frame 0
    xyz[:, 1, RIGHT_SHOULDER, 0] = [5.0, 5.0, 5.0]
    xyz[:, 1, 0, 0] = [1.0, 0.0, 0.0]
    out = preprocess_sequence(xyz, occluded, present, window=2, align_shoulders=False)
    np.testing.assert_allclose(out.data[:, 0, LEFT_SHOULDER, 0], [-1.0, 0.0, 0.0])
    np.testing.assert_allclose(out.data[:, 0, RIGHT_SHOULDER, 0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(out.data[:, 1, 0, 0], [0.0, -1.0, 0.0])
    np.testing.assert_allclose(out.data[:, 1, RIGHT_SHOULDER, 0], [4.0, 4.0, 5.0])
    assert np.isnan(out.data[:, :, CENTER_JOINT, 0]).all()
    assert np.isnan(out.data[:, 1, LEFT_SHOULDER, 0]).all()
    assert out.occluded.sum() == 3


def test_no_reference_point_makes_body_fully_occluded():
    xyz, occluded, present = blank(3, bodies=2)
    occluded[:, CENTER_JOINT, 0] = True
    occluded[:, LEFT_SHOULDER, 0] = True
    xyz[:, :, :, 1] = 2.0
    out = preprocess_sequence(xyz, occluded, present, window=4)
    assert np.isnan(out.data[..., 0]).all()
    assert out.occluded[..., 0].all() and out.present.all()
    # the other body is unaffected
    assert not out.occluded[..., 1].any()
    np.testing.assert_allclose(out.data[..., 1], 0.0)


def test_non_finite_visible_joint_raises():
    xyz, occluded, present = blank(3)
    xyz[1, 2, 7, 0] = np.inf
    with pytest.raises(ValueError, match='finite coordinates at visible joints.*frame 2, '
                                         'joint 7, body 0'):
        preprocess_sequence(xyz, occluded, present)


# ---------------------------------------------------------------- shoulder alignment


def _shoulders_along(xyz, t, z_sign):
    xyz[:, t, LEFT_SHOULDER, 0] = [0.0, 0.0, -0.5 * z_sign]
    xyz[:, t, RIGHT_SHOULDER, 0] = [0.0, 0.0, 0.5 * z_sign]


@pytest.mark.parametrize('z_sign', [1.0, -1.0])
def test_shoulders_along_z_are_rotated_onto_plus_x(z_sign):
    xyz, occluded, present = blank(1)
    _shoulders_along(xyz, 0, z_sign)
    xyz[:, 0, 0, 0] = [1.0, 0.0, 0.0]
    xyz[:, 0, 3, 0] = [0.0, 2.0, 0.0]
    out = preprocess_sequence(xyz, occluded, present, window=2)
    for t in range(2):
        np.testing.assert_allclose(out.data[:, t, RIGHT_SHOULDER, 0], [0.5, 0, 0], atol=1e-7)
        np.testing.assert_allclose(out.data[:, t, LEFT_SHOULDER, 0], [-0.5, 0, 0], atol=1e-7)
        # theta = -90 deg (z_sign +1): x' = -sin * z = 0, z' = sin * x = -1; +90 deg: z' = +1
        np.testing.assert_allclose(out.data[:, t, 0, 0], [0.0, 0.0, -z_sign], atol=1e-7)
        np.testing.assert_allclose(out.data[:, t, 3, 0], [0.0, 2.0, 0.0], atol=1e-7)


def test_sign_chosen_once_per_sequence_zero_sum_negates():
    # v = +z then -z: both arccos give 90 deg; the z sum is 0 (>= 0), so both become -90 deg
    # and frame 1, whose vector disagrees with the sequence, lands on -x as in the reference.
    xyz, occluded, present = blank(2)
    _shoulders_along(xyz, 0, 1.0)
    _shoulders_along(xyz, 1, -1.0)
    out = preprocess_sequence(xyz, occluded, present, window=2)
    np.testing.assert_allclose(out.data[:, 0, RIGHT_SHOULDER, 0], [0.5, 0, 0], atol=1e-7)
    np.testing.assert_allclose(out.data[:, 1, RIGHT_SHOULDER, 0], [-0.5, 0, 0], atol=1e-7)


def test_frame_without_shoulders_takes_interpolated_angle():
    xyz, occluded, present = blank(4)
    _shoulders_along(xyz, 0, 1.0)
    xyz[:, 2, LEFT_SHOULDER, 0] = [0.0, 0.0, 0.0]
    xyz[:, 2, RIGHT_SHOULDER, 0] = [1.0, 0.0, 0.0]
    occluded[1, RIGHT_SHOULDER, 0] = True
    occluded[3, LEFT_SHOULDER, 0] = True
    xyz[:, :, 0, 0] = [[1.0], [0.0], [0.0]]
    out = preprocess_sequence(xyz, occluded, present, window=4)
    # frame 0: v = +z -> theta0 = -pi/2; frame 2: v = +x, sum of v_z = 1 >= 0 ->
    # theta2 = -arccos(1 / (1 + 1e-4)); frame 1 takes the mean, frame 3 holds theta2.
    theta0 = -math.pi / 2
    theta2 = -math.acos(1.0 / (1.0 + 1e-4))
    for t, theta in enumerate([theta0, 0.5 * (theta0 + theta2), theta2, theta2]):
        # R(theta) (1, 0, 0) = (cos, 0, sin)
        np.testing.assert_allclose(out.data[:, t, 0, 0], [math.cos(theta), 0, math.sin(theta)],
                                   atol=1e-6)


def test_no_shoulder_pair_means_no_rotation():
    xyz, occluded, present = blank(2)
    _shoulders_along(xyz, 0, 1.0)
    _shoulders_along(xyz, 1, 1.0)
    occluded[0, LEFT_SHOULDER, 0] = True
    occluded[1, RIGHT_SHOULDER, 0] = True
    xyz[:, :, 0, 0] = [[1.0], [0.0], [2.0]]
    out = preprocess_sequence(xyz, occluded, present, window=2)
    np.testing.assert_allclose(out.data[:, :, 0, 0], [[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]])


def _reference_parallel_skeleton(person):
    """Loop transcription of CrosSCLR's ``parallel_skeleton`` on (3, T, 25)."""
    vec = person[:, :, 8] - person[:, :, 4]
    vec[1, :] = 0
    l2_norm = np.sqrt(np.sum(np.square(vec), axis=0))
    thetas = np.arccos(vec[0, :] / (l2_norm + 0.0001)) * (180 / np.pi)
    if np.sum(vec[2, :]) >= 0:
        thetas = -thetas
    out = np.zeros_like(person)
    for t in range(person.shape[1]):
        theta = thetas[t] * np.pi / 180
        tm = np.zeros((3, 3))
        tm[0, 0] = np.cos(theta)
        tm[0, 2] = -np.sin(theta)
        tm[1, 1] = 1
        tm[2, 0] = np.sin(theta)
        tm[2, 2] = np.cos(theta)
        for v in range(person.shape[2]):
            out[:, t, v] = np.dot(tm, person[:, t, v])
    return out


def _reference_resize(x, window):
    """Loop transcription of cv2.resize INTER_LINEAR along axis 1 of (3, L, 25, M)."""
    length = x.shape[1]
    out = np.zeros((x.shape[0], window) + x.shape[2:])
    for i in range(window):
        s = min(max((i + 0.5) * length / window - 0.5, 0.0), length - 1)
        lo = int(math.floor(s))
        hi = min(lo + 1, length - 1)
        out[:, i] = (1 - (s - lo)) * x[:, lo] + (s - lo) * x[:, hi]
    return out


@pytest.mark.parametrize('frames', [1, 37, 50, 83])
def test_matches_reference_pipeline_on_visible_data(frames):
    rng = np.random.default_rng(frames)
    xyz, occluded, present = random_visible(rng, frames)
    relative = xyz - xyz[:, :, CENTER_JOINT:CENTER_JOINT + 1]
    resized = _reference_resize(relative, 50)
    expected = np.stack([_reference_parallel_skeleton(resized[..., m]) for m in range(2)], -1)
    out = preprocess_sequence(xyz.astype(np.float32), occluded, present)
    np.testing.assert_allclose(out.data, expected, atol=1e-5)
    unrotated = preprocess_sequence(xyz, occluded, present, align_shoulders=False)
    np.testing.assert_allclose(unrotated.data, resized, atol=1e-5)
    assert not out.occluded.any() and out.present.all()


def test_resize_matches_torch_linear_interpolation():
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(5)
    for frames, window in [(37, 50), (120, 50), (3, 7)]:
        xyz, occluded, present = random_visible(rng, frames)
        relative = xyz - xyz[:, :, CENTER_JOINT:CENTER_JOINT + 1]
        series = torch.from_numpy(np.moveaxis(relative, 1, -1).reshape(1, -1, frames).copy())
        resized = torch.nn.functional.interpolate(series, size=window, mode='linear',
                                                  align_corners=False).numpy()
        expected = np.moveaxis(resized.reshape(3, V, 2, window), -1, 1)
        out = preprocess_sequence(xyz, occluded, present, window, align_shoulders=False)
        np.testing.assert_allclose(out.data, expected, atol=1e-5)


# ---------------------------------------------------------------- batch


def _batch(rng, n=5, frames=40):
    data = np.zeros((n, 3, frames, V, 2), np.float32)
    occluded = np.zeros((n, frames, V, 2), bool)
    present = np.zeros((n, frames, 2), bool)
    num_frames = np.array([40, 1, 17, 33, 8], np.int32)[:n]
    for i in range(n):
        t = num_frames[i]
        xyz, _, _ = random_visible(rng, t)
        occ = rng.random((t, V, 2)) < 0.15
        pres = np.ones((t, 2), bool)
        pres[:, 1] = i % 2 == 0
        if t > 3:
            pres[t // 2] = False
        occ &= pres[:, None, :]
        xyz = np.where(pres[:, None, :], xyz, 0.0)
        data[i, :, :t] = np.where(occ, np.nan, xyz)
        occluded[i, :t], present[i, :t] = occ, pres
    return data, occluded, present, num_frames


def test_batch_equals_per_sample(tmp_path):
    rng = np.random.default_rng(11)
    arrays = _batch(rng)
    paths = []
    for name, array in zip(('data', 'occluded', 'present'), arrays[:3]):
        paths.append(tmp_path / f'{name}.npy')
        np.save(paths[-1], array)
    mapped = [np.load(path, mmap_mode='r') for path in paths]
    n = len(arrays[3])
    out = (np.lib.format.open_memmap(tmp_path / 'out_data.npy', 'w+', np.float32,
                                     (n, 3, 50, V, 2)),
           np.zeros((n, 50, V, 2), bool), np.zeros((n, 50, 2), bool))
    done = []
    result = preprocess_batch(*mapped, arrays[3], out=out, chunk_size=2, progress=done.append)
    assert done == [2, 2, 1]
    assert result.data is out[0]
    for i in range(n):
        t = arrays[3][i]
        single = preprocess_sequence(arrays[0][i, :, :t], arrays[1][i, :t], arrays[2][i, :t])
        np.testing.assert_array_equal(result.data[i], single.data)
        np.testing.assert_array_equal(result.occluded[i], single.occluded)
        np.testing.assert_array_equal(result.present[i], single.present)
    assert np.isnan(result.data).any()
    assert not result.present[1, :, 1].any()


def test_batch_allocates_and_names_bad_sample():
    rng = np.random.default_rng(2)
    data, occluded, present, num_frames = _batch(rng)
    result = preprocess_batch(data, occluded, present, num_frames, window=10)
    assert result.data.shape == (5, 3, 10, V, 2) and result.present.shape == (5, 10, 2)
    present[3] = False
    with pytest.raises(ValueError, match='sample 3: expected at least one frame'):
        preprocess_batch(data, occluded, present, num_frames)


# ---------------------------------------------------------------- fill and streams


def test_fill_occluded():
    data = np.arange(3 * 2 * V, dtype=np.float32).reshape(3, 2, V, 1)
    occluded = np.zeros((2, V, 1), bool)
    occluded[1, 4, 0] = True
    data[:, 1, 4, 0] = NAN
    filled = fill_occluded(data, occluded)
    assert filled.dtype == np.float32 and np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[:, 1, 4, 0], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(filled[:, 0, 4, 0], [4.0, 54.0, 104.0])
    np.testing.assert_array_equal(fill_occluded(data, occluded, value=-1.0)[:, 1, 4, 0], -1.0)
    assert np.isnan(data[:, 1, 4, 0]).all()   # input untouched
    batch = fill_occluded(data[None], occluded[None])
    np.testing.assert_array_equal(batch[0], filled)


def test_fill_occluded_rejects_visible_nan_and_bad_shapes():
    data = np.zeros((3, 2, V, 1))
    occluded = np.zeros((2, V, 1), bool)
    data[0, 0, 3, 0] = NAN
    with pytest.raises(ValueError, match='1 non-finite entries'):
        fill_occluded(data, occluded)
    with pytest.raises(ValueError, match=r'expected data \(\.\.\., C, T, V, M\)'):
        fill_occluded(data, occluded[:1])
    with pytest.raises(ValueError, match='finite fill value'):
        fill_occluded(data, occluded, value=np.nan)


def test_motion_stream_and_mask():
    x = np.zeros((1, 3, V, 1))
    x[0, :, 0, 0] = [0.0, 1.0, 3.0]
    x[0, :, 5, 0] = [1.0, NAN, 1.0]
    motion = motion_stream(x)
    np.testing.assert_array_equal(motion[0, :, 0, 0], [1.0, 2.0, 0.0])
    np.testing.assert_array_equal(np.isnan(motion[0, :, 5, 0]), [True, True, False])
    occluded = np.zeros((3, V, 1), bool)
    occluded[1, 5, 0] = True
    occluded[2, 6, 0] = True
    mask = motion_occlusion(occluded)
    np.testing.assert_array_equal(mask[:, 5, 0], [True, True, False])
    np.testing.assert_array_equal(mask[:, 6, 0], [False, True, True])
    assert mask.sum() == 4
    np.testing.assert_array_equal(stream(x, 'motion'), motion)
    np.testing.assert_array_equal(stream_occlusion(occluded, 'motion'), mask)


def test_bone_stream_and_mask():
    x = np.zeros((1, 1, V, 2))
    x[0, 0, 0, 0] = 1.0
    x[0, 0, 1, 0] = 5.0
    x[0, 0, CENTER_JOINT, 0] = 2.0
    bone = bone_stream(x)
    assert bone[0, 0, 0, 0] == -4.0             # (0, 1)
    assert bone[0, 0, 1, 0] == 3.0              # (1, 20)
    assert bone[0, 0, 4, 0] == -2.0             # (4, 20)
    assert bone[0, 0, CENTER_JOINT, 0] == 0.0   # (20, 20)
    assert bone[0, 0, 12, 0] == -1.0            # (12, 0)
    np.testing.assert_array_equal(bone[..., 1], 0.0)
    occluded = np.zeros((1, V, 1), bool)
    occluded[0, 1, 0] = True
    np.testing.assert_array_equal(np.flatnonzero(bone_occlusion(occluded)), [0, 1])
    occluded[0] = False
    occluded[0, CENTER_JOINT, 0] = True
    np.testing.assert_array_equal(np.flatnonzero(bone_occlusion(occluded)), [1, 2, 4, 8, 20])
    np.testing.assert_array_equal(stream_occlusion(occluded, 'bone'), bone_occlusion(occluded))


def test_joint_stream_is_a_copy():
    x = np.ones((3, 2, V, 1))
    joint = joint_stream(x)
    joint[0] = 5.0
    assert (x == 1.0).all()
    np.testing.assert_array_equal(stream(x, 'joint'), x)


# ---------------------------------------------------------------- bad input


def test_bad_shapes_raise():
    xyz, occluded, present = blank(3)
    with pytest.raises(ValueError, match=r'expected xyz of shape \(3, T, 25, M\), got '
                                         r'\(3, 3, 24, 1\)'):
        preprocess_sequence(xyz[:, :, :24], occluded, present)
    with pytest.raises(ValueError, match=r'expected occluded of shape \(3, 25, 1\)'):
        preprocess_sequence(xyz, occluded[:2], present)
    with pytest.raises(ValueError, match='bool occluded and present'):
        preprocess_sequence(xyz, occluded.astype(np.uint8), present)
    with pytest.raises(ValueError, match='window: expected an int >= 1, got 0'):
        preprocess_sequence(xyz, occluded, present, window=0)
    data, occ, pres, num_frames = _batch(np.random.default_rng(0), n=2)
    with pytest.raises(ValueError, match=r'expected data of shape \(N, 3, T, 25, M\)'):
        preprocess_batch(data[0], occ, pres, num_frames)
    with pytest.raises(ValueError, match='expected occluded'):
        preprocess_batch(data, occ[:, :5], pres, num_frames)
    with pytest.raises(ValueError, match=r'1 <= num_frames <= 40, got values in \[0, 40\]'):
        preprocess_batch(data, occ, pres, np.array([40, 0]))
    with pytest.raises(ValueError, match='expected out arrays'):
        preprocess_batch(data, occ, pres, num_frames, out=(np.zeros((2, 3, 49, V, 2)),) * 3)
    with pytest.raises(ValueError, match=r'expected x of shape \(\.\.\., C, T, V, M\)'):
        motion_stream(np.zeros((3, 2, 24, 1)))
    with pytest.raises(ValueError, match='view must be one of'):
        stream(np.zeros((3, 2, V, 1)), 'velocity')
