"""Benchmark: end-to-end tokenization throughput vs. the bare encoder forward on the same batches.

End to end = ``probe.encode.tokenize_manifest`` from the manifest to a finished store: building
the dataset, rendering / decoding and resizing images (DataLoader), the forward passes, float16
conversion, Arrow chunk writes (fsync + rename) and reopening the store. Bare = ``tok.encode`` on
the very same batches, already rendered and in memory. Engine overhead = end-to-end time over bare
time, minus one. A third mode, "data+fwd", renders each batch with the dataset and encodes it in a
plain loop (no DataLoader, no store): its gap to "bare" is the cost of the data source itself
(world rendering here), and the gap from it to end-to-end is what the engine adds on top.

The two are measured interleaved (bare, e2e, e2e, bare, ...) and repeated, and the median of each is
reported, so that load from other processes on a shared machine affects both alike.

    python analyses/bench_encode.py                       # titok-tiny, 1024 world images, batch 64
    python analyses/bench_encode.py --preset titok-s128 --n 128 --repeats 2
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def bare_forward(tok: torch.nn.Module, batches: list[torch.Tensor]) -> float:
    """Seconds for ``tok.encode`` over ``batches`` (each ``[B, 3, H, W]``)."""
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            tok.encode(b)
    return time.perf_counter() - t0


def data_forward(tok: torch.nn.Module, dataset: torch.utils.data.Dataset, n: int, batch_size: int) -> float:
    """Seconds to fetch (render / decode) each batch from the dataset and encode it, plainly."""
    from probe.data import collate_skip_none

    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, n, batch_size):
            idx = list(range(s, min(s + batch_size, n)))
            items = dataset.__getitems__(idx) if hasattr(dataset, "__getitems__") else [dataset[i] for i in idx]
            tok.encode(collate_skip_none(items).images)
    return time.perf_counter() - t0


def end_to_end(tok: torch.nn.Module, manifest: Path, n: int, batch_size: int, workers: int) -> float:
    """Seconds for a full ``tokenize_manifest`` run of the first ``n`` images into a fresh store."""
    from probe.encode import tokenize_manifest

    with tempfile.TemporaryDirectory(prefix="bench_encode_") as d:
        t0 = time.perf_counter()
        store = tokenize_manifest(manifest, tok, Path(d) / "store", device="cpu", batch_size=batch_size,
                                  num_workers=workers, limit=n, resume=False, progress=False)
        elapsed = time.perf_counter() - t0
        assert len(store) == n
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    import probe
    from probe.data import dataset_from_manifest, load_manifest

    tok = probe.load_tokenizer(args.preset, random_init=True, device="cpu").eval()
    ds = dataset_from_manifest(load_manifest(args.manifest), resolution=tok.image_size)
    n = min(args.n, len(ds))
    images = [ds[i]["image"] for i in range(n)]
    batches = [torch.stack(images[s : s + args.batch_size]) for s in range(0, n, args.batch_size)]
    bare_forward(tok, batches[:1])  # warm-up (allocator, kernels)
    end_to_end(tok, Path(args.manifest), args.batch_size, args.batch_size, 0)  # warm-up (lazy imports)

    times: dict[str, list[float]] = {"bare": [], "data+fwd": [], **{f"e2e w={w}": [] for w in args.workers}}
    for r in range(args.repeats):
        order = list(times) if r % 2 == 0 else list(reversed(times))
        for mode in order:
            if mode == "bare":
                times[mode].append(bare_forward(tok, batches))
            elif mode == "data+fwd":
                fresh = dataset_from_manifest(load_manifest(args.manifest), resolution=tok.image_size)
                times[mode].append(data_forward(tok, fresh, n, args.batch_size))
            else:
                times[mode].append(end_to_end(tok, Path(args.manifest), n, args.batch_size, int(mode.split("=")[1])))
            print(f"  repeat {r}: {mode:<9} {n / times[mode][-1]:8.1f} images/s", flush=True)

    bare = statistics.median(times["bare"])
    print(f"\n{args.preset}, {n} images of {Path(args.manifest).name} at {tok.image_size}px, batch "
          f"{args.batch_size}, cpu, {args.threads} torch thread(s), median of {args.repeats} interleaved repeats")
    print(f"{'mode':<10} {'images/s':>9} {'vs bare':>9}")
    print(f"{'bare':<10} {n / bare:9.1f} {'':>9}")
    for mode in times:
        if mode != "bare":
            t = statistics.median(times[mode])
            print(f"{mode:<10} {n / t:9.1f} {100 * (t / bare - 1):8.1f}%")
    data = statistics.median(times["data+fwd"])
    for mode in times:
        if mode.startswith("e2e"):
            t = statistics.median(times[mode])
            print(f"engine cost beyond rendering + forward ({mode}): {100 * (t / data - 1):.1f}%")


if __name__ == "__main__":
    main()
