#!/usr/bin/env bash
# The test command: set up (or check) .venv, then run the whole test suite, ament lint included.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
venv=${IOSPSTL_VENV:-$here/.venv}
# Keep DDS traffic on this machine and away from other runs.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( RANDOM % 100 + 100 ))}
export MPLBACKEND=Agg
cd "$here"
echo "test: ROS_DOMAIN_ID=$ROS_DOMAIN_ID"
exec "$venv/bin/python" -m pytest -ra --durations=15 "$@"
