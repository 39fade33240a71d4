"""``tokenprobe tokenize``: encode a manifest's images into a token store (resumable, torchrun-aware)."""
from __future__ import annotations

import argparse

NAME = "tokenize"
HELP = "encode the images of a data manifest into a token store (tokens, features, attributes)"
DESCRIPTION = (
    "Encode every image of a data manifest with a tokenizer and write tokens [N], pre-quantization "
    "features [N, C] (float16) and the attributes into a chunked token store. A killed run started "
    "again with the same arguments resumes after its last complete chunk. Under torchrun "
    "(e.g. `torchrun --nproc_per_node 4 -m probe tokenize ...`) each process encodes a share and "
    "rank 0 merges the shards."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.commands._args import add_resume_flags, non_negative_int, positive_int
    from probe.data.manifest import shipped_manifests

    parser.add_argument("--manifest", required=True,
                        help="data manifest: a YAML file, or the name of a shipped one ("
                             + ", ".join(shipped_manifests()) + ")")
    parser.add_argument("--tokenizer", required=True,
                        help="preset name, shipped model, hub id, local folder or .bin/.safetensors file")
    parser.add_argument("--out", required=True, help="store folder, e.g. runs/NAME")
    parser.add_argument("--random-init", action="store_true",
                        help="build the tokenizer preset with random weights (for trials and tests)")
    parser.add_argument("--device", default=None, help="force a device (default: cuda, then mps, then cpu)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default: 64)")
    parser.add_argument("--workers", default="auto",
                        help="DataLoader workers for decoding/resizing, or 'auto' (default: auto)")
    parser.add_argument("--chunk-size", type=positive_int, default=None,
                        help="images per chunk file, the unit of resumption (default: 1024)")
    parser.add_argument("--limit", type=non_negative_int, default=None, help="encode only the first N images")
    add_resume_flags(parser)
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch intra-op threads on CPU (default: torch's choice; on a machine shared "
                             "with other jobs 1 can be many times faster)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    # checked by probe.cli before any work: --out must be writable
    parser.set_defaults(_writes=lambda a: [a.out])


def run(args: argparse.Namespace) -> int:
    from probe.encode import DEFAULT_CHUNK_SIZE, tokenize_manifest

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    from probe.errors import UsageError

    try:
        workers: int | str = args.workers if args.workers == "auto" else int(args.workers)
    except ValueError:
        raise UsageError(f"--workers must be an integer >= 0 or 'auto', got {args.workers!r}") from None
    store = tokenize_manifest(
        args.manifest,
        args.tokenizer,
        args.out,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=workers,
        chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE,
        limit=args.limit,
        resume=not args.no_resume,
        progress=not args.no_progress,
        tokenizer_kwargs={"random_init": True} if args.random_init else None,
    )
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        size = sum(f.stat().st_size for f in store.path.rglob("*") if f.is_file())
        print(f"token store: {store.path} ({len(store)} images, {store.num_tokens} tokens x "
              f"{store.token_dim} dims, {size / 2**20:.1f} MiB)")
    return 0
