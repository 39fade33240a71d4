"""Multi-process sharding: 2 processes under torchrun (CPU, gloo) give the 1-process store."""
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
