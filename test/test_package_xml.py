"""package.xml and setup.py name the same dependencies, each for the part that runs it.

setup.py's ``extras_require`` groups the pip requirements by part: ``runtime`` (the node and
the core), ``bag`` (``iospstl_bag``), ``training`` and ``test``. In package.xml a requirement
with a rosdep key is an ``exec_depend`` when the runtime or the bag tools need it, else a
``test_depend`` (torch and the training tools never reach a robot); one without a rosdep key
on every distribution is a ``<pip part="...">`` entry of ``<export>``.
"""

import ast
import os

from catkin_pkg.package import parse_package
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: rosdep key of each pip requirement that has one.
ROSDEP_KEYS = {'numpy': 'python3-numpy', 'numba': 'python3-numba',
               'scikit-learn': 'python3-sklearn', 'PyYAML': 'python3-yaml',
               'matplotlib': 'python3-matplotlib', 'tqdm': 'python3-tqdm',
               'pytest': 'python3-pytest', 'hypothesis': 'python3-hypothesis'}
ROBOT_PARTS = ('runtime', 'bag')


def setup_extras():
    """``extras_require`` of setup.py as {part: [pip name]}, read without running setup()."""
    tree = ast.parse(open(os.path.join(REPO, 'setup.py')).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == 'extras_require':
            extras = ast.literal_eval(node.value)
            return {part: [requirement.split(';')[0].split('>')[0].split('<')[0]
                           .split('=')[0].strip() for requirement in requirements]
                    for part, requirements in extras.items()}
    raise AssertionError('setup.py has no extras_require')


@pytest.fixture(scope='module')
def package():
    return parse_package(os.path.join(REPO, 'package.xml'))


def parts_by_name():
    parts = {}
    for part, names in setup_extras().items():
        for name in names:
            parts.setdefault(name, set()).add(part)
    return parts


def test_setup_py_has_the_four_parts_and_torch_only_for_training():
    parts = parts_by_name()
    assert set(setup_extras()) == {'runtime', 'bag', 'training', 'test'}
    assert parts['torch'] == {'training'} and parts['rosbags'] == {'bag'}
    assert 'matplotlib' not in setup_extras()['runtime']


def test_every_requirement_is_in_package_xml_for_its_part(package):
    exec_keys = {d.name for d in package.exec_depends}
    test_keys = {d.name for d in package.test_depends}
    pip = {(e.content, e.attributes['part']) for e in package.exports if e.tagname == 'pip'}
    for name, parts in parts_by_name().items():
        robot = bool(parts & set(ROBOT_PARTS))
        if name in ROSDEP_KEYS:
            key = ROSDEP_KEYS[name]
            assert (key in exec_keys) == robot, (name, parts)
            assert robot or key in test_keys, (name, parts)
        else:
            assert {part for pip_name, part in pip if pip_name == name} == parts, (name, parts)


def test_package_xml_names_nothing_setup_py_lacks(package):
    parts = parts_by_name()
    keys = {key: name for name, key in ROSDEP_KEYS.items()}
    python_keys = [d.name for d in package.exec_depends + package.test_depends
                   if d.name.startswith('python3-')]
    assert [key for key in python_keys if keys.get(key) not in parts] == []
    pip = [e.content for e in package.exports if e.tagname == 'pip']
    assert [name for name in pip if name not in parts] == []
