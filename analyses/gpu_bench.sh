#!/usr/bin/env bash
# TiTok on one GPU in one go (<= 8 minutes on one H200): writes $OUT/gpu_bench.csv and $OUT/gpu_bench.log.
#
#   1. models: TiTok-L-32, B-64, S-128 and the BL-64 VAE with random weights; encode and decode
#      images/s at batch 1, 64, 256 on the fp32 path (TF32 off), bf16 autocast, and bf16 +
#      torch.compile (compiled cells come last: they cost compile time); peak GPU memory per cell;
#      each path's token agreement with fp32 on the same images;
#   2. engine: probe.encode.tokenize_manifest end to end on a folder of JPEGs it writes first
#      (DataLoader workers decode, pinned memory, non-blocking copies, bf16 autocast), against the
#      bare model at the same batch; mean GPU utilisation sampled during the run;
#   3. the world-32 store: tokenize_manifest of the synthetic world (data_manifests/world.yaml)
#      with the shipped world-32 tokenizer;
#   4. swaps on world-32 (4000 held-out images, every attribute with a default measurer, 256 pairs): the
#      exhaustive single-position sweep with its controls (decoded images/s, peak memory), the attribution
#      estimate of the same cells (integrated gradients, 4 steps) and the attribution-first sweep (the estimate
#      ranks, real swaps with controls test the top 3, more where none is confirmed);
#   5. the optimization loop (probe.optimize.loop.optimize, 100 steps, bf16 autocast) on TiTok-L-32 with
#      random weights at batch 1, 16, 64: image-steps/s and peak memory.
# Every row is appended to the CSV as soon as it is measured, so a run cut short keeps what it had;
# each section checks the time left (BUDGET_S seconds from the start) and marks what it skips.
#
# Usage (repository root):
#   OUT=runs/gpu_bench bash analyses/gpu_bench.sh           # GPU (cuda)
#   OUT=/tmp/gb bash analyses/gpu_bench.sh --smoke          # CPU, tiny sizes, < 1 minute
# On the lent device machine (nothing to install: its image has torch, pillow, pyarrow, pandas,
# pyyaml; wheels carried in .whl/ are installed first if there are any):
#   run(command="OUT=$OUT bash analyses/gpu_bench.sh", timeout_s=540)
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
OUT=${OUT:-runs/gpu_bench}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
: > "$OUT/gpu_bench.log"
exec > >(tee -a "$OUT/gpu_bench.log") 2>&1
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1
if [[ $SMOKE == 1 ]]; then
  export GB_SMOKE=1 GB_BUDGET_S=${BUDGET_S:-45} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
  export GB_SMOKE=0 GB_BUDGET_S=${BUDGET_S:-450}
fi
export GB_OUT="$OUT" GB_START=$(date +%s)

if ! $PY -c "import probe.encode, probe.tokenizers, PIL, pyarrow, yaml" 2>/dev/null; then
  if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
  fi
  $PY -c "import probe.encode, probe.tokenizers, PIL, pyarrow, yaml" || { echo "gpu_bench: missing packages (above)"; exit 1; }
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv

$PY - <<'EOF'
"""Sections 1-3 (see the header of analyses/gpu_bench.sh)."""
import csv, os, statistics, tempfile, threading, time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import probe
from probe.tokenizers import PRESETS, build_tokenizer

SMOKE = os.environ["GB_SMOKE"] == "1"
OUT = Path(os.environ["GB_OUT"])
DEADLINE = int(os.environ["GB_START"]) + float(os.environ["GB_BUDGET_S"])
DEV = torch.device("cpu" if SMOKE or not torch.cuda.is_available() else "cuda")
CUDA = DEV.type == "cuda"
torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32; bf16 is the fast path
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.benchmark = True
print(f"device {DEV} ({torch.cuda.get_device_name() if CUDA else 'cpu'}), torch {torch.__version__}, smoke {SMOKE}, "
      f"budget {os.environ['GB_BUDGET_S']} s", flush=True)

if SMOKE:
    VAE_TINY = replace(PRESETS["titok-tiny"].config, quantize_mode="vae", codebook_size=0, use_l2_norm=False)
    MODELS = {"titok-tiny": "titok-tiny", "titok-tiny-legacy": "titok-tiny-legacy", "titok-tiny-vae": VAE_TINY}
    BATCHES, PATHS, WARMUP, REPEATS = [1, 2], ["fp32", "bf16"], 1, 2
    N_JPEG, JPEG_BATCH, WORKERS, N_WORLD, ENGINE_MODEL = 32, 8, 2, 64, "titok-tiny"
    N_SWAP_IMAGES, SWAP_PAIRS, SWAP_BATCH, OPT_BATCHES, OPT_ITERS = 300, 4, 64, [2], 3
    SWAP_ATTRS = ["lighting", "bg_hue"]  # one analytic, one oracle measurer
