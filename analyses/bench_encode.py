"""Benchmark: end-to-end tokenization throughput vs. the bare encoder forward on the same batches.

Modes, all on the first ``n`` images of a manifest, batch 64, CPU:

- ``bare``: ``tok.encode`` on the very batches the engine forms, already rendered and in memory;
- ``data+fwd``: fetch each batch from the dataset (world rendering / image decoding) and encode it
  in a plain loop; its gap to ``bare`` is the cost of the data source itself;
- ``e2e w=K``: a full :func:`probe.encode.tokenize_manifest` run into a fresh store with K loader
  workers: dataset, DataLoader, forward passes, float16 conversion, Arrow chunk writes (fsync +
  rename), codebook, header and reopening the store.

Engine overhead = e2e time / bare time - 1 (the issue's target: <= 15%); the engine's own cost is
e2e over ``data+fwd``. Each mode is timed by the wall clock and by CPU time (this process plus
its reaped children, i.e. loader workers). On a machine shared with other jobs the wall clock
mostly measures the scheduler, so CPU time is the figure to trust there; with workers on idle
cores the wall clock is what a user sees. Modes are measured interleaved (order reversed on every
repeat) and the median of the repeats is reported, so that load changes affect all alike.

    python analyses/bench_encode.py                       # titok-tiny, 1024 world images
    python analyses/bench_encode.py --preset titok-s128 --n 64 --repeats 2 --workers 0
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    """CPU seconds of this process and of its reaped children (DataLoader workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    w0, c0 = time.perf_counter(), _cpu()
    fn()
    return time.perf_counter() - w0, _cpu() - c0


def bare_forward(tok: torch.nn.Module, batches: list[torch.Tensor]) -> None:
    """``tok.encode`` over ``batches`` (each ``[B, 3, H, W]``)."""
    with torch.inference_mode():
        for b in batches:
            tok.encode(b)


def data_forward(tok: torch.nn.Module, manifest: Path, n: int, batch_size: int) -> None:
    """Build the dataset, then fetch (render / decode) each batch and encode it, plainly."""
    from probe.data import collate_skip_none, dataset_from_manifest, load_manifest

    ds = dataset_from_manifest(load_manifest(manifest), resolution=tok.image_size)
    with torch.inference_mode():
        for s in range(0, n, batch_size):
            idx = list(range(s, min(s + batch_size, n)))
            items = ds.__getitems__(idx) if hasattr(ds, "__getitems__") else [ds[i] for i in idx]
            tok.encode(collate_skip_none(items).images)


def end_to_end(tok: torch.nn.Module, manifest: Path, n: int, batch_size: int, workers: int) -> None:
    """A full ``tokenize_manifest`` run of the first ``n`` images into a fresh store."""
    from probe.encode import tokenize_manifest

    with tempfile.TemporaryDirectory(prefix="bench_encode_") as d:
        store = tokenize_manifest(manifest, tok, Path(d) / "store", device="cpu", batch_size=batch_size,
                                  num_workers=workers, limit=n, resume=False, progress=False)
        assert len(store) == n


def measure(preset: str, manifest: Path, n: int, batch_size: int, workers: list[int], repeats: int,
            log: Callable[[str], None] = print) -> tuple[int, int, dict[str, tuple[float, float]]]:
    """Median (wall, CPU) seconds per mode over ``repeats`` interleaved repeats; returns (n, image size, medians)."""
    import probe
    from probe.data import dataset_from_manifest, load_manifest

    tok = probe.load_tokenizer(preset, random_init=True, device="cpu").eval()
    ds = dataset_from_manifest(load_manifest(manifest), resolution=tok.image_size)
    n = min(n, len(ds))
    images = [ds[i]["image"] for i in range(n)]
    batches = [torch.stack(images[s : s + batch_size]) for s in range(0, n, batch_size)]
    bare_forward(tok, batches[:1])  # warm-up (allocator, kernels)
    end_to_end(tok, manifest, min(n, batch_size), batch_size, 0)  # warm-up (lazy imports)

    runs: dict[str, Callable[[], None]] = {
        "bare": lambda: bare_forward(tok, batches),
        "data+fwd": lambda: data_forward(tok, manifest, n, batch_size),
        **{f"e2e w={w}": (lambda w=w: end_to_end(tok, manifest, n, batch_size, w)) for w in workers},
    }
    wall: dict[str, list[float]] = {m: [] for m in runs}
    cpu: dict[str, list[float]] = {m: [] for m in runs}
    for r in range(repeats):
        for mode in list(runs) if r % 2 == 0 else list(reversed(runs)):
            w, c = timed(runs[mode])
            wall[mode].append(w)
            cpu[mode].append(c)
            log(f"  repeat {r}: {mode:<9} wall {n / w:8.2f} images/s   cpu {n / c:8.2f} images/cpu-s")
    return n, int(tok.image_size), {m: (statistics.median(wall[m]), statistics.median(cpu[m])) for m in runs}


def bench_rows(quick: bool = True) -> list[dict[str, object]]:
    """Rows for analyses/bench.py: images/s per mode and its time against the bare forward (CPU time, the
    steadier figure on a shared machine); quick: 256 images, one repeat, no loader workers."""
    torch.set_num_threads(1)
    n, _, med = measure("titok-tiny", ROOT / "data_manifests" / "world.yaml", 256 if quick else 1024, 64,
                        [0] if quick else [0, 1], 1 if quick else 3, log=lambda s: None)
    bc = med["bare"][1]
    return [{"case": f"titok-tiny {mode}", "throughput": n / c, "unit": "images/cpu-s", "vs_bare": c / bc,
             "device": "cpu"} for mode, (_, c) in med.items()]


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="titok-tiny", help="tokenizer preset, random weights (default: titok-tiny)")
    p.add_argument("--manifest", default=str(ROOT / "data_manifests" / "world.yaml"))
    p.add_argument("--n", type=int, default=1024, help="images per measurement (default: 1024)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1],
                   help="DataLoader worker counts to measure end to end (default: 0 1)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    manifest = Path(args.manifest)
    n, size, med = measure(args.preset, manifest, args.n, args.batch_size, args.workers, args.repeats,
                           log=lambda s: print(s, flush=True))
    print(f"\n{args.preset}, {n} images of {manifest.name} at {size}px, batch {args.batch_size}, "
          f"cpu ({os.cpu_count()} cores), {args.threads} torch thread(s), median of {args.repeats} "
          f"interleaved repeats")
    print(f"{'mode':<10} {'wall img/s':>11} {'vs bare':>8} {'cpu img/s':>10} {'vs bare':>8}")
    bw, bc = med["bare"]
    for mode, (w, c) in med.items():
        rel = "" if mode == "bare" else f"{100 * (w / bw - 1):+7.1f}%"
        relc = "" if mode == "bare" else f"{100 * (c / bc - 1):+7.1f}%"
        print(f"{mode:<10} {n / w:11.2f} {rel:>8} {n / c:10.2f} {relc:>8}")
    dw, dc = med["data+fwd"]
    for mode, (w, c) in med.items():
        if mode.startswith("e2e"):
            print(f"engine cost beyond data+fwd ({mode}): wall {100 * (w / dw - 1):+.1f}%, "
                  f"cpu {100 * (c / dc - 1):+.1f}%")


if __name__ == "__main__":
    main()
