"""Model names: the plain names are the photo-robust models, bicubic-trained ones keep explicit
names, aliases follow what is installed, and the CLI and README name the same default."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from synthetic import synthetic_image

from srcli.checkpoints import registry
from srcli.checkpoints.io import save_model
from srcli.checkpoints.resolve import default_interpolation_pair, resolve_model
from srcli.checkpoints.shipped import canonical_name, sha256_of, write_manifest
from srcli.cli import main
from srcli.defaults import DEFAULT_MODEL

README = Path(__file__).resolve().parents[2] / "README.md"


def ship(folder: Path, names: list[tuple[str, str, str]]) -> None:
    """Tiny x4 networks under ``names`` = (name, architecture, degradation of their recipe)."""
    entries = []
    for index, (name, arch, degradation) in enumerate(names):
        torch.manual_seed(index)
        config = dict(scale=4, num_blocks=1, num_features=8, **({"growth": 4} if arch == "esrgan" else {}))
        path = save_model(registry.build(arch, **config), folder / f"{name}_x4.safetensors")
        entries.append({"name": name, "architecture": arch, "file": path.name, "scales": [4], "config": config,
                        "sha256": sha256_of(path), "parameters": 1, "metrics": {},
                        "recipe": {"degradation": degradation}})
    write_manifest(entries, folder)


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    ship(folder, [("edsr-photo", "edsr", "realworld"), ("edsr", "edsr", "bicubic"),
                  ("esrgan-photo-psnr", "esrgan", "realworld"), ("esrgan-bicubic-psnr", "esrgan", "bicubic"),
                  ("esrgan-bicubic", "esrgan", "bicubic"), ("edsr-real", "edsr", "dsgan:weights/dsgan_x4.safetensors")])
    monkeypatch.setenv("SRCLI_WEIGHTS", str(folder))
    return folder


def test_the_default_is_the_photo_model(weights: Path, tmp_path: Path) -> None:
    assert DEFAULT_MODEL == "edsr-photo"
    assert resolve_model().name == "edsr-photo"
    photo = tmp_path / "photo.jpg"
    Image.fromarray(synthetic_image(1, 20, 24)).save(photo)
    result = CliRunner().invoke(main, ["upscale", str(photo), "-o", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["photo_edsr-photo_x4.jpg"]


def test_esrgan_means_the_photo_gan_once_shipped_and_its_psnr_parent_until_then(weights: Path) -> None:
    assert canonical_name("esrgan") == "esrgan-photo-psnr"
    assert resolve_model("esrgan").name == "esrgan-photo-psnr"
    assert canonical_name("esrgan-psnr") == "esrgan-photo-psnr"
    assert default_interpolation_pair() == ("esrgan-bicubic-psnr", "esrgan-bicubic")
    ship(weights, [("edsr-photo", "edsr", "realworld"), ("esrgan-photo-psnr", "esrgan", "realworld"),
                   ("esrgan-photo", "esrgan", "realworld"), ("esrgan-bicubic-psnr", "esrgan", "bicubic"),
                   ("esrgan-bicubic", "esrgan", "bicubic")])
    assert canonical_name("esrgan") == "esrgan-photo"
    assert default_interpolation_pair() == ("esrgan-photo-psnr", "esrgan-photo")
    assert resolve_model("esrgan", alpha=0.5).name == "esrgan-photo-a0.5"


def test_a_weights_folder_shipping_the_plain_name_keeps_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ship(tmp_path, [("esrgan", "esrgan", "bicubic"), ("esrgan-photo-psnr", "esrgan", "realworld")])
    monkeypatch.setenv("SRCLI_WEIGHTS", str(tmp_path))
    assert canonical_name("esrgan") == "esrgan"


def test_models_says_what_each_model_is_for(weights: Path) -> None:
    result = CliRunner().invoke(main, ["models", "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]  # one record per line
    weights = [r for r in records if r["kind"] == "weights"]
    purposes = {row["name"]: row["for"] for row in weights}
    assert purposes["edsr-photo"].startswith("real photos")
    assert purposes["edsr"].startswith("clean / bicubic")
    assert purposes["edsr-real"].startswith("the DSGAN domain")
    assert [row["name"] for row in weights if row["default"]] == ["edsr-photo"]
    assert {"kind": "alias", "name": "esrgan", "means": "esrgan-photo-psnr",
            "candidates": "esrgan-photo, esrgan-photo-psnr"} in records
    table = CliRunner().invoke(main, ["models"])  # not a terminal: rows are not cut to 80 columns
    assert "real photos (JPEG, noise, blur)" in table.output


def test_interpolate_blends_the_pair_it_names(weights: Path, tmp_path: Path) -> None:
    target = tmp_path / "mix.safetensors"
    result = CliRunner().invoke(main, ["interpolate", "--alpha", "0.3", "-m", "esrgan-bicubic", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "esrgan-bicubic-psnr_x4.safetensors -> esrgan-bicubic_x4.safetensors" in result.output
    missing = CliRunner().invoke(main, ["interpolate", "--alpha", "0.3", "-m", "esrgan-photo", "-o",
                                        str(tmp_path / "m2.safetensors")])
    assert missing.exit_code == 1 and "esrgan-photo is not installed" in missing.output
    assert "pairs you can blend: esrgan-bicubic" in missing.output
    Image.fromarray(synthetic_image(2, 12, 12)).save(tmp_path / "x.png")
    on_the_fly = CliRunner().invoke(main, ["upscale", str(tmp_path / "x.png"), "-m", "esrgan", "--alpha", "0.5",
                                           "-o", str(tmp_path / "out")])
    assert on_the_fly.exit_code != 0 and "blends esrgan-photo-psnr with esrgan-photo" in on_the_fly.output


def test_readme_names_the_default_the_cli_uses() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Which model?"):]
    section = section[:section.index("\n## ", 4)]
    assert re.search(rf"`{re.escape(DEFAULT_MODEL)}`[^\n]*default", section), "README's model table must mark the default"
