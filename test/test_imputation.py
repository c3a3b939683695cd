"""Tests of the NaN-aware KNN imputer and the per-cluster donor bank."""

import os

from iospstl_ros.imputation import (
    ClusterBank, coordinate_blocks, coordinate_groups, nan_knn_impute)
import numpy as np
import pytest

nan = np.nan


def impute(receivers, donors, n_neighbors=5, **kwargs):
    return nan_knn_impute(np.array(receivers, dtype=float), np.array(donors, dtype=float),
                          n_neighbors, return_unfilled=True, **kwargs)


# Hand-worked cases ------------------------------------------------------------------------


def test_distance_weighting_by_hand():
    # Shared features 0 and 1 (p = 2 of d = 3): d^2 = 3/2 * {1, 4, 9} -> the two nearest
    # have weights 1/sqrt(1.5) : 1/sqrt(6) = 2 : 1, so (2 * 10 + 1 * 20) / 3.
    out, unfilled = impute([[0, 0, nan]], [[1, 0, 10], [0, 2, 20], [3, 0, 30]], 2)
    assert out[0, 2] == pytest.approx(40 / 3, rel=1e-6)
    assert out[0, :2].tolist() == [0, 0]
    assert unfilled == 0


def test_zero_distance_donors_alone_count_equally():
    out, _ = impute([[1, 2, nan]], [[1, 2, 7], [1, 2, 9], [1, 2.5, 100]], 3)
    assert out[0, 2] == 8.0


def test_fewer_donors_than_neighbours_uses_those_that_observe_the_feature():
    # Donor 1 lacks feature 1. Distances sqrt(2 * 1) and sqrt(2 * 9): weights 3 : 1.
    out, unfilled = impute([[0, nan]], [[1, 4], [2, nan], [3, 10]], 5)
    assert out[0, 1] == pytest.approx((3 * 4 + 10) / 4, rel=1e-6)
    assert unfilled == 0


def test_no_donor_observes_the_feature_leaves_nan_and_counts():
    out, unfilled = impute([[0, nan], [nan, 1], [5, nan]], [[1, nan], [2, nan]], 2)
    assert np.isnan(out[[0, 2], 1]).all()
    assert out[1, 0] == 1.5                 # shares no feature with a donor: their mean
    assert unfilled == 2


@pytest.mark.parametrize('groups', [None, [0, 1, 1]], ids=['features', 'unequal-groups'])
def test_all_distances_undefined_gives_the_donor_mean(groups):
    # The receiver observes only feature 0, which no donor observes: every distance is NaN.
    out, unfilled = impute([[1, nan, nan]], [[nan, 2, 3], [nan, 4, 5]], 5, groups=groups)
    assert out.tolist() == [[1, 3, 4]]
    assert unfilled == 0


def test_all_distances_undefined_with_interleaved_groups():
    # Groups of two features each, interleaved (features 0 and 2 form group 0): the means are
    # written back through the feature columns, not the work positions.
    out, unfilled = impute([[1, nan, 1, nan]], [[nan, 2, nan, 3], [nan, 4, nan, 5]], 5,
                           groups=[0, 1, 0, 1])
    assert out.tolist() == [[1, 3, 1, 4]]
    assert unfilled == 0


def test_exact_ties_take_the_lowest_donor_row():
    # All three donors are at distance sqrt(2); scikit-learn's argpartition may pick another.
    out, _ = impute([[0, nan]], [[1, 10], [-1, 20], [1, 30]], 1)
    assert out[0, 1] == 10.0


def test_groups_give_the_same_result_by_hand():
    groups = [0, 1, 1]
    out, _ = impute([[0, nan, nan]], [[1, 5, 50], [3, 7, 70]], 2, groups=groups)
    # Differences 1 and 3 on the one shared feature: d^2 = 3 * {1, 9}, weights 3 : 1.
    assert out[0, 1:] == pytest.approx([(3 * 5 + 7) / 4, (3 * 50 + 70) / 4], rel=1e-6)


def test_zero_distance_survives_float32_cancellation():
    # Large common offset, tiny differences: the float32 products alone cannot tell 0 from the
    # neighbours' distances; the exact recomputation must.
    rng = np.random.default_rng(0)
    donors = 1000.0 + rng.normal(0, 1e-3, (50, 600))
    receiver = donors[17].copy()
    receiver[100:130] = nan
    out = nan_knn_impute(receiver[None], donors, 5)
    # Only donor 17 counts (its neighbours differ by about 1e-3).
    np.testing.assert_allclose(out[0, 100:130], donors[17, 100:130], rtol=0, atol=1e-8)


def test_receivers_are_not_modified_and_dtypes():
    receivers = np.array([[0, nan], [1, 2]], dtype=np.float32)
    copy = receivers.copy()
    out = nan_knn_impute(receivers, np.array([[1, 4], [3, 10]], dtype=np.float16))
    np.testing.assert_array_equal(receivers, copy)
    assert out.dtype == np.float32
    assert nan_knn_impute(receivers.astype(float), receivers.astype(float)).dtype == np.float64


# Oracle: scikit-learn's KNNImputer ------------------------------------------------------------


