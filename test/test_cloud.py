"""The skeletons PointCloud2 layout (iospstl_ros.cloud): literal bytes, by-name parsing, errors."""

import array
import struct

from iospstl_ros.cloud import (
    CloudError, decode_skeletons, encode_skeletons, FLOAT32, FLOAT64, INT16, POINT_STEP,
    SKELETON_FIELDS, SkeletonFrame, UINT16, UINT32, UINT8)
import numpy as np
import pytest

KEYS = ('height', 'width', 'fields', 'is_bigendian', 'point_step', 'row_step', 'data')


def decode(message, **kwargs):
    return decode_skeletons(**{k: message[k] for k in KEYS}, **kwargs)


def bodies(count, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-2.0, 4.0, (count, 25, 3))
    occluded = rng.random((count, 25)) < 0.2
    return np.arange(10, 10 + count, dtype=np.uint32) * 7, xyz, occluded


def test_encode_writes_the_packed_little_endian_layout():
    xyz = np.zeros((1, 25, 3))
    xyz[0, 0] = (1.5, -2.0, 3.25)
    xyz[0, 24] = (0.5, 0.25, 4.0)
    occluded = np.zeros((1, 25), bool)
    occluded[0, 24] = True
    message = encode_skeletons([4000000000], xyz, occluded)
    assert message['height'] == 1 and message['width'] == 25
    assert message['point_step'] == POINT_STEP == 18 and message['row_step'] == 450
    assert message['fields'] == SKELETON_FIELDS
    assert message['fields'][3] == ('body_id', 12, UINT32, 1)
    assert message['is_bigendian'] is False and message['is_dense'] is True
    data = message['data']
    assert len(data) == 450
    assert data[:18] == struct.pack('<fffIBB', 1.5, -2.0, 3.25, 4000000000, 0, 0)
    assert data[18 * 24:] == struct.pack('<fffIBB', 0.5, 0.25, 4.0, 4000000000, 24, 1)
    imputed = encode_skeletons([1], xyz, occluded, imputed=occluded)
    assert imputed['point_step'] == 19 and imputed['fields'][-1] == ('imputed', 18, UINT8, 1)
    assert imputed['data'][19 * 24 + 18] == 1 and imputed['data'][18] == 0


def test_encode_decode_round_trip():
    ids, xyz, occluded = bodies(3)
    frame, issues = decode(encode_skeletons(ids, xyz, occluded), stamp_ns=123, frame_id='cam')
    assert isinstance(frame, SkeletonFrame) and issues == {}
    assert frame.stamp_ns == 123 and frame.frame_id == 'cam' and frame.num_bodies == 3
    assert frame.body_ids.dtype == np.uint32 and frame.body_ids.tolist() == [70, 77, 84]
    assert frame.xyz.shape == (3, 25, 3) and frame.xyz.dtype == np.float32
    assert np.array_equal(frame.occluded, occluded)
    assert np.array_equal(frame.xyz[~occluded], xyz.astype(np.float32)[~occluded])
    assert np.isnan(frame.xyz[occluded]).all()


def test_fields_are_found_by_name_whatever_their_offsets_order_and_extras():
    ids, xyz, occluded = bodies(2, seed=1)
    # reversed order, gaps, an extra confidence field, big-endian, float64 z, uint16 body id
    layout = [('confidence', 0, '>f4', FLOAT32), ('occluded', 5, '>u1', UINT8),
              ('joint_id', 6, '>i2', INT16), ('body_id', 8, '>u2', UINT16),
              ('z', 12, '>f8', FLOAT64), ('y', 20, '>f4', FLOAT32), ('x', 28, '>f4', FLOAT32)]
    dtype = np.dtype({'names': [f[0] for f in layout], 'formats': [f[2] for f in layout],
                      'offsets': [f[1] for f in layout], 'itemsize': 40})
    points = np.zeros((2, 25), dtype)
    points['confidence'] = 0.5
    points['occluded'] = occluded * 3  # any non-zero value means occluded
    points['joint_id'] = np.arange(25)
    points['body_id'] = ids[:, None]
    for axis, name in enumerate('xyz'):
        points[name] = xyz[..., axis]
    row_step = 40 * 25 + 8  # rows may be padded
    data = np.zeros((2, row_step), np.uint8)
    data[:, :1000] = points.view(np.uint8).reshape(2, 1000)
    fields = [(name, offset, datatype, 1) for name, offset, _, datatype in layout]
    frame, issues = decode_skeletons(2, 25, fields, True, 40, row_step, data.tobytes())
    assert issues == {}
    assert frame.body_ids.tolist() == ids.tolist()
    assert np.array_equal(frame.occluded, occluded)
    assert np.array_equal(frame.xyz[~occluded], xyz.astype(np.float32)[~occluded])


