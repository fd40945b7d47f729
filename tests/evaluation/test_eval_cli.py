"""``evaluate`` and ``srcli eval`` on a tiny synthetic folder (bicubic baseline and a tiny network)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from srcli.checkpoints import registry
from srcli.checkpoints.io import save_model
from srcli.evaluation.datasets import ImagePair, load_pair
from srcli.evaluation.evaluate import EvalError, ModelSpec, evaluate, results_json
from srcli.evaluation.metrics import psnr, ssim
from srcli.imresize import imresize, quantize


def make_folder(folder: Path, count: int = 2, size: tuple[int, int] = (26, 30)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size[0], 0:size[1]]
    for index in range(count):
        base = np.stack([np.sin(x / (3 + index)), np.cos(y / 4), np.sin((x + y) / 5)], axis=-1) * 0.4 + 0.5
        pixels = np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1)
        Image.fromarray((pixels * 255).round().astype(np.uint8)).save(folder / f"img{index}.png")
    return folder


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep dataset lookup and the tile-pad cache away from the real home folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SRCLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SRCLI_DATA", raising=False)


@pytest.fixture
def tiny_set(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "tiny")


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_model(registry.build("edsr", scale=2, num_blocks=1, num_features=8), tmp_path / "tiny_x2.safetensors")


def run_cli(*args: str):  # noqa: ANN201 - click Result
    from srcli.cli.eval import eval_command

    return CliRunner().invoke(eval_command, list(args), prog_name="srcli eval")


# ----------------------------------------------------------------------------- library


def test_evaluate_bicubic_matches_direct_metrics(tiny_set: Path) -> None:
    results = evaluate([tiny_set], ["bicubic"], [2, 3])
    assert [(r.model, r.scale, r.dataset) for r in results] == [("bicubic", 2, "tiny"), ("bicubic", 3, "tiny")]
    for result in results:
        assert [image.name for image in result.images] == ["img0", "img1"]
        lr, hr = load_pair(ImagePair("img1", tiny_set / "img1.png"), result.scale)
        sr = quantize(imresize(lr.double(), float(result.scale)))
        assert result.images[1].psnr == pytest.approx(psnr(sr, hr, border=result.scale))
        assert result.images[1].ssim == pytest.approx(ssim(sr, hr, border=result.scale))
        assert result.psnr == pytest.approx(np.mean([i.psnr for i in result.images]))
        assert result.border == result.scale and result.channel == "y"


def test_evaluate_border_rgb_and_a_tiny_network(tiny_set: Path, tiny_weights: Path) -> None:
    seen = []
    results = evaluate([tiny_set], ["bicubic", ModelSpec("tiny", str(tiny_weights))], [2], border=0, rgb=True,
                       progress=lambda done, total, label: seen.append((done, total)))
    assert [r.model for r in results] == ["bicubic", "tiny"]
    assert all(r.border == 0 and r.channel == "rgb" for r in results)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(0 < image.psnr < 60 and image.seconds >= 0 for r in results for image in r.images)


def test_evaluate_refuses_an_empty_request(tiny_set: Path) -> None:
    with pytest.raises(EvalError, match="no model"):
        evaluate([tiny_set], [], [2])


def test_identical_images_give_inf_and_json_null(tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    folder.mkdir()
    Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(folder / "flat.png")
    results = evaluate([folder], ["bicubic"], [2])
    assert results[0].psnr == math.inf and results[0].ssim == pytest.approx(1.0)
    data = json.loads(results_json(results))
    assert data["results"][0]["psnr"] is None and data["results"][0]["images"][0]["psnr"] is None


# ----------------------------------------------------------------------------- CLI


def test_cli_bicubic_prints_table_and_writes_json_and_csv(tiny_set: Path, tmp_path: Path) -> None:
    json_path, csv_path = tmp_path / "out" / "r.json", tmp_path / "r.csv"
    result = run_cli(str(tiny_set), "--model", "bicubic", "-x", "2", "-x", "3", "--per-image",
                     "--json", str(json_path), "--csv", str(csv_path), "--quiet")
    assert result.exit_code == 0, result.output
    assert "Mean PSNR" in result.output and "tiny PSNR" in result.output and "img1" in result.output
    data = json.loads(json_path.read_text())["results"]
    assert [(r["model"], r["scale"]) for r in data] == [("bicubic", 2), ("bicubic", 3)]
    assert f"{data[0]['psnr']:.2f}" in result.output and len(data[0]["images"]) == 2
    rows = list(csv.DictReader(csv_path.open()))
    assert [row["image"] for row in rows] == ["img0", "img1", "(mean)"] * 2
    assert float(rows[2]["psnr"]) == pytest.approx(data[0]["psnr"])
    assert not list(tmp_path.glob("out/.*.tmp"))


def test_cli_compares_models_and_saves_images(tiny_set: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "sr"
    result = run_cli(str(tiny_set), "-m", "bicubic", "--weights", f"mine={tiny_weights}", "-x", "2",
                     "--device", "cpu", "--tile", "16", "--tile-pad", "4", "--save-images", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    assert "bicubic" in result.output and "mine" in result.output
    saved = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert saved == ["tiny/bicubic_x2/img0.png", "tiny/bicubic_x2/img1.png",
                     "tiny/mine_x2/img0.png", "tiny/mine_x2/img1.png"]
    with Image.open(out / "tiny" / "mine_x2" / "img0.png") as image:
        assert image.size == (30, 26)


def test_markdown_table_has_parameters_speed_and_bicubic_beside_the_model(tiny_set: Path, tiny_weights: Path,
                                                                          tmp_path: Path) -> None:
    table = tmp_path / "results.md"
    result = run_cli(str(tiny_set), "-m", "bicubic", "--weights", f"mine={tiny_weights}", "-x", "2",
                     "--device", "cpu", "--markdown", str(table), "--quiet")
    assert result.exit_code == 0, result.output
    lines = table.read_text().splitlines()
    assert lines[0] == "| model | scale | parameters | tiny PSNR / SSIM (Y) | ms per output MP |"
    rows = [line.strip("| ").split(" | ") for line in lines[2:]]
    assert [row[:2] for row in rows] == [["bicubic", "x2"], ["mine", "x2"]]
    expected_parameters = sum(p.numel() for p in registry.build("edsr", scale=2, num_blocks=1, num_features=8)
                              .parameters())
    assert rows[0][2] == "-" and rows[1][2] == f"{expected_parameters:,}"
    results = evaluate([tiny_set], ["bicubic"], [2])
    psnr_text = rows[0][3].split(" / ")[0]
    assert psnr_text == f"{results[0].psnr:.2f}" and float(rows[1][4]) > 0
    assert f"{expected_parameters:,}" in result.output  # the console table shows them too


def test_a_model_missing_one_of_several_scales_is_skipped_there(tiny_set: Path, tiny_weights: Path) -> None:
    result = run_cli(str(tiny_set), "-m", "bicubic", "--weights", f"mine={tiny_weights}", "-x", "2", "-x", "3",
                     "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    assert "skipped:" in result.output and "x3" in result.output
    skipped: list[str] = []
    results = evaluate([tiny_set], ["bicubic", ModelSpec("mine", str(tiny_weights))], [2, 3], on_skip=skipped.append)
    assert [(r.model, r.scale) for r in results] == [("bicubic", 2), ("bicubic", 3), ("mine", 2)]
    assert len(skipped) == 1


def test_without_a_model_it_measures_the_default_model_beside_bicubic(tiny_set: Path, tmp_path: Path) -> None:
    json_path = tmp_path / "r.json"
    result = run_cli(str(tiny_set), "-x", "2", "--device", "cpu", "--json", str(json_path), "--quiet")
    assert result.exit_code == 0, result.output
    data = json.loads(json_path.read_text())["results"]
    assert [(r["model"], r["scale"]) for r in data] == [("bicubic", 2), ("edsr", 2)]
    assert all(math.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1 for r in data)


@pytest.mark.parametrize("args", [
    ["Set9", "--model", "bicubic", "--data-root", "{tmp}"],
    ["{set}", "--model", "bicubic", "-x", "2", "--border", "20"],
    ["{set}", "--weights", "{tmp}/missing.safetensors"],
    ["{set}", "--weights", "{weights}", "-x", "3"],
])
def test_user_errors_are_one_line_without_traceback(args: list[str], tiny_set: Path, tiny_weights: Path,
                                                    tmp_path: Path) -> None:
    filled = [a.format(tmp=tmp_path, set=tiny_set, weights=tiny_weights) for a in args]
    result = run_cli(*filled, "--quiet")
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_missing_dataset_message_names_the_places(tmp_path: Path) -> None:
    result = run_cli("Set14", "--model", "bicubic", "--data-root", str(tmp_path / "root"))
    assert result.exit_code == 1
    assert str(tmp_path / "root") in result.stderr and "LR_bicubic" in result.stderr
