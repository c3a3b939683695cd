"""launch/iospstl.launch.py and the node under the real ros2 CLI: launch, lifecycle, param.

Everything runs against the session's colcon install space of this package (conftest.py) and
is typed as a robot engineer types it: ``ros2 launch iospstl_ros iospstl.launch.py ...``,
``ros2 lifecycle get/set``, ``ros2 param set/dump``. A peer node in this process publishes
skeletons to the launched node and collects its labels over DDS.

``ros2 launch`` runs in a session of its own (``start_new_session``) with its output in a file,
and is stopped by one SIGINT to the launch process only (it forwards SIGINT to its nodes when
its stdin is not a terminal). CLI calls pass ``--no-daemon``, so no ``ros2`` daemon outlives a
test. The tools come from ROS 2 Jazzy (apt) or, in the venv, from ``../shared/ros2_launch``
(scripts/setup.sh); without either these tests skip, and where that folder exists they fail.
"""

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess

from diagnostic_msgs.msg import DiagnosticArray
import install_space
from iospstl_ros.axes import from_ntu
from iospstl_ros.datasets.synthetic import generate_sequence
from iospstl_ros.nodes._ros_helpers import skeleton_cloud, status_values
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
import ros_fixtures
from ros_fixtures import fast_discovery_env, spin_for, spin_until, wait_for_match
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
import yaml

PACKAGE = 'iospstl_ros'
NODE = 'iospstl_node'
ARGUMENTS = {'model_dir', 'params_file', 'namespace', 'use_sim_time', 'autostart'}
FRAME_NS = 33_333_333
#: Message time (and, under use_sim_time, /clock) of the first message a peer sends.
START_NS = 1_000 * 1_000_000_000
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
#: A body's first label at its 6th frame, then every 3rd. A CLI call takes about a second:
#: timeout_s keeps a body tracked (no STALE label) while the tests wait for one.
PARAMS = {'backend': 'cpu', 'threads': 1, 'window': 12, 'min_frames': 6, 'stride': 3,
          'timeout_s': 60.0, 'input_reliability': 'reliable', 'diagnostics_period_s': 0.2}
ros_context = ros_fixtures.ros_context


@pytest.fixture
def launch_env(ros2_command, install_env, tmp_path):
    """Return the environment of ``ros2`` commands: install space, quick discovery, tmp logs."""
    env = fast_discovery_env(base=install_env)
    env['PATH'] = os.path.dirname(ros2_command) + os.pathsep + env['PATH']
    env['ROS_LOG_DIR'] = str(tmp_path / 'ros_log')
    return env


@pytest.fixture
def share(colcon_workspace):
    """Return the package's installed share folder."""
    return colcon_workspace / 'install' / PACKAGE / 'share' / PACKAGE


def write_params(path, **values):
    """Write a ``/**: ros__parameters:`` file of :data:`PARAMS` updated with ``values``."""
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': {**PARAMS, **values}}}))
    return path


def ros2(env, command, verb, *args, timeout=60):
    """Run ``ros2 COMMAND VERB --no-daemon ARGS...``; return the completed process.

    ``ros2 lifecycle`` looks the node up once, after spinning ``--spin-time`` seconds (0.5 by
    default) for discovery, which a busy machine can exceed: on 'Node not found' it is run
    again with 1.5 s, then 4 s. ``ros2 param`` waits for the node itself (``--timeout``, 10 s).
    """
    options = [['--timeout', '10']] if command == 'param' else \
        [[], ['--spin-time', '1.5'], ['--spin-time', '4']]
    for option in options:
        result = subprocess.run(
            ['ros2', command, verb, '--no-daemon', *option, *args], env=env,
            capture_output=True, text=True, timeout=timeout)
        if result.stderr != 'Node not found\n':
            break
    return result


def _default_sigint():
    """Let the launch process take SIGINT even where pytest runs with it ignored.

    A command started with ``&`` by a non-interactive shell ignores SIGINT, and so would every
    process it starts; ``ros2 launch`` could then never be interrupted.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Launch:
    """``ros2 launch iospstl_ros iospstl.launch.py NAME:=VALUE...``, in a session of its own."""

    def __init__(self, env, log_path, **arguments):
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.process = subprocess.Popen(
            ['ros2', 'launch', PACKAGE, 'iospstl.launch.py',
             *(f'{name}:={value}' for name, value in arguments.items())],
            env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_default_sigint)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.process.poll() is None or self.session_processes():  # a test failed midway
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self._log.close()

    def output(self):
        """Return everything launch and its node wrote so far."""
        self._log.flush()
        return self.log_path.read_text()

    def node_processes(self):
        """Return the launched node's processes (psutil; children of the launch process)."""
        import psutil
        children = psutil.Process(self.process.pid).children(recursive=True)
        return [p for p in children if any(NODE in part for part in p.cmdline())]

    def interrupt(self, timeout=30):
        """Send one SIGINT to the launch process; return its exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def session_processes(self):
        """Return the pids still in the launch process's session (orphans included)."""
        import psutil
        alive = []
        for pid in psutil.pids():
            try:
                if os.getsid(pid) == self.process.pid:
                    alive.append(pid)
            except ProcessLookupError:
                pass
        return alive


