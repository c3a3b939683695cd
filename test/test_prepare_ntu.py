"""NTU sample names and benchmark splits, and training.prepare_ntu end to end on tiny files."""

import json
import os
import pickle

from helpers import ID_A, ID_B, pose, write_skeleton
from iospstl_ros.datasets.format import open_split
from iospstl_ros.datasets.splits import (
    action_code, ACTION_NAMES, check_action_ids, in_dataset, is_training,
    NTU120_XSUB_TRAIN_SUBJECTS, NTU60_XSUB_TRAIN_SUBJECTS, parse_sample_name, SampleName)
import numpy as np
import pytest
from training.prepare_ntu import main, read_ignore_list


def test_parse_sample_name():
    sample = parse_sample_name('S001C002P003R002A013')
    assert sample == SampleName(setup=1, camera=2, performer=3, replication=2, action=13)
    assert sample.label == 12 and str(sample) == 'S001C002P003R002A013'
    assert parse_sample_name('S032C003P106R002A120').label == 119


@pytest.mark.parametrize('name', ['S001C002P003R002A13', 's001C002P003R002A013',
                                  'S001C002P003R002A013.skeleton', 'S001C002P003R002A0131',
                                  'S000C002P003R002A013', 'S001C002P003R002A000', '', None])
def test_parse_sample_name_rejects_bad_names(name):
    with pytest.raises(ValueError, match='S001C002P003R002A013|start at 1'):
        parse_sample_name(name)


@pytest.mark.parametrize('name, benchmark, training', [
    ('S001C001P001R001A001', 'ntu60-xsub', True),
    ('S001C001P003R001A001', 'ntu60-xsub', False),
    ('S017C003P038R002A060', 'ntu60-xsub', True),
    ('S017C003P040R002A060', 'ntu60-xsub', False),
    ('S005C001P001R001A010', 'ntu60-xview', False),
    ('S005C002P003R001A010', 'ntu60-xview', True),
    ('S005C003P003R001A010', 'ntu60-xview', True),
    ('S001C001P045R001A001', 'ntu120-xsub', True),
    ('S020C001P044R001A070', 'ntu120-xsub', False),
    ('S032C002P103R002A120', 'ntu120-xsub', True),
    ('S032C002P106R002A120', 'ntu120-xsub', False),
    ('S018C001P008R001A061', 'ntu120-xsub', True),
    ('S001C001P001R001A001', 'ntu120-xset', False),
    ('S002C001P003R001A001', 'ntu120-xset', True),
    ('S031C002P001R001A100', 'ntu120-xset', False),
    ('S032C002P001R001A100', 'ntu120-xset', True),
])
def test_benchmark_membership(name, benchmark, training):
    assert is_training(name, benchmark) is training


def test_benchmark_errors_and_constants():
    with pytest.raises(ValueError, match='not a sample of ntu60'):
        is_training('S001C001P001R001A061', 'ntu60-xsub')
    with pytest.raises(ValueError, match='not a sample of ntu60'):
        is_training('S018C001P008R001A001', 'ntu60-xview')
    with pytest.raises(ValueError, match='benchmark must be one of'):
        is_training('S001C001P001R001A001', 'ntu60-xset')
    with pytest.raises(ValueError, match='dataset must be one of'):
        in_dataset('S001C001P001R001A001', 'ntu90')
    assert not in_dataset('S001C001P001R001A121', 'ntu120')
    assert len(NTU60_XSUB_TRAIN_SUBJECTS) == 20 and len(NTU120_XSUB_TRAIN_SUBJECTS) == 53
    assert NTU60_XSUB_TRAIN_SUBJECTS < NTU120_XSUB_TRAIN_SUBJECTS
    assert len(ACTION_NAMES) == 120 and len(set(ACTION_NAMES)) == 120
    assert ACTION_NAMES[:2] == ('drink water', 'eat meal/snack')
    assert ACTION_NAMES[59] == 'walking apart from each other'
    assert ACTION_NAMES[60] == 'put on headphone'
    assert ACTION_NAMES[119] == 'finger-guessing game (playing rock-paper-scissors)'


