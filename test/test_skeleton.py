"""NTU ``.skeleton`` reader, occlusion flags and layout conversion on tiny hand-written files."""

from helpers import ID_A, ID_B, pose, skeleton_text, write_skeleton
from iospstl_ros.datasets.ntu import (
    NtuSkeleton, occlusion_from_tracking, read_ntu_skeleton, to_layout)
import numpy as np
import pytest


@pytest.mark.parametrize('newline', ['\n', '\r\n'])
def test_reads_one_body_with_lf_and_crlf(tmp_path, newline):
    path = write_skeleton(tmp_path / 'S001C001P001R001A001.skeleton',
                          [[(ID_A, pose())], [(ID_A, pose(dx=0.5, states={7: 1, 21: 0}))]],
                          newline)
    skeleton = read_ntu_skeleton(path)
    assert isinstance(skeleton, NtuSkeleton)
    assert skeleton.xyz.shape == (2, 1, 25, 3) and skeleton.xyz.dtype == np.float32
    assert skeleton.tracking_state.dtype == np.uint8 and skeleton.body_ids.dtype == np.uint64
    assert skeleton.xyz[0, 0, 0].tolist() == [0.0, np.float32(-0.10), 3.0]
    assert skeleton.xyz[1, 0, 4].tolist() == [np.float32(0.33), np.float32(0.36), 3.0]
    assert skeleton.xyz[1, 0, 15].tolist() == [np.float32(0.41), np.float32(-0.86),
                                               np.float32(2.95)]
    assert skeleton.tracking_state[0, 0].tolist() == [2] * 25
    assert np.flatnonzero(skeleton.tracking_state[1, 0] != 2).tolist() == [7, 21]
    assert skeleton.tracking_state[1, 0, [7, 21]].tolist() == [1, 0]
    assert skeleton.body_ids.tolist() == [[ID_A], [ID_A]]
    assert skeleton.body_counts.tolist() == [1, 1]
    assert skeleton.num_frames == 2 and skeleton.num_bodies == 1


def test_two_bodies_with_17_digit_ids_and_an_absent_slot(tmp_path):
    path = write_skeleton(tmp_path / 'S001C001P001R001A050.skeleton',
                          [[(ID_A, pose()), (ID_B, pose(dx=1.0))], [(ID_B, pose(dx=2.0))]])
    skeleton = read_ntu_skeleton(path)
    assert skeleton.xyz.shape == (2, 2, 25, 3)
    assert int(skeleton.body_ids[0, 0]) == ID_A and int(skeleton.body_ids[0, 1]) == ID_B
    assert skeleton.body_ids[0, 0] != skeleton.body_ids[0, 1]
    # file order within each frame: frame 1's only body is in slot 0 whatever its id
    assert skeleton.body_ids[1].tolist() == [ID_B, 0]
    assert skeleton.xyz[0, 1, 0].tolist() == [1.0, np.float32(-0.10), 3.0]
    assert skeleton.xyz[1, 0, 0].tolist() == [2.0, np.float32(-0.10), 3.0]
    assert np.isnan(skeleton.xyz[1, 1]).all()
    assert skeleton.tracking_state[1, 1].tolist() == [0] * 25
    assert skeleton.present.tolist() == [[True, True], [True, False]]