def test_data_may_be_bytes_bytearray_array_memoryview_or_a_list():
    ids, xyz, occluded = bodies(1)
    message = encode_skeletons(ids, xyz, occluded)
    expected, _ = decode(message)
    raw = message['data']
    for data in (bytearray(raw), array.array('B', raw), memoryview(raw), list(raw),
                 np.frombuffer(raw, np.uint8)):
        frame, _ = decode({**message, 'data': data})
        assert np.array_equal(frame.xyz, expected.xyz, equal_nan=True)


def test_pointfield_like_objects_are_accepted():
    class Field:

        def __init__(self, name, offset, datatype, count):
            self.name, self.offset, self.datatype, self.count = name, offset, datatype, count

    ids, xyz, occluded = bodies(1)
    message = encode_skeletons(ids, xyz, occluded)
    message['fields'] = [Field(*f) for f in message['fields']]
    frame, _ = decode(message)
    assert frame.body_ids.tolist() == ids.tolist()


def test_a_frame_without_bodies():
    frame, issues = decode_skeletons(0, 0, [], False, 0, 0, b'', stamp_ns=5)
    assert frame.num_bodies == 0 and frame.xyz.shape == (0, 25, 3) and issues == {}
    frame, _ = decode(encode_skeletons(np.zeros(0, np.uint32), np.zeros((0, 25, 3)),
                                       np.zeros((0, 25), bool)))
    assert frame.num_bodies == 0


def _with(message, **changes):
    return {**message, **changes}


def _fields_without(message, name):
    return tuple(f for f in message['fields'] if f[0] != name)


def _retype(message, name, datatype, count=1):
    return tuple((n, o, datatype if n == name else d, count if n == name else c)
                 for n, o, d, c in message['fields'])


@pytest.mark.parametrize('change, reason, text', [
    ({'height': -1}, 'bad_header', 'expected height as an int >= 0, got -1'),
    ({'point_step': 18.0}, 'bad_header', 'expected point_step as an int >= 0, got 18.0'),
    ({'height': 65}, 'too_many_bodies', 'expected at most 64 bodies'),
    ({'width': 32}, 'bad_width', 'expected width 25 .*got 32'),
    ('no_x', 'missing_field', 'missing x'),
    ('no_occluded', 'missing_field', 'missing occluded'),
    ('x_twice', 'duplicate_field', "field 'x' is listed twice"),
    ('x_uint8', 'bad_field_type', "field 'x': expected datatype in .*got datatype 2"),
    ('body_float', 'bad_field_type', "field 'body_id'"),
    ('x_count3', 'bad_field_type', 'with count 3'),
    ('z_offset', 'bad_field_offset', "field 'z': expected an offset in \\[0, 14\\]"),
    ('bad_tuple', 'bad_field', 'expected fields as'),
    ({'row_step': 100}, 'bad_layout', 'expected row_step >= width \\* point_step = 450'),
    ({'point_step': 0, 'row_step': 0}, 'bad_field_offset', "field 'x'"),
    ({'data': 'text'}, 'bad_data', 'expected data as bytes'),
    ({'data': [1, 2, 300]}, 'bad_data', 'expected data as bytes'),
    ('truncated', 'truncated', 'expected 900 bytes of data .*got 899'),
    ('oversized', 'oversized', 'expected 900 bytes of data .*got 901'),
])
def test_every_whole_message_problem_raises_with_its_reason(change, reason, text):
    ids, xyz, occluded = bodies(2)
    message = encode_skeletons(ids, xyz, occluded)
    special = {
        'no_x': {'fields': _fields_without(message, 'x')},
        'no_occluded': {'fields': _fields_without(message, 'occluded')},
        'x_twice': {'fields': message['fields'] + (('x', 0, FLOAT32, 1),)},
        'x_uint8': {'fields': _retype(message, 'x', UINT8)},
        'body_float': {'fields': _retype(message, 'body_id', FLOAT32)},
        'x_count3': {'fields': _retype(message, 'x', FLOAT32, 3)},
        'z_offset': {'fields': tuple((n, 15 if n == 'z' else o, d, c)
                                     for n, o, d, c in message['fields'])},
        'bad_tuple': {'fields': (('x', 0, FLOAT32),)},
        'truncated': {'data': message['data'][:-1]},
        'oversized': {'data': message['data'] + b'\0'},
    }
    broken = _with(message, **(special[change] if isinstance(change, str) else change))
    with pytest.raises(CloudError, match=text) as caught:
        decode(broken)
    assert caught.value.reason == reason
    assert isinstance(caught.value, ValueError) and str(caught.value).startswith(reason)