def test_check_action_ids():
    assert check_action_ids([58, 0, np.int64(120), 0], 4) == (58, 0, 120, 0)
    assert action_code(58) == 'A058' and action_code(0) == ''
    with pytest.raises(ValueError, match=r'expected 3 NTU action ids \(one per class\), got 2'):
        check_action_ids([1, 2], 3)
    with pytest.raises(ValueError, match=r'expected a list of 2 NTU action ids, got 12'):
        check_action_ids(12, 2)
    for bad in (121, -1, 1.0, True, '5'):
        with pytest.raises(ValueError, match=r'action id of class 1: expected an int in '
                           r'1\.\.120 \(or 0 = no NTU action\), got '):
            check_action_ids([1, bad], 2)
    with pytest.raises(ValueError, match='action id 7 belongs to classes 0 and 2; expected '
                       'each NTU action at most once'):
        check_action_ids([7, 0, 7], 3)


def _write_inputs(root):
    """Nine tiny NTU-60 files (and one NTU-120 one) covering every path of prepare_ntu."""
    root.mkdir()
    write_skeleton(root / 'S001C001P001R001A001.skeleton',        # xsub train, xview val
                   [[(ID_A, pose())], [(ID_A, pose(dx=0.1, states={5: 1}))],
                    [(ID_A, pose(dx=0.2))]])
    write_skeleton(root / 'S001C002P003R001A002.skeleton',        # xsub val, xview train
                   [[(ID_A, pose()), (ID_B, pose(dx=1.0, states={0: 0}))],
                    [(ID_B, pose(dx=1.1))]])
    write_skeleton(root / 'S001C003P002R002A003.skeleton',        # both train; empty frame
                   [[(ID_A, pose(zero=(3,)))], [], [(ID_A, pose())], [(ID_A, pose())]])
    write_skeleton(root / 'S002C002P004R001A004.skeleton',        # three bodies
                   [[(ID_A, pose()), (ID_B, pose(dx=1.0)), (5, pose(dx=2.0, zero=(1,)))]])
    (root / 'S002C001P004R001A005.skeleton').write_text('2\n0\n0\n')           # no body
    write_skeleton(root / 'S002C001P005R001A006.skeleton',        # no visible joint
                   [[(ID_A, pose(states=dict.fromkeys(range(25), 1)))]])
    write_skeleton(root / 'S003C001P006R001A007.skeleton',        # on the ignore list
                   [[(ID_A, pose())]])
    write_skeleton(root / 'S003C001P007R001A008.skeleton',        # 301 frames: cut
                   [[(ID_A, pose(dx=t / 1000))] for t in range(301)])
    write_skeleton(root / 'S018C001P008R001A061.skeleton',        # NTU-120 only
                   [[(ID_A, pose())]])
    (root / 'notes.txt').write_text('not a skeleton')
    ignore = root.parent / 'missing.txt'
    ignore.write_text('302 of the captured samples in the "NTU RGB+D" dataset have missing\n'
                      'If you are working on skeleton-based analysis, please ignore these\n\n'
                      'S003C001P006R001A007\nS017C003P020R001A059\n')
    return ignore


def _run(tmp_path, out, *extra):
    ignore = tmp_path / 'missing.txt'
    return main(['--skeletons', str(tmp_path / 'skeletons'), '--out', str(out),
                 '--dataset', 'ntu60', '--ignore-list', str(ignore), *extra])


