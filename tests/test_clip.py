"""The world CLIP: captions, open_clip compatibility, the shipped model, the trainer."""
from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from torchvision.transforms.functional import to_pil_image

from probe import zoo
from probe.clip import captions, colour_index, export_open_clip, zero_shot_eval
from probe.clip.captions import WORDS, ZERO_SHOT_TASKS, word_class
from probe.clip.model import dense_state_dict, sparse_state_dict
from probe.data.world import sample
from probe.training.clip import ClipTrainConfig, train_clip

HELDOUT_SEED = 424242  # neither the training (0) nor the evaluation seed of the shipped run


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return zoo.load("world-clip", device="cpu")


@pytest.fixture(scope="module")
def heldout():
    return sample(400, seed=HELDOUT_SEED, resolution=32)


def test_colour_names_and_word_rules():
    assert [int(i) for i in colour_index([0.0, 0.04, 0.97, 1 / 6, 1 / 3, 0.5, 2 / 3, 5 / 6])] == [0, 0, 0, 1, 2, 3, 4, 5]
    rule = WORDS["lighting"]
    assert word_class(rule, np.array([0.3, 0.6, 0.9])).tolist() == [0, -1, 1]


def test_captions_name_the_rendered_factors():
    _, df = sample(200, seed=3, resolution=8)
    caps = captions(df, seed=1)
    assert caps == captions(df, seed=1) and caps != captions(df, seed=2)
    names = ("red", "yellow", "green", "cyan", "blue", "magenta")
    for cap, row in zip(caps, df.to_dict("records")):
        words = cap.rstrip(".").split()
        assert row["shape"] in words or "shape" in words
        said = [n for n in names if n in words]
        if "background" not in words and said:  # only the object colour can be named
            assert said == [names[int(colour_index(row["obj_hue"]))]]
        if "dark" in words:
            assert row["lighting"] < WORDS["lighting"].lo
        if "bright" in words:
            assert row["lighting"] > WORDS["lighting"].hi


def test_zoo_clip_is_an_open_clip_model(clip):
    model, preprocess, tokenizer = clip
    assert isinstance(model, open_clip.CLIP) and not model.training
    text = tokenizer(["a photo of a red star."])
    assert text.shape == (1, model.context_length) and text.dtype == torch.long
    images, _ = sample(2, seed=HELDOUT_SEED, resolution=32)
    pil = [to_pil_image(im) for im in images]
    x = torch.stack([preprocess(p) for p in pil])
    assert x.shape == (2, 3, 32, 32)
    with torch.no_grad():
        via_pil = model.encode_image(x, normalize=True)
        via_tensor = model.encode_images01(images, normalize=True)
    # PIL round trip quantizes to 8 bits: embeddings agree closely, not exactly
    assert torch.nn.functional.cosine_similarity(via_pil, via_tensor).min() > 0.98


def test_export_loads_with_open_clip_alone(clip, tmp_path):
    model, _, tokenizer = clip
    folder = export_open_clip(zoo.config("world-clip"), zoo.weights_path("world-clip"), tmp_path / "oc")
    oc_model, _, _oc_pre = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    oc_tok = open_clip.get_tokenizer(f"local-dir:{folder}")
    oc_model.eval()
    prompts = ["a dark photo of a blue square.", "a picture of a star on the left."]
    assert torch.equal(oc_tok(prompts), tokenizer(prompts))
    images, _ = sample(3, seed=5, resolution=32)
    with torch.no_grad():
        ours = model.encode_images01(images, normalize=True), model.encode_text(tokenizer(prompts), normalize=True)
        theirs = (oc_model.encode_image((images - 0.5) / 0.5, normalize=True),
                  oc_model.encode_text(oc_tok(prompts), normalize=True))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_zoo_clip_zero_shot_floors(clip, heldout):
    model, _, tokenizer = clip
    images, factors = heldout
    res = zero_shot_eval(model, tokenizer, images, factors, tasks=["shape", "obj_colour", "lighting"])
    acc = dict(zip(res["task"], res["accuracy"]))
    # shipped figures on 2000 held-out images: shape 0.995 (chance 0.25), colour 0.987, lighting 1.0
    assert acc["shape"] >= 0.85
    assert acc["obj_colour"] >= 0.90
    assert acc["lighting"] >= 0.90


def test_zoo_clip_reads_larger_images(clip):
    model, _, tokenizer = clip
    images, factors = sample(200, seed=HELDOUT_SEED + 1, resolution=64)  # resized to 32 inside
    res = zero_shot_eval(model, tokenizer, images, factors, tasks=["shape"])
    assert res["accuracy"].iloc[0] >= 0.80


def test_sparse_weights_round_trip():
    from probe.clip.model import build_model

    torch.manual_seed(0)
    model = build_model(_tiny_cfg().model_cfg).eval()
    tok = open_clip.tokenizer.SimpleTokenizer(context_length=32)
    text = tok(["a photo of a red star."])
    seen = torch.zeros(49408, dtype=torch.bool)
    seen[text.flatten()] = True
    state = dense_state_dict(sparse_state_dict(model, seen), 49408)
    other = build_model(_tiny_cfg().model_cfg).eval()
    other.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(other.encode_text(text), model.encode_text(text))
    assert int((state["token_embedding.weight"].abs().sum(1) > 0).sum()) == int(seen.sum())


def _tiny_cfg(**kw) -> ClipTrainConfig:
    cfg = ClipTrainConfig(batch_size=16, lr=5e-3, warmup_steps=2, eval_size=40, eval_every=0,
                          degrade_fraction=0.0, **kw)
    cfg.model_cfg = {"embed_dim": 32,
                     "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16},
                     "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    return cfg


def test_train_clip_reduces_loss(tmp_path):
    torch.manual_seed(0)
    _model, seen, hist, evals = train_clip(_tiny_cfg(steps=40), tmp_path, progress_bar=False)
    first, last = hist["loss"].iloc[:5].mean(), hist["loss"].iloc[-5:].mean()
    # contrastive learning from scratch starts slowly: 40 tiny steps take ~0.15 nats off ln(16)
    assert last < first - 0.08, (first, last)
    assert len(hist) == 40 and set(evals["task"]) == set(ZERO_SHOT_TASKS)
    assert (tmp_path / "model.safetensors").exists() and int(seen.sum()) > 10


def test_loader_batches_do_not_depend_on_workers():
    from probe.training.clip_data import clip_loader

    # degrade on, so the per-step degrade generator is covered too
    cfg = _tiny_cfg(steps=3)
    cfg.batch_size, cfg.degrade_fraction = 4, 0.5
    runs = {}
    for w in (0, 2):
        cfg.num_workers = w
        runs[w] = list(clip_loader(cfg))
    assert [k for *_, k in runs[0]] == [k for *_, k in runs[2]] == [0, 1, 2]
    for (im0, tx0, _), (im2, tx2, _) in zip(runs[0], runs[2]):
        assert im0.shape == (4, 3, 32, 32) and im0.dtype == torch.float32
        assert tx0.shape == (4, 32) and tx0.dtype == torch.int64
        assert torch.equal(im0, im2) and torch.equal(tx0, tx2)
    assert not torch.equal(runs[0][0][0], runs[0][1][0])  # steps differ


def test_train_clip_with_workers(tmp_path):
    torch.manual_seed(0)
    _model, seen, hist, evals = train_clip(_tiny_cfg(steps=3, num_workers=2), tmp_path, progress_bar=False)
    assert hist["step"].tolist() == [1, 2, 3] and hist["loss"].notna().all()
    assert int(seen.sum()) > 10 and len(evals)
