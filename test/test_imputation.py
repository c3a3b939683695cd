"""Tests of the NaN-aware KNN imputer and the per-cluster donor bank.

Hand-worked cases encode the rule; scikit-learn's float64 ``KNNImputer(weights='distance')`` is
the oracle everywhere else, including a property-based differential test over random inputs.
"""

import json
import os

from hypothesis import given, HealthCheck, settings, strategies as st
from iospstl_ros.imputation import (
    ClusterBank, coordinate_blocks, coordinate_groups, find_groups, nan_knn_impute)
import numpy as np
import pytest
from sklearn.impute import KNNImputer

nan = np.nan


def impute(receivers, donors, n_neighbors=5, **kwargs):
    return nan_knn_impute(np.array(receivers, dtype=float), np.array(donors, dtype=float),
                          n_neighbors, return_unfilled=True, **kwargs)


def sklearn_impute(receivers, donors, n_neighbors=5):
    """scikit-learn's values in float64; a feature no donor observes keeps the receivers'."""
    receivers = np.asarray(receivers, np.float64)
    donors = np.asarray(donors, np.float64)
    imputer = KNNImputer(n_neighbors=n_neighbors, weights='distance',
                         keep_empty_features=True)
    expected = imputer.fit(donors).transform(receivers)
    empty = np.isnan(donors).all(axis=0)
    expected[:, empty] = receivers[:, empty]
    return expected


def rule_impute(receivers, donors, n_neighbors):
    """Apply the rule of the module docstring feature by feature in float64 (a second oracle).

    Also returns where scikit-learn's choice is ambiguous: an exact tie at the k-th nearest
    donor (its ``argpartition`` may take either of the tied donors).
    """
    x, y = np.asarray(receivers, np.float64), np.asarray(donors, np.float64)
    out, ambiguous = x.copy(), np.zeros(x.shape, bool)
    for i in range(len(x)):
        both = ~np.isnan(x[i]) & ~np.isnan(y)
        shared = both.sum(axis=1)
        squares = np.where(both, x[i] - y, 0.0) ** 2
        with np.errstate(divide='ignore', invalid='ignore'):
            distance = np.sqrt(squares.sum(axis=1) * x.shape[1] / shared)
        for f in np.flatnonzero(np.isnan(x[i])):
            observers = np.flatnonzero(~np.isnan(y[:, f]))
            finite = observers[shared[observers] > 0]
            if len(finite) == 0:
                out[i, f] = y[observers, f].mean() if len(observers) else nan
                continue
            ranked = finite[np.lexsort((finite, distance[finite]))]
            chosen = ranked[:n_neighbors]
            if len(ranked) > n_neighbors:
                cut = distance[ranked[n_neighbors - 1:n_neighbors + 1]]
                ambiguous[i, f] = cut[0] == cut[1]
            d = distance[chosen]
            weights = (d == 0).astype(float) if d[0] == 0 else 1 / d
            out[i, f] = (weights * y[chosen, f]).sum() / weights.sum()
    return out, ambiguous


def scale_of(*arrays):
    """Largest absolute finite value: the scale that tolerances are stated against."""
    values = [float(np.nanmax(np.abs(a))) for a in arrays if np.isfinite(a).any()]
    return max(values + [1e-30])


#: Tolerance on imputed values, relative to the data's scale. The choice and the weights come
#: from exact (float64) distances, so what is left is float32 rounding of the output (6e-8).
RELATIVE_TOLERANCE = 1e-6


def assert_matches(ours, expected, scale):
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))
    worst = np.nanmax(np.abs(ours - expected), initial=0.0) / scale
    assert worst <= RELATIVE_TOLERANCE, worst
    return worst


# Hand-worked cases ------------------------------------------------------------------------


def test_distance_weighting_by_hand():
    # Shared features 0 and 1 (p = 2 of d = 3): d^2 = 3/2 * {1, 4, 9} -> the two nearest
    # have weights 1/sqrt(1.5) : 1/sqrt(6) = 2 : 1, so (2 * 10 + 1 * 20) / 3.
    out, unfilled = impute([[0, 0, nan]], [[1, 0, 10], [0, 2, 20], [3, 0, 30]], 2)
    assert out[0, 2] == pytest.approx(40 / 3, rel=1e-12)
    assert out[0, :2].tolist() == [0, 0]
    assert unfilled == 0


def test_zero_distance_donors_alone_count_equally():
    out, _ = impute([[1, 2, nan]], [[1, 2, 7], [1, 2, 9], [1, 2.5, 100]], 3)
    assert out[0, 2] == 8.0