def test_prepare_skeletons_end_to_end(tmp_path):
    _write_inputs(tmp_path / 'skeletons')
    counts = _run(tmp_path, tmp_path / 'out', '--workers', '1')
    assert counts == {'inputs': 9, 'outside_dataset': 1, 'ignored': 1, 'skipped_no_body': 1,
                      'skipped_no_visible_joint': 1, 'truncated': 1, 'written': 5}
    assert sorted(os.listdir(tmp_path / 'out')) == ['xsub', 'xview']

    train = open_split(str(tmp_path / 'out' / 'xsub'), 'train')
    val = open_split(str(tmp_path / 'out' / 'xsub'), 'val')
    assert train.names == ['S001C001P001R001A001', 'S001C003P002R002A003',
                           'S002C002P004R001A004']
    assert train.labels.tolist() == [0, 2, 3] and train.num_frames.tolist() == [3, 4, 1]
    assert val.names == ['S001C002P003R001A002', 'S003C001P007R001A008']
    assert val.labels.tolist() == [1, 7] and val.num_frames.tolist() == [2, 300]
    with open(tmp_path / 'out' / 'xsub' / 'train_label.pkl', 'rb') as f:
        assert pickle.load(f) == (train.names, [0, 2, 3])

    # sample 0: joint 5 inferred in frame 1 -> NaN there only
    data = train.data[0]
    assert np.argwhere(np.isnan(data[0])).tolist() == [[1, 5, 0]]
    assert np.isnan(data[:, 1, 5, 0]).all()
    assert data[:, 2, 0, 0].tolist() == [np.float32(0.2), np.float32(-0.10), 3.0]
    assert (data[:, :, :, 1] == 0).all() and (data[:, 3:] == 0).all()
    assert train.present[0, :4].tolist() == [[True, False]] * 3 + [[False, False]]
    assert np.flatnonzero(train.B[0]).tolist() == [5]
    # sample 1: zero joint 3 -> occluded; the empty frame is kept, not present
    assert np.argwhere(train.occluded[1]).tolist() == [[0, 3, 0]]
    assert train.present[1, :4, 0].tolist() == [True, False, True, True]
    assert (train.data[1, :, 1] == 0).all()
    assert np.flatnonzero(train.B[1]).tolist() == [3]
    # sample 2: three bodies -> the first two; the third's zero joint does not count
    assert train.present[2, 0].tolist() == [True, True]
    assert train.data[2, 0, 0, 0].tolist() == [0.0, 1.0]
    assert train.B[2].sum() == 0
    # 301 frames cut to 300
    assert val.data[1, 0, 299, 0, 0] == np.float32(0.299) and val.present[1, :, 0].all()
    # the two-body sample: body 2 untracked spine base in frame 0; body 2 alone in frame 1
    assert np.argwhere(val.occluded[0]).tolist() == [[0, 0, 1]]
    assert val.data[0, 0, 1, 0, :].tolist() == [np.float32(1.1), 0.0]
    assert val.present[0, :2].tolist() == [[True, True], [True, False]]

    meta = json.loads((tmp_path / 'out' / 'xsub' / 'meta.json').read_text())
    assert meta['benchmark'] == 'ntu60-xsub' and meta['source'] == 'ntu60'
    assert meta['classes'] == list(ACTION_NAMES[:60])
    assert meta['action_ids'] == list(range(1, 61)) and train.action_ids[7] == 8
    assert meta['occlusion'] == 'none' and meta['seed'] == 1
    assert meta['occluded_states'] == [0, 1] and meta['counts'] == counts
    assert meta['parts'] == {'train': 3, 'val': 2}
    assert meta['command'].startswith('python -m training.prepare_ntu --skeletons ')

    xview_train = open_split(str(tmp_path / 'out' / 'xview'), 'train')
    xview_val = open_split(str(tmp_path / 'out' / 'xview'), 'val')
    assert xview_train.names == ['S001C002P003R001A002', 'S001C003P002R002A003',
                                 'S002C002P004R001A004']
    assert xview_val.names == ['S001C001P001R001A001', 'S003C001P007R001A008']
    np.testing.assert_array_equal(xview_val.data[0], train.data[0])


def test_occluded_states_option_and_benchmark_choice(tmp_path):
    _write_inputs(tmp_path / 'skeletons')
    counts = _run(tmp_path, tmp_path / 'out', '--workers', '1', '--benchmarks', 'xview',
                  '--occluded-states', '0')
    # inferred joints now count as visible: the all-inferred sample is kept
    assert counts['skipped_no_visible_joint'] == 0 and counts['written'] == 6
    assert os.listdir(tmp_path / 'out') == ['xview']
    val = open_split(str(tmp_path / 'out' / 'xview'), 'val')
    assert val.names[0] == 'S001C001P001R001A001' and not val.occluded[0].any()
    with pytest.raises(SystemExit):
        _run(tmp_path, tmp_path / 'out2', '--benchmarks', 'xset')


