"""iospstl_ros: occlusion-robust skeleton action recognition for ROS 2.

The modules of this package, except the ROS nodes (``*_node`` and adapters), form the ROS-free
core: they import numpy (and onnxruntime where a model runs), never rclpy or torch.
"""

__version__ = '0.1.0'
