"""Coordinate axes of skeleton input and the rotations to the model's NTU camera axes.

The model is trained on NTU RGB+D / Kinect v2 camera space (:mod:`iospstl_ros.layout`): x to
the sensor's left, y **up**, z away from the sensor. Preprocessing makes every body relative to
its spine shoulder and turns it about y to face +x, so the sensor's position and heading do not
matter, but y must point up and the frame must not be mirrored (a mirror turns right-handed
actions into left-handed ones). Trackers publish in other conventions, so the input axes are a
setting (:data:`AXES`):

===========  ==========================================  ====================================
axes         the frame's axes                            to NTU axes
===========  ==========================================  ====================================
``rep103``   x forward, y left, z up (REP-103 body        ``(x, y, z)_ntu = (y, z, x)``
             frame, e.g. ``camera_link``; the topic
             contract's convention)
``optical``  x right, y down, z forward (camera optical  ``(x, y, z)_ntu = (-x, -y, z)``
             frame, e.g. ``camera_color_optical_frame``,
             the Azure Kinect driver's
             ``depth_camera_link``)
``ntu``      x left, y up, z forward (Kinect v2 camera   identity
             space, NTU RGB+D files)
===========  ==========================================  ====================================

"Forward", "left" and "up" are the sensor's own (a level sensor's up is the world's up). All
three are right-handed, so each rotation is proper (determinant +1, :data:`TO_NTU`), never a
mirror. The matrices are signed permutations: :func:`to_ntu` and :func:`from_ntu` apply them by
reordering and negating coordinates, which is exact (no rounding) and keeps a NaN in its own
coordinate.

Everything here is numpy-only.
"""

import numpy as np

#: Names of the supported input axes.
AXES = ('rep103', 'optical', 'ntu')
#: Rotation R of each axes convention to NTU axes: ``xyz_ntu = R @ xyz`` (rows: ``xyz @ R.T``).
TO_NTU = {
    'rep103': np.array([[0.0, 1.0, 0.0],
                        [0.0, 0.0, 1.0],
                        [1.0, 0.0, 0.0]]),
    'optical': np.array([[-1.0, 0.0, 0.0],
                         [0.0, -1.0, 0.0],
                         [0.0, 0.0, 1.0]]),
    'ntu': np.eye(3),
}
#: Rotation from NTU axes back to each convention (the transpose of :data:`TO_NTU`).
FROM_NTU = {name: rotation.T.copy() for name, rotation in TO_NTU.items()}
#: Frame suffix naming coordinates rotated into each convention ('' = unchanged).
FRAME_SUFFIXES = {'rep103': '_rep103', 'optical': '', 'ntu': '_ntu'}


def check_axes(axes, name='input_axes'):
    """Return ``axes`` if it is one of :data:`AXES`.

    Parameters
    ----------
    axes : str
    name : str
        Setting name used in the error message.

    Raises
    ------
    ValueError
        If ``axes`` is not one of :data:`AXES`.
    """
    if not isinstance(axes, str) or axes not in AXES:
        raise ValueError(f'{name}: expected one of {", ".join(AXES)}, got {axes!r}')
    return axes


def _signed_permutation(rotation):
    """Column taken and sign of each output coordinate of a signed permutation matrix."""
    columns = np.abs(rotation).argmax(axis=1)
    return columns, rotation[np.arange(3), columns]


def _apply(rotation, xyz):
    xyz = np.asarray(xyz)
    if xyz.ndim < 1 or xyz.shape[-1] != 3:
        raise ValueError(f'expected coordinates of shape (..., 3), got {xyz.shape}')
    if not np.issubdtype(xyz.dtype, np.floating):
        xyz = xyz.astype(np.float64)
    columns, signs = _signed_permutation(rotation)
    return xyz[..., columns] * signs.astype(xyz.dtype)


def to_ntu(xyz, axes):
    """Rotate coordinates given in ``axes`` into NTU camera axes.

    Parameters
    ----------
    xyz : array_like of shape (..., 3)
        Coordinates in the ``axes`` convention (NaN allowed; it stays in its coordinate).
    axes : str
        One of :data:`AXES`.

    Returns
    -------
    ndarray of shape (..., 3)
        A new array, same float dtype (integers become float64).

    Raises
    ------
    ValueError
        On unknown axes or a last dimension other than 3.
    """
    return _apply(TO_NTU[check_axes(axes, 'axes')], xyz)


def from_ntu(xyz, axes):
    """Rotate coordinates from NTU camera axes into ``axes`` (inverse of :func:`to_ntu`).

    Parameters
    ----------
    xyz : array_like of shape (..., 3)
        NTU camera axes.
    axes : str
        One of :data:`AXES`.

    Returns
    -------
    ndarray of shape (..., 3)
        A new array, same float dtype (integers become float64).

    Raises
    ------
    ValueError
        On unknown axes or a last dimension other than 3.
    """
    return _apply(FROM_NTU[check_axes(axes, 'axes')], xyz)


def up_vector(axes):
    """Give the unit vector pointing up (NTU +y) in ``axes``: (0, 0, 1), (0, -1, 0) or (0, 1, 0).

    Returns
    -------
    ndarray of shape (3,), float64
    """
    return from_ntu(np.array([0.0, 1.0, 0.0]), axes)
