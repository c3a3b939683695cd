"""launch/iospstl.launch.py: its arguments and executable (ast, everywhere), and a real load.

``launch`` and ``launch_ros`` are not installable from the package registries used here, so the
load test skips where they are missing; the ast test checks the file's contract anywhere.
"""

import ast
import importlib.util
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_FILE = os.path.join(REPO, 'launch', 'iospstl.launch.py')
ARGUMENTS = {'model_dir', 'params_file', 'namespace', 'use_sim_time'}


def _constants(tree):
    """Module-level NAME = 'string' assignments."""
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    values[target.id] = node.value.value
    return values


def _value(node, constants):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _calls(tree, name):
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def test_launch_file_declares_its_arguments_and_runs_the_node_executable():
    with open(LAUNCH_FILE) as f:
        tree = ast.parse(f.read(), LAUNCH_FILE)
    constants = _constants(tree)
    declared = {_value(call.args[0], constants)
                for call in _calls(tree, 'DeclareLaunchArgument')}
    assert declared == ARGUMENTS
    used = {_value(call.args[0], constants) for call in _calls(tree, 'LaunchConfiguration')}
    assert used == ARGUMENTS  # every argument is used
    (node,) = _calls(tree, 'Node')
    keywords = {k.arg: k.value for k in node.keywords}
    assert _value(keywords['executable'], constants) == 'iospstl_node'
    assert _value(keywords['package'], constants) == 'iospstl_ros'
    assert {'namespace', 'parameters'} <= set(keywords)
    assert any(isinstance(f, ast.FunctionDef) and f.name == 'generate_launch_description'
               for f in tree.body)
    with open(os.path.join(REPO, 'setup.py')) as f:
        setup = f.read()
    assert re.search(r"'iospstl_node = iospstl_ros\.nodes\.action_node:main'", setup)
    assert "tree('launch')" in setup and "tree('config')" in setup
    assert os.path.isfile(os.path.join(REPO, 'config', 'iospstl.yaml'))


def test_launch_file_loads_with_launch_ros():
    pytest.importorskip('launch_ros', reason='launch_ros is not installable here (no ROS apt '
                                             'packages); the ast test covers the file')
    from launch import LaunchContext

    spec = importlib.util.spec_from_file_location('iospstl_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {argument.name for argument in description.get_launch_arguments()}
    assert names == ARGUMENTS
    context = LaunchContext()
    for argument in description.get_launch_arguments():
        argument.visit(context)
    context.launch_configurations['model_dir'] = '/opt/model'
    (opaque,) = [e for e in description.entities if type(e).__name__ == 'OpaqueFunction']
    (node,) = opaque.execute(context)
    assert node.node_executable == 'iospstl_node'
