"""Real-ESRGAN's compact models (SRVGGNetCompact): loading, parity with the published description, blending.

Nothing can be downloaded here, so each test writes a random-weight ``.pth`` in the released
files' layout ({"params": ...} or {"params_ema": ...}, keys ``body.N.weight/bias``) and checks
srcli against a forward pass written below from the architecture's description, with
torch.nn.functional only: conv(3->F) + PReLU, N x [conv(F->F) + PReLU], conv(F->3*s^2),
pixel shuffle, plus the nearest-upsampled input.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from srcli.checkpoints import registry
from srcli.checkpoints.interpolate import denoise_strength_blend
from srcli.checkpoints.interpolation_files import interpolate_files
from srcli.checkpoints.io import load_model
from srcli.inference.receptive_field import theoretical_radius

Tensors = dict[str, torch.Tensor]

#: The released models: (num_feat, num_conv, scale).
RELEASED = {
    "realesr-general-x4v3": (64, 32, 4),
    "realesr-general-wdn-x4v3": (64, 32, 4),
    "realesr-animevideov3": (64, 16, 4),
}


def compact_state(num_feat: int, num_conv: int, scale: int, seed: int = 0) -> Tensors:
    """Random weights under Real-ESRGAN's keys: convs at body.{2k}, PReLU slopes at body.{2k+1}."""
    generator = torch.Generator().manual_seed(seed)
    state: Tensors = {}
    widths = [(3, num_feat)] + [(num_feat, num_feat)] * num_conv + [(num_feat, 3 * scale * scale)]
    for k, (c_in, c_out) in enumerate(widths):
        state[f"body.{2 * k}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=generator) * (1.0 / (3 * c_in) ** 0.5)
        state[f"body.{2 * k}.bias"] = torch.randn(c_out, generator=generator) * 0.01
        if k < len(widths) - 1:
            state[f"body.{2 * k + 1}.weight"] = torch.rand(num_feat, generator=generator) * 0.3
    return state


def reference_forward(state: Tensors, x: torch.Tensor, scale: int) -> torch.Tensor:
    """The published description, layer by layer, with functional ops only."""
    convs = sorted(int(key.split(".")[1]) for key in state if state[key].dim() == 4)
    out = x
    for index in convs:
        out = F.conv2d(out, state[f"body.{index}.weight"], state[f"body.{index}.bias"], padding=1)
        if index != convs[-1]:
            out = F.prelu(out, state[f"body.{index + 1}.weight"])
    return F.pixel_shuffle(out, scale) + F.interpolate(x, scale_factor=scale, mode="nearest")


def write_pth(state: Tensors, path: Path, key: str = "params") -> Path:
    torch.save({key: state}, path)
    return path


@pytest.mark.parametrize("name", sorted(RELEASED))
@pytest.mark.parametrize("key", ["params", "params_ema"])
def test_released_layouts_load_with_their_published_configuration(name: str, key: str, tmp_path: Path) -> None:
    num_feat, num_conv, scale = RELEASED[name]
    state = compact_state(num_feat, num_conv, scale)
    model = load_model(write_pth(state, tmp_path / f"{name}.pth", key))
    assert model.architecture == "srvgg"
    assert model.config == {"scale": scale, "num_features": num_feat, "num_convs": num_conv,
                            "activation": "prelu", "in_channels": 3, "out_channels": 3}
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        difference = (model(x) - reference_forward(state, x, scale)).abs().max().item()
    assert difference < 1e-5


@pytest.mark.parametrize("num_feat,num_conv,scale", [(16, 3, 4), (8, 0, 2), (12, 2, 3), (8, 1, 1)])
def test_parity_with_the_published_description(num_feat: int, num_conv: int, scale: int, tmp_path: Path) -> None:
    state = compact_state(num_feat, num_conv, scale, seed=num_conv)
    model = load_model(write_pth(state, tmp_path / "compact.pth"))
    x = torch.rand(2, 3, 17, 9)
    with torch.no_grad():
        got = model(x)
    expected = reference_forward(state, x, scale)
    assert got.shape == (2, 3, 17 * scale, 9 * scale)
    assert (got - expected).abs().max().item() < 1e-5


def test_receptive_field_is_one_pixel_per_conv() -> None:
    """(num_conv + 2) 3x3 convs at input resolution: 1 + 2 * (num_conv + 2) LR pixels wide."""
    for name, (num_feat, num_conv, scale) in RELEASED.items():
        model = registry.build("srvgg", scale=scale, num_features=num_feat, num_convs=num_conv)
        assert theoretical_radius(model) == num_conv + 2, name


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_alpha_blend_is_real_esrgan_dni(alpha: float, tmp_path: Path) -> None:
    """``srcli interpolate --a wdn --b general --alpha d`` is dni(general, wdn, [d, 1 - d]), -dn d."""
    general, wdn = compact_state(8, 2, 4, seed=1), compact_state(8, 2, 4, seed=2)
    path_general = write_pth(general, tmp_path / "realesr-general-x4v3.pth")
    path_wdn = write_pth(wdn, tmp_path / "realesr-general-wdn-x4v3.pth", "params_ema")
    hand = {key: alpha * general[key] + (1 - alpha) * wdn[key] for key in general}  # dni's formula
    output, _, _ = interpolate_files(alpha, str(path_wdn), str(path_general), tmp_path / "blend.safetensors")
    blended = load_model(output)
    assert all(torch.equal(blended.state_dict()[key], hand[key]) for key in hand)
    x = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        assert (blended(x) - reference_forward(hand, x, 4)).abs().max().item() < 1e-5
        by_strength = denoise_strength_blend(load_model(path_general), load_model(path_wdn), alpha)
        assert torch.equal(by_strength(x), blended(x))


def test_upscale_alpha_with_the_general_file_is_real_esrgan_dn(tmp_path: Path) -> None:
    """``srcli upscale --weights realesr-general-x4v3.pth --alpha d`` finds the wdn twin beside it."""
    from click.testing import CliRunner
    from PIL import Image

    from srcli.checkpoints.resolve import ModelChoiceError, resolve_model
    from srcli.cli import main

    general, wdn = compact_state(8, 2, 4, seed=1), compact_state(8, 2, 4, seed=2)
    path_general = write_pth(general, tmp_path / "realesr-general-x4v3.pth")
    write_pth(wdn, tmp_path / "realesr-general-wdn-x4v3.pth")
    resolved = resolve_model(weights=str(path_general), alpha=0.3)
    hand = {key: 0.3 * general[key] + 0.7 * wdn[key] for key in general}
    assert all(torch.equal(resolved.network.state_dict()[key], hand[key]) for key in hand)
    assert resolved.name == "realesr-general-x4v3-dn0.3"
    Image.new("RGB", (9, 7), (90, 120, 30)).save(tmp_path / "in.png")
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "in.png"), "--weights", str(path_general),
                                       "--alpha", "0.3", "-o", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    (tmp_path / "realesr-general-wdn-x4v3.pth").unlink()
    with pytest.raises(ModelChoiceError, match="missing .*realesr-general-wdn-x4v3.pth"):
        resolve_model(weights=str(path_general), alpha=0.3)
    other = write_pth(general, tmp_path / "mine.pth")
    with pytest.raises(ModelChoiceError, match="srcli interpolate"):
        resolve_model(weights=str(other), alpha=0.3)
