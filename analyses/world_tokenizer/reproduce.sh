#!/usr/bin/env bash
# SESSION 6 (world-32 shipped now; the twin is still session 5's): from the session-5 twin
#   tokenprobe train-tokenizer --config analyses/world_tokenizer/pinned_config.json --codebook 1024 --dec-patch 4 --pairs ada \
#       --pair-topk 1 --init world-32-continuous --init-kmeans --w-object 6 --steps 1000000 --max-minutes 100 --no-resume --out runs/s6/tk1024
#   python analyses/world_tokenizer/localization.py --model runs/s6/tk1024 --out runs/s6/loc_tk1024.csv --all-positions
#   python analyses/world_tokenizer/ship.py --run runs/s6/tk1024 --name world-32 --localization runs/s6/loc_tk1024.csv
# Shape measurements, figures and the runs not shipped: README.md, "Session 6".
#
# SESSION 5 (world-32 replaced in session 6; the twin is shipped now): from the session-4 models (--init world-32 / world-32-continuous at 526f849)
#   tokenprobe train-tokenizer --config analyses/world_tokenizer/pinned_config.json --codebook 1024 --dec-patch 4 --pairs ada \
#       --pair-topk 1 --init world-32 --w-object 6 --steps 1000000 --max-minutes 100 --no-resume --out runs/s5/dp4
#   python analyses/world_tokenizer/localization.py --model runs/s5/dp4 --out runs/s5/loc_dp4.csv --all-positions
#   python analyses/world_tokenizer/ship.py --run runs/s5/dp4 --name world-32 --localization runs/s5/loc_dp4.csv
#   tokenprobe train-tokenizer --config analyses/world_tokenizer/pinned_config.json --continuous --dec-patch 4 --pairs ada \
#       --pair-topk 1 --init world-32-continuous --w-object 6 --steps 1000000 --max-minutes 100 --no-resume --out runs/s5/cont-dp4
#   python analyses/world_tokenizer/localization.py --model runs/s5/cont-dp4 --out runs/s5/loc_cont-dp4.csv --all-positions
#   python analyses/world_tokenizer/ship.py --run runs/s5/cont-dp4 --name world-32-continuous --localization runs/s5/loc_cont-dp4.csv
# Shape measurements, figures and the runs not shipped: README.md, "Session 5".
#
# SESSION 4 (both replaced in session 5): from the session-3 models (--init world-32 / world-32-continuous at 3e3690f)
#   tokenprobe train-tokenizer --config analyses/world_tokenizer/pinned_config.json --codebook 1024 --pairs ada --pair-topk 1 \
#       --init world-32 --w-object 6 --steps 1000000 --max-minutes 35 --no-resume --out runs/s4/k1024obj6
#   python analyses/world_tokenizer/localization.py --model runs/s4/k1024obj6 --out runs/s4/loc_k1024obj6.csv --all-positions
#   python analyses/world_tokenizer/ship.py --run runs/s4/k1024obj6 --name world-32 --localization runs/s4/loc_k1024obj6.csv
#   tokenprobe train-tokenizer --config analyses/world_tokenizer/pinned_config.json --continuous --pairs ada --pair-topk 1 \
#       --init world-32-continuous --w-object 6 --steps 1000000 --max-minutes 25 --no-resume --out runs/s4/cont-obj6
#   python analyses/world_tokenizer/localization.py --model runs/s4/cont-obj6 --out runs/s4/loc_cont-obj6.csv --all-positions
#   python analyses/world_tokenizer/ship.py --run runs/s4/cont-obj6 --name world-32-continuous --localization runs/s4/loc_cont-obj6.csv
# Shape measurements, figures and the runs not shipped: README.md, "Session 4".
#
# SESSION 3 (both replaced in session 4; CPU, ~95 min for world-32): from the session-2 world-32 (--init world-32 at e90f0fc)
#   tokenprobe train-tokenizer --config analyses/world_tokenizer/pinned_config.json --pairs ada --pair-topk 1 \
#       --init world-32 --steps 1000000 --max-minutes 85 --no-resume --out runs/s3/vq-ada1
#   tokenprobe train-tokenizer --config analyses/world_tokenizer/pinned_config.json --pairs swap --pair-topk 1 \
#       --init runs/s3/vq-ada1 --warmup-steps 50 --steps 500 --no-resume --out runs/s3/vq-ada1-swap500
#   python analyses/world_tokenizer/localization.py --model runs/s3/vq-ada1-swap500 --out runs/s3/loc_vq-ada1-swap500.csv --all-positions
#   python analyses/world_tokenizer/ship.py --run runs/s3/vq-ada1-swap500 --name world-32 --localization runs/s3/loc_vq-ada1-swap500.csv
# The twin's stages and every figure command: README.md, "Session 3".
#
# SESSION 2 (replaced in session 3): the GPU sessions, then the measurements on the CPU
#   bash analyses/gpu_session.sh      # on a GPU machine: candidates + compression sweep + CLIP (see its header)
#   bash analyses/gpu_session2.sh     # on a GPU machine: the continuous twin of the top-2 candidate
#   for m in <each run folder>; do python analyses/world_tokenizer/localization.py --model $m --out $m.loc.csv --all-positions; done
#   python analyses/world_tokenizer/sweep.py plot --root <folder with n32_k16/ ... holding model.json + localization.*> \
#       --configs 32x16 32x64 32x256 32x1024 16x256
#   python analyses/world_tokenizer/ship.py --run runs/gpu_session/alt-32 --name world-32 --localization <its loc.csv>
#   python analyses/world_tokenizer/ship.py --run runs/gpu_session2/alt-32-continuous --name world-32-continuous --localization <its loc.csv>
# See README.md, "Session 2".
#
# SESSION 1 (CPU only; replaced): the commands below.
# Reproduce the shipped world tokenizers, the compression sweep and their measurements (issue 4).
# Wall times are those of the 2-core shared CPU machine they were made on (see README.md); every run
# uses one torch thread. Runs are written under runs/world_tokenizer/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=analyses/world_tokenizer/base_config.json
R=runs/world_tokenizer

# 1. the shipped pair: same config and 75-minute wall-clock budget (the schedule anneals within it),
#    run side by side; world-32 trains its first 25% without the code lookup, then k-means-initialises
#    the codebook (vq_warmup in base_config.json)
tokenprobe train-tokenizer --config $BASE --codebook 256 --steps 100000 --max-minutes 75 --out $R/world-32 &
tokenprobe train-tokenizer --config $BASE --continuous --steps 100000 --max-minutes 75 --out $R/world-32-continuous &

# 2. the compression sweep: same architecture, 600 steps each, two chains side by side
python analyses/world_tokenizer/sweep.py train --configs 32x16 32x256 16x64 --steps 600 &
python analyses/world_tokenizer/sweep.py train --configs 32x1024 32x64 16x256 --steps 600 &
wait

# 3. measurements: held-out PSNR + single-position swap localization (fresh world seed 2000003)
CONFIGS="32x16 32x64 32x256 32x1024 16x64 16x256"
python analyses/world_tokenizer/sweep.py measure --configs $CONFIGS
python analyses/world_tokenizer/sweep.py plot --configs $CONFIGS   # figures/compression_sweep.{csv,png,svg}
for m in world-32 world-32-continuous; do
  python analyses/world_tokenizer/localization.py --model $R/$m --out $R/loc_$m.csv
  python analyses/world_tokenizer/grid.py --model $R/$m --out $R/grid_$m.png
  python analyses/world_tokenizer/ship.py --run $R/$m --name $m --localization $R/loc_$m.csv
done
