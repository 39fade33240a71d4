#!/usr/bin/env bash
# Stage 1 of the shipped world-32-continuous (and so of world-32), on a GPU: the continuous tokenizer from
# scratch on the default world with one-factor pairs (ada, top-2), for 3928 steps of 256 (the step count the
# top-2 VQ candidate alt-32 of gpu_world_candidates.sh reached in its 7.5-minute budget), and a top-1 VQ
# variant for comparison. Same data and flags as gpu_world_candidates.sh. The later stages run on the CPU:
# analyses/world_tokenizer/reproduce.sh (STAGE1=runs/gpu-twin/alt-32-continuous).
#   PYTHONPATH=.:/tmp/site OUT=$OUT bash analyses/gpu_world_twin.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu2}
R=runs/gpu-twin
STEPS=${STEPS:-3928}
DEVICE=${DEVICE:-cuda}
NTRAIN=${NTRAIN:-80000}
BASE=analyses/world_tokenizer/base_config.json
mkdir -p "$R" "$OUT"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
python3 - <<PY
from probe.tokenizers.train import render_partners, render_world
render_world(256, seed=1_000_003, resolution=32, world={}, cache_dir="runs/cache")
_, factors = render_world(${NTRAIN}, seed=0, resolution=32, world={}, cache_dir="runs/cache")
render_partners(factors, seed=0, resolution=32, world={}, cache_dir="runs/cache")
PY
tok() {
  local name=$1; shift
  timeout "${GUARD:-170}" python3 -m probe train-tokenizer --device "$DEVICE" --threads 1 --batch-size 256 \
    --n-train "$NTRAIN" --steps "$STEPS" --no-resume --out "$R/$name" --config "$BASE" "$@" > "$R/$name.log" 2>&1
  echo "$name exit $?" >> "$R/exits.txt"
}
tok alt-32-continuous --continuous --pairs ada --pair-topk 2 &
tok top1-32 --codebook 256 --pairs ada --pair-topk 1 &
wait
cat "$R/exits.txt"
tar czf "$OUT/results2.tgz" -C "$R" --exclude=last.pt .
ls -la "$OUT"
