"""Objectives: algebra, the CLIP loss (negative prompt, views, per-row prompts), masked reconstruction,
measurer targets, the held-out scorer."""
from __future__ import annotations

import pytest
import torch

from probe.optimize import (
    ClipText,
    HeldOut,
    Lambda,
    MaskedReconstruction,
    MeasurerTarget,
    load_clip,
    random_views,
)


@pytest.fixture(scope="module")
def clip():
    return load_clip("world-clip", device="cpu")


def _imgs(b: int = 3, s: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(seed))


def test_algebra() -> None:
    x = _imgs()
    a = Lambda(lambda im: im.mean(dim=(1, 2, 3)), "a")
    b = Lambda(lambda im: im[:, 0].amax(dim=(1, 2)), "b")
    torch.testing.assert_close((2 * a - b / 4 + 1.5)(x), 2 * a(x) - b(x) / 4 + 1.5)
    torch.testing.assert_close((-a)(x), -a(x))
    torch.testing.assert_close(sum([a, b, a])(x), 2 * a(x) + b(x))
    assert (a + b).name == "a + b"


def test_clip_loss_is_minus_the_cosine(clip) -> None:
    x = _imgs()
    prompts = ["a photo of a red star.", "a photo of a blue circle.", "a photo of a green square."]
    loss = ClipText(clip, prompts)(x)
    img = clip.model.encode_images01(x, normalize=True)
    txt = clip.model.encode_text(clip.tokenizer(prompts), normalize=True)
    torch.testing.assert_close(loss, -(img * txt).sum(-1), rtol=1e-4, atol=1e-5)
    # one prompt for the whole batch = that prompt repeated
    torch.testing.assert_close(ClipText(clip, prompts[0])(x), ClipText(clip, [prompts[0]] * 3)(x))
    with pytest.raises(ValueError, match="2 prompts for a batch of 3"):
        ClipText(clip, prompts[:2])(x)


def test_clip_resize_is_plain_bilinear_by_default_and_antialiased_on_request(clip) -> None:
    """The reference resizes with ``F.interpolate(mode="bilinear")``; antialiasing is an option."""
    import torch.nn.functional as F

    from probe.optimize import ClipModel

    x = _imgs(2, 96)  # larger than the CLIP's 32 px input
    plain = F.interpolate(x, size=(clip.size, clip.size), mode="bilinear", align_corners=False)
    smooth = F.interpolate(x, size=(clip.size, clip.size), mode="bilinear", antialias=True, align_corners=False)
    enc = clip.model.encode_image
    torch.testing.assert_close(clip.image(x), enc((plain - clip.mean) / clip.std, normalize=True).float())
    aa = ClipModel(clip.model, clip.tokenizer, size=clip.size, mean=clip.mean.flatten().tolist(),
                   std=clip.std.flatten().tolist(), antialias=True)
    torch.testing.assert_close(aa.image(x), enc((smooth - clip.mean) / clip.std, normalize=True).float())
    assert not torch.allclose(aa.image(x), clip.image(x), atol=1e-3)  # the two filters differ on noise


def test_negative_prompt_with_cfg(clip) -> None:
    x = _imgs()
    pos, neg = ClipText(clip, "a photo of a red star."), ClipText(clip, "a photo of a circle.")
    both = ClipText(clip, "a photo of a red star.", negative="a photo of a circle.", cfg=3.0)
    # -sim - (1 - cfg) * neg_sim, with sim = -pos and neg_sim = -neg
    torch.testing.assert_close(both(x), -(-pos(x)) - (1 - 3.0) * (-neg(x)), rtol=1e-5, atol=1e-6)
    # with views the negative sees the same crops as the positive
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    viewed = ClipText(clip, "a photo of a red star.", negative="a photo of a circle.", cfg=3.0, n_views=2, pad=2)
    got = viewed(x, generators=gens)
    g1, g2 = ([torch.Generator().manual_seed(i) for i in range(3)] for _ in range(2))
    sim = ClipText(clip, "a photo of a red star.", n_views=2, pad=2)(x, generators=g1)
    nsim = ClipText(clip, "a photo of a circle.", n_views=2, pad=2)(x, generators=g2)
    torch.testing.assert_close(got, sim - (1 - 3.0) * (-nsim), rtol=1e-5, atol=1e-6)


