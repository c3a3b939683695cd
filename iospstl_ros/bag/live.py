"""Live replay: publish a bag's skeleton messages over DDS into a running ``iospstl_node``.

:class:`LiveReplay` publishes the serialized messages of the bag unchanged (rclpy's
``Publisher.publish`` takes CDR bytes), paced by their bag times (divided by ``speed``), with a
``/clock`` message of the bag time before each one (for a node with ``use_sim_time``), and
collects ``action_labels``. Latency of a label = its receipt minus the publication of the
skeleton message whose header stamp it carries (one monotonic clock, this process).

:class:`NodeProcess` starts the installed ``iospstl_node`` console script as a subprocess (for
``--start-node``) with a Fast DDS profile that makes discovery take well under a second.
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from iospstl_ros.bag.evaluate import Prediction
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import PointCloud2

#: Environment variable Fast DDS 2.14 reads its XML profiles from.
PROFILE_VARIABLE = 'FASTRTPS_DEFAULT_PROFILES_FILE'
#: Fast discovery: 10 initial announcements 50 ms apart, lease announcement 250 ms, lease 3 s.
FAST_DISCOVERY_XML = """<?xml version="1.0" encoding="UTF-8" ?>
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <participant profile_name="iospstl_bag_fast_discovery" is_default_profile="true">
    <rtps>
      <builtin>
        <discovery_config>
          <initialAnnouncements>
            <count>10</count>
            <period><sec>0</sec><nanosec>50000000</nanosec></period>
          </initialAnnouncements>
          <leaseAnnouncement><sec>0</sec><nanosec>250000000</nanosec></leaseAnnouncement>
          <leaseDuration><sec>3</sec><nanosec>0</nanosec></leaseDuration>
        </discovery_config>
      </builtin>
    </rtps>
  </participant>