def test_fewer_donors_than_neighbours_uses_those_that_observe_the_feature():
    # Donor 1 lacks feature 1. Distances sqrt(2 * 1) and sqrt(2 * 9): weights 3 : 1.
    out, unfilled = impute([[0, nan]], [[1, 4], [2, nan], [3, 10]], 5)
    assert out[0, 1] == pytest.approx((3 * 4 + 10) / 4, rel=1e-12)
    assert unfilled == 0


def test_no_donor_observes_the_feature_leaves_nan_and_counts():
    out, unfilled = impute([[0, nan], [nan, 1], [5, nan]], [[1, nan], [2, nan]], 2)
    assert np.isnan(out[[0, 2], 1]).all()
    assert out[1, 0] == 1.5                 # shares no feature with a donor: their mean
    assert unfilled == 2


@pytest.mark.parametrize('groups', [None, [0, 1, 1]], ids=['found', 'unequal-groups'])
def test_all_distances_undefined_gives_the_donor_mean(groups):
    # The receiver observes only feature 0, which no donor observes: every distance is NaN.
    out, unfilled = impute([[1, nan, nan]], [[nan, 2, 3], [nan, 4, 5]], 5, groups=groups)
    assert out.tolist() == [[1, 3, 4]]
    assert unfilled == 0


def test_all_distances_undefined_with_interleaved_groups():
    # Groups of two features each, interleaved (features 0 and 2 form group 0).
    out, unfilled = impute([[1, nan, 1, nan]], [[nan, 2, nan, 3], [nan, 4, nan, 5]], 5,
                           groups=[0, 1, 0, 1])
    assert out.tolist() == [[1, 3, 1, 4]]
    assert unfilled == 0


def test_a_receiver_with_nothing_observed_gets_the_donor_means():
    # Every distance is undefined (rule 4), as in scikit-learn.
    out, unfilled = impute([[nan, nan]], [[1, 2], [3, nan], [5, 8]], 2)
    assert out.tolist() == [[3, 5]] and unfilled == 0


def test_exact_ties_take_the_lowest_donor_row():
    # All three donors are at distance sqrt(2); scikit-learn's argpartition may pick another.
    out, _ = impute([[0, nan]], [[1, 10], [-1, 20], [1, 30]], 1)
    assert out[0, 1] == 10.0


def test_groups_give_the_same_result_by_hand():
    groups = [0, 1, 1]
    out, _ = impute([[0, nan, nan]], [[1, 5, 50], [3, 7, 70]], 2, groups=groups)
    # Differences 1 and 3 on the one shared feature: d^2 = 3 * {1, 9}, weights 3 : 1.
    assert out[0, 1:] == pytest.approx([(3 * 5 + 7) / 4, (3 * 50 + 70) / 4], rel=1e-12)


def test_an_absent_body_block_by_hand():
    # Block 1 of the receiver is observed zeros (an absent body): the donors' block totals
    # count. d = 4, all shared: d^2 = {1 + 4 + 0, 0 + 1 + 9} -> weights 1/sqrt(5) : 1/sqrt(10).
    out, _ = impute([[0, nan, 0, 0]], [[1, 10, 2, 0], [0, 20, 1, 3]], 2,
                    groups=[0, 1, 2, 2], blocks=[0, 0, 1, 1])
    w = np.array([1 / np.sqrt(5), 1 / np.sqrt(10)])
    assert out[0, 1] == pytest.approx((w * [10, 20]).sum() / w.sum(), rel=1e-12)


def test_zero_distance_survives_float32_cancellation():
    # Large common offset, tiny differences: float32 products alone cannot tell 0 from the
    # neighbours' distances; the exact distances must.
    rng = np.random.default_rng(0)
    donors = 1000.0 + rng.normal(0, 1e-3, (50, 600))
    receivers = np.repeat(donors[17:18], 12, axis=0)     # many receivers: the BLAS route
    receivers[:, 100:130] = nan
    for rows in (receivers[:1], receivers):
        out = nan_knn_impute(rows, donors, 5)
        np.testing.assert_array_equal(out[:, 100:130],
                                      np.broadcast_to(donors[17, 100:130], (len(rows), 30)))


def test_donors_closer_than_the_product_error_are_ranked_exactly():
    # Two donors on opposite sides of each receiver, 0.05 % apart in squared distance, far from
    # the donors' mean: the approximations cannot order them, the exact distances must. The
    # nearer one's value is 20. Both routes (one receiver, and all ten at once).
    rng = np.random.default_rng(11)
    receivers = np.full((10, 31), nan)
    donors = [np.c_[-100.0 + rng.normal(0, 1, (60, 30)), np.zeros(60)]]
    for i in range(10):
        receivers[i, :30] = 100.0 + rng.normal(0, 1, 30)
        step = rng.normal(0, 1, 30)
        donors.append(np.r_[receivers[i, :30] + step, 10.0][None])
        donors.append(np.r_[receivers[i, :30] - step * (1 - 5e-4), 20.0][None])
    donors = np.concatenate(donors).astype(np.float32)
    out, unfilled = impute(receivers, donors, 1)
    assert out[:, 30].tolist() == [20.0] * 10 and unfilled == 0
    one = [nan_knn_impute(row[None].astype(np.float32), donors, 1)[0, 30] for row in receivers]
    assert one == [20.0] * 10