def test_views_are_crops_and_flips_drawn_per_row() -> None:
    x = _imgs(2, 8)
    gens = [torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)]
    v = random_views(x, 5, 6, generators=gens)
    assert v.shape == (5, 2, 3, 6, 6)
    for k in range(5):
        for b in range(2):
            crops = [x[b, :, r:r + 6, c:c + 6] for r in range(3) for c in range(3)]
            crops += [c.flip(-1) for c in crops]
            assert any(torch.equal(v[k, b], c) for c in crops)
    # row 1's views do not depend on row 0 being there
    alone = random_views(x[1:], 5, 6, generators=[torch.Generator().manual_seed(8)])
    assert torch.equal(alone[:, 0], v[:, 1])
    assert random_views(x, 0, 8).shape == (1, 2, 3, 8, 8)


def test_masked_reconstruction() -> None:
    target = torch.zeros(2, 3, 4, 4)
    known = torch.ones(2, 1, 4, 4)
    known[:, :, :2] = 0
    img = torch.zeros(2, 3, 4, 4)
    img[:, :, :2] = 5.0  # errors in the hole do not count
    img[1, :, 2:] = 0.5
    torch.testing.assert_close(MaskedReconstruction(target, known, p=2)(img), torch.tensor([0.0, 0.25]))
    torch.testing.assert_close(MaskedReconstruction(target, known, p=1)(img), torch.tensor([0.0, 0.5]))


def test_measurer_targets() -> None:
    x = _imgs(2, 4)
    mean = Lambda(lambda im: im.mean(dim=(1, 2, 3)))
    torch.testing.assert_close(MeasurerTarget(lambda im: im.mean(dim=(1, 2, 3)), 0.8)(x),
                               (mean(x) - 0.8).pow(2))

    class Cls:
        kind, classes, name = "categorical", ["dark", "bright"], "cls"

        def __call__(self, im, masks=None):
            p = im.mean(dim=(1, 2, 3))
            return torch.stack([1 - p, p], 1)

    torch.testing.assert_close(MeasurerTarget(Cls(), "bright")(x), -torch.log(mean(x)))

    class Hue:
        kind, name = "circular", "hue"

        def __call__(self, im, masks=None):
            return torch.tensor([[1.0, 0.0], [0.0, 1.0]])

    torch.testing.assert_close(MeasurerTarget(Hue(), 0.25)(x), torch.tensor([1.0, 0.0]), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="purple"):
        MeasurerTarget(Cls(), "purple")


def test_heldout_scores_clamped_images_without_grad(clip) -> None:
    x = (_imgs() * 2 - 0.5).requires_grad_(True)
    obj = ClipText(clip, "a photo of a red star.")
    s = HeldOut(obj)(x)
    assert not s.requires_grad
    torch.testing.assert_close(s, -obj(x.detach().clamp(0, 1)))


def test_sigmoid_clip_scores_with_its_logit() -> None:
    """A SigLIP-style model (open_clip's ``logit_bias``) is scored by ``scale * cos + bias``."""
    from probe.clip import WORLD_CLIP_MODEL_CFG, WorldCLIP, get_tokenizer
    from probe.optimize import ClipModel

    torch.manual_seed(0)
    model = WorldCLIP(**WORLD_CLIP_MODEL_CFG, init_logit_bias=-5.0)
    siglip = ClipModel(model, get_tokenizer(), size=32, mean=[0.5] * 3, std=[0.5] * 3)
    assert siglip.sigmoid
    x = _imgs()
    loss = ClipText(siglip, "a photo of a star.")(x)
    cos = (model.encode_images01(x, normalize=True) * model.encode_text(get_tokenizer()(["a photo of a star."]),
                                                                         normalize=True)).sum(-1)
    torch.testing.assert_close(loss, -(cos * model.logit_scale.exp() - 5.0), rtol=1e-4, atol=1e-4)
