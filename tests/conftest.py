"""Test-wide settings. Offline flags are set before anything imports huggingface_hub."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402  (after the offline flags)

#: tests marked ``slow`` (every README command, torchrun launches, the published-size presets, a small discovery
#: benchmark) run where this is set, as .ci/run does, or under CI; elsewhere they are skipped with this reason
RUN_SLOW = bool(os.environ.get("TOKENPROBE_SLOW") or os.environ.get("CI"))


def pytest_collection_modifyitems(config, items):
    if RUN_SLOW:
        return
    skip = pytest.mark.skip(reason="slow: runs in CI; TOKENPROBE_SLOW=1 runs it here")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    """A small world-32 token store (64 images of the demo's world), one per test module that asks for it."""
    import probe
    from probe.encode import tokenize_manifest
    from probe.worlds.attribute import default_manifest

    tok = probe.load_tokenizer("world-32")
    manifest = default_manifest("world-32", size=64, seed=0, resolution=int(tok.image_size))
    out = tmp_path_factory.mktemp("run") / "store"
    tokenize_manifest(manifest, tok, out, batch_size=32, num_workers=0, progress=False)
    return out