def test_receivers_are_not_modified_and_dtypes():
    receivers = np.array([[0, nan], [1, 2]], dtype=np.float32)
    copy = receivers.copy()
    out = nan_knn_impute(receivers, np.array([[1, 4], [3, 10]], dtype=np.float16))
    np.testing.assert_array_equal(receivers, copy)
    assert out.dtype == np.float32
    assert nan_knn_impute(receivers.astype(float), receivers.astype(float)).dtype == np.float64
    assert nan_knn_impute(receivers.astype(np.float16), receivers).dtype == np.float32


def test_coordinate_groups_join_xyz_of_a_joint():
    groups = coordinate_groups(2, num_joints=3, num_bodies=2)
    x = np.arange(3 * 2 * 3 * 2).reshape(3, 2, 3, 2)         # (C, T, V, M)
    flat = x.reshape(-1)
    for group in range(12):
        members = flat[groups == group]
        assert len(members) == 3
        positions = np.argwhere(np.isin(x, members))         # the same (t, v, m) in c = 0..2
        assert sorted(positions[:, 0].tolist()) == [0, 1, 2]
        assert len({tuple(p) for p in positions[:, 1:].tolist()}) == 1
    with pytest.raises(ValueError, match='expected num_frames'):
        coordinate_groups(0)


def test_coordinate_blocks_are_the_body_slots():
    slot = coordinate_blocks(2, num_joints=3, num_bodies=2)
    x = np.zeros((3, 2, 3, 2), dtype=np.int64)               # (C, T, V, M)
    x[..., 1] = 1
    np.testing.assert_array_equal(slot, x.reshape(-1))


def test_find_groups_joins_columns_with_the_same_pattern():
    rows = np.array([[nan, 1.0, nan, 0.0, nan],
                     [0.0, 2.0, 0.0, nan, 5.0],
                     [nan, 0.0, nan, nan, nan]])
    for groups, zeros in (find_groups(rows), find_groups(rows[:1], rows[1:])):
        assert groups[0] == groups[2] == groups[4]
        assert len({groups[0], groups[1], groups[3]}) == 3
        assert zeros[0] == zeros[2] and len({zeros[0], zeros[1], zeros[3], zeros[4]}) == 4


@pytest.mark.parametrize('dtype', [np.float16, np.float32, np.float64])
@pytest.mark.parametrize('splits', [(), (7,), (8, 9, 16)])
def test_find_groups_agree_with_comparing_columns(splits, dtype):
    # 21 rows (not a multiple of 8), columns copied from a few patterns of NaN, 0 and values;
    # an independent oracle: two features share a label exactly when their columns are equal.
    rng = np.random.default_rng(5)
    patterns = rng.choice([nan, 0.0, 1.0], (21, 6))
    rows = (patterns[:, rng.integers(0, 6, 40)] * rng.uniform(1, 2, 40)).astype(dtype)
    groups, zeros = find_groups(*np.split(rows, splits))
    for labels, flags in ((groups, np.isnan(rows)), (zeros, rows == 0)):
        same_column = (flags[:, :, None] == flags[:, None, :]).all(axis=0)
        np.testing.assert_array_equal(labels[:, None] == labels[None, :], same_column)


# Realistic data against scikit-learn ----------------------------------------------------------


def two_body_windows(rng, n, num_frames=50):
    """Make two-body skeleton windows: smooth random trajectories, legs hidden in either body.

    Returns the rows as a bank holds them (absent second body NaN) and as windows to complete
    (absent second body 0).
    """
    t = np.arange(num_frames) / 30.0
    base = rng.normal(0, 0.3, (n, 3, 1, 25, 2))
    base[:, 2] += 3.0                                         # 3 m from the camera
    wave = rng.normal(0, 0.15, (n, 3, 1, 25, 2)) * np.sin(
        2 * np.pi * rng.uniform(0.3, 1.5, (n, 1, 1, 25, 2)) * t[None, None, :, None, None]
        + rng.uniform(0, 6.3, (n, 1, 1, 25, 2)))
    x = base + wave                                           # (n, C, T, V, M)
    second = rng.random(n) < 0.4
    legs = np.zeros(25, bool)
    legs[12:20] = True
    hidden = (rng.random((n, 1, 1, 2)) < 0.7) & legs[None, None, :, None]
    hidden = hidden & (rng.random((n, num_frames, 1, 1)) < 0.6)
    hidden |= rng.random((n, num_frames, 25, 2)) < 0.02
    hidden[~second, :, :, 1] = False
    x = np.where(hidden[:, None], nan, x)
    windows = x.copy()
    windows[~second, ..., 1] = 0.0
    donors = x.copy()
    donors[~second, ..., 1] = nan
    return donors.reshape(n, -1), windows.reshape(n, -1)


