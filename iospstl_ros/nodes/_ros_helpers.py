"""Small ROS-side helpers shared by the nodes: parameters, QoS, message conversions.

Only conversions between ROS messages and the core's plain values live here; no algorithm.
"""

import json

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from iospstl_ros.cloud import encode_skeletons
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2, PointField

#: DiagnosticStatus level byte of each label level.
LEVEL_BYTES = {'OK': DiagnosticStatus.OK, 'WARN': DiagnosticStatus.WARN,
               'ERROR': DiagnosticStatus.ERROR, 'STALE': DiagnosticStatus.STALE}
#: Keys of every status of ``action_labels``, in this order.
LABEL_KEYS = ('body_id', 'class_index', 'label', 'confidence', 'topk', 'frames_in_window',
              'occluded_ratio', 'imputed_joints', 'inference_ms', 'end_to_end_ms', 'partner_id')


def descriptor(param):
    """Build the ParameterDescriptor of a :class:`~iospstl_ros.params.Param`."""
    result = ParameterDescriptor(name=param.name, description=param.description,
                                 read_only=param.read_only)
    if param.choices:
        result.additional_constraints = 'one of: ' + ', '.join(param.choices)
    if param.low is not None and isinstance(param.default, int) \
            and not isinstance(param.default, bool):
        result.integer_range = [IntegerRange(from_value=param.low, to_value=param.high,
                                             step=param.step or 1)]
    elif param.low is not None:
        result.floating_point_range = [FloatingPointRange(
            from_value=float(param.low), to_value=float(param.high),
            step=float(param.step or 0.0))]
    return result


def declare(node, params):
    """Declare every parameter of ``params`` on ``node``; return {name: value}."""
    for param in params:
        node.declare_parameter(param.name, param.default, descriptor(param))
    return {param.name: node.get_parameter(param.name).value for param in params}


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


def run_node(name, make_node, start=None, args=None):
    """Run a node until shutdown; return the process exit status.

    ``make_node()`` builds the node; a bad parameter (``ParameterException``, or ``ValueError``
    from the node's own checks) is one error line ``bad parameter: ...`` and status 1.
    ``start(node)``, if given, runs before spinning; False ends the process with status 1.
    Ctrl-C and an external shutdown end it with status 0.
    """
    rclpy.init(args=args)
    node, status = None, 0
    try:
        try:
            node = make_node()
        except (ParameterException, ValueError) as error:  # a choice, a range or a type
            rclpy.logging.get_logger(name).error(f'bad parameter: {error}')
            status = 1
        else:
            if start is None or start(node):
                rclpy.spin(node)
            else:
                status = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return status
