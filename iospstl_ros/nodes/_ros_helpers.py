"""Small ROS-side helpers shared by the nodes: parameters, QoS, message conversions.

Only conversions between ROS messages and the core's plain values live here; no algorithm.
"""

from dataclasses import dataclass
import json
import os

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from iospstl_ros.cloud import encode_skeletons
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2, PointField

PACKAGE = 'iospstl_ros'
#: Model directory below the package share (or the source tree), used when model_dir is ''.
DEFAULT_MODEL_SUBDIR = os.path.join('models', 'default')
#: DiagnosticStatus level byte of each label level.
LEVEL_BYTES = {'OK': DiagnosticStatus.OK, 'WARN': DiagnosticStatus.WARN,
               'ERROR': DiagnosticStatus.ERROR, 'STALE': DiagnosticStatus.STALE}
#: Keys of every status of ``action_labels``, in this order.
LABEL_KEYS = ('body_id', 'class_index', 'label', 'confidence', 'topk', 'frames_in_window',
              'occluded_ratio', 'imputed_joints', 'inference_ms', 'end_to_end_ms', 'partner_id')
RELIABILITIES = ('best_effort', 'reliable')


@dataclass(frozen=True)
class Param:
    """One declared parameter: name, default, meaning, and its descriptor's constraints."""

    name: str
    default: object
    description: str
    read_only: bool = True
    low: object = None
    high: object = None
    step: object = None
    choices: tuple = ()

    def descriptor(self):
        """Build the ParameterDescriptor (description, read_only, range, choices)."""
        descriptor = ParameterDescriptor(name=self.name, description=self.description,
                                         read_only=self.read_only)
        if self.choices:
            descriptor.additional_constraints = 'one of: ' + ', '.join(self.choices)
        if self.low is not None and isinstance(self.default, int) \
                and not isinstance(self.default, bool):
            descriptor.integer_range = [IntegerRange(from_value=self.low, to_value=self.high,
                                                     step=self.step or 1)]
        elif self.low is not None:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(self.low), to_value=float(self.high),
                step=float(self.step or 0.0))]
        return descriptor


def declare(node, params):
    """Declare every parameter of ``params`` on ``node``; return {name: value}."""
    for param in params:
        node.declare_parameter(param.name, param.default, param.descriptor())
    return {param.name: node.get_parameter(param.name).value for param in params}


def check_choices(params, values):
    """Return an error text for a value outside its ``choices``, else None."""
    for param in params:
        if param.choices and values.get(param.name) not in param.choices:
            return (f'parameter {param.name}: expected one of {", ".join(param.choices)}, got '
                    f'{values.get(param.name)!r}')
    return None


def default_model_dir():
    """``<share>/iospstl_ros/models/default`` when ament knows the package, else the source tree.

    Returns
    -------
    str
    """
    if os.environ.get('AMENT_PREFIX_PATH'):
        from ament_index_python.packages import (
            get_package_share_directory, PackageNotFoundError)
        try:
            return os.path.join(get_package_share_directory(PACKAGE), DEFAULT_MODEL_SUBDIR)
        except PackageNotFoundError:
            pass
    import iospstl_ros
    source = os.path.dirname(os.path.dirname(os.path.abspath(iospstl_ros.__file__)))
    return os.path.join(source, DEFAULT_MODEL_SUBDIR)


def input_qos(reliability, depth):
    """Sensor-data QoS (keep last ``depth``) with the given reliability."""
    policy = ReliabilityPolicy.RELIABLE if reliability == 'reliable' \
        else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy)


def stamp_to_ns(stamp):
    """builtin_interfaces/Time to integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def skeleton_cloud(header, body_ids, xyz, occluded, imputed=None):
    """Build a ``skeletons`` PointCloud2 (see :func:`iospstl_ros.cloud.encode_skeletons`)."""
    encoded = encode_skeletons(body_ids, xyz, occluded, imputed)
    msg = PointCloud2()
    msg.header = header
    msg.height = encoded['height']
    msg.width = encoded['width']
    msg.fields = [PointField(name=name, offset=offset, datatype=datatype, count=count)
                  for name, offset, datatype, count in encoded['fields']]
    msg.is_bigendian = encoded['is_bigendian']
    msg.point_step = encoded['point_step']
    msg.row_step = encoded['row_step']
    msg.data = encoded['data']
    msg.is_dense = encoded['is_dense']
    return msg


def label_status(label, end_to_end_ms):
    """Build the ``action_labels`` status of a :class:`~iospstl_ros.tracking.BodyLabel`."""
    topk = json.dumps([[name, round(p, 6)] for name, p in label.topk])
    values = {
        'body_id': str(label.body_id), 'class_index': str(label.class_index),
        'label': label.label, 'confidence': f'{label.confidence:.6f}', 'topk': topk,
        'frames_in_window': str(label.frames_in_window),
        'occluded_ratio': f'{label.occluded_ratio:.4f}',
        'imputed_joints': str(label.imputed_joints),
        'inference_ms': f'{label.inference_ms:.3f}', 'end_to_end_ms': f'{end_to_end_ms:.3f}',
        'partner_id': '' if label.partner_id is None else str(label.partner_id),
    }
    return DiagnosticStatus(level=LEVEL_BYTES[label.level], name=f'body/{label.body_id}',
                            message=label.label, hardware_id=str(label.body_id),
                            values=[KeyValue(key=k, value=values[k]) for k in LABEL_KEYS])


def labels_message(header, labels, end_to_end_ms):
    """Build the ``action_labels`` DiagnosticArray: the given header, one status per label."""
    return DiagnosticArray(header=header,
                           status=[label_status(label, end_to_end_ms) for label in labels])


def status_values(status):
    """Return the values of a DiagnosticStatus as {key: value}."""
    return {kv.key: kv.value for kv in status.values}
