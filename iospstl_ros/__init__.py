"""iospstl_ros: occlusion-robust skeleton action recognition for ROS 2.

The package's top-level modules are the core the robot runs (numpy, numba, onnxruntime; never
rclpy or torch); :mod:`iospstl_ros.datasets` holds the data-set side (NTU reader, splits,
format, occlusion, synthetic data), also ROS-free; :mod:`iospstl_ros.bag` the rosbag tools and
:mod:`iospstl_ros.nodes` the ROS 2 nodes, the only parts that import rclpy. Nothing here
imports ``training`` (test/test_architecture.py checks both directions).
"""

__version__ = '0.1.0'