</profiles>
"""
#: diagnostic_msgs/DiagnosticStatus level byte -> label level.
LEVEL_NAMES = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}
#: Seconds to wait after discovery before the first message (best-effort matching settles).
SETTLE_S = 0.2


def write_fast_discovery_profile(directory):
    """Write :data:`FAST_DISCOVERY_XML` into ``directory``; return its path."""
    path = os.path.join(directory, 'fast_discovery.xml')
    with open(path, 'w') as f:
        f.write(FAST_DISCOVERY_XML)
    return path


def node_executable():
    """Command that runs the node: the ``iospstl_node`` console script if installed.

    Looks next to this interpreter first (a virtual environment's ``bin``), then on ``PATH``,
    then falls back to ``python -m iospstl_ros.nodes.action_node``.
    """
    beside = os.path.join(os.path.dirname(sys.executable), 'iospstl_node')
    if os.access(beside, os.X_OK):
        return [beside]
    found = shutil.which('iospstl_node')
    if found:
        return [found]
    return [sys.executable, '-m', 'iospstl_ros.nodes.action_node']


def node_command(model_dir=None, params_file=None, overrides=(), skeletons_topic=None,
                 labels_topic=None, use_sim_time=True, executable=None):
    """Command line of ``iospstl_node`` with ``--ros-args`` for these settings.

    Parameters
    ----------
    model_dir : str, optional
    params_file : str, optional
    overrides : sequence of str
        ``name:=value`` parameter overrides, applied after the params file.
    skeletons_topic, labels_topic : str, optional
        Remappings of the node's ``skeletons`` and ``action_labels``.
    use_sim_time : bool
    executable : list of str, optional
        Default :func:`node_executable`.

    Returns
    -------
    list of str
    """
    command = list(executable or node_executable()) + ['--ros-args']
    if params_file:
        command += ['--params-file', os.path.abspath(params_file)]
    if model_dir:
        command += ['-p', f'model_dir:={os.path.abspath(model_dir)}']
    command += ['-p', f'use_sim_time:={"true" if use_sim_time else "false"}']
    for override in overrides:
        command += ['-p', override]
    if skeletons_topic:
        command += ['-r', f'skeletons:={skeletons_topic}']
    if labels_topic:
        command += ['-r', f'action_labels:={labels_topic}']
    return command


class NodeProcess:
    """``iospstl_node`` as a subprocess; its output goes to ``log_path``.

    Parameters
    ----------
    command : list of str
    log_path : str
    env : dict, optional
    """

    def __init__(self, command, log_path, env=None):
        self.command = command
        self.log_path = log_path
        self._log = open(log_path, 'w')
        environment = dict(os.environ if env is None else env)
        environment.setdefault('PYTHONUNBUFFERED', '1')
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=environment, start_new_session=True)

    def running(self):
        """Whether the process is still running."""
        return self.process.poll() is None

    def log_tail(self, lines=20):
        """Return the last lines of the node's output."""
        self._log.flush()
        with open(self.log_path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])

    def stop(self, timeout_s=10.0):
        """SIGINT, then SIGTERM, then SIGKILL; return the exit status."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if not self.running():
                break
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                continue
        self._log.close()
        return self.process.returncode


def _stamp_ns(stamp):
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _level(value):
    if isinstance(value, (bytes, bytearray)):
        value = value[0] if value else 0
    return LEVEL_NAMES.get(int(value), str(value))


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return float('nan')


def _int(text, default=-1):
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def label_predictions(message, received_ns, published_ns):
    """Predictions of one ``action_labels`` DiagnosticArray.

    Parameters
    ----------
    message : DiagnosticArray
    received_ns : int
        Monotonic receipt time.
    published_ns : dict of int to int
        Header stamp -> monotonic publication time of that skeleton message.

    Returns
    -------
    list of Prediction
        Statuses not named ``body/<id>`` are skipped.
    """
    stamp = _stamp_ns(message.header.stamp)
    sent = published_ns.get(stamp)
    latency = (received_ns - sent) / 1e6 if sent is not None else float('nan')
    predictions = []
    for status in message.status:
        if not status.name.startswith('body/'):
            continue
        values = {kv.key: kv.value for kv in status.values}
        body = _int(values.get('body_id', status.name[len('body/'):]))
        predictions.append(Prediction(
            stamp, body, _int(values.get('class_index')), values.get('label', status.message),
            _level(status.level), _float(values.get('confidence')), latency))
    return predictions


class LiveReplay:
    """A player node: publishes skeleton messages and ``/clock``, collects labels.

    Uses its own rclpy context, so it can run beside other rclpy code in one process.

    Parameters
    ----------
    publish_topic : str
        Topic to publish the skeleton messages on.
    labels_topic : str
        Topic of the node's labels.
    clock : bool
        Publish ``/clock`` (bag time) before each message.
    reliable : bool
        Publish reliably (matches best-effort and reliable subscribers) or best effort.
    depth : int
        History depth of the publisher and of the labels subscription.
    """

    def __init__(self, publish_topic='skeletons', labels_topic='action_labels', clock=True,
                 reliable=True, depth=1000):
        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context)
        self.node = rclpy.create_node('iospstl_bag_player', context=self.context)
        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        self.publisher = self.node.create_publisher(
            PointCloud2, publish_topic,
            QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability))
        self.clock_publisher = self.node.create_publisher(Clock, '/clock', 10) if clock else None
        self.received = []
        self.subscription = self.node.create_subscription(
            DiagnosticArray, labels_topic, self._on_labels,
            QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                       reliability=ReliabilityPolicy.RELIABLE))
        self.published_ns = {}
        self.published = 0
        self.max_lag_ms = 0.0
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    @property
    def publish_topic(self):
        """Fully qualified topic the skeleton messages go to."""
        return self.publisher.topic_name

    @property
    def labels_topic(self):
        """Fully qualified topic the labels come from."""
        return self.subscription.topic_name

    def _on_labels(self, message):
        self.received.append((time.monotonic_ns(), message))

    def wait_for_node(self, timeout_s, process=None):
        """Wait until a node subscribes to the skeletons and publishes labels.

        ``iospstl_node`` subscribes only once active (model loaded and warmed up), so this
        waits for an active node.

        Parameters
        ----------
        timeout_s : float
        process : NodeProcess, optional
            Fail at once if it exits.

        Returns
        -------
        float
            Seconds waited.

        Raises
        ------
        RuntimeError
            On timeout, or when ``process`` exits.
        """
        started = time.monotonic()
        while True:
            if process is not None and not process.running():
                raise RuntimeError(f'iospstl_node exited with status {process.process.returncode}'
                                   f' before becoming active; its output:\n'
                                   f'{process.log_tail()}')
            if self.publisher.get_subscription_count() > 0 \
                    and self.subscription.get_publisher_count() > 0:
                break
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(
                    f'no active node after {timeout_s:.0f} s: expected a subscriber on '
                    f'{self.publish_topic} and a publisher on {self.labels_topic} (start '
                    'iospstl_node, or pass --start-node)')
            time.sleep(0.02)
        time.sleep(SETTLE_S)
        return time.monotonic() - started

    def play(self, messages, speed=1.0, progress=None):
        """Publish ``(bag_time_ns, raw, message)`` items paced by bag time / ``speed``.

        Parameters
        ----------
        messages : iterable
            From :meth:`BagReader.skeleton_messages`.
        speed : float
            Playback speed factor (> 0).
        progress : callable, optional
            Called once per message.
        """
        if not speed > 0:
            raise ValueError(f'speed: expected > 0, got {speed}')
        origin = None
        for bag_time, raw, message in messages:
            now = time.monotonic()
            if origin is None:
                origin = (now, bag_time)
            target = origin[0] + (bag_time - origin[1]) / 1e9 / speed
            if target > now:
                time.sleep(target - now)
            else:
                self.max_lag_ms = max(self.max_lag_ms, 1000.0 * (now - target))
            if self.clock_publisher is not None:
                sec, nanosec = divmod(int(bag_time), 1_000_000_000)
                self.clock_publisher.publish(Clock(clock=Time(sec=sec, nanosec=nanosec)))
            stamp = _stamp_ns(message.header.stamp)
            sent = time.monotonic_ns()
            self.publisher.publish(raw)
            self.published_ns.setdefault(stamp, sent)
            self.published += 1
            if progress is not None:
                progress(1)

    def labelled_keys(self):
        """``(stamp_ns, body_id)`` of the non-STALE labels received so far."""
        return {p.key for p in self.predictions() if p.level != 'STALE'}

    def drain(self, expected_keys, quiet_s=2.0, timeout_s=30.0):
        """Wait for the last labels: all ``expected_keys`` received, or ``quiet_s`` of silence.

        Returns
        -------
        float
            Seconds waited.
        """
        started = time.monotonic()
        expected = set(expected_keys)
        last_count, last_change = -1, started
        while time.monotonic() - started < timeout_s:
            count = len(self.received)
            if count != last_count:
                last_count, last_change = count, time.monotonic()
                if expected <= self.labelled_keys():
                    break
            elif time.monotonic() - last_change > quiet_s:
                break
            time.sleep(0.02)
        return time.monotonic() - started

    def predictions(self):
        """Every label received, as Predictions, in receipt order."""
        out = []
        for received_ns, message in list(self.received):
            out.extend(label_predictions(message, received_ns, self.published_ns))
        return out

    def close(self):
        """Stop spinning and shut the context down."""
        self._executor.shutdown()
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
