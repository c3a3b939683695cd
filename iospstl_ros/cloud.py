"""The ``skeletons`` PointCloud2 layout: encode bodies into it and decode them out of it.

One message carries one sensor frame with every tracked body (see the README's Interfaces
section). It is an *organized* cloud:

* ``height`` = number of bodies B (0 allowed), ``width`` = 25;
* row b = body b, column j = joint j in NTU / Kinect v2 order (:mod:`iospstl_ros.layout`);
* fields, found by **name** (offsets, order and extra fields are free): ``x``, ``y``, ``z``
  (FLOAT32; FLOAT64 is accepted), ``body_id`` (UINT32; any integer type is accepted),
  ``joint_id`` (UINT8; any integer type), ``occluded`` (UINT8, non-zero = occluded / inferred /
  not tracked / not provided; any integer type). Unknown fields (``confidence``, ``imputed``,
  ...) are ignored.

:func:`encode_skeletons` writes the packed little-endian layout of :data:`SKELETON_FIELDS`
(18 bytes a point, 450 bytes a body). :func:`decode_skeletons` never assumes it.

Whole-message problems (a missing or mistyped field, ``width`` != 25, too little or too much
data, more than ``max_bodies`` rows, an unusable header) raise :class:`CloudError`, whose
``reason`` is a short stable key (the node counts rejections per reason). Problems of single
joints or bodies are handled and counted in the returned ``issues`` instead:

=========================  ===============================================================
``nonfinite_joint``        a visible joint with NaN / inf coordinates: made occluded
``coordinate_out_of_range`` a visible joint farther than :data:`MAX_COORDINATE` m on an
                           axis: made occluded (such values overflow float32 arithmetic)
``joint_order``            a row whose ``joint_id`` values are a permutation of 0..24 in
                           another order: reordered
``bad_joint_id``           a row whose ``joint_id`` values are not 0..24: body dropped
``inconsistent_body_id``   a row whose points disagree on ``body_id``: body dropped
``duplicate_body_id``      a row repeating an earlier row's ``body_id``: the later one dropped
=========================  ===============================================================

Occluded joints of the decoded frame hold NaN (the convention of :mod:`iospstl_ros.layout`).
Coordinates are passed through in the axes of the message's frame; the recognizer rotates them
into the model's axes (:mod:`iospstl_ros.axes`, ``TrackerConfig.input_axes``).
Everything here is numpy-only.
"""

from dataclasses import dataclass

from iospstl_ros.layout import NUM_JOINTS
from iospstl_ros.validation import is_int
import numpy as np

#: sensor_msgs/PointField datatype codes.
INT8 = 1
UINT8 = 2
INT16 = 3
UINT16 = 4
INT32 = 5
UINT32 = 6
FLOAT32 = 7
FLOAT64 = 8

#: numpy dtype (little-endian) of each datatype code.
DATATYPES = {INT8: '<i1', UINT8: '<u1', INT16: '<i2', UINT16: '<u2', INT32: '<i4',
             UINT32: '<u4', FLOAT32: '<f4', FLOAT64: '<f8'}
_INTEGER_TYPES = (INT8, UINT8, INT16, UINT16, INT32, UINT32)
_FLOAT_TYPES = (FLOAT32, FLOAT64)

#: Fields written by :func:`encode_skeletons`: (name, offset, datatype, count), packed.
SKELETON_FIELDS = (
    ('x', 0, FLOAT32, 1),
    ('y', 4, FLOAT32, 1),
    ('z', 8, FLOAT32, 1),
    ('body_id', 12, UINT32, 1),
    ('joint_id', 16, UINT8, 1),
    ('occluded', 17, UINT8, 1),
)
#: Bytes per point of :data:`SKELETON_FIELDS`.
POINT_STEP = 18
#: Extra field of ``~/imputed_skeletons`` (1 where the joint was filled by the imputation).
IMPUTED_FIELD = ('imputed', POINT_STEP, UINT8, 1)
#: Datatypes accepted per required field when decoding.
ACCEPTED_TYPES = {'x': _FLOAT_TYPES, 'y': _FLOAT_TYPES, 'z': _FLOAT_TYPES,
                  'body_id': _INTEGER_TYPES, 'joint_id': _INTEGER_TYPES,
                  'occluded': _INTEGER_TYPES}
