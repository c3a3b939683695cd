"""The skeleton layout: literal checks against the NTU / ST-GCN tables."""

from iospstl_ros import layout
import numpy as np


def test_joint_table():
    assert len(layout.JOINT_NAMES) == 25
    assert layout.JOINT_NAMES[0] == 'spine_base'
    assert layout.JOINT_NAMES[20] == 'spine_shoulder'
    assert layout.JOINT_NAMES[24] == 'right_thumb'
    assert layout.CENTER_JOINT == 20
    assert (layout.LEFT_SHOULDER, layout.RIGHT_SHOULDER) == (4, 8)


def test_edges_match_the_one_based_st_gcn_list():
    one_based = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21),
                 (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1),
                 (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25), (25, 12)]
    assert list(layout.EDGES) == [(a - 1, b - 1) for a, b in one_based]


def test_degree_list_is_the_reference_one_and_follows_from_the_edges():
    assert list(layout.DEGREES) == [3, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 1,
                                    4, 1, 2, 1, 2]
    assert sum(layout.DEGREES) == 48
    assert layout.degrees_from_edges().tolist() == list(layout.DEGREES)


def test_flip_permutation_swaps_sides_and_is_an_involution():
    perm = np.array(layout.FLIP_PERMUTATION)
    assert sorted(perm.tolist()) == list(range(25))
    assert perm[perm].tolist() == list(range(25))
    for joint in range(25):
        name = layout.JOINT_NAMES[joint]
        swapped = layout.JOINT_NAMES[perm[joint]]
        if name.startswith('left_'):
            assert swapped == 'right_' + name[5:]
        elif name.startswith('right_'):
            assert swapped == 'left_' + name[6:]
        else:
            assert swapped == name


def test_hop_distance_from_the_centre():
    distance = layout.hop_distance()
    centre = distance[layout.CENTER_JOINT]
    assert centre[20] == 0
    assert centre[[1, 2, 4, 8]].tolist() == [1, 1, 1, 1]
    assert centre[3] == 2          # head hangs off the neck
    assert centre[0] == 2          # spine base via spine mid
    assert centre[19] == 6         # right foot: 20-1-0-16-17-18-19
    assert centre[21] == 6         # hand tip hangs off the thumb: 20-4-5-6-7-22-21
    assert (distance == distance.T).all()
    assert (distance >= 0).all()


def test_bone_pairs_end_with_the_zero_centre_bone():
    assert layout.BONE_PAIRS[-1] == (20, 20)
    assert len(layout.BONE_PAIRS) == 25