def test_frame_without_bodies_and_file_without_bodies(tmp_path):
    path = write_skeleton(tmp_path / 'a.skeleton', [[(ID_A, pose())], [], [(ID_A, pose())]])
    skeleton = read_ntu_skeleton(path)
    assert skeleton.xyz.shape == (3, 1, 25, 3)
    assert skeleton.body_counts.tolist() == [1, 0, 1]
    assert skeleton.present.tolist() == [[True], [False], [True]]
    assert np.isnan(skeleton.xyz[1]).all() and not np.isnan(skeleton.xyz[[0, 2]]).any()
    assert skeleton.body_ids.tolist() == [[ID_A], [0], [ID_A]]

    empty = tmp_path / 'S001C002P006R001A008.skeleton'     # like the real one: 0 bodies
    empty.write_text('3\n0\n0\n0\n')
    skeleton = read_ntu_skeleton(empty)
    assert skeleton.xyz.shape == (3, 0, 25, 3) and skeleton.num_bodies == 0
    assert skeleton.tracking_state.shape == (3, 0, 25) and skeleton.body_ids.shape == (3, 0)
    xyz, occluded, present = to_layout(skeleton)
    assert xyz.shape == (3, 3, 25, 2) and not present.any() and not occluded.any()

    (tmp_path / 'none.skeleton').write_text('0\n')
    assert read_ntu_skeleton(tmp_path / 'none.skeleton').xyz.shape == (0, 0, 25, 3)


def test_inferred_untracked_and_zero_joints_are_occluded(tmp_path):
    path = write_skeleton(tmp_path / 'a.skeleton', [
        [(ID_A, pose(states={3: 1, 9: 0}, zero=(12,))), (ID_B, pose(dx=1.0, states={4: 1}))],
        [(ID_A, pose(states={5: 1}))],
    ])
    skeleton = read_ntu_skeleton(path)
    occluded = occlusion_from_tracking(skeleton.tracking_state, skeleton.xyz)
    assert occluded.shape == (2, 2, 25) and occluded.dtype == bool
    assert np.argwhere(occluded).tolist() == [[0, 0, 3], [0, 0, 9], [0, 0, 12], [0, 1, 4],
                                              [1, 0, 5]]
    # only "not tracked" (the zero test stays on); frame 1's absent slot is never flagged
    occluded = occlusion_from_tracking(skeleton.tracking_state, skeleton.xyz, (0,))
    assert np.argwhere(occluded).tolist() == [[0, 0, 9], [0, 0, 12]]
    occluded = occlusion_from_tracking(skeleton.tracking_state, skeleton.xyz, ())
    assert np.argwhere(occluded).tolist() == [[0, 0, 12]]
    with pytest.raises(ValueError, match='occluded_states'):
        occlusion_from_tracking(skeleton.tracking_state, skeleton.xyz, (3,))
    with pytest.raises(ValueError, match='expected tracking_state'):
        occlusion_from_tracking(skeleton.tracking_state[0], skeleton.xyz)


def test_to_layout_keeps_the_first_two_bodies_in_file_order(tmp_path):
    path = write_skeleton(tmp_path / 'a.skeleton', [
        [(ID_A, pose(states={6: 1})), (ID_B, pose(dx=1.0)), (7, pose(dx=2.0))],
        [(ID_B, pose(dx=3.0, zero=(0,)))],
    ])
    xyz, occluded, present = to_layout(read_ntu_skeleton(path))
    assert xyz.shape == (3, 2, 25, 2) and xyz.dtype == np.float32
    assert occluded.shape == (2, 25, 2) and present.shape == (2, 2)
    assert present.tolist() == [[True, True], [True, False]]
    assert xyz[:, 0, 0, 0].tolist() == [0.0, np.float32(-0.10), 3.0]
    assert xyz[:, 0, 0, 1].tolist() == [1.0, np.float32(-0.10), 3.0]
    assert xyz[:, 1, 1, 0].tolist() == [3.0, np.float32(0.17), 3.0]
    assert (xyz[:, 1, :, 1] == 0).all()                  # absent slot: zeros, not NaN
    assert xyz[:, 1, 0, 0].tolist() == [0.0, 0.0, 0.0]   # occluded joint keeps its value
    assert np.argwhere(occluded).tolist() == [[0, 6, 0], [1, 0, 0]]
    xyz, occluded, present = to_layout(read_ntu_skeleton(path), max_bodies=3)
    assert xyz[:, 0, 0, 2].tolist() == [2.0, np.float32(-0.10), 3.0]
    assert present.tolist() == [[True, True, True], [True, False, False]]


def _lines(frames):
    return skeleton_text(frames).splitlines()


