"""``srcli compare``: HR mode (LR made here, PSNR per panel) and LR mode (a photo, no PSNR)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from synthetic import synthetic_image

from srcli.checkpoints import registry
from srcli.checkpoints.io import save_model
from srcli.checkpoints.shipped import sha256_of, write_manifest
from srcli.cli import main
from srcli.evaluation.compare import lr_window


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tiny edsr x4 and an esrgan-psnr/esrgan pair as the shipped weights."""
    folder = tmp_path / "weights"
    folder.mkdir()
    entries = []
    for name, arch, seed in (("edsr", "edsr", 1), ("esrgan-psnr", "esrgan", 2), ("esrgan", "esrgan", 3)):
        torch.manual_seed(seed)
        config = dict(scale=4, num_blocks=1, num_features=8, **({"growth": 4} if arch == "esrgan" else {}))
        path = save_model(registry.build(arch, **config), folder / f"{name}_x4.safetensors")
        entries.append({"name": name, "architecture": arch, "file": path.name, "scales": [4],
                        "sha256": sha256_of(path), "parameters": 1, "metrics": {}})
    write_manifest(entries, folder)
    monkeypatch.setenv("SRCLI_WEIGHTS", str(folder))
    return folder


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_hr_mode_draws_panels_with_psnr(shipped: Path, tmp_path: Path) -> None:
    hr = tmp_path / "hr.png"
    Image.fromarray(synthetic_image(7, 64, 64)).save(hr)
    target = tmp_path / "cmp.png"
    result = run("compare", str(hr), "-m", "edsr", "--degradation", "bicubic", "--crop-size", "32", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert "bicubic" in result.output and "edsr" in result.output and " dB" in result.output
    assert Image.open(target).width == 3 * 64 + 2 * 4  # HR, bicubic, edsr crops of 32 px zoomed 2x, 4 px gaps
    result = run("compare", str(hr), "-m", "edsr", "-m", "esrgan-psnr,esrgan", "--degradation", "bicubic",
                 "--crop-size", "32", "-o", str(target), "--overwrite")  # repeated and comma-separated
    assert result.exit_code == 0 and Image.open(target).width == 5 * 64 + 4 * 4
    result = run("compare", str(hr), "--degradation", "bicubic", "--crop", "60,60,20,20", "-o", str(tmp_path / "c2.png"))
    assert result.exit_code == 2 and "outside" in result.output


def test_lr_mode_upscales_the_photo_itself_without_psnr(shipped: Path, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    Image.fromarray(synthetic_image(3, 40, 48)).save(photo, quality=40)
    target = tmp_path / "cmp.png"
    result = run("compare", str(photo), "--model", "edsr,esrgan", "--crop-size", "64", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert "dB" not in result.output and "bicubic, edsr, esrgan" in result.output
    sheet = Image.open(target)
    assert sheet.width == 3 * 128 + 2 * 4 and sheet.height == 128 + 18  # no HR panel: bicubic and two models


def test_lr_mode_crop_matches_upscaling_the_whole_photo(shipped: Path, tmp_path: Path) -> None:
    """The window with context gives the whole-photo result for a shallow network."""
    from srcli.evaluation.compare import make_panels
    from srcli.evaluation.datasets import read_rgb
    from srcli.evaluation.evaluate import InferenceOptions, ModelSpec, make_runner

    photo = tmp_path / "photo.png"
    Image.fromarray(synthetic_image(5, 90, 90)).save(photo)
    options = InferenceOptions(device="cpu", precision="fp32", tile=None)
    panels = make_panels(photo, ["edsr"], 4, "120,80,64,48", options=options, degradation="none")
    whole = make_runner(ModelSpec("edsr"), 4, options)(read_rgb(photo)).clamp(0, 1)
    assert torch.allclose(panels[1].image, whole[:, 80:128, 120:184], atol=1e-5)


def test_lr_window_snaps_outwards_and_clamps() -> None:
    region, inside = lr_window((10, 6, 20, 9), 4, 50, 60)
    top, bottom, left, right = region
    assert (top, left) == (0, 0) and bottom == 4 + 24 and right == 8 + 24
    assert inside == (2 * 4, 1 * 4, 6 * 4, 3 * 4)


def test_realworld_mode_is_reproducible_per_seed(shipped: Path, tmp_path: Path) -> None:
    hr = tmp_path / "hr.png"
    Image.fromarray(synthetic_image(9, 64, 64)).save(hr)
    outputs = []
    for name, seed in (("a", "2"), ("b", "2"), ("c", "3")):
        result = run("compare", str(hr), "-m", "edsr", "--degradation", "realworld", "--seed", seed,
                     "--crop-size", "32", "-o", str(tmp_path / f"{name}.png"))
        assert result.exit_code == 0 and " dB" in result.output, result.output
        outputs.append(np.asarray(Image.open(tmp_path / f"{name}.png")))
    assert np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[0], outputs[2])


def test_compare_never_writes_over_its_input(shipped: Path, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.fromarray(synthetic_image(1, 32, 32)).save(photo)
    before = photo.read_bytes()
    result = run("compare", str(photo), "-o", str(photo), "--overwrite")
    assert result.exit_code == 2 and "is the input image" in result.output
    assert photo.read_bytes() == before
    assert "Traceback" not in result.output