#: Default limit of bodies (rows) in one message; more is rejected as ``too_many_bodies``.
MAX_BODIES_PER_MESSAGE = 64
#: Largest accepted absolute coordinate of a visible joint, metres.
MAX_COORDINATE = 1000.0


class CloudError(ValueError):
    """A message that cannot be used as a whole.

    Parameters
    ----------
    reason : str
        Short stable key (``missing_field``, ``bad_field_type``, ``bad_width``, ...), used as a
        diagnostics counter name.
    message : str
        What was expected and what arrived.
    """

    def __init__(self, reason, message):
        super().__init__(f'{reason}: {message}')
        self.reason = reason


@dataclass(frozen=True)
class SkeletonFrame:
    """All bodies of one sensor frame.

    Attributes
    ----------
    stamp_ns : int
        Header stamp, nanoseconds.
    frame_id : str
        Header frame id.
    body_ids : ndarray of shape (B,), uint32
        Unique tracker ids, in message order.
    xyz : ndarray of shape (B, 25, 3), float32
        Joint coordinates in the message's frame and axes, metres; NaN where occluded.
    occluded : ndarray of shape (B, 25), bool
    """

    stamp_ns: int
    frame_id: str
    body_ids: np.ndarray
    xyz: np.ndarray
    occluded: np.ndarray

    @property
    def num_bodies(self):
        """Give the number of bodies B."""
        return len(self.body_ids)


def encode_skeletons(body_ids, xyz, occluded, imputed=None):
    """Pack bodies into the fields of a ``skeletons`` PointCloud2.

    Parameters
    ----------
    body_ids : array_like of shape (B,), non-negative integers < 2**32
    xyz : array_like of shape (B, 25, 3), float
        Metres. Written as float32 (occluded joints may hold anything, NaN included).
    occluded : array_like of shape (B, 25), bool
    imputed : array_like of shape (B, 25), bool, optional
        Adds the ``imputed`` UINT8 field (``~/imputed_skeletons``).

    Returns
    -------
    dict
        ``height``, ``width``, ``fields`` (tuple of (name, offset, datatype, count)),
        ``is_bigendian`` (False), ``point_step``, ``row_step``, ``data`` (bytes),
        ``is_dense`` (True when no coordinate is NaN or inf).

    Raises
    ------
    ValueError
        On shapes that do not agree or body ids outside uint32.
    """
    body_ids = np.asarray(body_ids)
    xyz = np.asarray(xyz, dtype=np.float64)
    occluded = np.asarray(occluded)
    b = len(body_ids)
    if body_ids.ndim != 1 or xyz.shape != (b, NUM_JOINTS, 3) or occluded.shape != (b, NUM_JOINTS):
        raise ValueError(f'expected body_ids (B,), xyz (B, {NUM_JOINTS}, 3) and occluded '
                         f'(B, {NUM_JOINTS}), got {body_ids.shape}, {xyz.shape} and '
                         f'{occluded.shape}')
    if b and (not np.issubdtype(body_ids.dtype, np.integer) or body_ids.min() < 0
              or body_ids.max() > np.iinfo(np.uint32).max):
        raise ValueError(f'expected body ids as integers in [0, 2**32), got {body_ids!r}')
    fields = SKELETON_FIELDS
    if imputed is not None:
        imputed = np.asarray(imputed)
        if imputed.shape != (b, NUM_JOINTS):
            raise ValueError(f'expected imputed of shape {(b, NUM_JOINTS)}, got {imputed.shape}')
        fields = fields + (IMPUTED_FIELD,)
    point_step = POINT_STEP + (imputed is not None)
    dtype = np.dtype({'names': [f[0] for f in fields],
                      'formats': [DATATYPES[f[2]] for f in fields],
                      'offsets': [f[1] for f in fields], 'itemsize': point_step})
    points = np.zeros((b, NUM_JOINTS), dtype)
    for axis, name in enumerate('xyz'):
        points[name] = xyz[..., axis]
    points['body_id'] = body_ids[:, None]
    points['joint_id'] = np.arange(NUM_JOINTS)
    points['occluded'] = occluded.astype(bool)
    if imputed is not None:
        points['imputed'] = imputed.astype(bool)
    return {'height': b, 'width': NUM_JOINTS, 'fields': fields, 'is_bigendian': False,
            'point_step': point_step, 'row_step': point_step * NUM_JOINTS,
            'data': points.tobytes(), 'is_dense': bool(np.isfinite(xyz).all())}