def test_truncated_files_name_the_file_and_line(tmp_path):
    lines = _lines([[(ID_A, pose())], [(ID_A, pose())]])   # 2 frames of 28 lines + 1
    assert len(lines) == 57
    path = tmp_path / 'S001C001P001R001A001.skeleton'
    path.write_text('\n'.join(lines[:29]) + '\n')           # frame 2 missing
    with pytest.raises(ValueError, match=r'S001C001P001R001A001\.skeleton, line 30: '
                                         'unexpected end of file, expected the body count '
                                         'of frame 2'):
        read_ntu_skeleton(path)
    path.write_text('\n'.join(lines[:40]) + '\n')           # 8 of 25 joint lines
    with pytest.raises(ValueError, match=r'skeleton, line 41: unexpected end of file, '
                                         'expected 25 joint lines of frame 2, body 1'):
        read_ntu_skeleton(path)
    path.write_text('\n'.join(lines[:56]) + '\n' + lines[56][:20])   # last line cut
    with pytest.raises(ValueError, match=r'skeleton, line 57: expected a joint line of 12 '):
        read_ntu_skeleton(path)
    path.write_text('')
    with pytest.raises(ValueError, match=r'skeleton, line 1: unexpected end of file, '
                                         'expected the frame count'):
        read_ntu_skeleton(path)
    path.write_bytes(b'1\n1\n\xff\n')
    with pytest.raises(ValueError, match=r'skeleton, line 3: expected ASCII text'):
        read_ntu_skeleton(path)


@pytest.mark.parametrize('line, replace, message', [
    (8, lambda s: s.replace('250.1', '25O.1'), 'line 8: expected a joint line of 12 numbers'),
    (5, lambda s: s.replace('-0.1', '-0.1e'), 'line 5: expected a joint line of 12 numbers'),
    (6, lambda s: s + ' 1', 'line 6: expected a joint line of 12 numbers'),
    (6, lambda s: '', 'line 6: expected a joint line of 12 numbers'),
    (6, lambda s: s.replace('3.0', '3_0'), 'line 6: expected a joint line of 12 numbers'),
    (7, lambda s: s.replace('3.0', 'nan'), 'line 7: expected finite x y z'),
    (9, lambda s: s[:-1] + '3', r'line 9: expected finite x y z and a tracking state'),
    (1, lambda s: '2.0', 'line 1: expected the frame count'),
    (2, lambda s: '-1', 'line 2: expected the body count of frame 1'),
    (3, lambda s: s.replace(str(ID_A), '7.2057594037931101e16'),
     'line 3: expected an unsigned 64-bit body id'),
    (3, lambda s: s.replace(str(ID_A), str(2 ** 64)), 'line 3: expected an unsigned 64-bit'),
    (3, lambda s: s.rsplit(' ', 1)[0], 'line 3: expected a body line of 10 values'),
    (4, lambda s: '24', 'line 4: expected the joint count 25'),
    (29, lambda s: s + '\nextra', 'line 30: expected the end of the file after 1 frames'),
])
def test_malformed_lines_name_the_file_and_line(tmp_path, line, replace, message):
    lines = _lines([[(ID_A, pose())]])
    lines[line - 1] = replace(lines[line - 1])
    path = tmp_path / 'S001C001P001R001A001.skeleton'
    path.write_text('\n'.join(lines) + '\n\n')   # trailing blank lines are fine
    with pytest.raises(ValueError, match=rf'S001C001P001R001A001\.skeleton, {message}'):
        read_ntu_skeleton(path)


def test_trailing_blank_lines_and_spaces_are_accepted(tmp_path):
    lines = _lines([[(ID_A, pose())]])
    path = tmp_path / 'a.skeleton'
    path.write_text('\n'.join(line + ' ' for line in lines) + '\n\n  \n')
    assert read_ntu_skeleton(path).xyz[0, 0, 3].tolist() == [0.0, np.float32(0.53), 3.0]
