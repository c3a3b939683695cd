"""Input axes to NTU camera axes (iospstl_ros.axes): literal matrices and vectors, inverses."""

from iospstl_ros.axes import (
    AXES, check_axes, FRAME_SUFFIXES, FROM_NTU, from_ntu, TO_NTU, to_ntu, up_vector)
import numpy as np
import pytest

#: The rotations written out by hand from the conventions (row i = NTU axis i in input axes).
EXPECTED = {
    # NTU x (left) = REP-103 y, NTU y (up) = REP-103 z, NTU z (forward) = REP-103 x
    'rep103': [[0, 1, 0], [0, 0, 1], [1, 0, 0]],
    # NTU x (left) = -optical x (right), NTU y (up) = -optical y (down), z forward in both
    'optical': [[-1, 0, 0], [0, -1, 0], [0, 0, 1]],
    'ntu': [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
}
#: The sensor's forward, left and up, written in each convention.
DIRECTIONS = {
    'rep103': {'forward': (1, 0, 0), 'left': (0, 1, 0), 'up': (0, 0, 1)},
    'optical': {'forward': (0, 0, 1), 'left': (-1, 0, 0), 'up': (0, -1, 0)},
    'ntu': {'forward': (0, 0, 1), 'left': (1, 0, 0), 'up': (0, 1, 0)},
}


def test_the_matrices_are_the_literal_proper_rotations():
    assert AXES == ('rep103', 'optical', 'ntu') and set(TO_NTU) == set(AXES)
    for name in AXES:
        rotation = TO_NTU[name]
        assert rotation.tolist() == EXPECTED[name], name
        assert np.linalg.det(rotation) == pytest.approx(1.0)  # a rotation, never a mirror
        np.testing.assert_array_equal(rotation @ rotation.T, np.eye(3))
        np.testing.assert_array_equal(FROM_NTU[name], rotation.T)
    assert FRAME_SUFFIXES == {'rep103': '_rep103', 'optical': '', 'ntu': '_ntu'}


def test_literal_vectors():
    point = np.array([1.0, 2.0, 3.0])
    assert to_ntu(point, 'rep103').tolist() == [2.0, 3.0, 1.0]
    assert to_ntu(point, 'optical').tolist() == [-1.0, -2.0, 3.0]
    assert to_ntu(point, 'ntu').tolist() == [1.0, 2.0, 3.0]
    assert from_ntu([2.0, 3.0, 1.0], 'rep103').tolist() == [1.0, 2.0, 3.0]
    assert from_ntu([-1.0, -2.0, 3.0], 'optical').tolist() == [1.0, 2.0, 3.0]
    assert from_ntu(point, 'rep103').tolist() == [3.0, 1.0, 2.0]
    # a person 2 m ahead, 0.5 m to the left, head 1.6 m up, in the REP-103 sensor frame
    assert to_ntu([2.0, 0.5, 1.6], 'rep103').tolist() == [0.5, 1.6, 2.0]
    # the same point in an optical frame: x right (-0.5), y down (-1.6), z forward (2)
    assert to_ntu([-0.5, -1.6, 2.0], 'optical').tolist() == [0.5, 1.6, 2.0]


def test_forward_left_and_up_map_to_ntu_forward_left_and_up():
    for name in AXES:
        for direction, vector in DIRECTIONS[name].items():
            assert to_ntu(np.array(vector, float), name).tolist() == \
                list(map(float, DIRECTIONS['ntu'][direction])), (name, direction)
        assert up_vector(name).tolist() == list(map(float, DIRECTIONS[name]['up']))


def test_arrays_round_trip_exactly_and_agree_with_the_matrices():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(4, 25, 3)).astype(np.float32)
    for name in AXES:
        ntu = to_ntu(xyz, name)
        assert ntu.dtype == np.float32 and ntu.shape == xyz.shape
        np.testing.assert_array_equal(ntu, xyz @ TO_NTU[name].T.astype(np.float32))
        np.testing.assert_array_equal(from_ntu(ntu, name), xyz)  # exact: a signed permutation
        np.testing.assert_array_equal(to_ntu(from_ntu(xyz, name), name), xyz)
    xyz[1, 3] = np.nan  # an occluded joint stays NaN and does not spread
    ntu = to_ntu(xyz, 'rep103')
    assert np.isnan(ntu[1, 3]).all() and np.isfinite(np.delete(ntu.reshape(-1, 3), 28, 0)).all()
    assert to_ntu(np.array([[1, 2, 3]]), 'optical').dtype == np.float64
    assert to_ntu(np.zeros((0, 25, 3)), 'rep103').shape == (0, 25, 3)
    np.testing.assert_array_equal(to_ntu(xyz[0], 'ntu'), xyz[0])


def test_bad_axes_and_shapes_are_refused():
    assert check_axes('optical') == 'optical'
    for bad in ('enu', 'REP103', '', None, 3):
        with pytest.raises(ValueError, match=r'input_axes: expected one of rep103, optical, '
                                             r'ntu, got'):
            check_axes(bad)
    with pytest.raises(ValueError, match=r"axes: expected one of rep103, optical, ntu, got 'flu'"):
        to_ntu(np.zeros(3), 'flu')
    with pytest.raises(ValueError, match=r'expected coordinates of shape \(\.\.\., 3\), got '
                                         r'\(25, 2\)'):
        from_ntu(np.zeros((25, 2)), 'rep103')
