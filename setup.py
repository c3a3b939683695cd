"""ament_python build of iospstl_ros; also a plain ``pip install .``."""

from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'iospstl_ros'


def tree(folder):
    """List ``(install dir, [files])`` pairs for every file below ``folder``."""
    pairs = {}
    for path in sorted(glob(os.path.join(folder, '**', '*'), recursive=True)):
        if os.path.isfile(path) and '__pycache__' not in path:
            target = os.path.join('share', package_name, os.path.dirname(path))
            pairs.setdefault(target, []).append(path)
    return sorted(pairs.items())


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(include=[package_name, package_name + '.*', 'training',
                                    'training.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        *tree('launch'),
        *tree('config'),
        *tree('models'),
    ],
    install_requires=['setuptools'],
    extras_require={
        'test': ['pytest', 'hypothesis>=6'],
        'runtime': ['numpy>=1.24', 'numba>=0.59', 'onnxruntime>=1.17', 'PyYAML>=6',
                    'threadpoolctl>=3'],
        'bag': ['rosbags>=0.10', 'matplotlib>=3.7'],
        'training': ['torch>=2.1,<=2.14.1', 'onnx>=1.15', 'scikit-learn>=1.3', 'matplotlib>=3.7',
                     'tqdm>=4.60'],
    },
    zip_safe=True,
    maintainer='iospstl_ros developers',
    maintainer_email='iospstl-ros@example.org',
    description='Occlusion-robust skeleton action recognition (IosPSTL) for ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'iospstl_node = iospstl_ros.nodes.action_node:main',
            'iospstl_skeleton_adapter = iospstl_ros.nodes.skeleton_adapter:main',
            'iospstl_k4a_adapter = iospstl_ros.nodes.skeleton_adapter:main_k4a',
            'iospstl_bag = iospstl_ros.bag.cli:main',
        ],
    },
)
