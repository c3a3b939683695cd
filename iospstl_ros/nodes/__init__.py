"""The ROS 2 side of iospstl_ros: nodes and adapters (these import rclpy; the core does not)."""
