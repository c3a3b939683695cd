"""Helpers of the install-space fixtures (conftest.py): colcon, its environment, the ros2 tools.

``../shared/ros2_launch`` holds the real ROS 2 Jazzy launch, launch_ros and ros2cli (wheels
installed into the venv by scripts/setup.sh). Where that folder exists (CI, the team's
machines) a test that cannot run the tools fails; elsewhere (a user's clone without ROS) it is
skipped with the reason.
"""

import importlib
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The real Jazzy launch / ros2cli sources and wheels, beside the repository (read-only in CI).
SHARED_TOOLS = os.path.normpath(os.path.join(REPO, '..', 'shared', 'ros2_launch'))
#: What ``ros2 launch / lifecycle / param`` and the tests of them import.
TOOL_MODULES = ('launch', 'launch_ros', 'ros2cli', 'ros2launch', 'ros2lifecycle', 'ros2param',
                'psutil')
IGNORED = shutil.ignore_patterns('.git', '.venv', 'build', 'install', 'log', '*.egg-info',
                                 '__pycache__', '.pytest_cache', 'data', 'runs', 'outputs',
                                 'demo_out', 'train_demo_out')
#: Set in the environment of ``colcon test``, whose pytest must not build a workspace again.
INSIDE_COLCON_TEST = 'IOSPSTL_INSIDE_COLCON_TEST'
#: The bin folder of the interpreter running the tests (the venv's: colcon, ros2).
VENV_BIN = os.path.dirname(sys.executable)


def cannot_run(problem):
    """Skip the test for ``problem``, or fail it where ../shared/ros2_launch exists."""
    if os.path.isdir(SHARED_TOOLS):
        pytest.fail(f'{problem}, although {SHARED_TOOLS} exists: scripts/setup.sh installs the '
                    'tools from it (CI must run these tests, not skip them)')
    pytest.skip(f'{problem}: these tests need ROS 2 Jazzy (apt, sourced) or '
                '../shared/ros2_launch beside the repository (README, Running)')


def run(args, cwd, env, timeout=600):
    """Run ``args``; fail the test with the output unless the exit status is 0."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f'{args} failed:\n{result.stdout[-4000:]}\n{result.stderr}'
    return result


def which(command):
    """Return the path of ``command`` in the venv's bin folder or on ``PATH``, else None."""
    return shutil.which(command, path=VENV_BIN + os.pathsep + os.environ.get('PATH', ''))


def ros2_command():
    """Return the path of ``ros2`` once all :data:`TOOL_MODULES` import (else skip / fail)."""
    missing = []
    for name in TOOL_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as error:
            missing.append(f'{name} ({error})')
    if missing:
        cannot_run('cannot import ' + ', '.join(missing))
    ros2 = which('ros2')
    if ros2 is None:
        cannot_run('the ros2 command is not installed')
    return ros2


def colcon_env():
    """Return the environment for colcon: the venv's bin first, the inner-test marker set."""
    env = dict(os.environ, **{INSIDE_COLCON_TEST: '1'})
    env['PATH'] = VENV_BIN + os.pathsep + env.get('PATH', '')
    return env


def build_workspace(workspace):
    """Copy the repository into ``workspace/src/iospstl_ros`` and ``colcon build`` it there."""
    colcon = which('colcon')
    if colcon is None:
        cannot_run('colcon is not installed (scripts/setup.sh installs it)')
    shutil.copytree(REPO, workspace / 'src' / 'iospstl_ros', ignore=IGNORED)
    run([colcon, 'build'], workspace, colcon_env())
    return workspace


def sourced_env(workspace):
    """Return ``os.environ`` after ``source install/setup.bash`` of ``workspace``.

    The venv's own prefix (where the ROS wheels register their packages) stays on
    ``AMENT_PREFIX_PATH``, behind the install space, and its bin folder on ``PATH``.
    """
    env = dict(os.environ)
    env['PATH'] = VENV_BIN + os.pathsep + env.get('PATH', '')
    if os.path.isdir(os.path.join(sys.prefix, 'share', 'ament_index')):
        env['AMENT_PREFIX_PATH'] = os.pathsep.join(
            [sys.prefix] + [p for p in env.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p])
    result = run(['bash', '-c', 'source install/setup.bash && env -0'], workspace, env,
                 timeout=60)
    sourced = dict(item.split('=', 1) for item in result.stdout.split('\0') if '=' in item)
    prefix = str(workspace / 'install' / 'iospstl_ros')
    assert sourced['AMENT_PREFIX_PATH'].split(os.pathsep)[0] == prefix, sourced
    return sourced
