"""Window completion (KNN, then temporal interpolation, then mean pose) and the stage-2 CLI."""

import json

from iospstl_ros.completion import complete_windows, knn_rows, temporal_fill
import numpy as np
import pytest

from training.impute import main as impute, random_imputation
from training.pretrain import main as pretrain
from training.synthesize import main as synthesize
from training.windows import load_windows, make_windows


def test_temporal_fill_interpolates_and_holds_the_ends():
    x = np.full((1, 5, 1, 1), np.nan, np.float32)
    x[0, 1, 0, 0], x[0, 3, 0, 0] = 2.0, 6.0
    filled = temporal_fill(x)
    assert filled[0, :, 0, 0].tolist() == [2.0, 2.0, 4.0, 6.0, 6.0]
    never = np.full((1, 3, 1, 1), np.nan, np.float32)
    assert np.isnan(temporal_fill(never)).all()


def test_knn_rows_marks_occluded_nan_and_absent_zero_or_missing():
    data = np.ones((1, 3, 2, 25, 2), np.float32)
    occluded = np.zeros((1, 2, 25, 2), bool)
    occluded[0, 1, 4, 0] = True
    present = np.array([[[True, False], [True, False]]])
    rows = knn_rows(data, occluded, present).reshape(1, 3, 2, 25, 2)
    assert np.isnan(rows[0, :, 1, 4, 0]).all() and np.isnan(rows).sum() == 3
    assert (rows[0, :, :, :, 1] == 0).all()
    donors = knn_rows(data, occluded, present, absent_as_missing=True).reshape(1, 3, 2, 25, 2)
    assert np.isnan(donors[0, :, :, :, 1]).all()
    bad = data.copy()
    bad[0, 0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match='non-finite coordinates at visible joints'):
        knn_rows(bad, occluded, present)


def test_fill_order_knn_then_temporal_then_mean():
    # one body, 3 frames, joint 5 hidden in frame 1 (a donor has it), joint 6 hidden in frame 2
    # (no donor has it: interpolated in time), joint 7 hidden in every frame and in every donor
    # (the mean pose, here 0.25)
    T = 3
    data = np.zeros((1, 3, T, 25, 2), np.float32)
    data[0, :, :, :, 0] = 1.0
    data[0, :, 0, 6, 0] = 3.0
    data[0, :, 1, 6, 0] = 5.0
    occluded = np.zeros((1, T, 25, 2), bool)
    occluded[0, 1, 5, 0] = occluded[0, 2, 6, 0] = True
    occluded[0, :, 7, 0] = True
    present = np.zeros((1, T, 2), bool)
    present[0, :, 0] = True
    donor_data = np.ones((1, 3, T, 25, 2), np.float32)
    donor_data[0, :, 1, 5, 0] = 9.0
    donor_occ = np.zeros((1, T, 25, 2), bool)
    donor_occ[0, 2, 6, 0] = True
    donor_occ[0, :, 7, 0] = True
    donors = knn_rows(donor_data, donor_occ, present, absent_as_missing=True)
    mean = np.full(donors.shape[1], 0.25, np.float32)
    completed, counts = complete_windows(data, occluded, present, donors=donors,
                                         feature_mean=mean)
    assert completed[0, :, 1, 5, 0].tolist() == [9.0, 9.0, 9.0]      # the only donor
    assert completed[0, :, 2, 6, 0].tolist() == [5.0, 5.0, 5.0]      # held from frame 1
    assert completed[0, :, :, 7, 0].ravel().tolist() == [0.25] * 9   # mean pose
    assert counts == {'occluded': 5, 'knn': 1, 'temporal': 1, 'mean': 3}
    assert not np.isnan(completed).any()
    assert (completed[..., 1] == 0).all()


def test_random_imputation_stays_within_the_visible_range():
    rng = np.random.default_rng(0)
    data = rng.uniform(-1, 1, (2, 3, 4, 25, 2)).astype(np.float32)
    occluded = rng.random((2, 4, 25, 2)) < 0.3
    present = np.ones((2, 4, 2), bool)
    filled = random_imputation(data, occluded, present, np.random.default_rng(1))
    for n in range(2):
        for c in range(3):
            visible = data[n, c][~occluded[n]]
            hidden = filled[n, c][occluded[n]]
            assert visible.min() <= hidden.min() and hidden.max() <= visible.max()
    assert np.array_equal(filled[~np.broadcast_to(occluded[:, None], filled.shape)],
                          data[~np.broadcast_to(occluded[:, None], data.shape)])


@pytest.mark.slow
def test_impute_cli_writes_a_complete_benchmark(tmp_path):
    synthesize(['--out', str(tmp_path / 's'), '--num-samples', '102', '--seed', '5',
                '--benchmarks', 'xsub', '--max-frames', '150', '--workers', '1'])
    data = str(tmp_path / 's' / 'xsub')
    for part in ('train', 'val'):
        make_windows(data, part, progress=False)
    encoder = pretrain(['--data', data, '--out', str(tmp_path / 'pre'), '--preset', 'tiny',
                        '--epochs', '1', '--device', 'cpu', '--no-progress'])
    out = tmp_path / 'imputed'
    stats = impute(['--data', data, '--encoder', encoder, '--out', str(out), '--clusters', '4',
                    '--no-progress'])
    completed, occluded, present = load_windows(str(out), 'val')
    original, _, _ = load_windows(data, 'val')
    assert not np.isnan(completed).any()
    visible = ~np.isnan(original)
    assert np.array_equal(completed[visible], original[visible])
    assert stats['val']['occluded'] == int((occluded & present[:, :, None, :]).sum())
    assert sum(stats['val'][k] for k in ('knn', 'temporal', 'mean')) == stats['val']['occluded']
    train_clusters = np.load(out / 'train_cluster.npy')
    assert train_clusters.shape == (51,) and set(train_clusters.tolist()) <= {0, 1, 2, 3}
    assert json.loads((out / 'meta.json').read_text())['imputation']['method'] == 'cluster-knn'
    assert (out / 'bank' / 'bank.json').exists()
    assert not (tmp_path / 'imputed.partial').exists()
    with pytest.raises(ValueError, match='needs --encoder'):
        impute(['--data', data, '--out', str(tmp_path / 'x')])
