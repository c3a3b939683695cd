"""Shared helpers of the rclpy tests: a private context, bounded spinning, a Fast DDS profile.

Import the fixtures into a test module with ``from ros_fixtures import ros_context``. Every run
should set ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and its own ``ROS_DOMAIN_ID``; the
context fixture defaults the discovery range to LOCALHOST when it is unset.
"""

import contextlib
import os
import time

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy is not installed')

#: Fast DDS profile with quick initial announcements (multi-process tests).
FAST_DISCOVERY_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                      'fastdds_fast_discovery.xml')


@pytest.fixture
def ros_context():
    """Yield a fresh rclpy context, initialised for the test and shut down after it."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        if context.ok():
            rclpy.shutdown(context=context)


def spin_until(executor, condition, timeout=10.0, step=0.02):
    """Spin ``executor`` until ``condition()`` is true or ``timeout`` seconds pass.

    Returns
    -------
    bool
        The last value of ``condition()``.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return bool(condition())
        executor.spin_once(timeout_sec=step)
    return True


def spin_for(executor, seconds, step=0.02):
    """Spin ``executor`` for about ``seconds`` (lets in-flight messages arrive)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=step)


def wait_for_match(executor, publisher, subscribers=1, timeout=10.0):
    """Spin until ``publisher`` has matched ``subscribers`` subscriptions."""
    return spin_until(executor, lambda: publisher.get_subscription_count() >= subscribers,
                      timeout)


@contextlib.contextmanager
def adapter_under_test(context, adapter, input_type, input_topic):
    """Spin ``adapter`` beside a tester node that feeds it and records its ``skeletons``.

    Yields ``(executor, publisher, received)`` once the tester's ``input_type`` publisher on
    ``input_topic`` is matched (``received``: the adapter's PointCloud2 messages, reliable,
    depth 10); shuts the executor down and destroys both nodes after.
    """
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    tester = Node('adapter_tester', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(adapter)
    executor.add_node(tester)
    received = []
    tester.create_subscription(PointCloud2, 'skeletons', received.append,
                               QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    publisher = tester.create_publisher(input_type, input_topic, 10)
    try:
        assert wait_for_match(executor, publisher)
        yield executor, publisher, received
    finally:
        executor.shutdown()
        adapter.destroy_node()
        tester.destroy_node()


def fast_discovery_env(domain_id=None, base=None):
    """Environment for a child process: LOCALHOST discovery, this domain, fast Fast DDS.

    ``base`` is the environment to start from (default: ``os.environ``).
    """
    env = dict(os.environ if base is None else base)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(domain_id)
    env['FASTRTPS_DEFAULT_PROFILES_FILE'] = FAST_DISCOVERY_PROFILE
    env['RMW_IMPLEMENTATION'] = 'rmw_fastrtps_cpp'
    env['PYTHONUNBUFFERED'] = '1'
    return env
