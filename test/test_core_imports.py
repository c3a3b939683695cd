"""The core (everything in iospstl_ros except the ROS nodes) imports without rclpy or torch."""

import os
import pkgutil
import subprocess
import sys

import iospstl_ros

BLOCKER = r"""
import importlib.abc, sys
BLOCKED = ('rclpy', 'torch', 'rosbags', 'launch', 'launch_ros')
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

#: Subpackages that are allowed to import rclpy (the ROS side of the package).
ROS_SUBPACKAGES = ('iospstl_ros.nodes',)


def core_modules():
    names = []
    for info in pkgutil.walk_packages(iospstl_ros.__path__, 'iospstl_ros.'):
        if not info.name.startswith(ROS_SUBPACKAGES):
            names.append(info.name)
    return sorted(names)


def test_core_imports_with_rclpy_and_torch_blocked():
    modules = ['iospstl_ros'] + core_modules()
    assert 'iospstl_ros.layout' in modules and 'iospstl_ros.dataset' in modules
    env = dict(os.environ)
    result = subprocess.run([sys.executable, '-c', BLOCKER, *modules], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f'imported {len(modules)} modules' in result.stdout


def test_blocker_really_blocks():
    result = subprocess.run([sys.executable, '-c', BLOCKER, 'torch'], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert 'torch is blocked' in result.stderr
