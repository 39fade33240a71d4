#!/usr/bin/env bash
# sprites-32 and sprites-64 on one GPU, side by side: the recipe of analyses/sprites/train_config.json
# (reconstruction alone) at batch 256 for a step budget, instead of the CPU runs' wall-clock budget. The
# training images are rendered once on the CPU first (runs/cache). Then, on the CPU:
#   SKIP_TRAINING=1 bash analyses/sprites/reproduce.sh   (ship, measure, run the pipeline, ship with metrics)
#   STEPS=8000 bash analyses/sprites/gpu_train.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-8000}
DEVICE=${DEVICE:-cuda}
CFG=analyses/sprites/train_config.json
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
python3 - <<PY
from probe.training.tokenizer import manifest_images
manifest_images("sprites", 40000, 1, 32, "runs/cache")
manifest_images("sprites", 256, 1_000_003, 32, "runs/cache")
PY
python3 -m probe train-tokenizer --config $CFG --device "$DEVICE" --batch-size 256 --steps "$STEPS" --no-resume \
  --out runs/sprites-32/main > runs/sprites-32.log 2>&1 &
python3 -m probe train-tokenizer --config $CFG --tokens 64 --device "$DEVICE" --batch-size 256 --steps "$STEPS" \
  --no-resume --out runs/sprites-64/main > runs/sprites-64.log 2>&1 &
wait