def test_two_body_windows_match_sklearn_on_every_path():
    # The set on which the previous imputer returned values 0.22 m off with groups and blocks.
    rng = np.random.default_rng(20)
    donors, windows = two_body_windows(rng, 180)
    groups, blocks = coordinate_groups(50), coordinate_blocks(50)
    scale = scale_of(donors, windows)
    expected_self = sklearn_impute(windows, windows)
    expected = sklearn_impute(windows[150:], donors[:150])
    for hints in ({}, {'groups': groups}, {'blocks': blocks},
                  {'groups': groups, 'blocks': blocks}):
        assert_matches(nan_knn_impute(windows, windows, **hints), expected_self, scale)
        assert_matches(nan_knn_impute(windows[150:], donors[:150], **hints), expected, scale)
        one = np.concatenate([nan_knn_impute(w[None], donors[:150], **hints)
                              for w in windows[150:]])
        assert_matches(one, expected, scale)
    bank = ClusterBank.from_clusters(np.zeros((1, 1)), donors[:150], np.zeros(150, np.int64),
                                     groups=groups).set_blocks(blocks)
    one = np.concatenate([bank.impute(w[None], [0])[0] for w in windows[150:]])
    assert_matches(one, expected, scale)


def test_groups_found_from_the_pattern_give_the_hinted_result():
    rng = np.random.default_rng(21)
    donors, windows = two_body_windows(rng, 60, num_frames=10)
    hinted = nan_knn_impute(windows, donors, groups=coordinate_groups(10))
    # Same donors and weights; only the order of the float64 sums differs.
    np.testing.assert_allclose(nan_knn_impute(windows, donors), hinted, rtol=0, atol=1e-12)


@pytest.mark.parametrize('n_features', [5, 40])
def test_blocks_found_from_scattered_zeros_match_sklearn(n_features):
    # Exact zeros anywhere: 5 features give at most MAX_FOUND_BLOCKS zero patterns (each a
    # block), 40 give more (no blocks). Both routes: many receivers, and a few.
    from iospstl_ros.imputation import MAX_FOUND_BLOCKS
    rng = np.random.default_rng(22)
    rows = rng.normal(0, 1, (40, n_features))
    rows[rng.random(rows.shape) < 0.3] = 0.0
    rows[rng.random(rows.shape) < 0.15] = nan
    rows[:4, :3] = 0.0
    assert (len(np.unique(find_groups(rows)[1])) <= MAX_FOUND_BLOCKS) == (n_features == 5)
    for receivers, donors in ((rows, rows), (rows[:4], rows[4:])):
        # Zeros make exact ties: there the rule's choice (lowest donor row), else scikit-learn.
        expected, ambiguous = rule_impute(receivers, donors, 5)
        expected = np.where(ambiguous, expected, sklearn_impute(receivers, donors))
        assert_matches(nan_knn_impute(receivers, donors), expected, scale_of(rows))


def test_memory_mapped_inputs(tmp_path):
    rng = np.random.default_rng(3)
    donors, windows = two_body_windows(rng, 40, num_frames=4)
    np.save(tmp_path / 'rows.npy', windows.astype(np.float32))
    mapped = np.load(tmp_path / 'rows.npy', mmap_mode='r')
    expected = sklearn_impute(mapped, mapped)
    assert_matches(nan_knn_impute(mapped, mapped), expected, scale_of(windows))


def test_approximate_distances_stay_within_their_bounds():
    # The bound is what lets exact sums decide: every product distance must lie inside it,
    # also with a large common offset (cancellation) and groups of unequal size.
    from iospstl_ros.imputation import _Donors, _Layout, _products
    rng = np.random.default_rng(30)
    groups = rng.permutation(np.repeat(np.arange(60), rng.integers(1, 4, 60)))
    rows = 500.0 + rng.normal(0, 1, (80, len(groups))) * rng.uniform(1e-3, 1, (80, 1))
    rows[rng.random((80, 60))[:, groups] < 0.2] = nan
    layout = _Layout(groups, None, len(groups))
    donors = _Donors(rows[:50], layout, np.float32, with_centred=True)
    x = rows[50:].astype(np.float32).astype(np.float64)
    y = rows[:50].astype(np.float32).astype(np.float64)
    for part, symmetric in ((donors.products_of(donors.values), True),
                            (donors.products_of(layout.to_work(rows[50:], np.float32)), False)):
        approx, error = _products(part, donors, symmetric)
        a = y if symmetric else x
        both = ~np.isnan(a)[:, None] & ~np.isnan(y)[None]
        with np.errstate(invalid='ignore', divide='ignore'):
            exact = (np.where(both, a[:, None] - y[None], 0) ** 2).sum(axis=2) * (
                len(groups) / both.sum(axis=2))
        defined = both.any(axis=2)
        assert np.array_equal(np.isfinite(approx), defined)
        assert np.all(np.abs(approx - exact)[defined] <= error[defined])


