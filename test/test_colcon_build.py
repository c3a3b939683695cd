"""colcon build and colcon test of the package in a fresh workspace that contains the repo.

The workspace is the session's ``colcon_workspace`` (conftest.py), built once and shared with
the ``ros2 launch`` tests of test_launch.py.
"""

import os
import shutil

from install_space import colcon_env, run
import pytest


@pytest.mark.slow
def test_colcon_build_and_test(colcon_workspace):
    workspace = colcon_workspace
    share = workspace / 'install' / 'iospstl_ros' / 'share'
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'iospstl_ros').exists()
    assert (share / 'iospstl_ros' / 'package.xml').exists()
    for folder in ('launch', 'config', 'models'):
        for path in sorted((workspace / 'src' / 'iospstl_ros' / folder).rglob('*')):
            if path.is_file():
                relative = path.relative_to(workspace / 'src' / 'iospstl_ros')
                assert (share / 'iospstl_ros' / relative).exists(), f'{relative} not installed'
    for executable in ('iospstl_node', 'iospstl_k4a_adapter', 'iospstl_skeleton_adapter',
                       'iospstl_bag'):
        path = workspace / 'install' / 'iospstl_ros' / 'lib' / 'iospstl_ros' / executable
        assert os.access(path, os.X_OK), f'{path} is not an executable'

    env = colcon_env()
    # The installed package imports from the install space, not from the source tree.
    script = ('source install/setup.bash && cd / && python -c '
              '"import iospstl_ros.layout as l; print(l.__file__)"')
    result = run(['bash', '-c', script], workspace, env)
    assert str(workspace / 'install') in result.stdout

    colcon = shutil.which('colcon', path=env['PATH'])
    run([colcon, 'test', '--pytest-args', '-q', '-k',
         'layout or flake8 or pep257 or core_imports'], workspace, env)
    result = run([colcon, 'test-result', '--verbose'], workspace, env)
    assert '0 errors, 0 failures' in result.stdout, result.stdout
    tests = int(result.stdout.split('Summary: ')[1].split(' tests')[0])
    assert tests >= 5, result.stdout
