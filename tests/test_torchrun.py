"""Multi-process sharding: 2 processes under torchrun (CPU, gloo) give the 1-process store, and the 1-process
swap tables."""
from __future__ import annotations

from pathlib import Path

from _encode_common import assert_same_store, encode_reference, python, run, runner_args

from probe.encode import SHARD_DIR


def test_two_process_torchrun_store_equals_one_process_store(tmp_path: Path) -> None:
    ref = tmp_path / "one"
    encode_reference(ref)
    out = tmp_path / "two"
    cmd = [python(), "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", *runner_args(out)]
    proc = run(cmd, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count("rows=64") == 2  # every rank returns the merged store
    assert not (out / SHARD_DIR).exists()  # shards were merged and removed
    assert_same_store(ref, out)


def test_two_process_torchrun_swap_equals_one_process(tmp_path: Path) -> None:
    import pandas as pd

    import probe
    from probe.encode import tokenize_manifest
    from probe.pipeline import world_manifest, world_settings

    store = tmp_path / "run" / "store"
    tok = probe.load_tokenizer("world-32", device="cpu")
    tokenize_manifest(world_manifest(64, 0, int(tok.image_size), world_settings("world-32")), tok, store,
                      device="cpu", batch_size=32, num_workers=0, progress=False)
    args = ["-m", "probe", "swap", "--store", str(store), "--attributes",
            "lighting,bg_blur", "--pairs", "6", "--control-pairs", "2", "--no-greedy", "--no-figures", "--format",
            "csv", "--quiet", "--device", "cpu"]
    one = run([python(), *args, "--out", str(tmp_path / "one")], timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run([python(), "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", *args,
               "--out", str(tmp_path / "two")], timeout=300)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    from probe.swap import canonical_order

    for name in ("swaps.csv", "mappings.csv", "validated_map.csv", "pairs.csv"):
        a, b = pd.read_csv(tmp_path / "one" / name), pd.read_csv(tmp_path / "two" / name)
        if name == "swaps.csv":  # the same rows; one process emits them in its own order
            a, b = canonical_order(a), canonical_order(b)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6, obj=name)
    assert len(list((tmp_path / "two" / "shards").glob("rank-*.parquet"))) == 2