def occluded_rows(rng, n, num_frames=4, offset=2.0):
    """Skeleton-like rows: per-row offsets (camera position), whole joints missing."""
    groups = coordinate_groups(num_frames)
    d = groups.size
    rows = offset + rng.normal(0, 0.5, (n, 1)) + rng.normal(0, 0.1, (n, d))
    hidden = rng.random((n, d // 3)) < 0.12
    hidden[:, :d // 12] |= rng.random((n, 1)) < 0.4          # a block of joints (legs)
    hidden[hidden.all(axis=1), 0] = False
    rows[hidden[:, groups]] = nan
    return rows, groups


@pytest.mark.parametrize('use_groups', [False, True])
def test_matches_sklearn_on_occluded_rows(use_groups):
    from sklearn.impute import KNNImputer
    rng = np.random.default_rng(1)
    rows, groups = occluded_rows(rng, 360)
    assert rows.shape[1] == 600
    reference = KNNImputer(n_neighbors=5, weights='distance').fit(rows).transform(rows)
    ours, unfilled = nan_knn_impute(rows, rows, groups=groups if use_groups else None,
                                    return_unfilled=True)
    assert unfilled == 0
    assert np.abs(ours - reference).max() <= 1e-4


@pytest.mark.parametrize('use_groups', [False, True])
def test_matches_sklearn_with_separate_receivers_and_small_chunks(use_groups):
    from sklearn.impute import KNNImputer
    rng = np.random.default_rng(2)
    rows, groups = occluded_rows(rng, 400, num_frames=10)
    donors, receivers = rows[:300], rows[300:]
    reference = KNNImputer(n_neighbors=5, weights='distance').fit(donors).transform(receivers)
    ours = nan_knn_impute(receivers.astype(np.float32), donors.astype(np.float32),
                          groups=groups if use_groups else None, chunk_size=37)
    assert np.abs(ours - reference).max() <= 1e-4


def test_uneven_shuffled_groups_and_both_paths_match_sklearn():
    rng = np.random.default_rng(6)
    sizes = rng.integers(1, 4, 150)                          # groups of 1, 2 or 3 features
    labels = rng.permutation(150)[np.repeat(np.arange(150), sizes)]
    columns = rng.permutation(len(labels))
    groups = np.empty(len(labels), dtype=np.int64)
    groups[columns] = labels                                 # members scattered, labels shuffled
    rows = rng.normal(0, 0.2, (200, len(groups))) + rng.normal(0, 1, (200, 1))
    hidden = rng.random((200, 150)) < 0.15
    rows[hidden[:, groups]] = nan
    from sklearn.impute import KNNImputer
    reference = KNNImputer(n_neighbors=5, weights='distance').fit(rows).transform(rows)
    for donors in (rows, rows.copy()):            # the same array (symmetric path), or not
        for by_group in (groups, None):
            ours = nan_knn_impute(rows, donors, groups=by_group)
            assert np.abs(ours - reference).max() <= 1e-4


def test_uneven_groups_with_blocks_match_sklearn():
    # Groups of different sizes in two blocks; in the second block most rows are all zeros
    # (some of them NaN instead in the donors), so both the symmetric and the batch products
    # compact it. Set from itself, batch of windows, one window: scikit-learn's values.
    from sklearn.impute import KNNImputer
    rng = np.random.default_rng(25)
    sizes = rng.integers(1, 4, 120)
    groups = np.repeat(np.arange(120), sizes)
    blocks = (groups >= 60).astype(np.int64)
    rows = rng.normal(0, 0.2, (240, len(groups))) + rng.normal(1, 0.5, (240, 1))
    absent = rng.random(240) < 0.7
    rows[np.ix_(absent, blocks == 1)] = 0.0
    hidden = rng.random((240, 120)) < 0.15
    hidden[np.ix_(absent, np.arange(60, 120))] = False
    rows[hidden[:, groups]] = nan
    reference = KNNImputer(n_neighbors=5, weights='distance').fit(rows).transform(rows)
    ours = nan_knn_impute(rows, rows, groups=groups, blocks=blocks)
    assert np.abs(ours - reference).max() <= 1e-4
    from iospstl_ros.imputation import _block_rows, _Donors, _Grouping
    prepared = _Donors(rows, _Grouping(groups, len(groups), blocks))
    assert prepared.grouping.size == 0 and prepared.zero_rows[:, 1].sum() == absent.sum()
    assert _block_rows(prepared, 1)[0] is not None
    donors = np.where(absent[:, None] & (blocks == 1)[None], nan, rows)[:200]
    reference = KNNImputer(n_neighbors=5, weights='distance').fit(donors).transform(rows[200:])
    batch = nan_knn_impute(rows[200:], donors, groups=groups, blocks=blocks, chunk_size=17)
    single = np.concatenate([nan_knn_impute(row[None], donors, groups=groups, blocks=blocks)
                             for row in rows[200:]])
    assert np.abs(batch - reference).max() <= 1e-4
    assert np.abs(single - reference).max() <= 1e-4


def test_equal_groups_side_by_side_match_sklearn():
    # x, y, z of a joint adjacent (not the (C, T, V, M) layout): the work order is a permutation.
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(120), 3)
    rows = rng.normal(0, 0.2, (150, 360)) + rng.normal(0, 1, (150, 1))
    hidden = rng.random((150, 120)) < 0.2
    rows[hidden[:, groups]] = nan
    from sklearn.impute import KNNImputer
    reference = KNNImputer(n_neighbors=5, weights='distance').fit(rows).transform(rows)
    for donors in (rows, rows.copy()):
        assert np.abs(nan_knn_impute(rows, donors, groups=groups) - reference).max() <= 1e-4


def test_donors_beyond_the_nearest_prefix_are_found():
    # Only the 20 farthest of 100 donors observe the last group, so its donors lie past the
    # PREFIX_CANDIDATES nearest and the widening search must reach them.
    from iospstl_ros.imputation import PREFIX_CANDIDATES
    donors = np.zeros((100, 3))
    donors[:, 0] = np.arange(1, 101)             # receiver-donor distance grows with the row
    donors[:, 1:] = np.arange(100)[:, None] * 10.0
    donors[:80, 1:] = nan
    assert 100 - 20 > PREFIX_CANDIDATES
    out, unfilled = impute([[0.0, nan, nan]], donors, 5, groups=[0, 1, 1])
    distance = np.sqrt(3.0 * np.arange(81, 86) ** 2)    # d / p = 3 / 1
    weights = 1 / distance
    expected = (weights * np.arange(80, 85) * 10.0).sum() / weights.sum()
    assert out[0, 1:] == pytest.approx([expected, expected], rel=1e-6)
    assert unfilled == 0


def test_near_duplicates_far_from_the_centre_choose_the_exact_donors():
    # Donors come in bunches of near-duplicates (1e-4 apart) of rows far from the mean: float32
    # products cannot rank a bunch, so the recomputed distances must (one wrong donor moves a
    # value by about 1e-5; compared with float64 scikit-learn).
    from sklearn.impute import KNNImputer
    rng = np.random.default_rng(8)
    bunch = np.repeat(rng.uniform(-1, 1, (15, 1)) + rng.normal(0, 0.3, (15, 90)), 20, axis=0)
    donors = bunch + rng.normal(0, 1e-4, bunch.shape)
    receivers = bunch[::15] + rng.normal(0, 1e-4, (20, 90))
    groups = np.tile(np.arange(30), 3)
    receivers[:, (groups >= 10) & (groups < 15)] = nan
    reference = KNNImputer(n_neighbors=5, weights='distance').fit(donors).transform(receivers)
    for by_group in (groups, None):
        ours = nan_knn_impute(receivers, donors, groups=by_group)
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)


def test_donors_closer_than_the_product_error_are_ranked_exactly():
    # Two donors on opposite sides of each receiver, 0.1 % apart in squared distance (about
    # 0.03), far from the donors' mean: float32 products cannot order them (error about 0.2),
    # so the nearer is only chosen if the unsure cut is recomputed. Its value is 20.
    rng = np.random.default_rng(11)
    receivers = np.full((10, 31), nan)
    donors = [np.c_[-100.0 + rng.normal(0, 1, (60, 30)), np.zeros(60)]]
    for i in range(10):
        receivers[i, :30] = 100.0 + rng.normal(0, 1, 30)
        step = rng.normal(0, 1, 30)
        donors.append(np.r_[receivers[i, :30] + step, 10.0][None])
        donors.append(np.r_[receivers[i, :30] - step * (1 - 5e-4), 20.0][None])
    out, unfilled = impute(receivers, np.concatenate(donors), 1)
    assert out[:, 30].tolist() == [20.0] * 10 and unfilled == 0


def test_one_window_and_batches_agree():
    # Up to a few receivers the distances use another formula (rows of transposed donor sums).
    from sklearn.impute import KNNImputer
    rng = np.random.default_rng(9)
    rows, groups = occluded_rows(rng, 230, num_frames=6)
    donors, receivers = rows[:200], rows[200:]
    reference = KNNImputer(n_neighbors=5, weights='distance').fit(donors).transform(receivers)
    batch = nan_knn_impute(receivers, donors, groups=groups)
    single = np.concatenate([nan_knn_impute(row[None], donors, groups=groups)
                             for row in receivers])
    np.testing.assert_allclose(single, batch, rtol=0, atol=1e-5)
    assert np.abs(single - reference).max() <= 1e-4


def two_body_windows(rng, n, num_frames=6, second_share=0.3, offset=0.5):
    """Rows as in a bank (absent 2nd body NaN) and as windows to complete (absent body 0)."""
    groups = coordinate_groups(num_frames)
    d = groups.size
    slot = coordinate_blocks(num_frames)
    rows = offset + rng.normal(0, 0.3, (n, 1)) + rng.normal(0, 0.1, (n, d))
    hidden = rng.random((n, d // 3)) < 0.15
    hidden[:, :d // 12] |= rng.random((n, 1)) < 0.4
    second = rng.random(n) < second_share
    absent = ~second[:, None] & (slot == 1)[None]
    rows[hidden[:, groups]] = nan
    donors = np.where(absent, nan, rows)
    windows = np.where(absent, 0.0, rows)
    return donors, windows, groups, slot, second


def test_coordinate_blocks_are_the_body_slots():
    slot = coordinate_blocks(2, num_joints=3, num_bodies=2)
    x = np.zeros((3, 2, 3, 2), dtype=np.int64)               # (C, T, V, M)
    x[..., 1] = 1
    np.testing.assert_array_equal(slot, x.reshape(-1))


def test_blocks_skip_absent_bodies_and_match_sklearn():
    # One to four windows at a time take the block products (an absent second body costs no
    # donor product, a second body only its few donors); the result must not change.
    from sklearn.impute import KNNImputer
    rng = np.random.default_rng(12)
    donors, windows, groups, slot, second = two_body_windows(rng, 260)
    bank_rows, receivers = donors[:220], windows[220:]
    assert second[220:].any() and not second[220:].all()
    reference = KNNImputer(n_neighbors=5, weights='distance').fit(bank_rows).transform(
        receivers)
    for size in (1, 3):
        ours = np.concatenate([
            nan_knn_impute(receivers[i:i + size], bank_rows, groups=groups, blocks=slot)
            for i in range(0, len(receivers), size)])
        assert np.abs(ours - reference).max() <= 1e-4
    bank = ClusterBank.from_clusters(np.zeros((1, 2)), bank_rows, np.zeros(220, np.int64),
                                     groups=groups, blocks=slot)
    one = np.concatenate([bank.impute(row[None], [0])[0] for row in receivers])
    assert np.abs(one - reference).max() <= 1e-4
    # The second body is observed by under a third of the donors: kept as a compact copy.
    parts = bank._donors_of(0).block_terms()[2]
    assert parts[0].rows is None and len(parts[1].rows) < 0.4 * 220
    assert len(parts[1].values) == len(parts[1].present) == len(parts[1].rows)


def test_online_windows_of_skeletons_match_sklearn():
    # Full-size windows (50 frames, 2 bodies) as the node completes them, one at a time, from
    # a bank that has the body slots as blocks: lower legs hidden for stretches of frames, a
    # second body in some donors (NaN where absent) and some windows (0 where absent). The
    # second body's pairs take their prefix among the donors that have one; some pairs need
    # more than the prefix, some cuts are refined: every path must give scikit-learn's values.
    from benchmarks.bench_imputer import synthetic_sequences
    from iospstl_ros.layout import WINDOW_FRAMES
    from sklearn.impute import KNNImputer
    rng = np.random.default_rng(15)
    action = np.random.default_rng(16)
    donors = synthetic_sequences(300, rng, action, absent_as_missing=True)
    windows = synthetic_sequences(40, rng, np.random.default_rng(16))
    windows = windows[np.isnan(windows).any(axis=1)]
    groups = coordinate_groups(WINDOW_FRAMES)
    bank = ClusterBank.from_clusters(np.zeros((1, 2)), donors, np.zeros(300, np.int64),
                                     groups=groups, blocks=coordinate_blocks(WINDOW_FRAMES))
    reference = KNNImputer(n_neighbors=5, weights='distance').fit(donors).transform(windows)
    ours = np.concatenate([bank.impute(window[None], [0])[0] for window in windows])
    assert np.abs(ours - reference).max() <= 1e-4
    parts = bank._donors_of(0).block_terms()[2]
    assert parts[0].rows is None and 0 < len(parts[1].rows) < 0.5 * 300
    second = ~(windows.reshape(len(windows), 3, WINDOW_FRAMES, 25, 2)[..., 1] == 0).all(
        axis=(1, 2, 3))
    assert 0 < second.sum() < len(windows)


@pytest.mark.parametrize('absent_as_missing', [False, True])
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_a_set_imputed_from_itself_with_blocks_matches_sklearn(absent_as_missing, dtype):
    # The reference's training pass (each cluster's rows imputed from themselves) with the
    # body slots as blocks: the rows of an absent second body enter the symmetric products
    # as one row (zeros, or NaN), which must not change a value.
    from benchmarks.bench_imputer import synthetic_sequences
    from iospstl_ros.imputation import _Donors, _Grouping, _block_rows
    from iospstl_ros.layout import WINDOW_FRAMES
    from sklearn.impute import KNNImputer
    rng = np.random.default_rng(21)
    rows = synthetic_sequences(240, rng, absent_as_missing=absent_as_missing).astype(dtype)
    groups, slot = coordinate_groups(WINDOW_FRAMES), coordinate_blocks(WINDOW_FRAMES)
    second = ~np.isnan(rows[:, slot == 1]).all(axis=1) & (rows[:, slot == 1] != 0).any(axis=1)
    assert 40 < second.sum() < 120
    reference = KNNImputer(n_neighbors=5, weights='distance').fit(rows).transform(rows)
    ours, unfilled = nan_knn_impute(rows, rows, groups=groups, blocks=slot,
                                    return_unfilled=True)
    # (Held as NaN, an absent body is filled from the rows that have a second body.)
    assert ours.dtype == dtype and unfilled == 0
    assert np.abs(ours - reference).max() <= 1e-4
    # The second body's products took one row per absent body, the first body's all rows.
    donors = _Donors(rows, _Grouping(groups, rows.shape[1], slot))
    assert _block_rows(donors, 0)[0] is None
    compact, _ = _block_rows(donors, 1)
    assert np.array_equal(compact[second], np.arange(second.sum()))
    assert set(compact[~second].tolist()) == {second.sum() + absent_as_missing}


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_many_windows_with_blocks_match_sklearn(dtype):
    # The pipeline's batch path (training.impute, complete_windows): windows (absent body 0)
    # from donor rows (absent body NaN), more than four at a time, body slots as blocks. The
    # absent bodies of both sides are one row each of the second body's products.
    from benchmarks.bench_imputer import synthetic_sequences
    from iospstl_ros.imputation import (_approximate_squared, _block_rows, _centre, _Donors,
                                        _Grouping, _zero_block)
    from iospstl_ros.layout import WINDOW_FRAMES
    from sklearn.impute import KNNImputer
    rng = np.random.default_rng(23)
    action = np.random.default_rng(24)
    donors = synthetic_sequences(260, rng, action, absent_as_missing=True).astype(dtype)
    windows = synthetic_sequences(60, rng, action).astype(dtype)
    groups, slot = coordinate_groups(WINDOW_FRAMES), coordinate_blocks(WINDOW_FRAMES)
    reference = KNNImputer(n_neighbors=5, weights='distance').fit(donors).transform(windows)
    ours = nan_knn_impute(windows, donors, groups=groups, blocks=slot, chunk_size=25)
    assert ours.dtype == dtype
    assert np.abs(ours - reference).max() <= 1e-4
    # The compact products stay within their error bounds (float64 sums as the oracle).
    prepared = _Donors(donors, _Grouping(groups, donors.shape[1], slot))
    work = prepared.grouping.to_work(windows)
    missing = np.isnan(work)
    observed = (~prepared.grouping.missing_groups(missing, 'w', np.arange(60))).astype(
        np.float32)
    centred = _centre(work, missing, prepared.center)
    squared, error, _ = _approximate_squared(prepared, centred, observed)
    # Both sides were compacted on the second body: most donors miss it, most windows hold 0.
    assert _block_rows(prepared, 0)[0] is None and _block_rows(prepared, 1)[0] is not None
    zero = _zero_block(centred, observed, prepared.grouping, 1, -prepared.center)
    one = (windows[:, slot == 1] == 0).all(axis=1)
    assert np.array_equal(zero, one) and 0.5 < one.mean() < 0.9
    x, y = windows.astype(np.float64), donors.astype(np.float64)
    for i in range(len(x)):
        both = ~np.isnan(x[i]) & ~np.isnan(y)
        diff = np.where(both, x[i] - np.nan_to_num(y), 0.0)
        with np.errstate(invalid='ignore', divide='ignore'):
            exact = (diff ** 2).sum(axis=1) * (x.shape[1] / both.sum(axis=1))
        finite = both.any(axis=1)
        assert np.array_equal(np.isnan(squared[i]), ~finite)
        assert np.all(np.abs(squared[i, finite] - exact[finite])
                      <= error[i, finite] + 1e-6 * exact[finite])


def test_self_products_with_blocks_stay_within_their_error_bounds():
    # Squared distances of all pairs against float64 sums over the shared features: the
    # compact second-body products (and their exact 0 between two absent bodies) must stay
    # inside the bounds that decide which distances are recomputed.
    from benchmarks.bench_imputer import synthetic_sequences
    from iospstl_ros.imputation import _approximate_squared_self, _Donors, _Grouping
    from iospstl_ros.layout import WINDOW_FRAMES
    rng = np.random.default_rng(22)
    rows = synthetic_sequences(90, rng)
    groups, slot = coordinate_groups(WINDOW_FRAMES), coordinate_blocks(WINDOW_FRAMES)
    squared, error, scale = _approximate_squared_self(
        _Donors(rows, _Grouping(groups, rows.shape[1], slot)))
    x = rows.astype(np.float64)
    seen = ~np.isnan(x)
    filled = np.where(seen, x, 0.0)
    for i in range(len(x)):
        both = seen[i] & seen
        exact = ((filled[i] - filled) ** 2 * both).sum(axis=1) * (x.shape[1] / both.sum(axis=1))
        assert np.all(np.abs(squared[i] - exact) <= error[i] + 1e-6 * exact)
    # Between two one-person rows the second body adds nothing, to the error bound neither;
    # two second bodies are centred on the second bodies' mean, not pulled to 0 by the absent
    # ones: both bounds are tighter than without blocks (same centre for every row).
    plain_error = _approximate_squared_self(_Donors(rows, _Grouping(groups, rows.shape[1])))[1]
    one = (rows[:, slot == 1] == 0).all(axis=1)
    assert 30 < one.sum() < 80
    apart = ~np.eye(len(rows), dtype=bool)
    for kind, most, median in ((one, 0.7, 0.5), (~one, 0.4, 0.2)):
        pairs = np.outer(kind, kind) & apart
        ratio = error[pairs] / plain_error[pairs]
        assert ratio.max() < most and np.median(ratio) < median


def test_absent_bodies_are_found_and_left_out_of_the_centre():
    from iospstl_ros.imputation import _Donors, _Grouping
    slot = coordinate_blocks(2, num_joints=2, num_bodies=2)       # (C, T, V, M) = (3, 2, 2, 2)
    groups = coordinate_groups(2, num_joints=2, num_bodies=2)
    rows = np.full((5, 24), 2.0, dtype=np.float32)
    rows[:, slot == 1] = 0.0                                      # rows 0-2: one person
    rows[0, np.flatnonzero(slot == 1)[:3]] = -0.0                 # -0.0 is a zero too
    rows[3, slot == 1] = 4.0                                      # rows 3-4: two people
    rows[4, slot == 1] = 6.0
    rows[2, np.flatnonzero(slot == 1)[5]] = 1e-30                 # not all zero: a person
    rows[1, np.flatnonzero(groups == groups[np.flatnonzero(slot == 1)[0]])] = nan
    donors = _Donors(rows, _Grouping(groups, 24, slot))
    # Row 1 misses a joint of the second body: not all observed, so not an absent body.
    assert donors.zero_rows[:, 1].tolist() == [True, False, False, False, False]
    assert not donors.zero_rows[:, 0].any()
    # The centre of the second body's features: mean over rows 1-4 (row 0 left out).
    work = donors.grouping.to_work(rows)
    second = donors.grouping.to_work(slot[None] == 1)[0]
    expected = np.nanmean(work[1:, second], axis=0)
    np.testing.assert_allclose(donors.center[second], expected, rtol=1e-6)
    np.testing.assert_allclose(donors.center[~second], 2.0)


def test_set_blocks_on_a_loaded_bank(tmp_path):
    rng = np.random.default_rng(13)
    donors, windows, groups, slot, _ = two_body_windows(rng, 120)
    bank = ClusterBank.from_clusters(np.zeros((1, 2)), donors[:100], np.zeros(100, np.int64),
                                     groups=groups)
    bank.save(tmp_path)
    loaded = ClusterBank.load(tmp_path)
    before = np.concatenate([loaded.impute(row[None], [0])[0] for row in windows[100:]])
    assert loaded.set_blocks(slot) is loaded
    after = np.concatenate([loaded.impute(row[None], [0])[0] for row in windows[100:]])
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match='blocks: expected an int array of shape'):
        loaded.set_blocks(slot[:-1])


def test_first_usable_in_steps_matches_the_whole_gather():
    from iospstl_ros.imputation import _first_usable, _first_usable_in_steps
    rng = np.random.default_rng(10)
    m, n_groups, width = 50, 7, 29                   # width not a multiple of the step

    class Donors:
        present_t = np.zeros((n_groups, m + 1), dtype=bool)

    Donors.present_t[:, :m] = rng.random((n_groups, m)) < 0.6
    lookup = np.array([rng.permutation(m)[:width] for _ in range(4)])
    lookup[rng.random(lookup.shape) < 0.1] = m       # candidates at an undefined distance
    row_of = rng.integers(0, 4, 300)
    pair_group = rng.integers(0, n_groups, 300)
    usable = Donors.present_t[pair_group[:, None], lookup[row_of]]
    for n_neighbors in (1, 5, 12):
        expected = _first_usable(usable, n_neighbors)
        np.testing.assert_array_equal(
            _first_usable_in_steps(Donors, lookup, row_of, pair_group, n_neighbors), expected)
        # Spot check: the k-th slot is the k-th usable position.
        row = usable[0]
        assert expected[0].tolist() == (np.flatnonzero(row)[:n_neighbors].tolist()
                                        + [-1] * max(0, n_neighbors - row.sum()))


def test_first_usable_against_a_row_by_row_oracle():
    from iospstl_ros.imputation import _first_usable
    rng = np.random.default_rng(14)
    for width in (1, 8, 63, 64, 65, 200):              # one word, a word and a bit, four words
        usable = rng.random((40, width)) < rng.uniform(0.0, 0.3, (40, 1))
        usable[0] = False
        usable[1] = True
        usable[2, -1] = True                           # the last column counts
        for n_neighbors in (1, 5, 70):
            oracle = [np.flatnonzero(row)[:n_neighbors].tolist() for row in usable]
            oracle = [o + [-1] * (n_neighbors - len(o)) for o in oracle]
            assert _first_usable(usable, n_neighbors).tolist() == oracle


def test_memory_mapped_inputs(tmp_path):
    rng = np.random.default_rng(3)
    rows, groups = occluded_rows(rng, 120)
    rows = rows.astype(np.float32)
    np.save(tmp_path / 'rows.npy', rows)
    mapped = np.load(tmp_path / 'rows.npy', mmap_mode='r')
    other_map = np.load(tmp_path / 'rows.npy', mmap_mode='r')
    # Compared path for path: one array as receivers and donors takes the symmetric products,
    # two arrays the general ones (the two paths round differently, by about 1e-6).
    np.testing.assert_allclose(nan_knn_impute(mapped, mapped, groups=groups),
                               nan_knn_impute(rows, rows, groups=groups), atol=1e-6)
    np.testing.assert_allclose(nan_knn_impute(mapped, other_map, groups=groups),
                               nan_knn_impute(rows, rows.copy(), groups=groups), atol=1e-6)


# Bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize('receivers, donors, kwargs, match', [
    ([0.0, nan], [[1.0, 2.0]], {}, 'expected a 2-D array'),
    ([[0.0, nan]], [[1.0, 2.0, 3.0]], {}, 'expected 2 features'),
    ([[0, 1]], [[1.0, 2.0]], {}, 'expected a float array'),
    ([[nan, nan]], [[1.0, 2.0]], {}, 'row 0 is all NaN'),
    ([[0.0, nan]], [[1.0, np.inf]], {}, 'got inf'),
    ([[np.inf, nan]], [[1.0, 2.0]], {}, 'got inf'),
    ([[0.0, nan]], [[1.0, 2.0]], {'n_neighbors': 0}, 'n_neighbors: expected an int >= 1'),
    ([[0.0, nan]], [[1.0, 2.0]], {'n_neighbors': 2.5}, 'n_neighbors: expected an int'),
    ([[0.0, nan]], [[1.0, 2.0]], {'chunk_size': 0}, 'chunk_size: expected an int >= 1'),
    ([[0.0, nan]], [[1.0, 2.0]], {'groups': [0]}, r'groups: expected an int array of shape'),
    ([[0.0, nan]], [[1.0, 2.0]], {'groups': [0, 0]}, 'only some of them are missing'),
    ([[0.0, 1.0]], [[1.0, nan]], {'groups': [0, 0]}, 'donors row 0'),
    ([[0.0, nan]], [[1.0, 2.0]], {'blocks': [0]}, r'blocks: expected an int array of shape'),
    ([[0.0, nan]], [[1.0, 2.0]], {'blocks': [0.0, 1.0]}, r'blocks: expected an int array'),
    ([[0.0, nan]], [[1.0, 2.0]], {'groups': [0, 0], 'blocks': [0, 1]},
     r'features \[0, 1\] form one group but lie in blocks \[0, 1\]'),
])
def test_bad_input_raises(receivers, donors, kwargs, match):
    with pytest.raises(ValueError, match=match):
        nan_knn_impute(np.array(receivers), np.array(donors), **kwargs)


def test_coordinate_groups_join_xyz_of_a_joint():
    groups = coordinate_groups(2, num_joints=3, num_bodies=2)
    x = np.arange(3 * 2 * 3 * 2).reshape(3, 2, 3, 2)         # (C, T, V, M)
    flat = x.reshape(-1)
    for group in range(12):
        members = flat[groups == group]
        assert len(members) == 3
        # The same (t, v, m) in channels 0, 1, 2.
        positions = np.argwhere(np.isin(x, members))
        assert sorted(positions[:, 0].tolist()) == [0, 1, 2]
        assert len({tuple(p) for p in positions[:, 1:].tolist()}) == 1
    with pytest.raises(ValueError, match='expected num_frames'):
        coordinate_groups(0)


# ClusterBank ----------------------------------------------------------------------------------


def two_cluster_bank(dtype=np.float32, **settings):
    """Cluster 0: donors around 1.0, cluster 1: donors around 100.0, interleaved rows."""
    rng = np.random.default_rng(4)
    donors = np.empty((40, 12))
    labels = np.arange(40) % 2
    donors[labels == 0] = 1.0 + rng.normal(0, 0.01, (20, 12))
    donors[labels == 1] = 100.0 + rng.normal(0, 0.01, (20, 12))
    donors[0, 3:6] = nan
    centroids = np.array([[0.0, 0.0], [10.0, 10.0]])
    bank = ClusterBank.from_clusters(centroids, donors, labels, dtype=dtype,
                                     groups=np.repeat(np.arange(4), 3), **settings)
    return bank, donors, labels


def test_bank_layout_offsets_and_donor_index():
    bank, donors, labels = two_cluster_bank()
    assert bank.offsets_.tolist() == [0, 20, 40]
    assert bank.donor_index_[:3].tolist() == [0, 2, 4]          # stable within a cluster
    assert bank.donor_index_[20:23].tolist() == [1, 3, 5]
    np.testing.assert_array_equal(bank.donors_, donors[bank.donor_index_].astype(np.float32))
    assert bank.centroids_.dtype == np.float32 and bank.n_features_in_ == 12


def test_bank_fills_each_cluster_only_from_its_own_donors():
    bank, donors, _ = two_cluster_bank()
    receivers = np.full((4, 12), 50.0)          # equally far from both clusters' values
    receivers[:, 6:9] = nan
    out, unfilled = bank.impute(receivers, np.array([0, 1, 1, 0]))
    assert unfilled == 0
    assert np.all(np.abs(out[[0, 3], 6:9] - 1.0) < 0.05)
    assert np.all(np.abs(out[[1, 2], 6:9] - 100.0) < 0.05)
    np.testing.assert_array_equal(out[:, :6], receivers[:, :6])


def test_bank_counts_what_a_cluster_cannot_fill():
    rng = np.random.default_rng(5)
    donors = rng.normal(size=(6, 6))
    donors[:3, :3] = nan                        # cluster 0 never observes the first group
    bank = ClusterBank.from_clusters(np.zeros((2, 1)), donors, np.array([0, 0, 0, 1, 1, 1]),
                                     groups=[0, 0, 0, 1, 1, 1])
    receivers = np.ones((2, 6))
    receivers[:, :3] = nan
    out, unfilled = bank.impute(receivers, np.array([0, 1]))
    assert unfilled == 3
    assert np.isnan(out[0, :3]).all() and not np.isnan(out[1]).any()


def test_bank_keys_clusters_by_id_with_an_empty_cluster():
    donors = np.array([[1.0, 1.0], [1.0, 2.0], [9.0, 30.0], [9.0, 40.0]])
    bank = ClusterBank.from_clusters(np.zeros((3, 1)), donors, np.array([0, 0, 2, 2]))
    assert bank.offsets_.tolist() == [0, 2, 2, 4]
    receivers = np.array([[9.0, nan], [9.0, nan]])
    out, unfilled = bank.impute(receivers, np.array([2, 1]))
    assert out[0, 1] == 35.0                    # cluster 2: both donors at distance 0
    assert np.isnan(out[1, 1]) and unfilled == 1


def prepared_bank(blocks=True):
    """Clusters of 3, 9, 0, 6 and 9 donors, each around its own value; 3 kept prepared."""
    rng = np.random.default_rng(8)
    labels = np.repeat(np.arange(5), [3, 9, 0, 6, 9])
    donors = 10.0 * labels[:, None] + rng.normal(0, 0.1, (len(labels), 12))
    donors[::4, :3] = nan
    donors[1::5, 6:9] = nan
    settings = {'blocks': np.repeat([0, 1], 6)} if blocks else {}
    return ClusterBank.from_clusters(np.zeros((5, 1)), donors, labels,
                                     groups=np.repeat(np.arange(4), 3), max_cached_clusters=3,
                                     **settings)


def test_bank_prepare_keeps_the_largest_clusters_ready():
    bank = prepared_bank()
    assert bank.prepare() == [3, 4, 1]          # sizes 6, 9, 9: the largest kept longest
    assert list(bank._prepared) == [3, 4, 1]
    ready = dict(bank._prepared)
    assert all(donors._blocks is not None for donors in ready.values())
    window = np.full((1, 12), 40.0)
    window[0, 3:6] = nan
    out, unfilled = bank.impute(window, [4])
    assert bank._prepared[4] is ready[4]        # used as prepared, not prepared again
    fresh, _ = prepared_bank().impute(window, [4])
    np.testing.assert_array_equal(out, fresh)
    assert unfilled == 0 and np.all(np.abs(out[0, 3:6] - 40.0) < 0.3)
    assert bank.prepare([0]) == [0]             # least recently used (3) leaves
    assert list(bank._prepared) == [1, 4, 0]
    assert bank.prepare([2]) == [2]             # an empty cluster: nothing to fill from
    out, unfilled = bank.impute(window, [2])
    assert unfilled == 3 and np.isnan(out[0, 3:6]).all()


def test_bank_prepare_without_blocks_and_bad_input():
    bank = prepared_bank(blocks=False)
    assert bank.prepare([4, 2]) == [4, 2]
    assert bank._prepared[4]._few is not None   # one window's arrays are ready too
    with pytest.raises(ValueError, match='at most max_cached_clusters = 3 clusters'):
        bank.prepare([0, 1, 3, 4])
    with pytest.raises(ValueError, match=r'expected values in 0\.\.4, got 1\.\.5'):
        bank.prepare([1, 5])
    with pytest.raises(ValueError, match='expected a sequence of int, got float64'):
        bank.prepare([1.5])
    with pytest.raises(ValueError, match='holds no donors yet'):
        ClusterBank().prepare()


def test_bank_assign_picks_the_nearest_centroid():
    bank, _, _ = two_cluster_bank()
    assert bank.assign([[1.0, 1.0], [6.0, 5.0], [9.0, 11.0]]).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match='expected 2 features'):
        bank.assign([[1.0, 2.0, 3.0]])


