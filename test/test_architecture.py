"""The layout keeps its promises: what imports what, and no file too long to read.

* The core (``iospstl_ros`` without ``nodes`` and ``bag``, ``datasets`` included) imports
  without rclpy, torch, rosbags, launch or matplotlib: the robot runs it, the tools build on it.
* Nothing under ``iospstl_ros`` imports ``training`` (the offline PyTorch side builds on the
  package, never the other way), not even inside a function.
* No Python file of the project is over 800 lines.
"""

import ast
import os
import pkgutil
import subprocess
import sys

import iospstl_ros

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(REPO, 'iospstl_ros')

BLOCKER = r"""
import importlib.abc, sys
BLOCKED = ('rclpy', 'torch', 'rosbags', 'launch', 'launch_ros', 'matplotlib', 'training')
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'{name} is blocked: the core must not import it')
        return None
sys.meta_path.insert(0, Blocker())
import importlib
for name in sys.argv[1:]:
    importlib.import_module(name)
leaked = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)
assert not leaked, leaked
print('imported', len(sys.argv) - 1, 'modules')
"""

#: Subpackages that may import rclpy and rosbags: the ROS side of the package.
ROS_SUBPACKAGES = ('iospstl_ros.nodes', 'iospstl_ros.bag')
MAX_LINES = 800


def core_modules():
    return sorted(info.name for info in pkgutil.walk_packages(iospstl_ros.__path__,
                                                              'iospstl_ros.')
                  if not info.name.startswith(ROS_SUBPACKAGES))


def imported_roots(path):
    """Top-level package of every import statement of a file, nested ones included."""
    roots = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split('.')[0])
    return roots


def python_files(*folders):
    for folder in folders:
        for root, dirs, files in os.walk(os.path.join(REPO, folder)):
            dirs[:] = [d for d in dirs if d not in ('__pycache__', '.venv', 'build', 'install')]
            yield from (os.path.join(root, f) for f in files if f.endswith('.py'))


def test_the_core_imports_without_ros_torch_plots_or_training():
    modules = ['iospstl_ros'] + core_modules()
    assert {'iospstl_ros.layout', 'iospstl_ros.params', 'iospstl_ros.plots',
            'iospstl_ros.datasets.format', 'iospstl_ros.datasets.synthetic'} <= set(modules)
    assert not any(name.startswith(ROS_SUBPACKAGES) for name in modules)
    result = subprocess.run([sys.executable, '-c', BLOCKER, *modules], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f'imported {len(modules)} modules' in result.stdout


def test_the_blocker_really_blocks():
    for blocked in ('torch', 'training.model'):
        result = subprocess.run([sys.executable, '-c', BLOCKER, blocked], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode != 0 and 'is blocked' in result.stderr


def test_nothing_in_the_package_imports_training_and_the_core_no_rclpy():
    training, ros_in_core = [], []
    for path in python_files('iospstl_ros'):
        relative = os.path.relpath(path, REPO)
        roots = imported_roots(path)
        if 'training' in roots:
            training.append(relative)
        core = not relative.startswith(('iospstl_ros/nodes/', 'iospstl_ros/bag/'))
        if core and roots & {'rclpy', 'rosbags', 'launch', 'launch_ros'}:
            ros_in_core.append(relative)
    assert training == [] and ros_in_core == []


def test_the_static_check_sees_nested_imports(tmp_path):
    path = tmp_path / 'lazy.py'
    path.write_text('def f():\n    from training.model import STGCNEncoder\n    import rclpy\n')
    assert imported_roots(str(path)) == {'training', 'rclpy'}


def test_no_python_file_is_over_800_lines():
    long = {os.path.relpath(path, REPO): n
            for path in python_files('iospstl_ros', 'training', 'test', 'benchmarks', 'launch',
                                     'scripts')
            if (n := sum(1 for _ in open(path))) > MAX_LINES}
    assert long == {}


def test_no_test_module_imports_another():
    test_dir = os.path.join(REPO, 'test')
    modules = {f[:-3] for f in os.listdir(test_dir) if f.startswith('test_') and f.endswith('.py')}
    crossing = {os.path.basename(path): sorted(imported_roots(path) & modules)
                for path in python_files('test', 'benchmarks')}
    assert {name: found for name, found in crossing.items() if found} == {}