# Property-based differential test against scikit-learn -----------------------------------


@st.composite
def imputation_cases(draw):
    """Draw an imputation problem: shapes, groups, blocks, dtype, call style and edge cases."""
    return {
        'seed': draw(st.integers(0, 2 ** 32 - 1)),
        'sizes': draw(st.lists(st.integers(1, 3), min_size=1, max_size=10)),
        'n_blocks': draw(st.integers(1, 3)),
        'n_donors': draw(st.integers(1, 24)),
        'n_receivers': draw(st.integers(1, 14)),
        'k': draw(st.integers(1, 7)),
        'dtype': draw(st.sampled_from([np.float16, np.float32, np.float64])),
        'hints': draw(st.sampled_from(['none', 'groups', 'blocks', 'both'])),
        'mode': draw(st.sampled_from(['self', 'batch', 'single', 'bank'])),
        'missing': draw(st.sampled_from([0.0, 0.1, 0.3, 0.6])),
        'zero_distance': draw(st.booleans()),
        'duplicates': draw(st.booleans()),
        'unobserved_group': draw(st.booleans()),
        'nan_donor_rows': draw(st.booleans()),
        'absent_bodies': draw(st.booleans()),
        'scale': draw(st.sampled_from([0.01, 1.0, 50.0])),
    }


