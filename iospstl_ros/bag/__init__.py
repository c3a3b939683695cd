"""rosbag2 tooling (``iospstl_bag``): bag IO, convert, replay, evaluate, live, cli."""
