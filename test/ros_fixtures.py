"""Shared helpers of the rclpy tests: a private context, bounded spinning, a Fast DDS profile.

Import the fixtures into a test module with ``from ros_fixtures import ros_context``. Every run
should set ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and its own ``ROS_DOMAIN_ID``; the
context fixture defaults the discovery range to LOCALHOST when it is unset.
"""

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