def make_problem(case):
    """Receivers, donors, groups and blocks of a case (values as the imputer will see them)."""
    rng = np.random.default_rng(case['seed'])
    sizes = np.array(case['sizes'])
    n_groups = len(sizes)
    labels = rng.permutation(np.repeat(np.arange(n_groups), sizes))   # interleaved groups
    group_block = rng.integers(0, case['n_blocks'], n_groups)
    blocks = group_block[labels]
    n = case['n_donors'] + (0 if case['mode'] == 'self' else case['n_receivers'])
    scale = case['scale']
    rows = scale * (rng.normal(0, 1, (n, len(labels))) + rng.uniform(-3, 3, (n, 1)))
    hidden = rng.random((n, n_groups)) < case['missing']
    rows[hidden[:, labels]] = nan
    donors = rows[:case['n_donors']]
    receivers = donors if case['mode'] == 'self' else rows[case['n_donors']:]
    if case['duplicates'] and len(donors) > 1:
        take = rng.integers(0, len(donors), max(1, len(donors) // 3))
        donors[rng.permutation(len(donors))[:len(take)]] = donors[take]
    if case['zero_distance']:
        # A receiver that equals a donor wherever the receiver is observed: distance 0.
        r, j = rng.integers(len(receivers)), rng.integers(len(donors))
        seen = ~np.isnan(receivers[r])
        receivers[r, seen] = np.where(np.isnan(donors[j, seen]), receivers[r, seen],
                                      donors[j, seen])
        if np.isnan(donors[j]).all():
            donors[j] = receivers[r]
    if case['absent_bodies'] and case['n_blocks'] > 1:
        # Observed zeros on a block (an absent body) in receivers; NaN or zeros in donors.
        for x, absent in ((receivers, 0.0), (donors, rng.choice([0.0, nan]))):
            chosen = rng.random(len(x)) < 0.5
            x[np.ix_(chosen, blocks == rng.integers(1, case['n_blocks']))] = absent
    if case['unobserved_group']:
        donors[:, labels == rng.integers(n_groups)] = nan
    if case['nan_donor_rows']:
        donors[rng.random(len(donors)) < 0.2] = nan
    dtype = case['dtype']
    receivers = receivers.astype(dtype)
    donors = receivers if case['mode'] == 'self' else donors.astype(dtype)
    hints = {'groups': labels, 'blocks': blocks}
    hints = {key: value for key, value in hints.items() if case['hints'] in (key, 'both')}
    return receivers, donors, hints


def run_case(case):
    """Our values, the oracles' and the data's scale for a case."""
    receivers, donors, hints = make_problem(case)
    k, mode = case['k'], case['mode']
    if mode == 'self':
        ours, unfilled = nan_knn_impute(receivers, receivers, k, return_unfilled=True, **hints)
    elif mode == 'batch':
        ours, unfilled = nan_knn_impute(receivers, donors, k, chunk_size=5,
                                        return_unfilled=True, **hints)
    elif mode == 'single':
        parts = [nan_knn_impute(row[None], donors, k, return_unfilled=True, **hints)
                 for row in receivers]
        ours = np.concatenate([p[0] for p in parts])
        unfilled = sum(p[1] for p in parts)
    else:
        storage = np.float16 if donors.dtype == np.float16 else np.float32
        bank = ClusterBank.from_clusters(np.zeros((2, 1)), donors,
                                         np.zeros(len(donors), np.int64), dtype=storage,
                                         groups=hints.get('groups'))
        if 'blocks' in hints:
            bank.set_blocks(hints['blocks'])
        ours, unfilled = bank.impute(receivers, np.zeros(len(receivers), np.int64), k)
        # A bank computes in float32: the oracle gets the float32 values it sees.
        donors = donors.astype(storage).astype(np.float32)
        receivers = receivers.astype(np.float32).astype(receivers.dtype)
    assert ours.dtype == np.result_type(receivers.dtype, np.float32)
    empty = np.isnan(donors).all(axis=0)
    assert unfilled == np.isnan(receivers[:, empty]).sum()
    # scikit-learn's values, and where an exact tie makes its choice ambiguous, the rule's
    # (lowest donor row first); the two oracles agree everywhere else.
    expected, ambiguous = rule_impute(receivers, donors, k)
    reference = sklearn_impute(receivers, donors, k)
    scale = scale_of(receivers, donors)
    assert_matches(np.where(ambiguous, expected, reference), expected, scale)
    return ours, np.where(ambiguous, expected, reference), scale


def test_property_matches_sklearn_on_random_inputs(capsys):
    seen = {'examples': 0, 'worst': 0.0}

    @settings(max_examples=500, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(case=imputation_cases())
    def check(case):
        ours, expected, scale = run_case(case)
        seen['worst'] = max(seen['worst'], assert_matches(ours, expected, scale))
        seen['examples'] += 1

    check()
    with capsys.disabled():
        print(f'\n  imputer vs scikit-learn: {seen["examples"]} examples, worst difference '
              f'{seen["worst"]:.2e} of the data scale (tolerance {RELATIVE_TOLERANCE:.0e})')
    assert seen['examples'] >= 500


# Bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize('receivers, donors, kwargs, match', [
    ([0.0, nan], [[1.0, 2.0]], {}, 'expected a 2-D array'),
    ([[0.0, nan]], [[1.0, 2.0, 3.0]], {}, 'expected 2 features'),
    ([[0, 1]], [[1.0, 2.0]], {}, 'expected a float array'),
    ([[0.0, nan]], [[1.0, np.inf]], {}, 'donors row 0: expected finite values or NaN, got inf'),
    ([[1.0, 2.0], [np.inf, nan]], [[1.0, 2.0]], {}, 'receivers row 1: expected finite'),
    ([[0.0, nan]], [[1.0, 2.0]], {'n_neighbors': 0}, 'n_neighbors: expected an int >= 1'),
    ([[0.0, nan]], [[1.0, 2.0]], {'n_neighbors': 2.5}, 'n_neighbors: expected an int'),
    ([[0.0, nan]], [[1.0, 2.0]], {'chunk_size': 0}, 'chunk_size: expected an int >= 1'),
    ([[0.0, nan]], [[1.0, 2.0]], {'groups': [0]}, r'groups: expected an int array of shape'),
    ([[0.0, nan]], [[1.0, 2.0]], {'groups': [0, 0]},
     r'receivers row 0: features \[0, 1\] form one group but only some of them are missing'),
    ([[0.0, 1.0]], [[1.0, nan]], {'groups': [0, 0]}, 'donors row 0'),
    ([[0.0, nan]], [[1.0, 2.0]], {'blocks': [0]}, r'blocks: expected an int array of shape'),
    ([[0.0, nan]], [[1.0, 2.0]], {'blocks': [0.0, 1.0]}, r'blocks: expected an int array'),
    ([[0.0, nan]], [[1.0, 2.0]], {'groups': [0, 0], 'blocks': [0, 1]},
     r'features \[0, 1\] form one group but lie in blocks \[0, 1\]'),
])
def test_bad_input_raises(receivers, donors, kwargs, match):
    with pytest.raises(ValueError, match=match):
        nan_knn_impute(np.array(receivers), np.array(donors), **kwargs)


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
    for cluster, rows in ((0, slice(0, 20)), (1, slice(20, 40))):
        np.testing.assert_array_equal(bank.cluster_donors(cluster),
                                      donors[bank.donor_index_[rows]].astype(np.float32))
    assert bank.centroids_.dtype == np.float32 and bank.n_features_in_ == 12
    assert bank.n_donors_ == 40 and bank.dtype_ == np.float32


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


def prepared_bank():
    """Clusters of 3, 9, 0, 6 and 9 donors, each around its own value; 3 kept prepared."""
    rng = np.random.default_rng(8)
    labels = np.repeat(np.arange(5), [3, 9, 0, 6, 9])
    donors = 10.0 * labels[:, None] + rng.normal(0, 0.1, (len(labels), 12))
    donors[::4, :3] = nan
    donors[1::5, 6:9] = nan
    return ClusterBank.from_clusters(np.zeros((5, 1)), donors, labels,
                                     groups=np.repeat(np.arange(4), 3), max_cached_clusters=3,
                                     blocks=np.repeat([0, 1], 6))


def test_bank_prepare_keeps_the_largest_clusters_ready():
    bank = prepared_bank()
    assert bank.prepare() == [3, 4, 1]          # sizes 6, 9, 9: the largest kept longest
    assert list(bank._prepared) == [3, 4, 1]
    ready = dict(bank._prepared)
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


def test_bank_prepare_with_an_all_missing_first_donor_and_no_groups():
    donors = np.array([[nan, nan, nan], [1.0, 2.0, 3.0], [2.0, 2.0, 5.0]])
    bank = ClusterBank.from_clusters(np.zeros((1, 1)), donors, np.zeros(3, int))
    assert bank.prepare() == [0]                # trial windows: the donors, the first all NaN
    out, unfilled = bank.impute(np.array([[1.0, 2.0, nan]]), [0])
    assert unfilled == 0 and out[0, 2] == 3.0   # donor 1 at distance 0


def test_bank_prepare_bad_input():
    bank = prepared_bank()
    with pytest.raises(ValueError, match='at most max_cached_clusters = 3 clusters'):
        bank.prepare([0, 1, 3, 4])
    with pytest.raises(ValueError, match=r'expected values in 0\.\.4, got 1\.\.5'):
        bank.prepare([1, 5])
    with pytest.raises(ValueError, match=r'clusters: expected an int array of shape \(1,\)'):
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
        'bank.json', 'centroids.npy', 'donor_index.npy', 'donors', 'groups.npy', 'offsets.npy']
    assert sorted(os.listdir(tmp_path / 'bank' / 'donors')) == [
        'cluster_0000.npy', 'cluster_0001.npy']
    meta = json.loads((tmp_path / 'bank' / 'bank.json').read_text())
    assert meta == {'format': 'iospstl-cluster-bank', 'format_version': 2, 'n_clusters': 2,
                    'n_features': 12, 'n_donors': 40, 'dtype': 'float16',
                    'arrays': ['centroids', 'donor_index', 'groups', 'offsets']}
    assert np.load(tmp_path / 'bank' / 'donors' / 'cluster_0001.npy').shape == (20, 12)
    loaded = ClusterBank.load(tmp_path / 'bank', mmap=True)
    for cluster in (0, 1):
        rows = loaded.cluster_donors(cluster)
        assert isinstance(rows, np.memmap) and rows.dtype == np.float16
        np.testing.assert_array_equal(rows, bank.cluster_donors(cluster))
    for name in ('centroids_', 'offsets_', 'donor_index_'):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(bank, name))
    assert (loaded.n_donors_, loaded.dtype_, loaded.n_features_in_) == (40, np.float16, 12)
    np.testing.assert_array_equal(loaded.groups, bank.groups)
    assert not isinstance(ClusterBank.load(tmp_path / 'bank', mmap=False).cluster_donors(0),
                          np.memmap)
    receivers = np.full((2, 12), 3.0)
    receivers[:, :3] = nan
    clusters = np.array([0, 1])
    np.testing.assert_array_equal(loaded.impute(receivers, clusters)[0],
                                  bank.impute(receivers, clusters)[0])


