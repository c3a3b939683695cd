"""Launch iospstl_node with its parameter file.

The launch arguments are
  model_dir     model directory; empty keeps the parameter file's value (default: the package's
                models/default)
  params_file   parameter file (default: <share>/iospstl_ros/config/iospstl.yaml)
  namespace     namespace of the node and of its relative topics (skeletons, action_labels)
  use_sim_time  use /clock (bag replay): true or false
  autostart     configure and activate at start-up: true or false; empty keeps the parameter
                file's value (true in config/iospstl.yaml). With false the node waits
                unconfigured for a lifecycle manager or ros2 lifecycle set.

Example: ros2 launch iospstl_ros iospstl.launch.py namespace:=camera1 model_dir:=/opt/models/ntu
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'iospstl_ros'
EXECUTABLE = 'iospstl_node'
#: Values of a boolean launch argument (as launch's own conditions read them).
FLAGS = {'true': True, '1': True, 'false': False, '0': False}


def _flag(context, name):
    """Value of the boolean launch argument ``name``; None when it is empty."""
    text = LaunchConfiguration(name).perform(context)
    if not text:
        return None
    if text.lower() not in FLAGS:
        raise ValueError(f"launch argument {name}: expected true or false, got '{text}'")
    return FLAGS[text.lower()]


def _node(context):
    model_dir = LaunchConfiguration('model_dir').perform(context)
    overrides = {'use_sim_time': bool(_flag(context, 'use_sim_time'))}
    if model_dir:
        overrides['model_dir'] = model_dir
    autostart = _flag(context, 'autostart')
    if autostart is not None:
        overrides['autostart'] = autostart
    return [Node(package=PACKAGE, executable=EXECUTABLE, name=EXECUTABLE,
                 namespace=LaunchConfiguration('namespace'), output='screen',
                 parameters=[LaunchConfiguration('params_file'), overrides])]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory(PACKAGE), 'config',
                                  'iospstl.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('model_dir', default_value='',
                              description='Model directory (empty: keep the params file value)'),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='Parameter file of iospstl_node'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of the node and its topics'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='Use /clock (bag replay): true or false'),
        DeclareLaunchArgument('autostart', default_value='',
                              description='Configure and activate at start-up: true or false '
                                          '(empty: keep the params file value)'),
        OpaqueFunction(function=_node),
    ])
