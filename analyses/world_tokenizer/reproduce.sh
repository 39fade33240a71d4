#!/usr/bin/env bash
# Reproduce the shipped world tokenizers from scratch: every stage of world-32-continuous (the twin), then
# world-32 from it, then the measurements (README.md). The same chain, with the step count each stage
# reached, is recorded in probe/zoo/world-32*.json under "training_chain".
#
# Stage 1 needs a GPU (bash analyses/gpu_world_twin.sh runs it; set STAGE1 to its run folder, or leave it
# empty to run it here with DEVICE=cuda). Stages 2-8 ran on one CPU thread each under wall-clock budgets
# (--max-minutes), so a faster machine runs more steps: to match the shipped weights' schedules, replace
# --max-minutes M by the recorded --steps (training_chain[i].steps). Runs go under runs/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=analyses/world_tokenizer/base_config.json
PINNED=analyses/world_tokenizer/pinned_config.json
T=runs/world-32-continuous
V=runs/world-32
DEVICE=${DEVICE:-cuda}
STAGE1=${STAGE1:-}
train() { tokenprobe train-tokenizer --steps 1000000 --no-resume "$@"; }

# 1. from scratch, default world, one-factor pairs (ada, top-2); 3928 steps of 256 on one GPU
if [ -z "$STAGE1" ]; then
  STAGE1=$T/1-gpu-ada2
  tokenprobe train-tokenizer --device "$DEVICE" --threads 1 --batch-size 256 --n-train 80000 --steps 3928 \
    --no-resume --config $BASE --continuous --pairs ada --pair-topk 2 --out $STAGE1
fi
# 2. continued on the CPU, 45 min (7497 steps of 64)
train --config $BASE --continuous --pairs ada --pair-topk 2 --init $STAGE1 --lr 5e-4 --warmup-steps 100 \
  --batch-size 64 --n-train 80000 --max-minutes 45 --threads 1 --out $T/2-ada2
# 3. pinned-stripe world, swap top-1; planned for 85 min, stopped at 36 min (3869 steps) and exported from
#    its last.pt before the schedule annealed (timeout stands in for the manual stop)
timeout 36m tokenprobe train-tokenizer --config $PINNED --continuous --pairs swap --pair-topk 1 --init $T/2-ada2 \
  --steps 1000000 --max-minutes 85 --no-resume --out $T/3-pinned-swap1 || true
python - <<'EOF'
from safetensors.torch import save_file
from probe.tokenizers.train import load_trained
m = load_trained("runs/world-32-continuous/3-pinned-swap1", from_checkpoint=True)
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, "runs/world-32-continuous/3-pinned-swap1/model.safetensors")
EOF
# 4. ada top-1, 22 min (2558 steps)
train --config $PINNED --continuous --pairs ada --pair-topk 1 --init $T/3-pinned-swap1 --max-minutes 22 --out $T/4-pinned-ada1
# 5. swap top-1, 500 steps
train --config $PINNED --continuous --pairs swap --pair-topk 1 --init $T/4-pinned-ada1 --warmup-steps 50 --steps 500 \
  --out $T/5-pinned-swap500
# 6. object-weighted loss, 25 min (2823 steps)
train --config $PINNED --continuous --pairs ada --pair-topk 1 --init $T/5-pinned-swap500 --w-object 6 --max-minutes 25 \
  --out $T/6-object
# 7. decoder patch 4 (64 patch queries of 4x4 pixels), 100 min (8082 steps): the shipped world-32-continuous
train --config $PINNED --continuous --dec-patch 4 --pairs ada --pair-topk 1 --init $T/6-object --w-object 6 \
  --max-minutes 100 --out $T/7-dec-patch4
# 8. world-32: the twin's encoder and decoder, 1024 codes seeded by k-means of its features, 100 min (10502 steps)
train --config $PINNED --codebook 1024 --dec-patch 4 --pairs ada --pair-topk 1 --init $T/7-dec-patch4 --init-kmeans \
  --w-object 6 --max-minutes 100 --out $V/kmeans1024

# measure and ship (each localization ~3 min on one thread). ship.py rewrites the zoo JSON from the run's record:
# carry training_chain over, and re-derive declared_semantics from the new localization (README.md, "Results").
python analyses/world_tokenizer/localization.py --model $T/7-dec-patch4 --out $T/loc.csv --all-positions
python analyses/world_tokenizer/localization.py --model $V/kmeans1024 --out $V/loc.csv --all-positions
python analyses/world_tokenizer/ship.py --run $T/7-dec-patch4 --name world-32-continuous --localization $T/loc.csv
python analyses/world_tokenizer/ship.py --run $V/kmeans1024 --name world-32 --localization $V/loc.csv
python analyses/world_tokenizer/shape_fidelity.py --models world-32 world-32-continuous --out $V/shape.csv
python analyses/world_tokenizer/shape_swap.py --models world-32 world-32-continuous --out $V/shape_swap.csv
# figures: README.md, "Reproduce"
