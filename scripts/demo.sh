#!/usr/bin/env bash
# The demo: the robot side of iospstl_ros on a fresh machine. Sets up, generates held-out
# synthetic skeletons with furniture occlusion as a rosbag2 bag, starts iospstl_node with
# models/default over real DDS, replays the bag into it at the recorded 30 Hz, and prints the
# accuracy and latency (plots and a JSON summary in ${IOSPSTL_DEMO_OUT:-demo_out}/).
# About 4-6 minutes after set-up on 2 CPU cores. IOSPSTL_DEMO_SEQUENCES changes the bag size.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
venv=${IOSPSTL_VENV:-$here/.venv}
out=${IOSPSTL_DEMO_OUT:-$here/demo_out}
sequences=${IOSPSTL_DEMO_SEQUENCES:-40}
# Keep DDS traffic on this machine, in a domain of its own.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( RANDOM % 100 + 100 ))}
export MPLBACKEND=Agg
cd "$here"
rm -rf "$out" && mkdir -p "$out"
step() { echo; echo "== $*"; }
start=$(date +%s)

step "1. held-out synthetic skeletons: the validation subjects of the default model's data set"
# The first 800 of the default model's 3,440 sequences (same seed: a sequence depends only on the
# seed and its index; models/README.md); its 'val' part holds the subjects the model never saw.
"$venv/bin/python" -m training.synthesize --out "$out/data" --num-samples 800 --seed 0 \
  --occlusion realistic --benchmarks xsub --max-frames 150

step "2. a rosbag2 bag of $sequences held-out sequences: skeletons at 30 Hz + ground truth"
"$venv/bin/iospstl_bag" convert --dataset "$out/data/xsub" --part val --limit "$sequences" \
  --out "$out/heldout_bag"

step "3. start iospstl_node (models/default), replay the bag into it over DDS, score the labels"
# A sequence is scored by its last label (the window that saw most of the action); every
# window's label is scored too. --compare-offline replays the bag again without DDS.
"$venv/bin/iospstl_bag" eval "$out/heldout_bag" --live --start-node --model models/default \
  --params-file config/iospstl.yaml --sequence-rule last --compare-offline --out "$out/eval"

step "done in $(( $(date +%s) - start )) s; plots: $out/eval/*.png, summary: $out/eval/summary.json"
