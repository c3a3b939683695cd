"""Session fixtures: a colcon install space of this package, and the real ros2 CLI tools.

``colcon_workspace`` builds the package once per test session (``colcon build`` in a fresh
workspace holding a copy of the repository), for test_colcon_build.py and the ``ros2 launch``
tests; ``install_env`` is the environment after ``source install/setup.bash`` there.
``ros2_command`` is the ``ros2`` of ROS 2 Jazzy (apt, sourced) or of the venv (installed from
``../shared/ros2_launch`` by scripts/setup.sh); see install_space.py for when a missing tool
skips and when it fails.
"""

import os

import helpers
import install_space
import pytest


@pytest.fixture(scope='session')
def ros2_command():
    """Return the path of ``ros2`` once launch, launch_ros and ros2cli import here."""
    return install_space.ros2_command()


@pytest.fixture(scope='session')
def colcon_workspace(tmp_path_factory):
    """Build this package in a fresh colcon workspace (``src/``, ``install/``); return it."""
    if os.environ.get(install_space.INSIDE_COLCON_TEST) == '1':
        pytest.skip('already running inside colcon test')
    return install_space.build_workspace(tmp_path_factory.mktemp('colcon') / 'ws')


@pytest.fixture(scope='session')
def install_env(colcon_workspace):
    """Return ``os.environ`` after ``source install/setup.bash`` of the session workspace."""
    return install_space.sourced_env(colcon_workspace)


@pytest.fixture(scope='session')
def tiny(tmp_path_factory):
    """Train and export a tiny model with the project's own scripts, once per session.

    A dict of paths: ``root``, ``data``, ``stage1``, ``imputed``, ``classifier``, ``model``
    (see :func:`helpers.build_tiny_model`). Tests copy ``model`` before changing it.
    """
    return helpers.build_tiny_model(tmp_path_factory)