def test_bank_save_load_round_trip(tmp_path):
    bank, _, _ = two_cluster_bank(dtype=np.float16)
    bank.save(tmp_path / 'bank')
    assert sorted(os.listdir(tmp_path / 'bank')) == [
        'bank.json', 'centroids.npy', 'donor_index.npy', 'donors.npy', 'groups.npy',
        'offsets.npy']
    loaded = ClusterBank.load(tmp_path / 'bank', mmap=True)
    assert isinstance(loaded.donors_, np.memmap) and loaded.donors_.dtype == np.float16
    for name in ('centroids_', 'donors_', 'offsets_', 'donor_index_'):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(bank, name))
    np.testing.assert_array_equal(loaded.groups, bank.groups)
    receivers = np.full((2, 12), 3.0)
    receivers[:, :3] = nan
    clusters = np.array([0, 1])
    np.testing.assert_array_equal(loaded.impute(receivers, clusters)[0],
                                  bank.impute(receivers, clusters)[0])


def test_float16_bank_matches_float32_bank_to_float16_precision():
    bank16, _, _ = two_cluster_bank(dtype=np.float16)
    bank32, _, _ = two_cluster_bank(dtype=np.float32)
    receivers = np.full((2, 12), 3.0, dtype=np.float32)
    receivers[:, 9:] = nan
    clusters = np.array([0, 1])
    out16, out32 = bank16.impute(receivers, clusters)[0], bank32.impute(receivers, clusters)[0]
    assert out16.dtype == np.float32
    np.testing.assert_allclose(out16, out32, rtol=1e-3)


