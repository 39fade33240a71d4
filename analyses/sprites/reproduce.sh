#!/usr/bin/env bash
# The sprites study from scratch: train sprites-32 and sprites-64 (reconstruction alone), measure their
# reconstructions, run the pipeline on each, ship both into probe/zoo/. One CPU thread per job.
# Training runs under wall-clock budgets; to repeat a shipped model exactly, replace --max-minutes by the
# --steps its zoo JSON records (training_chain).
set -euo pipefail
export OMP_NUM_THREADS=1
CFG=analyses/sprites/train_config.json
if [[ "${SKIP_TRAINING:-0}" != 1 ]]; then
  tokenprobe train-tokenizer --config $CFG --steps 1000000 --max-minutes 105 --out runs/sprites-32/main &
  tokenprobe train-tokenizer --config $CFG --tokens 64 --steps 1000000 --max-minutes 105 --out runs/sprites-64/main &
  wait
fi
for N in 32 64; do
  # ship once without swap numbers, so that `tokenprobe run` can load the model by its zoo name
  python analyses/sprites/ship.py --run runs/sprites-$N/main --name sprites-$N
  python analyses/sprites/fidelity.py --model sprites-$N --images 1000 --pairs 200 --out runs/sprites-$N/fidelity.csv \
    --grid figures/sprites${N}_reconstructions.png
done
tokenprobe run analyses/sprites.yaml &
tokenprobe run analyses/sprites.yaml --set tokenizer=sprites-64 --set out=runs/sprites-64-run &
wait
python analyses/sprites/ship.py --run runs/sprites-32/main --name sprites-32 --fidelity runs/sprites-32/fidelity.json \
  --swap runs/sprites/swap/validated_map.csv --notes analyses/sprites/sprites-32.notes.json
python analyses/sprites/ship.py --run runs/sprites-64/main --name sprites-64 --fidelity runs/sprites-64/fidelity.json \
  --swap runs/sprites-64-run/swap/validated_map.csv --notes analyses/sprites/sprites-64.notes.json
python analyses/sprites/table.py --runs runs/sprites runs/sprites-64-run --models sprites-32 sprites-64 \
  --fidelity runs/sprites-32/fidelity.csv runs/sprites-64/fidelity.csv --out figures/sprites_semantics.csv
