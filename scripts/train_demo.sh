#!/usr/bin/env bash
# The training demo: IosPSTL training end to end on the built-in synthetic occluded benchmark,
# small enough for a laptop CPU (2-6 minutes on 2 cores after set-up). Every step is a command you can run
# yourself; outputs (data, runs, plots, tables) go to ${IOSPSTL_TRAIN_DEMO_OUT:-train_demo_out}/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
py=${IOSPSTL_VENV:-$here/.venv}/bin/python
out=${IOSPSTL_TRAIN_DEMO_OUT:-$here/train_demo_out}
export MPLBACKEND=Agg
cd "$here"
rm -rf "$out" && mkdir -p "$out"
step() { echo; echo "== $*"; }
start=$(date +%s)
data=$out/data/xsub

step "1. synthetic skeletons with realistic furniture occlusion (NTU layout, 43 NTU-60 classes, 20 sequences each)"
$py -m training.synthesize --out "$out/data" --num-samples 860 --occlusion realistic \
  --benchmarks xsub --max-frames 150 --seed 0
$py -m training.occlusion_stats "$data" --part train --png "$out/occlusion.png" | sed -n '1,16p'

step "2. 50-frame windows (the preprocessing the robot runs)"
$py -m training.windows --data "$data"

step "3. stage 1: OPSTL pre-training on the occluded data (ASM + MATM, small CPU model)"
$py -m training.pretrain --data "$data" --out "$out/stage1" --preset tiny --epochs 4 \
  --hidden-channels 8 --hidden-dim 64 --device cpu

step "4. stage 2: cluster-restricted KNN imputation of the occluded joints"
$py -m training.impute --data "$data" --encoder "$out/stage1/encoder.pt" \
  --out "$out/data/xsub_imputed" --device cpu

step "5. imputation quality: hide visible joints again, impute, MPJPE against the truth"
$py -m training.imputation_quality --data "$data" --encoder "$out/stage1/encoder.pt" \
  --out "$out/quality" --limit 200 --device cpu --no-progress

step "6. OPSTL pre-training again, on the completed data"
$py -m training.pretrain --data "$out/data/xsub_imputed" --out "$out/stage2" --preset tiny \
  --epochs 4 --hidden-channels 8 --hidden-dim 64 --device cpu

step "7. linear evaluation: without imputation (stage 1) and with imputation (IosPSTL)"
$py -m training.evaluate --data "$data" --encoder "$out/stage1/encoder.pt" \
  --out "$out/linear_no_imputation" --epochs 60 --device cpu --no-progress
$py -m training.evaluate --data "$out/data/xsub_imputed" --encoder "$out/stage2/encoder.pt" \
  --out "$out/linear_imputed" --epochs 60 --device cpu --no-progress

step "done in $(( $(date +%s) - start )) s; plots: $out/occlusion.png, $out/*/confusion.png"