def test_joint_and_body_problems_are_repaired_and_counted():
    ids = np.array([1, 2, 3, 4, 5, 2], np.uint32)
    xyz = np.ones((6, 25, 3))
    occluded = np.zeros((6, 25), bool)
    xyz[0, 3] = (np.nan, 0.0, 0.0)          # visible NaN -> occluded
    xyz[0, 4] = (0.0, np.inf, 0.0)          # visible inf -> occluded
    xyz[0, 5] = (np.nan, np.nan, np.nan)    # occluded NaN: fine, not counted
    occluded[0, 5] = True
    xyz[1, 6] = (0.0, 0.0, 2e3)             # out of range -> occluded
    message = encode_skeletons(ids, xyz, occluded)
    points = np.frombuffer(message['data'], np.dtype({
        'names': ['x', 'y', 'z', 'body_id', 'joint_id', 'occluded'],
        'formats': ['<f4', '<f4', '<f4', '<u4', 'u1', 'u1'], 'offsets': [0, 4, 8, 12, 16, 17],
        'itemsize': 18})).reshape(6, 25).copy()
    points['joint_id'][2] = np.arange(25)[::-1]          # reversed: reordered
    points['x'][2] = np.arange(25)[::-1]
    points['joint_id'][3, 0] = 30                         # not 0..24: body dropped
    points['body_id'][4, 7] = 99                          # inconsistent: body dropped
    message['data'] = points.tobytes()
    frame, issues = decode(message)
    assert issues == {'nonfinite_joint': 2, 'coordinate_out_of_range': 1, 'joint_order': 1,
                      'bad_joint_id': 1, 'inconsistent_body_id': 1, 'duplicate_body_id': 1}
    assert frame.body_ids.tolist() == [1, 2, 3]
    assert np.flatnonzero(frame.occluded[0]).tolist() == [3, 4, 5]
    assert np.flatnonzero(frame.occluded[1]).tolist() == [6]
    assert frame.xyz[2, :, 0].tolist() == list(range(25))  # joint j holds x = j again
    assert np.isnan(frame.xyz[0, [3, 4, 5]]).all() and np.isfinite(frame.xyz[0, 6]).all()


def test_encode_rejects_bad_shapes_and_ids():
    with pytest.raises(ValueError, match=r'expected body_ids \(B,\), xyz \(B, 25, 3\)'):
        encode_skeletons([1], np.zeros((1, 24, 3)), np.zeros((1, 24), bool))
    with pytest.raises(ValueError, match=r'body ids as integers in \[0, 2\*\*32\)'):
        encode_skeletons([-1], np.zeros((1, 25, 3)), np.zeros((1, 25), bool))
    with pytest.raises(ValueError, match='expected imputed of shape'):
        encode_skeletons([1], np.zeros((1, 25, 3)), np.zeros((1, 25), bool), np.zeros(25))


def test_signalling_nan_bit_patterns_are_repaired_without_warnings():
    import warnings

    message = encode_skeletons([1], np.ones((1, 25, 3)), np.zeros((1, 25), bool))
    data = bytearray(message['data'])
    data[0:4] = struct.pack('<I', 0x7F800001)  # a float32 signalling NaN as joint 0's x
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        frame, issues = decode({**message, 'data': bytes(data)})
    assert issues == {'nonfinite_joint': 1} and frame.occluded[0].tolist() == [True] + [False] * 24