def body_frames(index):
    """Return (T, 25, 3) REP-103 joints and (T, 25) occlusion of a synthetic person."""
    sequence = generate_sequence(3, index)
    return from_ntu(np.moveaxis(sequence.xyz[:, :, :, 0], 0, -1), 'rep103'), \
        sequence.occluded[:, :, 0]


class Peer:
    """A node in this process: skeletons to ``NS/skeletons``; labels and health back."""

    def __init__(self, context, namespace, name, sim_time=False):
        self.node = Node(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.target = f'{namespace}/{NODE}'
        self.labels, self.health = [], []
        self.node.create_subscription(DiagnosticArray, f'{namespace}/action_labels',
                                      self.labels.append, RELIABLE)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_health, RELIABLE)
        self.skeletons = self.node.create_publisher(PointCloud2, f'{namespace}/skeletons',
                                                    RELIABLE)
        self.clock = self.node.create_publisher(Clock, '/clock', 10) if sim_time else None
        self.stamp_ns = START_NS

    def _on_health(self, msg):
        for status in msg.status:
            if status.hardware_id == self.target:
                self.health.append((msg.header.stamp, status_values(status)))

    def publish(self, bodies):
        """Publish one frame of ``{body_id: (xyz, occluded)}`` (after /clock); return its stamp."""
        self.stamp_ns += FRAME_NS
        sec, nanosec = divmod(self.stamp_ns, 1_000_000_000)
        if self.clock is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = sec, nanosec
            self.clock.publish(msg)
        header = Header(frame_id='camera_link')
        header.stamp.sec, header.stamp.nanosec = sec, nanosec
        ids = sorted(bodies)
        xyz = np.stack([bodies[i][0] for i in ids]) if ids else np.zeros((0, 25, 3))
        occluded = np.stack([bodies[i][1] for i in ids]) if ids else np.zeros((0, 25), bool)
        self.skeletons.publish(skeleton_cloud(header, ids, xyz, occluded))
        return self.stamp_ns

    def wait_until_served(self, timeout=60.0):
        """Wait until the node subscribed and took a message (empty frames, no bodies)."""
        assert wait_for_match(self.executor, self.skeletons, timeout=timeout), \
            f'{self.target} did not subscribe to skeletons'

        def taken():
            if any(int(values.get('messages_received', 0)) > 0 for _, values in self.health):
                return True
            self.publish({})
            return False
        # the publisher can see the match before the node's reader knows the writer (a sample
        # sent then is lost): send empty frames until the node counts one
        assert spin_until(self.executor, taken, 20.0), f'{self.target} took no message'

    def send(self, frames):
        """Publish ``frames`` (a list of body dicts) one by one; return their stamps."""
        stamps = []
        for bodies in frames:
            stamps.append(self.publish(bodies))
            spin_for(self.executor, 0.01)
        return stamps

    def statuses(self):
        """Return (stamp_ns, frame_id, body id, status) of every label received."""
        return [(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec,
                 msg.header.frame_id, status.hardware_id, status)
                for msg in self.labels for status in msg.status]

    def label_stamps(self, count, timeout=20.0):
        """Return the sorted (stamp_ns, body id) of the labels once ``count`` arrived."""
        spin_until(self.executor, lambda: len(self.statuses()) >= count, timeout)
        return sorted((stamp, body) for stamp, _, body, _ in self.statuses())

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def peer_factory(ros_context):
    made = []

    def make(namespace, sim_time=False):
        made.append(Peer(ros_context, namespace, f'iospstl_launch_peer_{len(made)}', sim_time))
        return made[-1]
    yield make
    for peer in made:
        peer.close()


def one_body(first, count, body_id=5):
    """Return frames ``first`` ... ``first + count - 1`` of one synthetic body (body dicts)."""
    xyz, occluded = body_frames(0)
    return [{body_id: (xyz[t], occluded[t])} for t in range(first, first + count)]


# ------------------------------------------------------------------------- the launch file


