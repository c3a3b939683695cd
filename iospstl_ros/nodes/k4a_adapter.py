"""``iospstl_k4a_adapter``: Azure Kinect ROS driver ``body_tracking_data`` to ``skeletons``.

Subscribes to ``body_tracking_data`` (visualization_msgs/MarkerArray from the Azure Kinect ROS
driver: one marker per joint, ``id = body * 100 + joint``, 32 joints) and publishes one
``skeletons`` PointCloud2 per array: the 25 NTU joints of every body (mapping and axes in
:mod:`iospstl_ros.k4a`). ``output_axes`` (default ``rep103``, the default ``input_axes`` of
``iospstl_node``) rotates the driver's x right / y down / z forward coordinates into x forward /
y left / z up and names the frame ``<driver frame>_rep103``; ``ntu`` gives x left / y up / z
forward in ``<driver frame>_ntu``; ``optical`` leaves coordinates and frame id as the driver
sent them (run the node with ``input_axes: optical`` then). ``frame_suffix`` overrides the
suffix of rotated frames; for RViz publish the suffixed frame with ``static_transform_publisher``
(orientation :data:`iospstl_ros.k4a.CHILD_FRAME_RPY`). The header stamp is the first joint
marker's (the capture time); an array without joint markers (no body in view) becomes an empty
cloud stamped with the node clock. Only ADD markers count.
"""

import sys

from iospstl_ros.axes import AXES, FRAME_SUFFIXES
from iospstl_ros.k4a import convert_markers, DEFAULT_OUTPUT_AXES, DRIVER_AXES
from iospstl_ros.nodes._ros_helpers import declare, skeleton_cloud
from iospstl_ros.params import check_choices, Param
import numpy as np
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

NODE_NAME = 'iospstl_k4a_adapter'

PARAMETERS = (
    Param('output_axes', DEFAULT_OUTPUT_AXES, 'Axes of the published coordinates: rep103 = x '
          'forward, y left, z up (frame <driver frame>_rep103; the default input_axes of '
          'iospstl_node); optical = the driver frame unchanged (x right, y down, z forward; '
          'frame id kept); ntu = x left, y up, z forward (frame <driver frame>_ntu).',
          choices=AXES),
    Param('frame_suffix', '', 'Suffix of the frame id of rotated coordinates; empty = _rep103 '
          'or _ntu after output_axes. Never applied with output_axes optical.'),
    Param('default_frame_id', 'depth_camera_link', 'Frame id of empty clouds before the first '
          'marker arrives.'),
    Param('warning_throttle_s', 5.0, 'Least time between two warnings about bad markers.',
          low=0.0, high=3600.0),
)


class K4aAdapter(Node):
    """Convert Azure Kinect body markers to ``skeletons`` (see the module docstring)."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.params = declare(self, PARAMETERS)
        problem = check_choices(PARAMETERS, self.params)
        if problem:
            self.destroy_node()
            raise ValueError(problem)
        axes = self.params['output_axes']
        self.frame_suffix = '' if axes == DRIVER_AXES else \
            self.params['frame_suffix'] or FRAME_SUFFIXES[axes]
        self.converted = 0
        self._frame_id = self.params['default_frame_id']
        # reliable output matches both best-effort and reliable subscribers
        self._publisher = self.create_publisher(
            PointCloud2, 'skeletons',
            QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                       reliability=ReliabilityPolicy.RELIABLE))
        # best-effort input matches any publisher
        self._subscription = self.create_subscription(
            MarkerArray, 'body_tracking_data', self._on_markers,
            QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                       reliability=ReliabilityPolicy.BEST_EFFORT))

    def convert(self, msg):
        """Convert a MarkerArray into a skeletons PointCloud2 (a function of the message)."""
        joints = [m for m in msg.markers if m.action == Marker.ADD]
        header = Header()
        if joints:
            header.stamp = joints[0].header.stamp
            self._frame_id = joints[0].header.frame_id
        else:
            header.stamp = self.get_clock().now().to_msg()
        ids = np.array([m.id for m in joints], np.int64)
        positions = np.array([[m.pose.position.x, m.pose.position.y, m.pose.position.z]
                              for m in joints], np.float64).reshape(-1, 3)
        body_ids, xyz, occluded, issues = convert_markers(ids, positions,
                                                          self.params['output_axes'])
        if issues:
            self.get_logger().warning(
                'body_tracking_data: ' + ', '.join(f'{k} x{n}' for k, n in sorted(issues.items())),
                throttle_duration_sec=self.params['warning_throttle_s'])
        header.frame_id = self._frame_id + self.frame_suffix
        return skeleton_cloud(header, body_ids, xyz, occluded)

    def _on_markers(self, msg):
        self._publisher.publish(self.convert(msg))
        self.converted += 1


def main(args=None):
    """Run the adapter until shutdown; exit status 1 on a bad parameter."""
    rclpy.init(args=args)
    node = None
    status = 0
    try:
        try:
            node = K4aAdapter()
        except (ParameterException, ValueError) as error:  # output_axes, a range or a type
            rclpy.logging.get_logger(NODE_NAME).error(f'bad parameter: {error}')
            status = 1
        else:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return status


if __name__ == '__main__':
    sys.exit(main())
