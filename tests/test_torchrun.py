"""Multi-process sharding: 2 processes under torchrun (CPU, gloo) give the 1-process store, and the 1-process
swap tables: discovery sweep, greedy set search and confirmation, each sharded."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _encode_common import assert_same_store, encode_reference, python, run, runner_args

from probe.encode import SHARD_DIR

pytestmark = pytest.mark.slow  # two torchrun launches, ~1 min on 2 cores: run in CI (TOKENPROBE_SLOW=1)


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
    # obj_hue needs a set (its best single position moves about 0.4): the greedy search runs, sharded, too
    args = ["-m", "probe", "swap", "--store", str(store), "--sweep", "--attributes",
            "lighting,obj_hue", "--pairs", "6", "--control-pairs", "2", "--no-figures", "--format",
            "csv", "--quiet", "--device", "cpu"]
    one = run([python(), *args, "--out", str(tmp_path / "one")], timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run([python(), "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", *args,
               "--out", str(tmp_path / "two")], timeout=300)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    from probe.swap.engine import canonical_order

    def read(run, name):
        t = pd.read_csv(tmp_path / run / name, keep_default_na=False, na_values=[""])
        if name == "swaps.csv":  # the same rows; one process emits them in its own order
            return canonical_order(t)
        key = [c for c in ("pair", "attribute", "positions") if c in t.columns]
        return t.sort_values(key, kind="stable").reset_index(drop=True)

    # every position swapped in both (under torchrun the attribution-first mode is not sharded, so `auto` would
    # differ); the same pairs and the same answers, exactly; the same numbers up to float32 rounding (decodes in other
    # batch compositions; effect sizes with small spreads amplify it, so they are not compared)
    pd.testing.assert_frame_equal(read("one", "pairs.csv"), read("two", "pairs.csv"))
    swaps = read("one", "swaps.csv"), read("two", "swaps.csv")
    # a row's transfer is moved / gap: pairs with tiny gaps amplify float32 rounding, so its two parts are compared
    pd.testing.assert_frame_equal(*(t.drop(columns="transfer") for t in swaps), check_exact=False, rtol=1e-3,
                                  atol=1e-4)
    exact = ["attribute", "positions", "verdict", "specificity"]
    for name in ("mappings.csv", "validated_map.csv", "greedy_curves.csv"):
        a, b = read("one", name), read("two", name)
        cols = [c for c in exact if c in a.columns]
        pd.testing.assert_frame_equal(a[cols], b[cols], obj=name)
        np.testing.assert_allclose(a["transfer"], b["transfer"], rtol=1e-3, atol=1e-5)
    assert len(read("one", "greedy_curves.csv")) >= 2  # the search took a step beyond the single position
