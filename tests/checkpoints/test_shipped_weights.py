"""Every file listed in weights/manifest.json loads, matches its sha256 and tiles without seams."""
from __future__ import annotations

import pytest
import torch
from synthetic import synthetic_image

from srcli.checkpoints.resolve import resolve_model
from srcli.checkpoints.shipped import entries, sha256_of
from srcli.inference.upscaler import Upscaler

SHIPPED = [(entry.name, scale) for entry in entries() for scale in entry.scales]


def test_manifest_entries_are_complete() -> None:
    for entry in entries():
        assert entry.path.is_file(), entry.file
        assert sha256_of(entry.path) == entry.sha256, entry.file
        for key in ("architecture", "scales", "recipe", "license", "parameters"):
            assert key in entry.raw, (entry.name, key)


@pytest.mark.parametrize("name,scale", SHIPPED)
def test_shipped_model_tiles_like_untiled(name: str, scale: int, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SRCLI_CACHE", str(tmp_path))
    resolved = resolve_model(name, scale)
    image = torch.from_numpy(synthetic_image(11, 40, 52)).permute(2, 0, 1).float() / 255
    if getattr(resolved.network, "noise_channels", 0):  # a noise-input DSGAN: compare its deterministic part
        monkeypatch.setattr(resolved.network, "draw_noise",
                            lambda x: torch.zeros(x.shape[0], resolved.network.noise_channels, *x.shape[-2:]))
    whole = Upscaler(resolved.network, device="cpu", precision="fp32", tile=None)
    tiled = Upscaler(resolved.network, device="cpu", precision="fp32", tile=16)
    difference = (whole.upscale(image) - tiled.upscale(image)).abs().max().item()
    assert difference <= 0.5 / 255, f"{name} x{scale}: {difference * 255:.3f}/255 with pad {tiled.pad()}"


CHECKED = [(entry.name, scale, entry.raw["metrics"]["check_examples_lowres"][str(scale)])
           for entry in entries() if entry.architecture != "dsgan" for scale in entry.scales]


@pytest.mark.parametrize("name,scale,recorded", CHECKED, ids=[f"{name}-x{scale}" for name, scale, _ in CHECKED])
def test_a_fresh_eval_reproduces_the_manifest_check_figure(name: str, scale: int, recorded: dict,
                                                           tmp_path, monkeypatch) -> None:
    """``srcli eval examples/lowres.png -m NAME -x S`` as a user types it gives the manifest's figure."""
    import json
    from pathlib import Path

    from click.testing import CliRunner

    from srcli.cli import main

    monkeypatch.setenv("SRCLI_CACHE", str(tmp_path))
    image = Path(__file__).resolve().parents[2] / "examples" / "lowres.png"
    result = CliRunner().invoke(main, ["eval", str(image), "-m", name, "-x", str(scale), "--device", "cpu",
                                       "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[0])
    assert record["psnr"] == pytest.approx(recorded["psnr"], abs=0.01)
    assert record["ssim"] == pytest.approx(recorded["ssim"], abs=0.001)