def _field_tuple(field):
    """(name, offset, datatype, count) of a tuple or of a PointField-like object."""
    if hasattr(field, 'name'):
        return field.name, field.offset, field.datatype, field.count
    try:
        name, offset, datatype, count = field
    except (TypeError, ValueError) as error:
        raise CloudError('bad_field', f'expected fields as (name, offset, datatype, count) or '
                         f'PointField, got {field!r}') from error
    return name, offset, datatype, count


def _rows(height, width, point_step, row_step, data):
    """Return the bytes as (height, width, point_step) uint8, after checking the layout."""
    if point_step == 0 or row_step < width * point_step:
        raise CloudError('bad_layout', f'expected row_step >= width * point_step = '
                         f'{width * point_step} with point_step > 0, got row_step {row_step} '
                         f'and point_step {point_step}')
    buffer = _as_bytes(data)
    if buffer is None:
        raise CloudError('bad_data', f'expected data as bytes or uint8 values, got '
                         f'{type(data).__name__}')
    if len(buffer) != height * row_step:
        raise CloudError('truncated' if len(buffer) < height * row_step else 'oversized',
                         f'expected {height * row_step} bytes of data (height {height} x '
                         f'row_step {row_step}), got {len(buffer)}')
    rows = buffer.reshape(height, row_step)[:, :width * point_step]
    return rows.reshape(height, width, point_step)


def _parse_fields(fields, point_step, big_endian, accepted=ACCEPTED_TYPES, optional=()):
    """Map each known field name to (offset, numpy dtype); checks types and bounds.

    ``accepted`` gives the datatypes allowed per field; all are required but ``optional``.
    """
    found = {}
    for field in fields:
        name, offset, datatype, count = _field_tuple(field)
        if name not in accepted:
            continue  # unknown extra field
        if name in found:
            raise CloudError('duplicate_field', f'field {name!r} is listed twice')
        if datatype not in accepted[name] or count != 1:
            allowed = '/'.join(str(t) for t in accepted[name])
            raise CloudError('bad_field_type', f'field {name!r}: expected datatype in '
                             f'{{{allowed}}} with count 1, got datatype {datatype!r} with '
                             f'count {count!r}')
        dtype = np.dtype(DATATYPES[datatype]).newbyteorder('>' if big_endian else '<')
        if not is_int(offset) or offset < 0 or offset + dtype.itemsize > point_step:
            raise CloudError('bad_field_offset', f'field {name!r}: expected an offset in '
                             f'[0, {point_step - dtype.itemsize}] (point_step {point_step}), '
                             f'got {offset!r}')
        found[name] = (int(offset), dtype)
    missing = [name for name in accepted if name not in found and name not in optional]
    if missing:
        required = [name for name in accepted if name not in optional]
        raise CloudError('missing_field', f'expected fields {", ".join(required)}; missing '
                         f'{", ".join(missing)}')
    return found