def test_missing_tools_skip_in_a_plain_clone_and_fail_beside_the_shared_folder(
        monkeypatch, tmp_path):
    monkeypatch.setattr(install_space, 'TOOL_MODULES', ('iospstl_no_such_module',))
    monkeypatch.setattr(install_space, 'SHARED_TOOLS', str(tmp_path / 'absent'))
    with pytest.raises(pytest.skip.Exception,
                       match='cannot import iospstl_no_such_module .No module named '):
        install_space.ros2_command()
    monkeypatch.setattr(install_space, 'SHARED_TOOLS', str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=f'although {tmp_path} exists: '):
        install_space.ros2_command()


def test_launch_file_loads_with_launch_ros(ros2_command, install_env, share, monkeypatch):
    monkeypatch.setenv('AMENT_PREFIX_PATH', install_env['AMENT_PREFIX_PATH'])
    from launch import LaunchContext

    spec = importlib.util.spec_from_file_location('iospstl_launch', share / 'launch' /
                                                  'iospstl.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    arguments = {a.name: a.default_value for a in description.get_launch_arguments()}
    assert set(arguments) == ARGUMENTS
    assert arguments['params_file'][0].text == str(share / 'config' / 'iospstl.yaml')
    (opaque,) = [e for e in description.entities if type(e).__name__ == 'OpaqueFunction']

    def node(**values):
        context = LaunchContext()
        for argument in description.get_launch_arguments():
            argument.visit(context)
        context.launch_configurations.update(values)
        (action,) = opaque.execute(context)
        return action
    assert node(model_dir='/opt/model').node_executable == NODE
    assert node(autostart='False', use_sim_time='1').node_package == PACKAGE
    with pytest.raises(ValueError,
                       match="launch argument autostart: expected true or false, got 'maybe'"):
        node(autostart='maybe')
    with pytest.raises(ValueError, match="use_sim_time: expected true or false, got 'yes'"):
        node(use_sim_time='yes')


# --------------------------------------------------------------------------- ros2 launch


@pytest.mark.ros
@pytest.mark.slow
def test_ros2_launch_with_every_argument_serves_labels_and_one_sigint_ends_it(
        launch_env, share, peer_factory, tmp_path):
    import psutil
    model = tmp_path / 'model'
    shutil.copytree(share / 'models' / 'default', model)
    classes = json.loads((model / 'metadata.json').read_text())['classes']
    # the params file names no usable model: only the model_dir argument makes the node start
    params = write_params(tmp_path / 'params.yaml', model_dir=str(tmp_path / 'not_this_one'))
    with Launch(launch_env, tmp_path / 'launch.log', model_dir=model, params_file=params,
                namespace='cam1', use_sim_time='true') as launch:
        peer = peer_factory('/cam1', sim_time=True)
        peer.wait_until_served()
        (xyz1, occ1), (xyz2, occ2) = body_frames(0), body_frames(1)
        stamps = peer.send([{3: (xyz1[t], occ1[t]), 9: (xyz2[t] + (2.5, 0.0, 0.0), occ2[t])}
                            for t in range(9)])
        # each body's 6th and 9th frame
        assert peer.label_stamps(4) == sorted(
            (stamps[t], body) for t in (5, 8) for body in ('3', '9'))
        for _, frame_id, body, status in peer.statuses():
            values = status_values(status)
            assert frame_id == 'camera_link' and values['body_id'] == body
            assert status.message == values['label'] and values['label'] in classes
            # use_sim_time: the node clock is the peer's /clock, not the wall clock (1.8e12 ms)
            assert abs(float(values['end_to_end_ms'])) < 1000.0, values['end_to_end_ms']
        assert all(START_NS // 10**9 <= stamp.sec < START_NS // 10**9 + 60
                   for stamp, _ in peer.health)
        (node,) = launch.node_processes()
        assert launch.interrupt() == 0
        assert not psutil.wait_procs([node], timeout=10)[1] and launch.session_processes() == []
        output = launch.output()
    assert f'model {model} (43 classes) loaded' in output, output
    assert 'active: /cam1/skeletons -> /cam1/action_labels' in output, output
    assert re.search(r'\[INFO\] \[iospstl_node-1\]: process has finished cleanly', output), output
    assert 'Traceback' not in output and '[ERROR]' not in output, output


@pytest.mark.ros
@pytest.mark.slow
def test_a_bad_model_dir_through_launch_ends_the_node_with_its_one_error_line(
        launch_env, tmp_path):
    missing = tmp_path / 'missing'
    with Launch(launch_env, tmp_path / 'launch.log', model_dir=missing) as launch:
        status = launch.process.wait(timeout=60)  # launch ends by itself once the node died
        output = launch.output()
    errors = [line for line in output.splitlines() if '[ERROR]' in line]
    assert len(errors) == 2, output
    assert errors[0].startswith('[iospstl_node-1] [ERROR] ') and \
        f'[iospstl_node]: configure failed: {missing}: not a directory' in errors[0], output
    assert re.match(r'\[ERROR\] \[iospstl_node-1\]: process has died \[pid \d+, exit code 1, ',
                    errors[1]), output
    assert 'Traceback' not in output, output
    assert status == 0  # launch does not pass its processes' exit status on


# ----------------------------------------------------------------------- ros2 lifecycle


@pytest.mark.ros
@pytest.mark.slow
def test_ros2_lifecycle_walks_the_node_and_labels_come_only_while_active(
        launch_env, peer_factory, tmp_path):
    params = write_params(tmp_path / 'params.yaml')
    target = '/lc/iospstl_node'
    with Launch(launch_env, tmp_path / 'launch.log', params_file=params, namespace='lc',
                autostart='false') as launch:
        peer = peer_factory('/lc')

        def lifecycle(*args):
            result = ros2(launch_env, 'lifecycle', *args)
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout

        assert lifecycle('get', target) == 'unconfigured [1]\n'
        assert lifecycle('set', target, 'configure') == 'Transitioning successful\n'
        assert lifecycle('get', target) == 'inactive [2]\n'
        spin_for(peer.executor, 0.3)
        assert peer.skeletons.get_subscription_count() == 0  # no input while inactive
        assert lifecycle('set', target, 'activate') == 'Transitioning successful\n'
        peer.wait_until_served()
        stamps = peer.send(one_body(0, 9))
        assert peer.label_stamps(2) == [(stamps[5], '5'), (stamps[8], '5')]

        assert lifecycle('set', target, 'deactivate') == 'Transitioning successful\n'
        assert spin_until(peer.executor,
                          lambda: peer.skeletons.get_subscription_count() == 0, 10.0)
        peer.send(one_body(9, 9))
        spin_for(peer.executor, 0.5)
        assert len(peer.statuses()) == 2  # nothing while inactive
        assert lifecycle('set', target, 'cleanup') == 'Transitioning successful\n'
        assert lifecycle('get', target) == 'unconfigured [1]\n'
        assert launch.interrupt() == 0 and launch.session_processes() == []
        output = launch.output()
    assert 'loaded and warmed up' in output and 'process has finished cleanly' in output, output
    assert 'Traceback' not in output and '[ERROR]' not in output, output


# --------------------------------------------------------------------------- ros2 param


@pytest.mark.ros
@pytest.mark.slow
def test_ros2_param_set_changes_the_cadence_refuses_read_only_and_dump_loads_back(
        launch_env, peer_factory, tmp_path):
    params = write_params(tmp_path / 'params.yaml')
    target = '/pm/iospstl_node'
    with Launch(launch_env, tmp_path / 'launch.log', params_file=params,
                namespace='pm') as launch:
        peer = peer_factory('/pm')
        peer.wait_until_served()
        stamps = peer.send(one_body(0, 9))
        assert peer.label_stamps(2) == [(stamps[5], '5'), (stamps[8], '5')]  # stride 3

        result = ros2(launch_env, 'param', 'set', target, 'stride', '6')
        assert (result.returncode, result.stdout) == (0, 'Set parameter successful\n'), result
        stamps += peer.send(one_body(9, 12))
        # the 12th and 18th frame: every 6th now (with stride 3: also the 15th and 21st)
        assert peer.label_stamps(4)[2:] == [(stamps[11], '5'), (stamps[17], '5')]
        spin_for(peer.executor, 0.3)
        assert len(peer.statuses()) == 4

        result = ros2(launch_env, 'param', 'set', target, 'window', '20')
        assert result.stderr == 'Setting parameter failed: Trying to set a read-only ' \
            'parameter: window.\n', result
        result = ros2(launch_env, 'param', 'dump', target)
        assert result.returncode == 0, result
        dumped = yaml.safe_load(result.stdout)[target]['ros__parameters']
        assert (dumped['stride'], dumped['window'], dumped['min_frames']) == (6, 12, 6)
        assert launch.interrupt() == 0 and launch.session_processes() == []
    dump = tmp_path / 'dump.yaml'
    dump.write_text(result.stdout)

    with Launch(launch_env, tmp_path / 'again.log', params_file=dump,
                namespace='pm') as launch:
        peer = peer_factory('/pm')
        peer.wait_until_served()
        stamps = peer.send(one_body(0, 12))
        assert peer.label_stamps(2) == [(stamps[5], '5'), (stamps[11], '5')]  # stride 6
        spin_for(peer.executor, 0.3)
        assert len(peer.statuses()) == 2
        assert launch.interrupt() == 0 and launch.session_processes() == []
        output = launch.output()
    assert 'Traceback' not in output and '[ERROR]' not in output, output