else:
    MODELS = {n: n for n in ["titok-l32", "titok-b64", "titok-s128", "titok-bl64-vae"]}
    BATCHES, PATHS, WARMUP, REPEATS = [1, 64, 256], ["fp32", "bf16"], 2, 5
    N_JPEG, JPEG_BATCH, WORKERS, N_WORLD, ENGINE_MODEL = 16384, 256, 14, 20000, "titok-l32"
    N_SWAP_IMAGES, SWAP_PAIRS, SWAP_BATCH, OPT_BATCHES, OPT_ITERS = 4000, 256, 4096, [1, 16, 64], 100
    SWAP_ATTRS = None  # every attribute with a default measurer
CSV = OUT / "gpu_bench.csv"
FIELDS = ["section", "preset", "path", "batch", "encode_img_s", "decode_img_s", "peak_mem_gib",
          "token_agreement", "images_s", "bare_img_s", "vs_bare", "gpu_util_pct", "seconds", "note"]
with CSV.open("w", newline="") as f:
    csv.DictWriter(f, FIELDS).writeheader()


def emit(**row):
    with CSV.open("a", newline="") as f:
        csv.DictWriter(f, FIELDS).writerow(row)
    print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)


def left() -> float:
    return DEADLINE - time.time()


def sync():
    if CUDA:
        torch.cuda.synchronize()


def timed(fn, warmup=WARMUP, repeats=REPEATS) -> float:
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def configure(tok, path):
    tok.configure_inference(precision="bf16" if "bf16" in path else "fp32", compile="compile" in path)


# ---- 1. models ---------------------------------------------------------------------------------
bare = {}  # (preset, batch) -> best encode images/s, for the engine comparison
models = {}


def bench_cell(name, tok, path, b, x, ref_idx):
    configure(tok, path)
    if CUDA:
        torch.cuda.reset_peak_memory_stats()
    enc = tok.encode(x)
    if tok.is_discrete:
        agree = round(float((enc.indices == ref_idx).float().mean()), 4) if ref_idx is not None else 1.0
        dec = lambda: tok.decode_indices(ref_idx if ref_idx is not None else enc.indices)
    else:
        agree = float("nan")
        lat = enc.quantized

        def dec():
            with torch.inference_mode():
                return tok.decode(lat)
    te = timed(lambda: tok.encode(x))
    td = timed(dec)
    peak = torch.cuda.max_memory_allocated() / 2**30 if CUDA else float("nan")
    bare[(name, b)] = max(bare.get((name, b), 0.0), b / te)
    emit(section="model", preset=name, path=path, batch=b, encode_img_s=round(b / te, 2),
         decode_img_s=round(b / td, 2), peak_mem_gib=round(peak, 2), token_agreement=agree)
    return enc


def model_section(paths, batches):
    for name, spec in MODELS.items():
        tok = models.get(name) or build_tokenizer(spec, seed=0, device=DEV)
        models[name] = tok
        gen = torch.Generator().manual_seed(0)
        for b in batches:
            x = torch.rand(b, 3, tok.image_size, tok.image_size, generator=gen).to(DEV)
            configure(tok, "fp32")
            ref_idx = tok.encode(x).indices
            for path in paths:
                if left() < (5 if SMOKE else 20):
                    emit(section="model", preset=name, path=path, batch=b, note="skipped: time budget")
                    continue
                try:
                    bench_cell(name, tok, path, b, x, ref_idx)
                except torch.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    emit(section="model", preset=name, path=path, batch=b, note="out of memory")
            del x
        configure(tok, "fp32")


t0 = time.time()
model_section(PATHS, BATCHES)
print(f"models: {time.time() - t0:.1f} s", flush=True)