def _as_bytes(data):
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else None
    try:
        view = memoryview(data)
    except TypeError:
        view = None
    if view is not None:
        if view.itemsize != 1:
            return None
        return np.frombuffer(view, dtype=np.uint8)
    try:
        array = np.asarray(data)
    except (TypeError, ValueError):
        return None
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer) or \
            (array.size and (array.min() < 0 or array.max() > 255)):
        return None
    return array.astype(np.uint8)


def _column(rows, offset, dtype):
    """One field of every point: (B, W) array of ``dtype``, native byte order."""
    raw = np.ascontiguousarray(rows[:, :, offset:offset + dtype.itemsize])
    return raw.view(dtype)[..., 0].astype(dtype.newbyteorder('='))


def decode_skeletons(height, width, fields, is_bigendian, point_step, row_step, data,
                     stamp_ns=0, frame_id='', max_bodies=MAX_BODIES_PER_MESSAGE):
    """Read the bodies of a ``skeletons`` PointCloud2, fields found by name.

    Parameters
    ----------
    height, width : int
        Bodies and joints (25) of the organized cloud. ``height`` 0 is a frame without bodies;
        then nothing else is read.
    fields : sequence
        (name, offset, datatype, count) tuples or PointField-like objects.
    is_bigendian : bool
    point_step, row_step : int
        Bytes per point and per row.
    data : bytes-like or sequence of ints in [0, 255]
        ``height * row_step`` bytes.
    stamp_ns : int
        Header stamp, nanoseconds.
    frame_id : str
    max_bodies : int
        Largest accepted ``height``.

    Returns
    -------
    frame : SkeletonFrame
    issues : dict of str to int
        Joint / body problems that were handled (see the module docstring), reason -> count.

    Raises
    ------
    CloudError
        When the message as a whole cannot be used (the reason says why).
    """
    for name, value in (('height', height), ('width', width), ('point_step', point_step),
                        ('row_step', row_step)):
        if not is_int(value) or value < 0:
            raise CloudError('bad_header', f'expected {name} as an int >= 0, got {value!r}')
    if height > max_bodies:
        raise CloudError('too_many_bodies', f'expected at most {max_bodies} bodies (rows), got '
                         f'height {height}')
    if height and width != NUM_JOINTS:
        raise CloudError('bad_width', f'expected width {NUM_JOINTS} (one point per joint), got '
                         f'{width}')
    stamp_ns = int(stamp_ns)
    frame_id = str(frame_id)
    empty = SkeletonFrame(stamp_ns, frame_id, np.zeros(0, np.uint32),
                          np.zeros((0, NUM_JOINTS, 3), np.float32),
                          np.zeros((0, NUM_JOINTS), bool))
    if height == 0:  # a frame without bodies: nothing to read, fields not needed
        return empty, {}
    found = _parse_fields(fields, point_step, bool(is_bigendian))
    rows = _rows(height, width, point_step, row_step, data)
    with np.errstate(invalid='ignore'):  # signalling NaN bit patterns in random data
        columns = {name: _column(rows, offset, dtype) for name, (offset, dtype) in found.items()}
    issues = {}

    def count(reason, n=1):
        if n:
            issues[reason] = issues.get(reason, 0) + int(n)

    joint_ids = columns['joint_id'].astype(np.int64)
    body_column = columns['body_id'].astype(np.int64)
    with np.errstate(invalid='ignore'):  # signalling NaN bit patterns
        xyz = np.stack([columns[a].astype(np.float64) for a in 'xyz'], axis=-1)
    occluded = columns['occluded'] != 0
    keep, seen = [], set()
    canonical = np.arange(NUM_JOINTS)
    for b in range(height):
        ids = joint_ids[b]
        if not np.array_equal(ids, canonical):
            order = np.argsort(ids, kind='stable')
            if not np.array_equal(ids[order], canonical):
                count('bad_joint_id')
                continue
            xyz[b], occluded[b] = xyz[b, order], occluded[b, order]
            count('joint_order')
        if (body_column[b] != body_column[b, 0]).any() or body_column[b, 0] < 0:
            count('inconsistent_body_id')
            continue
        body = int(body_column[b, 0])
        if body in seen:
            count('duplicate_body_id')
            continue
        seen.add(body)
        keep.append(b)
    if not keep:
        return empty, issues
    xyz, occluded = xyz[keep], occluded[keep]
    finite = np.isfinite(xyz).all(axis=-1)
    count('nonfinite_joint', (~occluded & ~finite).sum())
    occluded |= ~finite
    with np.errstate(invalid='ignore'):
        far = (np.abs(np.where(np.isfinite(xyz), xyz, 0.0)) > MAX_COORDINATE).any(axis=-1)
    count('coordinate_out_of_range', (~occluded & far).sum())
    occluded |= far
    xyz = np.where(occluded[..., None], np.nan, xyz).astype(np.float32)
    body_ids = body_column[keep, 0].astype(np.uint32)
    return SkeletonFrame(stamp_ns, frame_id, body_ids, xyz, occluded), issues


