"""Data set files: SplitWriter -> open_split round trip, B, and validation errors."""

import json
import pickle

from iospstl_ros.datasets.format import (
    meta_action_ids, missing_joint_flags, open_split, SplitWriter)
import numpy as np
import pytest


def _sample(frames, bodies, offset):
    xyz = np.arange(3 * frames * 25 * bodies, dtype=np.float32).reshape(3, frames, 25, bodies)
    return xyz + offset


def test_round_trip_with_nan_at_occluded_joints(tmp_path):
    writer = SplitWriter(str(tmp_path), 'train', num_samples=2, max_frames=4)
    occluded = np.zeros((3, 25, 1), dtype=bool)
    occluded[1, 7, 0] = True
    writer.write(0, 'S001C001P001R001A003', 2, _sample(3, 1, 0.0), occluded,
                 np.ones((3, 1), dtype=bool))
    present = np.array([[True, True], [True, False]])
    writer.write(1, 'S001C002P002R001A050', 49, _sample(2, 2, 1.0),
                 np.zeros((2, 25, 2), dtype=bool), present)
    writer.close({'source': 'test', 'classes': ['a'] * 60})

    split = open_split(str(tmp_path), 'train')
    assert len(split) == 2
    assert split.names == ['S001C001P001R001A003', 'S001C002P002R001A050']
    assert split.labels.tolist() == [2, 49]
    assert split.num_frames.tolist() == [3, 2]
    assert split.data.shape == (2, 3, 4, 25, 2)
    assert np.isnan(split.data[0, :, 1, 7, 0]).all()
    assert np.isnan(split.data).sum() == 3
    # second body absent in sample 0, padding frame 3: zeros, not NaN, not occluded
    assert (split.data[0, :, :, :, 1] == 0).all() and (split.data[0, :, 3] == 0).all()
    assert not split.occluded[0, 3].any()
    assert split.data[0, 0, 0, 0, 0] == 0.0 and split.data[0, 2, 2, 24, 0] == 224.0
    # body 1 of sample 1 is absent in frame 1: stored as zeros
    assert (split.data[1, :, 1, :, 1] == 0).all()
    assert split.present[1].tolist() == [[True, True], [True, False], [False, False],
                                         [False, False]]
    assert split.B[0].tolist() == [0] * 7 + [1] + [0] * 17
    assert split.B[1].sum() == 0
    with open(tmp_path / 'train_label.pkl', 'rb') as f:
        assert pickle.load(f) == (split.names, [2, 49])
    meta = json.loads((tmp_path / 'meta.json').read_text())
    assert meta['parts'] == {'train': 2} and meta['max_frames'] == 4


def test_missing_joint_flags_ignores_absent_bodies():
    occluded = np.zeros((2, 25, 2), dtype=bool)
    occluded[0, 3, 1] = True           # body 1 absent at frame 0: does not count
    occluded[1, 14, 0] = True
    present = np.array([[True, False], [True, True]])
    assert np.flatnonzero(missing_joint_flags(occluded, present)).tolist() == [14]


def test_writer_rejects_bad_shapes_and_unwritten_samples(tmp_path):
    writer = SplitWriter(str(tmp_path), 'val', num_samples=2, max_frames=4)
    expected = r'expected xyz of shape \(3, T, 25, M\), got \(3, 2, 24, 1\)'
    with pytest.raises(ValueError, match=expected):
        writer.write(0, 'x', 0, np.zeros((3, 2, 24, 1)), np.zeros((2, 24, 1), bool),
                     np.ones((2, 1), bool))
    with pytest.raises(ValueError, match='at most 4 frames'):
        writer.write(0, 'x', 0, np.zeros((3, 5, 25, 1)), np.zeros((5, 25, 1), bool),
                     np.ones((5, 1), bool))
    bad = np.zeros((3, 2, 25, 1))
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match='non-finite coordinates in visible joints'):
        writer.write(0, 'x', 0, bad, np.zeros((2, 25, 1), bool), np.ones((2, 1), bool))
    with pytest.raises(ValueError, match='2 samples were never written'):
        writer.close({})
    with pytest.raises(ValueError, match='part must be one of'):
        SplitWriter(str(tmp_path), 'test', 1)


def test_open_split_names_the_bad_file(tmp_path):
    with pytest.raises(ValueError, match='no meta.json'):
        open_split(str(tmp_path), 'train')
    writer = SplitWriter(str(tmp_path), 'train', num_samples=1, max_frames=2)
    writer.write(0, 'a', 0, np.zeros((3, 2, 25, 1)), np.zeros((2, 25, 1), bool),
                 np.ones((2, 1), bool))
    writer.close({})
    np.save(tmp_path / 'train_B.npy', np.zeros((1, 24), np.uint8))
    expected = r'train_B.npy: expected uint8 \(1, 25\), got uint8 \(1, 24\)'
    with pytest.raises(ValueError, match=expected):
        open_split(str(tmp_path), 'train')
    (tmp_path / 'train_label.npy').unlink()
    with pytest.raises(ValueError, match='train_label.npy: missing'):
        open_split(str(tmp_path), 'train')


def test_meta_action_ids_are_optional_and_checked():
    assert meta_action_ids({'classes': ['a', 'b'], 'action_ids': [58, 0]}) == (58, 0)
    assert meta_action_ids({'classes': ['a', 'b']}) is None
    with pytest.raises(ValueError, match=r'meta\.json action_ids: expected 2 NTU action ids'):
        meta_action_ids({'classes': ['a', 'b'], 'action_ids': [58]})
