"""Write and read the evaluation rosbags of ``iospstl_bag`` with ``rosbags`` (no ``ros2 bag``).

Bag format
----------
A bag written by :func:`write_bag` is a standard rosbag2 directory (``metadata.yaml`` plus one
``.mcap`` or ``.db3`` file) with two topics:

``/skeletons`` -- ``sensor_msgs/msg/PointCloud2``
    The node's input in the contract format (:func:`iospstl_ros.cloud.encode_skeletons`): one
    message per frame at ``rate`` Hz (30 by default), row b = body, 25 columns = joints, fields
    x y z body_id joint_id occluded. The coordinates are the data set's camera-space metres
    (NTU / Kinect v2 axes: x left, y up, z forward) rotated into ``axes``: REP-103 (x forward,
    y left, z up) by default, the node's default ``input_axes``. Frames of a sequence without
    any body, and the frames of the gap after each sequence, are sent as clouds of height 0
    (a sensor that sees nobody).

``/ground_truth`` -- ``diagnostic_msgs/msg/DiagnosticArray``
    One message per sequence, stamped (header and bag time) with the sequence's first frame, with
    one ``DiagnosticStatus`` per body of the sequence: ``level`` OK, ``name`` ``body/<id>``,
    ``hardware_id`` ``<id>``, ``message`` the class name, and ``values`` (all strings)
    ``sequence`` (sample name), ``sequence_index``, ``body_id``, ``class_index``, ``label``,
    ``first_stamp_ns`` and ``last_stamp_ns`` (header stamps of the first and last skeleton
    messages holding that body), ``num_frames`` (messages holding it) and ``action_id`` (the
    NTU RGB+D action number, ``A023`` -> 23, or 0 when the class is no NTU action or the data
    set does not say; bags written before it existed lack it, which reads as 0).
    ``class_index`` and ``label`` are the data set's; ``iospstl_bag eval`` matches them to the
    model's classes by ``action_id``, else by ``label``
    (:func:`iospstl_ros.bag.evaluate.align_truth`).

Timing: global frame ``f`` has stamp ``start_time_ns + round(f * 1e9 / rate)``; a sequence of
``T`` frames is followed by ``ceil(gap_s * rate)`` empty frames, so every body's track ends (the
gap is longer than the node's body timeout) before the next sequence starts. Body ids are
``sequence_index * 2 + slot + 1`` (slot 0 or 1 of the data set), unique in the bag. The bag time
of every message equals its header stamp. Same input and options, same output directory name:
byte-identical files.

Reading (:class:`BagReader`) accepts any rosbag2 bag ``rosbags`` reads (a directory with
``metadata.yaml``, or a lone ``.mcap`` / ``.db3`` file), for example one recorded on a robot with
``ros2 bag record``: other topics are ignored, topic names are resolved as described in
:func:`resolve_topic`, and the ground-truth topic may be missing.
"""

from dataclasses import dataclass
import math
import os
import shutil
import sqlite3

from iospstl_ros.axes import check_axes, from_ntu
from iospstl_ros.bag.evaluate import TruthEntry
from iospstl_ros.cloud import CloudError, decode_skeletons, encode_skeletons
from iospstl_ros.layout import MAX_BODIES, NUM_JOINTS
import numpy as np
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.typesys import get_typestore, Stores

POINTCLOUD2 = 'sensor_msgs/msg/PointCloud2'
DIAGNOSTIC_ARRAY = 'diagnostic_msgs/msg/DiagnosticArray'
#: Topic names written by :func:`write_bag`.
SKELETONS_TOPIC = '/skeletons'
GROUND_TRUTH_TOPIC = '/ground_truth'
#: Storage plugins :func:`write_bag` can write.
STORAGES = ('mcap', 'sqlite3')
#: Default bag start: 2020-09-13T12:26:40Z, a fixed time so that conversions are reproducible
#: (and not 0, which ROS reads as "no time").
DEFAULT_START_TIME_NS = 1_600_000_000 * 10 ** 9
DEFAULT_RATE = 30.0
DEFAULT_FRAME_ID = 'camera_link'
#: Axes of the coordinates written by default (the node's default ``input_axes``).
DEFAULT_AXES = 'rep103'
#: ``values`` keys of a ground-truth status, in the order written.
TRUTH_KEYS = ('sequence', 'sequence_index', 'body_id', 'class_index', 'label', 'first_stamp_ns',
              'last_stamp_ns', 'num_frames', 'action_id')