def test_set_blocks_on_a_loaded_bank(tmp_path):
    rng = np.random.default_rng(13)
    donors, windows = two_body_windows(rng, 60, num_frames=6)
    bank = ClusterBank.from_clusters(np.zeros((1, 2)), donors[:50], np.zeros(50, np.int64),
                                     groups=coordinate_groups(6))
    bank.save(tmp_path)
    loaded = ClusterBank.load(tmp_path)
    before = np.concatenate([loaded.impute(row[None], [0])[0] for row in windows[50:]])
    assert loaded.set_blocks(coordinate_blocks(6)) is loaded
    after = np.concatenate([loaded.impute(row[None], [0])[0] for row in windows[50:]])
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-12)   # float64 sums' order
    with pytest.raises(ValueError, match='blocks: expected an int array of shape'):
        loaded.set_blocks(coordinate_blocks(6)[:-1])


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
    with pytest.raises(ValueError, match=r'donors row 1: expected finite values or NaN'):
        ClusterBank.from_clusters(np.zeros((1, 2)), np.array([[1.0, 2.0], [np.inf, 2.0]]),
                                  np.array([0, 0]))
    with pytest.raises(ValueError, match='beyond the float16 range'):
        ClusterBank.from_clusters(np.zeros((1, 2)), np.full((2, 3), 1e6), np.array([0, 0]),
                                  dtype=np.float16)
    with pytest.raises(ValueError, match='no bank.json'):
        ClusterBank.load(tmp_path)
    bank.save(tmp_path / 'bank')
    os.remove(tmp_path / 'bank' / 'offsets.npy')
    with pytest.raises(ValueError, match='offsets.npy: missing'):
        ClusterBank.load(tmp_path / 'bank')


