"""rosbag2 tooling (``iospstl_bag``): bag IO, convert, replay, evaluation and live runs."""
