"""``iospstl_skeleton_adapter``: any 3D body tracker's joints to the ``skeletons`` contract.

The ``format`` parameter (read-only, required) names the tracker (:mod:`iospstl_ros.trackers`):

* ``k4a``: subscribes to ``body_tracking_data`` (visualization_msgs/MarkerArray as the Azure
  Kinect ROS driver publishes it: one marker per joint, ``id = body * 100 + joint``, 32 joints,
  only ADD markers count). The header stamp is the first joint marker's; an array without joint
  markers becomes an empty cloud stamped with the node clock, in ``default_frame_id`` until the
  first marker names the driver's frame. ``iospstl_k4a_adapter`` is this node with
  ``format: k4a`` as default and its old node name.
* ``zed_body18``, ``zed_body34``, ``zed_body38``, ``coco17``, ``mediapipe33``: subscribes to
  ``tracker_joints`` (sensor_msgs/PointCloud2), one message per tracker frame, **one point per
  joint**, any cloud shape, fields found by name: ``x``, ``y``, ``z`` (FLOAT32 or FLOAT64,
  metres), ``joint_id`` (any integer type: the joint in the tracker's own numbering, e.g. 0..17
  for ``zed_body18``), ``body_id`` (any integer type; absent = one body, id 0) and optional
  ``confidence`` (FLOAT32/64). A joint is occluded when it is not in the message, has NaN / inf
  coordinates (the ZED SDK's mark for an unseen keypoint) or a confidence below
  ``min_confidence``. The output header is the input's (stamp kept, frame id suffixed when the
  coordinates are rotated); a cloud without points gives an empty ``skeletons`` message.

It publishes ``skeletons`` (sensor_msgs/PointCloud2, the node's input contract, 25 NTU joints a
body, ``occluded = 1`` for every joint the format lacks or the tracker did not see), reliable
keep last 5 (matches best-effort and reliable subscribers); inputs are best effort (match any
publisher).

Axes: ``input_axes`` (empty = the format's usual axes, :data:`iospstl_ros.trackers.DEFAULT_AXES`:
``optical`` for k4a and mediapipe33, ``rep103`` for the ZED formats and coco17) names the axes
the tracker's coordinates are in; ``output_axes`` (default ``rep103``, the default
``input_axes`` of ``iospstl_node``) the published ones. When they differ the coordinates are
rotated (a proper rotation, never a mirror) and the frame id gets ``frame_suffix`` (empty =
``_rep103``, ``_ntu`` or ``_optical``); when they agree nothing changes. docs/trackers.md has
the tables.
"""

from dataclasses import replace
import sys

from iospstl_ros.axes import AXES
from iospstl_ros.cloud import CloudError, decode_joint_points
from iospstl_ros.k4a import markers_to_bodies
from iospstl_ros.nodes._ros_helpers import declare, run_node, skeleton_cloud
from iospstl_ros.params import check_choices, Param
from iospstl_ros.trackers import (
    DEFAULT_AXES, FORMATS, group_points, rotate, rotated_frame_id, skeleton_format, to_ntu25)
import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

NODE_NAME = 'iospstl_skeleton_adapter'
K4A_NODE_NAME = 'iospstl_k4a_adapter'
#: Input topic of the MarkerArray format (k4a) and of the PointCloud2 formats.
MARKER_TOPIC = 'body_tracking_data'
POINTS_TOPIC = 'tracker_joints'

PARAMETERS = (
    Param('format', '', 'Tracker format: k4a (Azure Kinect driver MarkerArray on '
          'body_tracking_data); zed_body18, zed_body34, zed_body38, coco17, mediapipe33 '
          '(PointCloud2 on tracker_joints, one point per joint, field joint_id in the '
          "tracker's numbering).", choices=FORMATS),
    Param('input_axes', '', "Axes of the tracker's coordinates: rep103, optical or ntu; empty "
          '= the usual axes of the format (optical for k4a and mediapipe33, rep103 for the ZED '
          'formats and coco17).'),
    Param('output_axes', 'rep103', 'Axes of the published coordinates: rep103 = x forward, y '
          'left, z up (the default input_axes of iospstl_node); optical = x right, y down, z '
          'forward; ntu = x left, y up, z forward. Rotated from input_axes when they differ.',
          choices=AXES),
    Param('frame_suffix', '', 'Suffix of the frame id of rotated coordinates; empty = _rep103, '
          '_ntu or _optical after output_axes. Never applied when nothing is rotated.'),
    Param('default_frame_id', 'depth_camera_link', 'k4a: frame id of empty clouds before the '
          'first marker arrives.'),
    Param('min_confidence', 0.0, 'PointCloud2 formats: joints whose confidence field is below '
          'this are occluded (0 = every joint with finite coordinates counts).', low=0.0,
          high=1.0),
    Param('warning_throttle_s', 5.0, 'Least time between two warnings about bad input.',
          low=0.0, high=3600.0),
)


def parameters(default_format=''):
    """Return :data:`PARAMETERS` with another default ``format``."""
    return tuple(replace(p, default=default_format) if p.name == 'format' else p
                 for p in PARAMETERS)