# ---- 2. the engine on JPEG files -------------------------------------------------------------------
class UtilSampler:
    """Mean GPU utilisation (NVML through torch.cuda.utilization) sampled every 0.2 s."""

    def __init__(self):
        self.samples, self.stop = [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                self.samples.append(torch.cuda.utilization())
            except Exception:  # no NVML: no figure
                return
            time.sleep(0.2)

    def __enter__(self):
        if CUDA:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()

    @property
    def mean(self):
        return round(float(np.mean(self.samples)), 1) if self.samples else float("nan")


def write_jpegs(root: Path, n: int, size: int) -> None:
    """Smooth random images (low-resolution noise, upsampled) as JPEG files, in parallel."""
    from concurrent.futures import ProcessPoolExecutor
    root.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as ex:
        list(ex.map(_jpeg, [(root, i, size) for i in range(n)], chunksize=64))


def _jpeg(args):
    from PIL import Image
    root, i, size = args
    rng = np.random.default_rng(i)
    small = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    Image.fromarray(small).resize((size + 32, size + 32), Image.BICUBIC).save(root / f"{i:06d}.jpg", quality=90)


def engine_section():
    from probe.encode import tokenize_manifest
    if left() < (10 if SMOKE else 60):
        emit(section="engine", preset=ENGINE_MODEL, note="skipped: time budget")
        return
    tok = models.get(ENGINE_MODEL) or build_tokenizer(ENGINE_MODEL, seed=0, device=DEV)
    tmp = Path(tempfile.mkdtemp(prefix="gpu_bench_"))
    t = time.time()
    write_jpegs(tmp / "jpeg", N_JPEG, tok.image_size)
    print(f"wrote {N_JPEG} JPEGs in {time.time() - t:.1f} s", flush=True)
    manifest = tmp / "jpeg.yaml"
    manifest.write_text(f"name: jpeg-bench\nsource: {{type: folder, root: {tmp / 'jpeg'}}}\n")
    # the bare model at the engine's batch, bf16 autocast as the engine runs it
    x = torch.rand(JPEG_BATCH, 3, tok.image_size, tok.image_size).to(DEV)
    with torch.autocast(DEV.type, dtype=torch.bfloat16, enabled=CUDA):
        tb = timed(lambda: tok.encode(x), warmup=1, repeats=3)
    bare_rate = JPEG_BATCH / tb
    limit = N_JPEG
    for workers in [WORKERS]:
        with UtilSampler() as util:
            t = time.perf_counter()
            store = tokenize_manifest(manifest, tok, tmp / f"store-w{workers}", device=DEV, batch_size=JPEG_BATCH,
                                      num_workers=workers, limit=limit, resume=False, progress=False)
            sync()
            dt = time.perf_counter() - t
        assert len(store) == limit
        rate = limit / dt
        emit(section="engine", preset=ENGINE_MODEL, path="bf16 autocast (engine)", batch=JPEG_BATCH,
             images_s=round(rate, 1), bare_img_s=round(bare_rate, 1), vs_bare=round(rate / bare_rate, 3),
             gpu_util_pct=util.mean, seconds=round(dt, 1), note=f"{limit} JPEG files, {workers} workers")


engine_section()


# ---- 3. the world-32 store -------------------------------------------------------------------------
def world_section():
    from probe.encode import tokenize_manifest
    if left() < (5 if SMOKE else 40):
        emit(section="world-store", preset="world-32", note="skipped: time budget")
        return
    with tempfile.TemporaryDirectory(prefix="gpu_bench_world_") as d:
        with UtilSampler() as util:
            t = time.perf_counter()
            store = tokenize_manifest("data_manifests/world.yaml", "world-32", Path(d) / "store", device=DEV,
                                      batch_size=1024 if CUDA else 32, num_workers=WORKERS, limit=N_WORLD,
                                      resume=False, progress=False)
            dt = time.perf_counter() - t
        emit(section="world-store", preset="world-32", path="engine", batch=1024 if CUDA else 32,
             images_s=round(len(store) / dt, 1), gpu_util_pct=util.mean, seconds=round(dt, 1),
             note=f"{len(store)} rendered world images")


world_section()

# ---- 4. swaps on world-32: the exhaustive sweep, the attribution estimate, the attribution-first sweep ------
def world_swap_data(n):
    """world-32 and ``SwapData`` of ``n`` held-out world images encoded on DEV (with object masks)."""
    from probe.data.world import FACTORS, WorldConfig, sample
    from probe.measure.world import load_world_tokenizer
    from probe.swap import SwapData
    from probe.tokenizers.base import encode_batched
    tok, world = load_world_tokenizer("world-32", device=DEV)
    images, df, masks = sample(n, seed=2_000_003, resolution=int(tok.image_size), config=WorldConfig.from_dict(world),
                               return_masks=True)
    q = encode_batched(tok, images.to(DEV), batch=1024).quantized.float().to(DEV)
    kinds = {a: ("categorical" if a == "shape" else "continuous") for a in FACTORS}
    circular = tuple(a for a in FACTORS if FACTORS[a].circular)
    return tok, SwapData(q, df.reset_index(drop=True), kinds, circular, masks.to(DEV))


def world_measurers():
    from probe import worlds
    from probe.measure import get_measurer
    specs = worlds.default_measurers("attribute")
    return {a: get_measurer(spec, **({"device": DEV} if spec.startswith("oracle:") else {})) for a, spec in specs.items()}


def swap_section():
    if left() < (10 if SMOKE else 90):
        emit(section="swap", preset="world-32", note="skipped: time budget")
        return
    from probe.swap import SwapConfig, sweep
    from probe.swap.attribution import AttributionConfig, attribution_first_sweep, attribution_sweep
    tok, data = world_swap_data(N_SWAP_IMAGES)
    meas = world_measurers()
    attrs = [a for a in meas if a in data.attributes.columns and (SWAP_ATTRS is None or a in SWAP_ATTRS)]
    meas = {a: meas[a] for a in attrs}
    cfg = SwapConfig(pairs=SWAP_PAIRS, control_pairs=min(64, SWAP_PAIRS), batch=SWAP_BATCH)
    what = f"{len(attrs)} attributes x 32 positions, {SWAP_PAIRS} pairs"
    runs = [("exhaustive sweep", lambda: sweep(tok, data, meas, attributes=attrs, config=cfg, progress=False)),
            ("attribution estimate (ig4)", lambda: attribution_sweep(
                tok, data, meas, attributes=attrs, swap_config=cfg, config=AttributionConfig(steps=4, batch=SWAP_BATCH))),
            ("attribution-first sweep (k=3)", lambda: attribution_first_sweep(
                tok, data, meas, attributes=attrs, config=cfg, k=3,
                attribution=AttributionConfig(steps=4, batch=SWAP_BATCH))[0])]
    for name, fn in runs:
        if left() < (5 if SMOKE else 40):
            emit(section="swap", preset="world-32", path=name, note="skipped: time budget")
            continue
        if CUDA:
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        res = fn()
        sync()
        dt = time.perf_counter() - t
        peak = torch.cuda.max_memory_allocated() / 2**30 if CUDA else float("nan")
        decoded = int(res.table.attrs.get("decoded", 0))
        emit(section="swap", preset="world-32", path=name, batch=SWAP_BATCH,
             images_s=round(decoded / dt, 1) if decoded else "", peak_mem_gib=round(peak, 2), seconds=round(dt, 1),
             note=f"{what}" + (f"; {decoded} decodes" if decoded else f"; {len(res.table)} estimated cells"))


swap_section()


# ---- 5. the optimization loop ---------------------------------------------------------------------------
def optimize_section():
    from probe.measure.analytic import mean_luminance
    from probe.optimize.loop import OptimizeConfig, optimize
    name = "titok-tiny" if SMOKE else "titok-l32"
    tok = models.get(name) or build_tokenizer(name, seed=0, device=DEV)
    configure(tok, "fp32")
    for b in OPT_BATCHES:
        if left() < (5 if SMOKE else 45):
            emit(section="optimize", preset=name, batch=b, note="skipped: time budget")
            continue
        x = torch.rand(b, 3, tok.image_size, tok.image_size, generator=torch.Generator().manual_seed(0)).to(DEV)
        with torch.no_grad():
            seed = tok.encode(x).features.float()
        cfg = OptimizeConfig(iterations=OPT_ITERS, amp=True, progress=False)
        target = lambda img: (mean_luminance(img.float()) - 0.8) ** 2  # brighten every image: a cheap objective
        if CUDA:
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        optimize(tok, target, seed, config=cfg)
        sync()
        dt = time.perf_counter() - t
        peak = torch.cuda.max_memory_allocated() / 2**30 if CUDA else float("nan")
        emit(section="optimize", preset=name, path="bf16 autocast" if CUDA else "fp32", batch=b,
             images_s=round(b * OPT_ITERS / dt, 1), peak_mem_gib=round(peak, 2), seconds=round(dt, 1),
             note=f"{OPT_ITERS} steps of optimize(); images_s = image-steps per second")


optimize_section()

# ---- 1b. compiled cells, with what time is left ------------------------------------------------------
if SMOKE:
    emit(section="model", path="bf16+compile", note="skipped in --smoke (compile time)")
else:
    model_section(["bf16+compile"], [b for b in BATCHES if b > 1])
print(f"done in {time.time() - int(os.environ['GB_START']):.1f} s; table: {CSV}", flush=True)
EOF
rc=$?
echo "gpu_bench exit $rc"
exit $rc