def write_v1_bank(directory, **changes):
    """Write a format-v1 bank by hand: clusters of 1 and 2 float16 rows in one donors.npy."""
    os.makedirs(directory)
    meta = {'format': 'iospstl-cluster-bank', 'format_version': 1, 'n_clusters': 2,
            'n_features': 3, 'n_donors': 3, 'dtype': 'float16',
            'arrays': ['centroids', 'donor_index', 'donors', 'offsets']}
    (directory / 'bank.json').write_text(json.dumps(dict(meta, **changes)))
    np.save(directory / 'donors.npy',
            np.array([[1, 2, 3], [4, 5, 6], [7, 8, nan]], dtype=np.float16))
    np.save(directory / 'offsets.npy', np.array([0, 1, 3], dtype=np.int64))
    np.save(directory / 'donor_index.npy', np.array([2, 0, 1], dtype=np.int64))
    np.save(directory / 'centroids.npy', np.array([[0.0], [1.0]], dtype=np.float32))


def test_bank_reads_format_v1_and_saves_it_as_v2(tmp_path):
    write_v1_bank(tmp_path / 'v1')
    bank = ClusterBank.load(tmp_path / 'v1')
    assert bank.n_clusters == 2 and (bank.n_donors_, bank.dtype_) == (3, np.float16)
    assert bank.groups is None and bank.offsets_.tolist() == [0, 1, 3]
    assert isinstance(bank.cluster_donors(1), np.memmap)
    assert bank.cluster_donors(0).tolist() == [[1.0, 2.0, 3.0]]
    np.testing.assert_array_equal(bank.cluster_donors(1), [[4.0, 5.0, 6.0], [7.0, 8.0, nan]])
    out, unfilled = bank.impute(np.array([[1.0, 2.0, nan], [4.0, 5.0, nan]]), [0, 1])
    assert out.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]] and unfilled == 0
    bank.save(tmp_path / 'v2')
    assert sorted(os.listdir(tmp_path / 'v2' / 'donors')) == [
        'cluster_0000.npy', 'cluster_0001.npy']
    again = ClusterBank.load(tmp_path / 'v2')
    for cluster in (0, 1):
        assert again.cluster_donors(cluster).tobytes() == bank.cluster_donors(cluster).tobytes()
    assert again.donor_index_.tolist() == [2, 0, 1]


def test_bank_load_names_the_file_and_what_is_wrong(tmp_path):
    write_v1_bank(tmp_path / 'v3', format_version=3)
    with pytest.raises(ValueError, match=r'v3/bank\.json: expected format iospstl-cluster-bank '
                       r'v1 or v2, got iospstl-cluster-bank v3'):
        ClusterBank.load(tmp_path / 'v3')
    write_v1_bank(tmp_path / 'float32', dtype='float32')
    with pytest.raises(ValueError, match=r'donors\.npy: expected float32 \(3, 3\), got float16 '
                       r'\(3, 3\)'):
        ClusterBank.load(tmp_path / 'float32')
    write_v1_bank(tmp_path / 'more', n_donors=4)
    with pytest.raises(ValueError, match=r'offsets\.npy: expected non-decreasing offsets from 0 '
                       r'to 4, got 0\.\.3'):
        ClusterBank.load(tmp_path / 'more')
    bank, _, _ = two_cluster_bank(dtype=np.float16)
    bank.save(tmp_path / 'v2')
    np.save(tmp_path / 'v2' / 'donors' / 'cluster_0001.npy', np.zeros((19, 12), np.float16))
    with pytest.raises(ValueError, match=r'donors/cluster_0001\.npy: expected float16 '
                       r'\(20, 12\), got float16 \(19, 12\)'):
        ClusterBank.load(tmp_path / 'v2')
    os.remove(tmp_path / 'v2' / 'donors' / 'cluster_0000.npy')
    with pytest.raises(ValueError, match=r'donors/cluster_0000\.npy: missing'):
        ClusterBank.load(tmp_path / 'v2')
