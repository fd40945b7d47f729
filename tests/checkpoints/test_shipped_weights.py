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