def test_workers_do_not_change_the_output(tmp_path):
    _write_inputs(tmp_path / 'skeletons')
    _run(tmp_path, tmp_path / 'one', '--workers', '1', '--occlusion', 'random')
    _run(tmp_path, tmp_path / 'two', '--workers', '2', '--occlusion', 'random')
    plain = tmp_path / 'plain'
    _run(tmp_path, plain, '--workers', '1')
    for part in ('train', 'val'):
        one = open_split(str(tmp_path / 'one' / 'xsub'), part)
        two = open_split(str(tmp_path / 'two' / 'xsub'), part)
        base = open_split(str(plain / 'xsub'), part)
        assert one.names == two.names == base.names
        np.testing.assert_array_equal(one.occluded, two.occluded)
        np.testing.assert_array_equal(one.data, two.data)
        # synthetic occlusion only adds to the source occlusion
        assert (one.occluded >= base.occluded).all()
        assert one.occluded.sum() > base.occluded.sum()
    meta = json.loads((tmp_path / 'one' / 'xsub' / 'meta.json').read_text())
    assert meta['occlusion'] == 'random' and meta['seed'] == 1


def test_realistic_occlusion_is_per_sample_and_the_same_in_every_benchmark(tmp_path):
    _write_inputs(tmp_path / 'skeletons')
    _run(tmp_path, tmp_path / 'a', '--workers', '1', '--occlusion', 'realistic', '--seed', '3')
    _run(tmp_path, tmp_path / 'b', '--workers', '2', '--occlusion', 'realistic', '--seed', '3')
    _run(tmp_path, tmp_path / 'plain', '--workers', '1')
    xsub = open_split(str(tmp_path / 'a' / 'xsub'), 'train')
    xview = open_split(str(tmp_path / 'a' / 'xview'), 'val')
    again = open_split(str(tmp_path / 'b' / 'xsub'), 'train')
    plain = open_split(str(tmp_path / 'plain' / 'xsub'), 'train')
    np.testing.assert_array_equal(xsub.occluded, again.occluded)
    assert (xsub.occluded >= plain.occluded).all()
    # S001C001P001R001A001 is xsub train [0] and xview val [0]; same generator, same mask
    np.testing.assert_array_equal(xsub.occluded[0], xview.occluded[0])
    assert json.loads((tmp_path / 'a' / 'xsub' / 'meta.json').read_text())['seed'] == 3