def test_bank_bad_input(tmp_path):
    bank, _, _ = two_cluster_bank()
    receivers = np.full((1, 12), 1.0)
    receivers[0, :3] = nan
    with pytest.raises(ValueError, match=r'clusters: expected values in 0\.\.1'):
        bank.impute(receivers, np.array([2]))
    with pytest.raises(ValueError, match='clusters: expected an int array of shape'):
        bank.impute(receivers, np.array([0.0]))
    with pytest.raises(ValueError, match='expected 12 features'):
        bank.impute(receivers[:, :6], np.array([0]))
    with pytest.raises(ValueError, match='holds no donors yet'):
        ClusterBank().impute(receivers, np.array([0]))
    with pytest.raises(ValueError, match=r'labels: expected values in 0\.\.0'):
        ClusterBank.from_clusters(np.zeros((1, 2)), np.ones((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r'donors row 1: features \[0, 1\] form one group'):
        ClusterBank.from_clusters(np.zeros((1, 2)), np.array([[1.0, 2.0], [nan, 2.0]]),
                                  np.array([0, 0]), groups=[0, 0])
    with pytest.raises(ValueError, match='beyond the float16 range'):
        ClusterBank.from_clusters(np.zeros((1, 2)), np.full((2, 3), 1e6), np.array([0, 0]),
                                  dtype=np.float16)
    with pytest.raises(ValueError, match='no bank.json'):
        ClusterBank.load(tmp_path)
    bank.save(tmp_path / 'bank')
    os.remove(tmp_path / 'bank' / 'offsets.npy')
    with pytest.raises(ValueError, match='offsets.npy: missing'):
        ClusterBank.load(tmp_path / 'bank')
