"""iospstl_ros: occlusion-robust skeleton action recognition for ROS 2.

The package's top-level modules are the core the robot runs (numpy, numba, onnxruntime; never
rclpy or torch); :mod:`iospstl_ros.datasets` holds the data-set side (NTU reader, splits,
format, occlusion, synthetic data), also ROS-free; :mod:`iospstl_ros.bag` the rosbag tools and
:mod:`iospstl_ros.nodes` the ROS 2 nodes, the only parts that import rclpy. Nothing here
imports ``training`` (test/test_architecture.py checks both directions).
"""

import os

__version__ = '0.1.0'

# OpenBLAS's idle threads spin for 2**28 cycles (about 0.1 s) after each matrix product and
# take the cores from the compiled imputer kernels that follow it (a fifth of a cluster's
# imputation; docs/benchmarks.md). Let them sleep at once unless the user set it: OpenBLAS reads
# it when numpy loads, so it holds where iospstl_ros is imported before numpy.
os.environ.setdefault('OPENBLAS_THREAD_TIMEOUT', '4')