def test_prepare_npy_input(tmp_path):
    data = np.zeros((3, 3, 300, 25, 2), dtype=np.float32)
    body = np.array(pose(), dtype=np.float32)[:, :3].T               # (3, 25)
    data[0, :, :4, :, 0] = body[:, None, :]
    data[0, :, 1, 7, 0] = 0.0                                        # occluded joint
    data[0, :, 2, :, 1] = body + 1.0                                 # second body, frame 2
    data[1, :, :2, :, 0] = body[:, None, :]
    data[1, :, 1, :, 0] = 0.0                                        # no body in frame 1
    data[1, :, 5, :, 0] = body                                       # last frame 5
    # sample 2 stays all zero: skipped
    np.save(tmp_path / 'train_data_joint.npy', data[:2])
    np.save(tmp_path / 'val_data_joint.npy', data[2:])
    names = ['S001C001P002R001A003.skeleton', 'S001C002P003R001A060.skeleton']
    with open(tmp_path / 'train_label.pkl', 'wb') as f:
        pickle.dump((names, [2, 59]), f)
    with open(tmp_path / 'val_label.pkl', 'wb') as f:
        pickle.dump((['S001C001P004R001A010.skeleton'], [9]), f)

    counts = main(['--npy-data', str(tmp_path / 'train_data_joint.npy'),
                   str(tmp_path / 'val_data_joint.npy'),
                   '--npy-labels', str(tmp_path / 'train_label.pkl'),
                   str(tmp_path / 'val_label.pkl'),
                   '--out', str(tmp_path / 'out'), '--dataset', 'ntu60', '--workers', '1'])
    assert counts['inputs'] == 3 and counts['skipped_no_body'] == 1 and counts['written'] == 2
    train = open_split(str(tmp_path / 'out' / 'xsub'), 'train')
    val = open_split(str(tmp_path / 'out' / 'xsub'), 'val')
    assert train.names == ['S001C001P002R001A003'] and train.labels.tolist() == [2]
    assert val.names == ['S001C002P003R001A060'] and val.labels.tolist() == [59]
    assert train.num_frames.tolist() == [4] and val.num_frames.tolist() == [6]
    assert np.argwhere(train.occluded[0]).tolist() == [[1, 7, 0]]
    assert np.isnan(train.data[0, :, 1, 7, 0]).all()
    assert train.present[0, :5].tolist() == [[True, False], [True, False], [True, True],
                                             [True, False], [False, False]]
    assert train.data[0, 0, 2, 0, 1] == 1.0
    assert np.flatnonzero(train.B[0]).tolist() == [7]
    assert val.present[0, :6, 0].tolist() == [True, False, False, False, False, True]
    assert not val.occluded.any()

    with open(tmp_path / 'val_label.pkl', 'wb') as f:
        pickle.dump((['S001C001P004R001A010.skeleton'], [3]), f)
    with pytest.raises(ValueError, match='has label 3, its name says 9'):
        main(['--npy-data', str(tmp_path / 'val_data_joint.npy'),
              '--npy-labels', str(tmp_path / 'val_label.pkl'),
              '--out', str(tmp_path / 'out2'), '--dataset', 'ntu60', '--workers', '1'])


def test_ignore_list_and_bad_inputs(tmp_path):
    ignore = tmp_path / 'list.txt'
    ignore.write_text('header line\nS001C001P001R001A001\r\n  S002C001P001R001A002.skeleton\n')
    assert read_ignore_list(ignore) == {'S001C001P001R001A001', 'S002C001P001R001A002'}
    skeletons = tmp_path / 'skeletons'
    skeletons.mkdir()
    with pytest.raises(ValueError, match='no .skeleton files'):
        main(['--skeletons', str(skeletons), '--out', str(tmp_path / 'out'),
              '--dataset', 'ntu60'])
    (skeletons / 'bad_name.skeleton').write_text('0\n')
    with pytest.raises(ValueError, match="got 'bad_name'"):
        main(['--skeletons', str(skeletons), '--out', str(tmp_path / 'out'),
              '--dataset', 'ntu60'])
    (skeletons / 'bad_name.skeleton').unlink()
    (skeletons / 'S001C001P001R001A001.skeleton').write_text('2\n0\n')
    with pytest.raises(ValueError, match=r'S001C001P001R001A001\.skeleton, line 3'):
        main(['--skeletons', str(skeletons), '--out', str(tmp_path / 'out'),
              '--dataset', 'ntu60', '--workers', '1'])
    with pytest.raises(SystemExit):
        main(['--npy-data', 'x.npy', '--out', str(tmp_path / 'out'), '--dataset', 'ntu60'])


def test_npy_input_rejects_a_sample_given_twice(tmp_path):
    np.save(tmp_path / 'data.npy', np.ones((1, 3, 4, 25, 2), dtype=np.float32))
    with open(tmp_path / 'label.pkl', 'wb') as f:
        pickle.dump((['S001C001P001R001A001'], [0]), f)
    args = ['--npy-data', str(tmp_path / 'data.npy'), str(tmp_path / 'data.npy'),
            '--npy-labels', str(tmp_path / 'label.pkl'), str(tmp_path / 'label.pkl')]
    with pytest.raises(ValueError, match=r'1 samples appear more than once .*R001A001\)'):
        main(args + ['--out', str(tmp_path / 'out'), '--dataset', 'ntu60', '--workers', '1'])
