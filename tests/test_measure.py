"""probe.measure: known answers of the analytic measurers, the world's pixel measurers unchanged, the oracle and
CLIP wrapped as measurers (categorical rows sum to 1), specs and defaults, and batched encode/decode equal to
one shot."""
from __future__ import annotations

import json
import math

import open_clip
import pandas as pd
import pytest
import torch

from probe.data import world
from probe.data.filters import gaussian_blur
from probe.measure import (
    ClipMeasurer,
    FunctionMeasurer,
    Measurer,
    analytic,
    get_measurer,
    measurer_for,
    register,
)
from probe.tokenizers.base import decode_batched, encode_batched
from probe.tokenizers.base import Encoded
from probe import worlds


def _pixel_measurers() -> dict[str, Measurer]:
    """The world factors read from pixels: their default measurers (every one analytic)."""
    specs = {a: s for a, s in worlds.get("attribute").measurers.items() if s.startswith("analytic:")}
    assert set(specs) == {"lighting", "bg_blur", "global_blur", "obj_hue"}
    return {a: measurer_for(a, world="attribute") for a in specs}


def _render_variants(column: str, values: list, seed: int = 3, **fixed: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The same 16 world images rendered with ``column`` set to each of ``values``: ``[V*16, ...]``."""
    base = world.sample_factors(0, 16, seed=seed)
    for k, v in fixed.items():
        base[k] = v
    return world.render(pd.concat([base.assign(**{column: v}) for v in values]), 32)


# ------------------------------------------------------------------------------------------ analytic
def test_uniform_grey_known_answers() -> None:
    grey = torch.full((2, 3, 16, 16), 0.4)
    assert torch.allclose(analytic("luminance")(grey), torch.tensor([0.4, 0.4]), atol=1e-6)
    for name in ("contrast", "colourfulness", "laplacian_variance", "hf_energy"):
        assert torch.allclose(analytic(name)(grey), torch.zeros(2), atol=1e-6), name


def test_luminance_weights_and_colourfulness_order() -> None:
    red, grey = torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.5)
    red[:, 0] = 1.0
    assert float(analytic("luminance")(red)) == pytest.approx(0.299, abs=1e-6)  # Rec. 601
    assert float(analytic("colourfulness")(red)) > float(analytic("colourfulness")(grey)) + 0.3


def test_checkerboard_is_sharper_than_its_blur() -> None:
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    board = ((yy // 2 + xx // 2) % 2).float().expand(2, 3, 32, 32).clone()
    blurred = gaussian_blur(board, torch.tensor([1.0, 2.0]))
    for name in ("laplacian_variance", "hf_energy", "global_blur", "contrast"):
        m = analytic(name)
        sharp, soft = m(board), m(blurred)
        assert (sharp > soft).all(), name
        assert float(soft[1]) < float(soft[0]), name  # more blur, lower still


def test_hue_of_pure_red_green_blue_and_masks() -> None:
    img = torch.zeros(3, 3, 8, 8)
    for i in range(3):
        img[i, i] = 1.0
    hue = analytic("hue")
    assert hue.kind == "circular"
    v = hue(img)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(3))
    angles = torch.atan2(v[:, 1], v[:, 0]) % (2 * math.pi)
    torch.testing.assert_close(angles, torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3]), atol=1e-5, rtol=0)
    # a green object on a red background: masks select the object
    scene = torch.zeros(1, 3, 8, 8)
    scene[:, 0] = 1.0
    scene[:, :, 2:4, 2:4] = torch.tensor([0.0, 1.0, 0.0])[:, None, None]
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:4, 2:4] = 1.0
    obj = analytic("obj_hue")(scene, masks=mask)
    assert float(torch.atan2(obj[0, 1], obj[0, 0])) == pytest.approx(2 * math.pi / 3, abs=1e-5)
    assert float(hue(scene)[0, 0]) > 0.9  # unmasked: mostly red
    with pytest.raises(ValueError, match="masks"):
        analytic("obj_hue")(scene)


def test_world_measurers_respond_monotonically_to_planted_factors() -> None:
    cases = {"lighting": ([0.3, 0.6, 0.9], +1), "bg_blur": ([0.0, 0.03, 0.06], -1),
             "global_blur": ([0.0, 0.02, 0.04], -1)}
    meas = _pixel_measurers()
    for factor, (values, sign) in cases.items():
        img, mask = _render_variants(factor, values)
        m = meas[factor](img, masks=mask).view(len(values), 16)
        assert (sign * (m[1:] - m[:-1]) > 0).all(), factor  # per image: each step moves it the expected way
    img, _ = _render_variants("global_blur", [0.0, 0.02, 0.04])
    for name in ("laplacian_variance", "hf_energy"):
        m = analytic(name)(img).view(3, 16)
        assert (m[1:] < m[:-1]).all(), name


def test_background_sharpness_ignores_the_object() -> None:
    # without global blur (which spreads object colour over the background) object pixels, dilated by one,
    # are excluded
    m = _pixel_measurers()["bg_blur"]
    img, mask = _render_variants("obj_hue", [0.1, 0.6], global_blur=0.0)
    v = m(img, masks=mask)
    torch.testing.assert_close(v[:16], v[16:], rtol=0.01, atol=1e-4)
    img2, mask2 = _render_variants("shape", ["circle", "star"], global_blur=0.0)
    assert not torch.equal(mask2[:16], mask2[16:])
    v2 = m(img2, masks=mask2)
    assert float(((v2[:16] - v2[16:]).abs() / v2[:16]).median()) < 0.1


# the values of probe.swap.measurers (the swap analyses' measurers before probe.measure) on a fixed world batch
_REFERENCE = {
    "lighting": [0.2702661156654358, 0.26956385374069214, 0.28721433877944946, 0.17289599776268005,
                 0.4945356845855713, 0.384585976600647, 0.48615628480911255, 0.21863992512226105],
    "bg_blur": [0.14505134522914886, 0.09789566695690155, 0.432677298784256, 0.18675218522548676,
                0.2218794822692871, 0.4426647126674652, 0.4460710883140564, 0.21326597034931183],
    "global_blur": [0.3502921164035797, 0.28524795174598694, 0.6432426571846008, 0.11658453941345215,
                    0.5046441555023193, 0.6390849351882935, 0.6074056029319763, 0.14497077465057373],
    "obj_hue": [-0.058095745742321014, -0.9983110427856445, 0.941339373588562, 0.33746129274368286,
                0.020011689513921738, -0.9997997283935547, 0.041804369539022446, 0.9991257786750793,
                0.7768060564994812, 0.6297399997711182, 0.3979988396167755, -0.9173859357833862,
                0.5624421238899231, -0.8268367052078247, 0.8159772753715515, -0.5780839920043945],
}


def test_world_measurers_give_the_numbers_of_the_swap_analyses() -> None:
    img, mask = world.render(world.sample_factors(0, 8, seed=123), 32)
    for name, m in _pixel_measurers().items():
        got = m(img, masks=mask).flatten()
        torch.testing.assert_close(got, torch.tensor(_REFERENCE[name]), rtol=1e-6, atol=1e-7, msg=name)


# ------------------------------------------------------------------------------------------ oracle and CLIP
@pytest.fixture(scope="module")
def world_batch() -> tuple[torch.Tensor, pd.DataFrame]:
    return world.sample(48, seed=11, resolution=32)


def test_oracle_measurers_kinds_and_probabilities(world_batch: tuple[torch.Tensor, pd.DataFrame]) -> None:
    images, factors = world_batch
    shape = get_measurer("oracle:shape", device="cpu")
    p = shape(images)
    assert shape.kind == "categorical" and shape.classes == ["circle", "square", "triangle", "star"]
    assert p.shape == (48, 4) and (p >= 0).all()
    torch.testing.assert_close(p.sum(1), torch.ones(48))
    assert (p.argmax(1).numpy() == pd.Categorical(factors["shape"], categories=shape.classes).codes).mean() > 0.8
    hue = get_measurer("oracle:obj_hue", device="cpu")
    assert hue.kind == "circular"
    torch.testing.assert_close(hue(images).norm(dim=1), torch.ones(48))
    light = measurer_for("lighting", spec="oracle:lighting", device="cpu")
    assert light.kind == "continuous"
    r = torch.corrcoef(torch.stack([light(images).detach(), torch.tensor(factors["lighting"].to_numpy()).float()]))
    assert float(r[0, 1]) > 0.9
    with pytest.raises(KeyError, match="does not read"):
        get_measurer("oracle:null", device="cpu")


def test_world_clip_measurer_probabilities(world_batch: tuple[torch.Tensor, pd.DataFrame]) -> None:
    images, factors = world_batch
    m = get_measurer("clip:lighting", device="cpu")
    assert m.kind == "categorical" and m.classes == ["dark", "bright"]
    with torch.no_grad():
        p = m(images)
    torch.testing.assert_close(p.sum(1), torch.ones(48))
    dark = torch.tensor((factors["lighting"] < 0.45).to_numpy())
    bright = torch.tensor((factors["lighting"] > 0.8).to_numpy())
    assert float(p[bright, 1].mean()) > float(p[dark, 1].mean())
    assert get_measurer("clip:obj_hue", device="cpu").classes[0] == "red"  # the world's colour words
    inline = get_measurer("clip:a dark photo|a bright photo", device="cpu")
    assert inline.classes == ["a dark photo", "a bright photo"] and inline(images[:3]).shape == (3, 2)


_TINY_CLIP = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def test_clip_measurer_with_a_random_open_clip_model(tmp_path, world_batch) -> None:
    images, _ = world_batch
    torch.manual_seed(0)
    model = open_clip.CLIP(**_TINY_CLIP).eval()
    tok = open_clip.tokenizer.SimpleTokenizer(context_length=16)
    prompts = {"dark": ["a dark photo", "a dim picture"], "bright": "a bright photo", "grey": ["a grey photo"]}
    m = ClipMeasurer(prompts, name="tone", clip=(model, tok))
    with torch.no_grad():
        p = m(images[:5])
    assert m.name == "tone" and m.classes == ["dark", "bright", "grey"] and p.shape == (5, 3)
    torch.testing.assert_close(p.sum(1), torch.ones(5))
    # the same architecture by name with the same weights from a local file gives the same probabilities
    (tmp_path / "tinyclip-test.json").write_text(json.dumps(_TINY_CLIP))
    open_clip.add_model_config(tmp_path / "tinyclip-test.json")
    weights = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), weights)
    by_file = ClipMeasurer(prompts, model="tinyclip-test", pretrained=str(weights), device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(by_file(images[:5]), p)
    with pytest.raises(ValueError, match="two classes"):
        ClipMeasurer(["only one"], clip=(model, tok))


# ------------------------------------------------------------------------------------------ specs and defaults
def test_specs_defaults_and_registry() -> None:
    assert measurer_for("lighting").name == "lighting" and isinstance(measurer_for("lighting"), Measurer)
    assert measurer_for("obj_hue").kind == "circular"
    assert measurer_for("contrast").name == "contrast"  # analytic names work as attributes too
    assert get_measurer("analytic:hf_energy").name == "hf_energy"
    with pytest.raises(ValueError, match="family:name"):
        get_measurer("lighting")
    with pytest.raises(KeyError, match="unknown family"):
        get_measurer("pixels:lighting")
    with pytest.raises(KeyError, match="no default measurer"):
        measurer_for("null")
    with pytest.raises(KeyError, match="no analytic measurer"):
        get_measurer("analytic:shape")
    register("test_const", lambda name, **kw: FunctionMeasurer(name, "continuous",
                                                               lambda x, m: x.new_full((len(x),), 7.0)))
    assert get_measurer("test_const:seven")(torch.zeros(2, 3, 4, 4)).tolist() == [7.0, 7.0]
    same = analytic("luminance")
    assert get_measurer(same) is same
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        same(torch.zeros(2, 4, 4))


# ------------------------------------------------------------------------------------------ batched encode/decode
class _Linear(torch.nn.Module):
    """A tokenizer by construction: 4 tokens of 3 dims (per-quadrant channel means), decoded back to flat quadrants;
    ``decode(clamp=False)`` leaves values outside [0, 1]."""

    num_tokens, token_dim, image_size, is_discrete = 4, 3, 8, False

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.0))

    def encode(self, images: torch.Tensor) -> Encoded:
        q = torch.nn.functional.avg_pool2d(images, 4).flatten(2).transpose(1, 2) * self.scale  # [B, 4, 3]
        return Encoded(indices=None, features=q, quantized=q)

    def decode(self, q: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
        x = q.transpose(1, 2).reshape(-1, 3, 2, 2).repeat_interleave(4, 2).repeat_interleave(4, 3) * 2 - 0.5
        return x.clamp(0, 1) if clamp else x


def test_batched_encode_decode_equal_one_shot() -> None:
    tok = _Linear()
    x = torch.rand(11, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    one = tok.encode(x)
    for batch in (1, 4, 11, 256):
        enc = encode_batched(tok, x, batch=batch)
        assert enc.indices is None and not enc.features.requires_grad
        torch.testing.assert_close(enc.quantized, one.quantized.detach())
        torch.testing.assert_close(decode_batched(tok, enc.quantized, batch=batch),
                                   tok.decode(one.quantized).detach())
    q = torch.tensor([-1.0, 2.0]).repeat(3, 4, 3)[..., :3]  # decodes outside [0, 1]
    raw = decode_batched(tok, q, batch=2, clamp=False)
    assert raw.min() < 0 and raw.max() > 1
    torch.testing.assert_close(decode_batched(tok, q, batch=2), raw.clamp(0, 1))
    assert encode_batched(tok, x[:0]).quantized.shape == (0, 4, 3)
    assert decode_batched(tok, one.quantized[:0]).shape == (0, 3, 8, 8)


# ------------------------------------------------------------------------------------------ models and their world
def test_load_world_tokenizer_reads_run_folders_zoo_json_and_shipped_names(tmp_path) -> None:
    from safetensors.torch import save_file

    from probe.measure.world import load_world_tokenizer, tokenizer_world
    from probe.tokenizers.world import WorldTokenizer, WorldTokenizerConfig

    torch.manual_seed(0)
    model = WorldTokenizer(WorldTokenizerConfig(image_size=16, patch_size=4, width=32, enc_depth=1, dec_depth=1,
                                                heads=2, num_tokens=8, token_dim=6, codebook_size=16,
                                                stem_channels=8, head_channels=8, refine_channels=8)).eval()
    record = {"kind": "tokenizer", "architecture": "world", "config": model.config_dict(),
              "world_overrides": {"n_bins": 3}}
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"steps": 1}))  # a training config, not a tokenizer config
    (run / "model.json").write_text(json.dumps(record))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(run / "model.safetensors"))
    x = torch.rand(2, 3, 16, 16)
    for spec in (str(run), str(run / "model.json")):
        tok, overrides = load_world_tokenizer(spec)
        assert overrides == {"n_bins": 3} and not tok.training
        with torch.no_grad():
            torch.testing.assert_close(tok.encode(x).quantized, model.encode(x).quantized)
    from probe import zoo

    assert tokenizer_world("world-32") == (zoo.config("world-32").get("world_overrides") or {})
    assert tokenizer_world("titok-l32") == {}  # not a world model: the default world
    with pytest.raises(FileNotFoundError, match="no weights"):
        (tmp_path / "lonely.json").write_text(json.dumps(record))
        load_world_tokenizer(str(tmp_path / "lonely.json"))


@pytest.mark.parametrize("spec", ["titok-tiny", "world-32-continuous"])
def test_batched_encode_decode_of_real_tokenizers_equal_one_shot(spec: str) -> None:
    import probe

    torch.manual_seed(0)
    tok = probe.load_tokenizer(spec, random_init=spec.startswith("titok"), device="cpu")
    x = torch.rand(5, 3, tok.image_size, tok.image_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        one = tok.encode(x)
        ref = tok.decode(one.quantized)
    enc = encode_batched(tok, x, batch=2)
    torch.testing.assert_close(enc.quantized, one.quantized, rtol=1e-5, atol=1e-5)
    if one.indices is not None:
        assert torch.equal(enc.indices, one.indices)
    torch.testing.assert_close(decode_batched(tok, enc.quantized, batch=2), ref, rtol=1e-5, atol=1e-5)


def test_a_measurer_is_differentiable_exactly_when_it_says_so() -> None:
    """Attribution patching is offered only measurers that declare ``differentiable``: every analytic, corruption
    and sprites reader that declares it gives a gradient to the images, and every one that gives none says so
    (a corruption measurer computed in scikit-image once claimed a gradient and failed the pipeline's swap stage)."""
    from probe import worlds
    from probe.measure import get_measurer
    from probe.measure.analytic import ANALYTIC_NAMES
    from probe.measure.corruption import CORRUPTION_NAMES

    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    masks = (torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    measurers = [get_measurer(f"analytic:{n}") for n in ANALYTIC_NAMES]
    measurers += [get_measurer(f"corruption:{n}") for n in CORRUPTION_NAMES]
    measurers += list(worlds.get("sprites").measurers.values())
    for m in measurers:
        x = images.clone().requires_grad_(True)
        out = m(x, masks=masks)
        has_grad = out.requires_grad and out.grad_fn is not None
        assert bool(getattr(m, "differentiable", False)) == has_grad, (m.name, getattr(m, "differentiable", None), has_grad)
