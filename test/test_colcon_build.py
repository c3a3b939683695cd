"""colcon build and colcon test of the package in a fresh workspace that contains the repo."""

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IGNORED = shutil.ignore_patterns('.git', '.venv', 'build', 'install', 'log', '*.egg-info',
                                 '__pycache__', '.pytest_cache', 'data', 'runs', 'outputs')
INNER = 'IOSPSTL_INSIDE_COLCON_TEST'


def _colcon():
    colcon = shutil.which('colcon') or os.path.join(os.path.dirname(sys.executable), 'colcon')
    if not os.path.exists(colcon):
        pytest.skip('colcon is not installed (scripts/setup.sh installs it)')
    return colcon


def _run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f'{args} failed:\n{result.stdout[-4000:]}\n{result.stderr}'
    return result


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get(INNER) == '1', reason='already running inside colcon test')
def test_colcon_build_and_test(tmp_path):
    colcon = _colcon()
    workspace = tmp_path / 'ws'
    shutil.copytree(REPO, workspace / 'src' / 'iospstl_ros', ignore=IGNORED)
    env = dict(os.environ, **{INNER: '1'})
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    _run([colcon, 'build'], workspace, env)

    share = workspace / 'install' / 'iospstl_ros' / 'share'
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'iospstl_ros').exists()
    assert (share / 'iospstl_ros' / 'package.xml').exists()
    for folder in ('launch', 'config', 'models'):
        for path in sorted((workspace / 'src' / 'iospstl_ros' / folder).rglob('*')):
            if path.is_file():
                relative = path.relative_to(workspace / 'src' / 'iospstl_ros')
                assert (share / 'iospstl_ros' / relative).exists(), f'{relative} not installed'

    # The installed package imports from the install space, not from the source tree.
    script = ('source install/setup.bash && cd / && python -c '
              '"import iospstl_ros.layout as l; print(l.__file__)"')
    result = _run(['bash', '-c', script], workspace, env)
    assert str(workspace / 'install') in result.stdout

    _run([colcon, 'test', '--pytest-args', '-q', '-k',
          'layout or flake8 or pep257 or core_imports'], workspace, env)
    result = _run([colcon, 'test-result', '--verbose'], workspace, env)
    assert '0 errors, 0 failures' in result.stdout, result.stdout
    tests = int(result.stdout.split('Summary: ')[1].split(' tests')[0])
    assert tests >= 5, result.stdout
