"""analyses/gpu_bench.sh runs end to end in its CPU smoke mode and writes a complete table."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_bench_smoke_writes_every_section(tmp_path: Path) -> None:
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, BUDGET_S="240", OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(ROOT / "analyses" / "gpu_bench.sh"), "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_csv(tmp_path / "gpu_bench.csv")
    assert (tmp_path / "gpu_bench.log").read_text().strip()
    models = table[(table.section == "model") & table.encode_img_s.notna()]
    assert set(models.preset) == {"titok-tiny", "titok-tiny-legacy", "titok-tiny-vae"}
    assert set(models.path) == {"fp32", "bf16"} and set(models.batch) == {1, 2}
    assert (models.encode_img_s > 0).all() and (models.decode_img_s > 0).all()
    fp32 = models[(models.path == "fp32") & (models.preset != "titok-tiny-vae")]
    assert (fp32.token_agreement == 1.0).all()  # fp32 against itself: the agreement is computed, not assumed
    bf16 = models[(models.path == "bf16") & (models.preset != "titok-tiny-vae")]
    assert bf16.token_agreement.between(0.5, 1.0).all()
    engine = table[table.section == "engine"].iloc[0]
    assert engine.images_s > 0 and engine.bare_img_s > 0 and "32 JPEG files" in engine.note
    world = table[table.section == "world-store"].iloc[0]
    assert world.images_s > 0 and "64 rendered world images" in world.note
    swaps = table[table.section == "swap"].set_index("path")
    assert swaps.loc["exhaustive sweep", "images_s"] > 0 and "2 attributes x 32 positions" in swaps.loc["exhaustive sweep", "note"]
    assert swaps.loc["attribution estimate (ig4)", "seconds"] > 0
    assert swaps.loc["attribution-first sweep (k=3)", "images_s"] > 0
    opt = table[table.section == "optimize"].iloc[0]
    assert opt.preset == "titok-tiny" and opt.images_s > 0