#: Fields of a tracker's joint cloud (:func:`decode_joint_points`) and their datatypes.
JOINT_POINT_TYPES = {'x': _FLOAT_TYPES, 'y': _FLOAT_TYPES, 'z': _FLOAT_TYPES,
                     'joint_id': _INTEGER_TYPES, 'body_id': _INTEGER_TYPES,
                     'confidence': _FLOAT_TYPES}
#: Optional fields of a tracker's joint cloud.
OPTIONAL_JOINT_FIELDS = ('body_id', 'confidence')


def decode_joint_points(height, width, fields, is_bigendian, point_step, row_step, data):
    """Read the points of a tracker's joint cloud: one point per joint, any order.

    The cloud's shape does not matter (``height * width`` points, organized or not). Fields
    are found by name: ``x``, ``y``, ``z`` (FLOAT32 or FLOAT64), ``joint_id`` (any integer
    type; the tracker's own numbering), optional ``body_id`` (any integer type; absent = every
    point is body 0) and optional ``confidence`` (FLOAT32 or FLOAT64); others are ignored.

    Parameters
    ----------
    height, width, fields, is_bigendian, point_step, row_step, data
        As in :func:`decode_skeletons`.

    Returns
    -------
    points : dict of str to ndarray of shape (N,)
        ``joint_id`` and ``body_id`` int64, ``x``, ``y``, ``z`` float64, and ``confidence``
        float64 when the field exists.

    Raises
    ------
    CloudError
        On a missing or mistyped field or a data size that does not match.
    """
    for name, value in (('height', height), ('width', width), ('point_step', point_step),
                        ('row_step', row_step)):
        if not is_int(value) or value < 0:
            raise CloudError('bad_header', f'expected {name} as an int >= 0, got {value!r}')
    found = _parse_fields(fields, point_step, bool(is_bigendian), JOINT_POINT_TYPES,
                          OPTIONAL_JOINT_FIELDS)
    n = height * width
    points = {'joint_id': np.zeros(0, np.int64), 'body_id': np.zeros(0, np.int64)}
    points.update({axis: np.zeros(0) for axis in 'xyz'})
    if 'confidence' in found:
        points['confidence'] = np.zeros(0)
    if n == 0:
        return points
    rows = _rows(height, width, point_step, row_step, data)
    with np.errstate(invalid='ignore'):  # signalling NaN bit patterns
        for name, (offset, dtype) in found.items():
            kind = np.int64 if name in ('joint_id', 'body_id') else np.float64
            points[name] = _column(rows, offset, dtype).reshape(-1).astype(kind)
    if 'body_id' not in found:
        points['body_id'] = np.zeros(n, np.int64)
    return points