class SkeletonAdapter(Node):
    """Convert one tracker's joints to ``skeletons`` (see the module docstring).

    Parameters
    ----------
    node_name : str
    default_format : str
        Default of the ``format`` parameter ('' = required).
    **kwargs
        Passed to ``rclpy.node.Node`` (context, parameter_overrides, ...).

    Raises
    ------
    ValueError
        On a bad parameter value (the node is destroyed first).
    """

    def __init__(self, node_name=NODE_NAME, default_format='', **kwargs):
        super().__init__(node_name, **kwargs)
        params = parameters(default_format)
        self.params = declare(self, params)
        problem = check_choices(params, self.params)
        input_axes = self.params['input_axes']
        if problem is None and input_axes not in ('',) + AXES:
            problem = (f'parameter input_axes: expected empty or one of {", ".join(AXES)}, got '
                       f'{input_axes!r}')
        if problem:
            self.destroy_node()
            raise ValueError(problem)
        self.format = skeleton_format(self.params['format'])
        self.input_axes = input_axes or DEFAULT_AXES[self.format.name]
        self.output_axes = self.params['output_axes']
        self.converted = 0
        self.rejected = 0
        self._frame_id = self.params['default_frame_id']
        # reliable output matches both best-effort and reliable subscribers
        self._publisher = self.create_publisher(
            PointCloud2, 'skeletons',
            QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                       reliability=ReliabilityPolicy.RELIABLE))
        # best-effort input matches any publisher
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                         reliability=ReliabilityPolicy.BEST_EFFORT)
        if self.format.name == 'k4a':
            self._subscription = self.create_subscription(MarkerArray, MARKER_TOPIC,
                                                          self._on_markers, qos)
        else:
            self._subscription = self.create_subscription(PointCloud2, POINTS_TOPIC,
                                                          self._on_points, qos)
        self.get_logger().info(
            f'format {self.format.name}: {self.format.num_joints} joints, NTU joints not '
            f'provided: {int((~self.format.provided).sum())}; axes {self.input_axes} -> '
            f'{self.output_axes}')

    def _warn(self, what, issues):
        if issues:
            self.get_logger().warning(
                what + ': ' + ', '.join(f'{k} x{n}' for k, n in sorted(issues.items())),
                throttle_duration_sec=self.params['warning_throttle_s'])

    def _cloud(self, header, stamp, frame_id, body_ids, xyz, valid):
        ntu, occluded = to_ntu25(self.format, xyz, valid)
        header.stamp = stamp
        header.frame_id = rotated_frame_id(frame_id, self.input_axes, self.output_axes,
                                           self.params['frame_suffix'])
        ntu = rotate(ntu, self.input_axes, self.output_axes)
        return skeleton_cloud(header, body_ids, ntu, occluded)

    def convert_markers(self, msg):
        """Convert a MarkerArray (k4a) into a skeletons PointCloud2."""
        joints = [m for m in msg.markers if m.action == Marker.ADD]
        if joints:
            stamp = joints[0].header.stamp
            self._frame_id = joints[0].header.frame_id
        else:
            stamp = self.get_clock().now().to_msg()
        ids = np.array([m.id for m in joints], np.int64)
        positions = np.array([[m.pose.position.x, m.pose.position.y, m.pose.position.z]
                              for m in joints], np.float64).reshape(-1, 3)
        body_ids, xyz, missing, issues = markers_to_bodies(ids, positions)
        self._warn(MARKER_TOPIC, issues)
        return self._cloud(Header(), stamp, self._frame_id, body_ids, xyz, ~missing)

    def convert_points(self, msg):
        """Convert a tracker joint PointCloud2 into a skeletons PointCloud2.

        Raises
        ------
        CloudError
            When the message cannot be read (a missing or mistyped field, a bad size).
        """
        points = decode_joint_points(msg.height, msg.width, msg.fields, msg.is_bigendian,
                                     msg.point_step, msg.row_step, msg.data)
        xyz = np.stack([points[axis] for axis in 'xyz'], axis=-1)
        body_ids, xyz, valid, issues = group_points(
            self.format, points['body_id'], points['joint_id'], xyz, points.get('confidence'),
            self.params['min_confidence'])
        self._warn(POINTS_TOPIC, issues)
        return self._cloud(Header(), msg.header.stamp, msg.header.frame_id, body_ids, xyz,
                           valid)

    def _on_markers(self, msg):
        self._publisher.publish(self.convert_markers(msg))
        self.converted += 1

    def _on_points(self, msg):
        try:
            cloud = self.convert_points(msg)
        except CloudError as error:
            self.rejected += 1
            self.get_logger().warning(f'{POINTS_TOPIC}: message dropped: {error}',
                                      throttle_duration_sec=self.params['warning_throttle_s'])
            return
        self._publisher.publish(cloud)
        self.converted += 1


def run(node_name, default_format, args=None):
    """Run an adapter until shutdown; return the exit status (1 on a bad parameter)."""
    return run_node(node_name, lambda: SkeletonAdapter(node_name, default_format), args=args)


def main(args=None):
    """``iospstl_skeleton_adapter``: the ``format`` parameter is required."""
    return run(NODE_NAME, '', args)


def main_k4a(args=None):
    """``iospstl_k4a_adapter``: the adapter with ``format: k4a`` by default."""
    return run(K4A_NODE_NAME, 'k4a', args)


if __name__ == '__main__':
    sys.exit(main())