#: Keys of :data:`TRUTH_KEYS` that older bags lack (read as 0).
OPTIONAL_TRUTH_KEYS = ('action_id',)

_TYPESTORE = None


class BagError(ValueError):
    """A bag that cannot be read or does not hold what was asked for."""


def typestore():
    """Return the ROS 2 Jazzy message types of ``rosbags`` (created once)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        _TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
    return _TYPESTORE


@dataclass(frozen=True)
class BagSequence:
    """One sequence to write: frames of up to two body slots.

    Attributes
    ----------
    name : str
    class_index : int
    label : str
    xyz : ndarray of shape (T, M, 25, 3), float32
        Camera-space metres; may be NaN at occluded joints.
    occluded : ndarray of shape (T, M, 25), bool
    present : ndarray of shape (T, M), bool
    action_id : int
        NTU RGB+D action number of the class (1..120), 0 if none or unknown.
    """

    name: str
    class_index: int
    label: str
    xyz: np.ndarray
    occluded: np.ndarray
    present: np.ndarray
    action_id: int = 0


def body_id(sequence_index, slot):
    """Body id of slot ``slot`` of sequence ``sequence_index``: ``index * 2 + slot + 1``."""
    return int(sequence_index) * MAX_BODIES + int(slot) + 1


def gap_frames(gap_s, rate):
    """Empty frames after each sequence: ``ceil(gap_s * rate)``."""
    return int(math.ceil(float(gap_s) * float(rate) - 1e-9))


def frame_stamp(start_time_ns, frame, rate):
    """Stamp of global frame ``frame``: ``start_time_ns + round(frame * 1e9 / rate)``."""
    return int(start_time_ns) + int(round(frame * 1e9 / float(rate)))


def _stamp_msg(stamp_ns):
    time_type = typestore().types['builtin_interfaces/msg/Time']
    return time_type(sec=int(stamp_ns // 10 ** 9), nanosec=int(stamp_ns % 10 ** 9))


def cloud_message(stamp_ns, frame_id, body_ids, xyz, occluded):
    """Build a ``rosbags`` PointCloud2 of the contract format (see :func:`encode_skeletons`)."""
    types = typestore().types
    cloud = encode_skeletons(np.asarray(body_ids, np.uint32), np.asarray(xyz, np.float32),
                             np.asarray(occluded, bool))
    fields = [types['sensor_msgs/msg/PointField'](name=n, offset=o, datatype=d, count=c)
              for n, o, d, c in cloud['fields']]
    header = types['std_msgs/msg/Header'](stamp=_stamp_msg(stamp_ns), frame_id=frame_id)
    return types[POINTCLOUD2](
        header=header, height=cloud['height'], width=cloud['width'], fields=fields,
        is_bigendian=bool(cloud['is_bigendian']), point_step=cloud['point_step'],
        row_step=cloud['row_step'], data=np.frombuffer(cloud['data'], np.uint8),
        is_dense=bool(cloud['is_dense']))


def truth_message(stamp_ns, frame_id, entries):
    """Build a ``rosbags`` DiagnosticArray with one status per :class:`TruthEntry`."""
    types = typestore().types
    key_value = types['diagnostic_msgs/msg/KeyValue']
    status_type = types['diagnostic_msgs/msg/DiagnosticStatus']
    statuses = []
    for entry in entries:
        values = [key_value(key=key, value=str(getattr(entry, key))) for key in TRUTH_KEYS]
        statuses.append(status_type(level=status_type.OK, name=f'body/{entry.body_id}',
                                    message=entry.label, hardware_id=str(entry.body_id),
                                    values=values))
    header = types['std_msgs/msg/Header'](stamp=_stamp_msg(stamp_ns), frame_id=frame_id)
    return types[DIAGNOSTIC_ARRAY](header=header, status=statuses)


class _BagWriter:
    """Writes sequences one after another on the global 30 Hz (``rate``) frame grid."""

    def __init__(self, writer, start_time_ns, rate, gap, frame_id, skeletons_topic,
                 ground_truth_topic, axes=DEFAULT_AXES):
        store = typestore()
        self.axes = check_axes(axes, 'axes')
        self.writer, self.start_time_ns, self.rate, self.gap = writer, start_time_ns, rate, gap
        self.frame_id = frame_id
        self.skeletons = writer.add_connection(skeletons_topic, POINTCLOUD2, typestore=store)
        self.truth = writer.add_connection(ground_truth_topic, DIAGNOSTIC_ARRAY, typestore=store)
        self.frame = 0
        self.counts = {'sequences': 0, 'skeleton_messages': 0, 'ground_truth_messages': 0,
                       'bodies': 0, 'occluded_joints': 0, 'missing_coordinates': 0}

    def _write(self, connection, msgtype, stamp, message):
        self.writer.write(connection, stamp, typestore().serialize_cdr(message, msgtype))

    def _cloud(self, stamp, ids, xyz, occluded):
        self._write(self.skeletons, POINTCLOUD2, stamp,
                    cloud_message(stamp, self.frame_id, ids, xyz, occluded))
        self.counts['skeleton_messages'] += 1

    def add(self, sequence):
        """Write one sequence, its ground truth and the gap after it."""
        index = self.counts['sequences']
        frames, slots = sequence.present.shape
        if sequence.xyz.shape != (frames, slots, NUM_JOINTS, 3) \
                or sequence.occluded.shape != (frames, slots, NUM_JOINTS):
            raise ValueError(f'{sequence.name}: expected xyz (T, M, 25, 3) and occluded '
                             f'(T, M, 25) for present {sequence.present.shape}, got '
                             f'{sequence.xyz.shape} and {sequence.occluded.shape}')
        stamps = [frame_stamp(self.start_time_ns, self.frame + t, self.rate)
                  for t in range(frames + self.gap)]
        entries = []
        for slot in range(slots):
            seen = np.flatnonzero(sequence.present[:, slot])
            if len(seen):
                entries.append(TruthEntry(
                    index, sequence.name, body_id(index, slot), int(sequence.class_index),
                    sequence.label, stamps[seen[0]], stamps[seen[-1]], int(len(seen)),
                    int(sequence.action_id)))
        if frames:
            self._write(self.truth, DIAGNOSTIC_ARRAY, stamps[0],
                        truth_message(stamps[0], self.frame_id, entries))
            self.counts['ground_truth_messages'] += 1
            self.counts['bodies'] += len(entries)
        hidden = sequence.occluded & sequence.present[:, :, None]
        self.counts['occluded_joints'] += int(hidden.sum())
        self.counts['missing_coordinates'] += int(
            (hidden & ~np.isfinite(sequence.xyz).all(axis=-1)).sum())
        for t in range(frames):
            rows = np.flatnonzero(sequence.present[t])
            xyz = from_ntu(np.asarray(sequence.xyz[t, rows], np.float32), self.axes)
            self._cloud(stamps[t], [body_id(index, s) for s in rows], xyz,
                        sequence.occluded[t, rows])
        empty_xyz, empty_occluded = np.zeros((0, NUM_JOINTS, 3)), np.zeros((0, NUM_JOINTS), bool)
        for t in range(frames, frames + self.gap):
            self._cloud(stamps[t], [], empty_xyz, empty_occluded)
        self.frame += frames + self.gap
        self.counts['sequences'] += 1


def write_bag(path, sequences, storage='mcap', start_time_ns=DEFAULT_START_TIME_NS,
              rate=DEFAULT_RATE, gap_s=2.0, frame_id=DEFAULT_FRAME_ID,
              skeletons_topic=SKELETONS_TOPIC, ground_truth_topic=GROUND_TRUTH_TOPIC,
              custom_data=None, progress=None, axes=DEFAULT_AXES):
    """Write ``sequences`` as an evaluation bag (see the module docstring for the format).

    Parameters
    ----------
    path : str
        Bag directory to create; must not exist. Removed again if writing fails.
    sequences : iterable of BagSequence
    storage : {'mcap', 'sqlite3'}
    start_time_ns : int
        Stamp of the first frame.
    rate : float
        Frames per second.
    gap_s : float
        Seconds of empty frames after each sequence.
    frame_id : str
    skeletons_topic, ground_truth_topic : str
    custom_data : dict of str to str, optional
        Written to ``metadata.yaml`` ``custom_data``.
    progress : callable, optional
        Called with 1 after each sequence.
    axes : {'rep103', 'optical', 'ntu'}
        Axes of the written coordinates (:mod:`iospstl_ros.axes`); the sequences are in NTU
        axes. Set the node's ``input_axes`` to the same value.

    Returns
    -------
    dict
        ``path``, ``sequences``, ``skeleton_messages``, ``ground_truth_messages``,
        ``bodies`` (ground-truth entries), ``occluded_joints`` (occluded joint-frames written),
        ``missing_coordinates`` (of those, joints without a finite coordinate), ``duration_s``.
    """
    if storage not in STORAGES:
        raise ValueError(f'storage: expected one of {STORAGES}, got {storage!r}')
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f'rate: expected a positive number of frames per second, got {rate}')
    if not (gap_s >= 0 and math.isfinite(gap_s)):
        raise ValueError(f'gap_s: expected seconds >= 0, got {gap_s}')
    if int(start_time_ns) < 0:
        raise ValueError(f'start_time_ns: expected >= 0, got {start_time_ns}')
    if os.path.exists(path):
        raise ValueError(f'{path}: exists already; the bag tool does not overwrite bags')
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    try:
        writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=plugin)
    except WriterError as error:
        raise ValueError(f'{path}: cannot create the bag: {error}') from error
    finished = False
    try:
        with writer:
            for key, value in sorted((custom_data or {}).items()):
                writer.set_custom_data(key, str(value))
            bag = _BagWriter(writer, int(start_time_ns), float(rate), gap_frames(gap_s, rate),
                             frame_id, skeletons_topic, ground_truth_topic, axes)
            for sequence in sequences:
                bag.add(sequence)
                if progress is not None:
                    progress(1)
        finished = True
    finally:
        if not finished:
            shutil.rmtree(path, ignore_errors=True)  # no half-written bag
    duration = max(0, bag.frame - 1) / float(rate)
    return {'path': str(path), **bag.counts, 'duration_s': duration}


def _ns(stamp):
    return int(stamp.sec) * 10 ** 9 + int(stamp.nanosec)


def frame_from_message(message, max_bodies=None):
    """Decode a deserialized PointCloud2 (``rosbags`` or rclpy) into a SkeletonFrame.

    Parameters
    ----------
    message : PointCloud2
    max_bodies : int, optional
        Passed to :func:`iospstl_ros.cloud.decode_skeletons` when given.

    Returns
    -------
    (SkeletonFrame, dict)
        The frame and the per-joint issues that were handled.

    Raises
    ------
    CloudError
        If the message does not follow the contract.
    """
    fields = [(f.name, int(f.offset), int(f.datatype), int(f.count)) for f in message.fields]
    kwargs = {} if max_bodies is None else {'max_bodies': max_bodies}
    return decode_skeletons(int(message.height), int(message.width), fields,
                            bool(message.is_bigendian), int(message.point_step),
                            int(message.row_step), bytes(memoryview(message.data)),
                            stamp_ns=_ns(message.header.stamp),
                            frame_id=message.header.frame_id, **kwargs)


def resolve_topic(requested, topics, msgtype=None):
    """Find the bag topic named by ``requested``.

    An absolute name (``/robot/skeletons``) must match exactly. A relative name
    (``skeletons``) matches ``/skeletons`` if present, else the one topic that ends with
    ``/skeletons`` (``/robot/skeletons``); several such topics is an error.

    Parameters
    ----------
    requested : str
    topics : dict of str to str
        Topic name -> message type of the bag.
    msgtype : str, optional
        Required message type.

    Returns
    -------
    str or None
        The topic, or None if none matches.

    Raises
    ------
    BagError
        If several topics match, or the topic has another type than ``msgtype``.
    """
    if requested.startswith('/'):
        found = requested if requested in topics else None
    elif '/' + requested in topics:
        found = '/' + requested
    else:
        candidates = sorted(t for t in topics if t.endswith('/' + requested))
        if len(candidates) > 1:
            raise BagError(f'topic {requested!r} is ambiguous in the bag: {candidates}; give '
                           'the full name')
        found = candidates[0] if candidates else None
    if found is not None and msgtype is not None and topics[found] != msgtype:
        raise BagError(f'topic {found}: expected {msgtype}, got {topics[found]}')
    return found


def _value_dict(status):
    return {kv.key: kv.value for kv in status.values}


def truth_from_message(message):
    """Ground-truth entries of one deserialized DiagnosticArray (see the module docstring).

    Raises
    ------
    BagError
        If a status lacks a key of :data:`TRUTH_KEYS` (other than
        :data:`OPTIONAL_TRUTH_KEYS`) or a number does not parse.
    """
    entries = []
    for status in message.status:
        values = _value_dict(status)
        missing = [k for k in TRUTH_KEYS if k not in values and k not in OPTIONAL_TRUTH_KEYS]
        if missing:
            raise BagError(f'ground-truth status {status.name!r}: expected values '
                           f'{list(TRUTH_KEYS)}, missing {missing}')
        try:
            entries.append(TruthEntry(
                int(values['sequence_index']), values['sequence'], int(values['body_id']),
                int(values['class_index']), values['label'], int(values['first_stamp_ns']),
                int(values['last_stamp_ns']), int(values['num_frames']),
                int(values.get('action_id') or 0)))
        except ValueError as error:
            raise BagError(f'ground-truth status {status.name!r}: {error}') from error
    return entries


class BagReader:
    """Read a rosbag2 bag's skeleton and ground-truth topics.

    Parameters
    ----------
    path : str
        Bag directory (with ``metadata.yaml``) or a lone ``.mcap`` / ``.db3`` file.
    skeletons_topic : str
        See :func:`resolve_topic`; must exist and be a PointCloud2.
    ground_truth_topic : str or None
        See :func:`resolve_topic`; may be missing from the bag (``truth_topic`` is then None).

    Raises
    ------
    BagError
        If the bag does not exist, cannot be opened (corrupt, unknown storage), or has no
        skeleton topic.

    Attributes
    ----------
    topics : dict of str to str
        All topics of the bag and their types.
    skeletons_topic, truth_topic : str or None
        The resolved names.
    skeleton_count : int
        Messages on the skeleton topic.
    """

    def __init__(self, path, skeletons_topic='skeletons', ground_truth_topic='ground_truth'):
        self.path = str(path)
        if not os.path.exists(self.path):
            raise BagError(f'{self.path}: no such bag; expected a rosbag2 directory with '
                           'metadata.yaml, or an .mcap or .db3 file')
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except (ReaderError, OSError, KeyError, ValueError, sqlite3.Error) as error:
            raise BagError(f'{self.path}: cannot read the bag ({type(error).__name__}: '
                           f'{error}); expected a rosbag2 bag (mcap or sqlite3)') from error
        self.topics = {name: info.msgtype for name, info in self._reader.topics.items()}
        try:
            self.skeletons_topic = resolve_topic(skeletons_topic, self.topics, POINTCLOUD2)
            if self.skeletons_topic is None:
                clouds = sorted(t for t, m in self.topics.items() if m == POINTCLOUD2)
                raise BagError(f'{self.path}: no topic {skeletons_topic!r}; the bag has '
                               f'PointCloud2 topics {clouds} (use --skeletons-topic)')
            self.truth_topic = None
            if ground_truth_topic:
                self.truth_topic = resolve_topic(ground_truth_topic, self.topics,
                                                 DIAGNOSTIC_ARRAY)
        except BagError:
            self.close()
            raise
        self.skeleton_count = sum(c.msgcount for c in self._reader.connections
                                  if c.topic == self.skeletons_topic)

    def close(self):
        """Close the bag."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _messages(self, topic):
        connections = [c for c in self._reader.connections if c.topic == topic]
        try:
            yield from self._reader.messages(connections=connections)
        except (ReaderError, OSError, KeyError, ValueError, sqlite3.Error) as error:
            raise BagError(f'{self.path}: cannot read topic {topic} ({type(error).__name__}: '
                           f'{error})') from error

    def skeleton_messages(self):
        """Yield ``(bag_time_ns, raw CDR bytes, deserialized PointCloud2)`` in bag order."""
        store = typestore()
        for connection, timestamp, raw in self._messages(self.skeletons_topic):
            try:
                message = store.deserialize_cdr(raw, connection.msgtype)
            except (ValueError, IndexError, KeyError) as error:
                raise BagError(f'{self.path}: message at {timestamp} on '
                               f'{self.skeletons_topic} does not deserialize: {error}') from error
            yield timestamp, bytes(raw), message

    def ground_truth(self):
        """All ground-truth entries of the bag (duplicates dropped), or None without the topic.

        Returns
        -------
        list of TruthEntry or None
        """
        if self.truth_topic is None:
            return None
        store = typestore()
        entries = {}
        for connection, _, raw in self._messages(self.truth_topic):
            message = store.deserialize_cdr(raw, connection.msgtype)
            for entry in truth_from_message(message):
                entries.setdefault(entry, None)
        return list(entries)

    def frames(self, max_bodies=None):
        """Decode every skeleton message: ``(frames, rejected)``.

        Returns
        -------
        frames : list of SkeletonFrame
        rejected : dict of str to int
            :class:`~iospstl_ros.cloud.CloudError` reasons of messages that did not decode.
        """
        frames, rejected = [], {}
        for _, _, message in self.skeleton_messages():
            try:
                frames.append(frame_from_message(message, max_bodies)[0])
            except CloudError as error:
                rejected[error.reason] = rejected.get(error.reason, 0) + 1
        return frames, rejected
