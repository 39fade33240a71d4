#!/usr/bin/env bash
# One GPU call (one H200, 16 CPU cores) that trains, side by side and for the same wall-clock budget:
#   - candidates for the shipped world tokenizers (world-32 and its continuous twin) and the compression
#     sweep (issue 4),
#   - the world CLIP (issue 5).
# Every run anneals its schedule within MINUTES (TrainConfig.max_minutes), so the whole script ends on time
# whatever the throughput; each run logs its steps, so the step counts reached are on record.
#
# Usage (repository root; PYTHONPATH must reach `probe` and open_clip):
#   MINUTES=7.5 OUT=runs/gpu bash analyses/gpu_world_candidates.sh
# On the lent device machine this was run as (wheels for open_clip/ftfy/wcwidth carried in .whl/):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   PYTHONPATH=.:/tmp/site MINUTES=7.5 OUT=$OUT bash analyses/gpu_world_candidates.sh
# (One H200: 516.8 s wall; 12 runs at ~9 steps/s each with the GPU at 99% utilisation. Its sweep-* runs are
#  the compression sweep of analyses/world_tokenizer/README.md; world-clip is the shipped CLIP,
#  analyses/world_clip/README.md.)
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-6.5}
OUT=${OUT:-runs/gpu}
R=runs/gpu-candidates
BASE=analyses/world_tokenizer/base_config.json
BIG=analyses/world_tokenizer/big_config.json
NTRAIN=${NTRAIN:-80000}
BATCH=${BATCH:-256}
TOPK=${TOPK:-0}          # pair_topk of the shipped candidates (0: adaptive threshold)
ALT_TOPK=${ALT_TOPK:-2}  # pair_topk of the alternative
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-3}
GUARD=$(python3 -c "print(int(${MINUTES} * 60 + 60))")  # hard stop per run: budget + start-up + final export
mkdir -p "$R" "$OUT"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi.txt" 2>&1 || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# 1. render the shared training set and its one-factor partners once (every run reads the same cache)
python3 - <<EOF
import time
from probe.tokenizers.train import render_partners, render_world
t = time.time()
render_world(256, seed=1_000_003, resolution=32, world={}, cache_dir="runs/cache")
_, factors = render_world(${NTRAIN}, seed=0, resolution=32, world={}, cache_dir="runs/cache")
render_partners(factors, seed=0, resolution=32, world={}, cache_dir="runs/cache")
print(f"rendered in {time.time() - t:.1f} s")
EOF

tok() {  # name, then extra train-tokenizer flags
  local name=$1; shift
  timeout "$GUARD" python3 -m probe train-tokenizer --device "$DEVICE" --threads 1 --batch-size "$BATCH" \
    --n-train "$NTRAIN" --steps 1000000 --max-minutes "$MINUTES" --no-resume --out "$R/$name" "$@" \
    > "$R/$name.log" 2>&1
  echo "$name exit $?" >> "$R/exits.txt"
}

# 2. shipped candidates (one-factor image pairs, Ada-GVAE averaging; each with its continuous twin),
#    the compression sweep (plain reconstruction training, no pairs: does compression alone localize?)
PAIRS="--pairs ada --pair-topk $TOPK"
tok world-32            --config "$BASE" --codebook 256 $PAIRS &
tok world-32-continuous --config "$BASE" --continuous   $PAIRS &
tok big-32              --config "$BIG"  --codebook 256 $PAIRS &
tok big-32-continuous   --config "$BIG"  --continuous   $PAIRS &
tok alt-32              --config "$BASE" --codebook 256 --pairs ada --pair-topk "$ALT_TOPK" &
for nk in 32x16 32x64 32x256 32x1024 16x256; do
  tok "sweep-$nk" --config "$BASE" --tokens "${nk%x*}" --codebook "${nk#*x}" &
done

# 3. the CLIP (the shipped architecture, and one with a 1.5x wider image tower), each fed by loader workers
( timeout "$GUARD" python3 -m probe train-clip --device "$DEVICE" --workers "$WORKERS" --batch-size 512 --lr 1e-3 \
    --steps 1000000 --max-minutes "$MINUTES" --eval-every 500 --out "$R/world-clip" > "$R/world-clip.log" 2>&1;
  echo "world-clip exit $?" >> "$R/exits.txt" ) &
( timeout "$GUARD" python3 -m probe train-clip --device "$DEVICE" --workers "$WORKERS" --batch-size 512 --lr 1e-3 \
    --steps 1000000 --max-minutes "$MINUTES" --eval-every 500 --out "$R/world-clip-w24" \
    --vision-cfg '{"image_size": 32, "layers": [1, 1, 1, 1], "width": 24}' > "$R/world-clip-w24.log" 2>&1;
  echo "world-clip-w24 exit $?" >> "$R/exits.txt" ) &

sleep 60; nvidia-smi > "$OUT/nvidia-smi-busy.txt" 2>&1 || true
wait
cat "$R/exits.txt"

# 4. pack what the runs wrote (final models, configs, logs; a run that did not finish: its checkpoint)
python3 - <<EOF
import tarfile
from pathlib import Path
R = Path("$R")
with tarfile.open("$OUT/results.tar", "w:gz", compresslevel=1) as tar:
    for run in sorted(p for p in R.iterdir() if p.is_dir()):
        names = ["model.json", "model.safetensors", "config.json", "log.jsonl", "history.csv", "evals.csv", "zoo.json"]
        files = [run / n for n in names if (run / n).exists()]
        if not (run / "model.safetensors").exists() and (run / "last.pt").exists():
            files.append(run / "last.pt")
        for f in files:
            tar.add(f, arcname=f"{run.name}/{f.name}")
    for f in sorted(R.glob("*.log")) + [R / "exits.txt"]:
        if f.exists():
            tar.add(f, arcname=f.name)
print("packed", Path("$OUT/results.tar").stat().st_size / 2**20, "MiB")
EOF
# the device tool returns files of at most 16 MiB: split the archive
split -b 15M -d "$OUT/results.tar" "$OUT/results.tar.part-" && rm "$OUT/results.tar"
ls -la "$OUT"
