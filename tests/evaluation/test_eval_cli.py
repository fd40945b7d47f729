"""``evaluate`` and ``srcli eval`` on a tiny synthetic folder (bicubic baseline and a tiny network)."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from synthetic import synthetic_image

from srcli.checkpoints import registry
from srcli.checkpoints.io import save_model
from srcli.evaluation.datasets import ImagePair, load_pair, read_rgb
from srcli.evaluation.evaluate import (
    CSV_FIELDS,
    EvalError,
    ModelSpec,
    bicubic_runner,
    evaluate,
    results_csv,
    results_json,
    results_markdown,
)
from srcli.evaluation.metrics import psnr, ssim
from srcli.evaluation.niqe import niqe
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
                     "--json-file", str(json_path), "--csv", str(csv_path), "--quiet")
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


def ship_default_model(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A weights folder whose only SR model is a tiny x2 network under the default name."""
    from srcli.checkpoints.shipped import sha256_of, write_manifest
    from srcli.defaults import DEFAULT_MODEL

    folder.mkdir()
    torch.manual_seed(0)
    path = save_model(registry.build("edsr", scale=2, num_blocks=1, num_features=8), folder / "default_x2.safetensors")
    write_manifest([{"name": DEFAULT_MODEL, "architecture": "edsr", "file": path.name, "scales": [2],
                     "sha256": sha256_of(path), "parameters": 1, "metrics": {}}], folder)
    monkeypatch.setenv("SRCLI_WEIGHTS", str(folder))


def test_without_a_model_it_measures_the_default_model_beside_bicubic(tiny_set: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from srcli.defaults import DEFAULT_MODEL

    ship_default_model(tmp_path / "weights", monkeypatch)
    json_path = tmp_path / "r.json"
    result = run_cli(str(tiny_set), "-x", "2", "--device", "cpu", "--json-file", str(json_path), "--quiet")
    assert result.exit_code == 0, result.output
    data = json.loads(json_path.read_text())["results"]
    assert [(r["model"], r["scale"]) for r in data] == [("bicubic", 2), (DEFAULT_MODEL, 2)]
    assert all(math.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1 for r in data)


def test_models_may_be_comma_separated_as_in_compare(tiny_set: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from srcli.defaults import DEFAULT_MODEL

    ship_default_model(tmp_path / "weights", monkeypatch)
    result = run_cli(str(tiny_set), "-m", f"bicubic, {DEFAULT_MODEL}", "-x", "2", "--device", "cpu", "--json",
                     "--quiet")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["model"] for r in records] == ["bicubic", DEFAULT_MODEL]


def test_datasets_sharing_a_folder_name_are_labelled_by_their_parent(tmp_path: Path) -> None:
    first = make_folder(tmp_path / "photos" / "val")
    second = make_folder(tmp_path / "realworld" / "val", size=(30, 34))
    results = evaluate([str(first), str(second), str(tiny := make_folder(tmp_path / "tiny"))], ["bicubic"], [2])
    assert [r.dataset for r in results] == ["photos/val", "realworld/val", "tiny"]
    assert results[0].psnr != results[1].psnr and tiny.name == "tiny"


def test_json_prints_one_record_per_result_on_stdout(tiny_set: Path, tiny_weights: Path) -> None:
    result = run_cli(str(tiny_set), "-m", "bicubic", "--weights", str(tiny_weights),
                     "-x", "2", "--tile", "none", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["model"], r["scale"]) for r in records] == [("bicubic", 2), ("tiny_x2", 2)]
    assert all("images" not in r and math.isfinite(r["psnr"]) for r in records)
    old_habit = run_cli(str(tiny_set), "-m", "bicubic", "--json", "out.json")
    assert old_habit.exit_code == 2 and "--json-file FILE" in old_habit.output


@pytest.mark.parametrize("args", [
    ["Set9", "--model", "bicubic", "--data-root", "{tmp}"],
    ["{set}", "--model", "bicubic", "-x", "2", "--border", "20"],
    ["{set}", "--weights", "{tmp}/missing.safetensors"],
    ["{set}", "--weights", "{weights}", "-x", "3"],
    ["{set}", "--model", "none"],
    ["{set}", "--model", "input", "--metric", "psnr,niqe"],
    ["{set}", "--model", "bicubic", "--metric", "lpips"],
    ["{set}", "--model", "bicubic", "--metric", "psnr,sharpness"],
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


# ----------------------------------------------------------------------------- NIQE


def make_photos(folder: Path, sizes: tuple[tuple[int, int], ...] = ((100, 200), (120, 110), (40, 60))) -> Path:
    """LR 'photos' (no HR anywhere): two NIQE can score once upscaled, one too small even then."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, (height, width) in enumerate(sizes):
        Image.fromarray(synthetic_image(10 + index, height, width)).save(folder / f"photo{index}.png")
    return folder


def test_niqe_alone_upscales_the_images_given_and_scores_the_output(tmp_path: Path) -> None:
    photos = make_photos(tmp_path / "photos")
    bicubic, given = evaluate([photos], ["bicubic", "input"], [2], metrics="niqe")
    assert (bicubic.model, given.model) == ("bicubic", "none")
    assert bicubic.metrics == given.metrics == ("niqe",) and not bicubic.reference
    assert bicubic.layout == "images as inputs, no reference"
    assert (bicubic.border, given.border, given.parameters) == (2, 0, None)
    for index, name in enumerate(["photo0", "photo1"]):
        image = read_rgb(photos / f"{name}.png").float()
        assert bicubic.images[index].niqe == pytest.approx(niqe(bicubic_runner(2)(image), crop_border=2))
    assert given.images[0].niqe == pytest.approx(niqe(read_rgb(photos / "photo0.png")))
    assert math.isnan(given.images[1].niqe)  # 120x110: one 96x96 block, too few to fit a covariance
    assert (bicubic.niqe_unscored, given.niqe_unscored) == (1, 2)
    assert bicubic.niqe == pytest.approx((bicubic.images[0].niqe + bicubic.images[1].niqe) / 2)
    assert given.niqe == given.images[0].niqe
    assert all(math.isnan(image.psnr) for image in bicubic.images)
    data = json.loads(results_json([bicubic, given]))["results"]
    assert data[0]["metrics"] == ["niqe"] and data[0]["niqe_unscored"] == 1
    assert "psnr" not in data[0] and "ssim" not in data[0] and "psnr" not in data[0]["images"][0]
    assert data[0]["images"][2]["niqe"] is None and data[0]["niqe"] == pytest.approx(bicubic.niqe)
    rows = list(csv.reader(io.StringIO(results_csv([bicubic, given]))))
    assert rows[0] == ["dataset", "model", "scale", "image", "niqe", "seconds", "border", "channel", "path"]
    assert rows[3][3:5] == ["photo2", "nan"] and float(rows[4][4]) == pytest.approx(bicubic.niqe)
    assert results_markdown([bicubic, given]).splitlines()[0] == \
        "| model | scale | parameters | photos NIQE | ms per output MP |"


def test_niqe_alone_reads_only_the_lr_side_of_a_paired_dataset(tmp_path: Path) -> None:
    make_photos(tmp_path / "paired" / "lr" / "X2", sizes=((100, 200),))
    hr = tmp_path / "paired" / "hr"
    hr.mkdir()
    (hr / "photo0.png").write_bytes(b"not an image: never read without PSNR/SSIM")
    [result] = evaluate([tmp_path / "paired"], ["bicubic"], [2], metrics=["niqe"])
    assert result.layout.endswith("LR images only, no reference")
    lr = read_rgb(tmp_path / "paired" / "lr" / "X2" / "photo0.png").float()
    assert result.images[0].niqe == pytest.approx(niqe(bicubic_runner(2)(lr), crop_border=2))


def test_niqe_beside_psnr_scores_the_same_sr_images(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    Image.fromarray(synthetic_image(20, 192, 208)).save(folder / "a.png")
    [result] = evaluate([folder], ["bicubic"], [2], metrics="psnr, ssim ,niqe")
    lr, hr = load_pair(ImagePair("a", folder / "a.png"), 2)
    sr = bicubic_runner(2)(lr)
    assert result.images[0].psnr == pytest.approx(psnr(sr, hr, border=2))
    assert result.images[0].niqe == pytest.approx(niqe(sr, crop_border=2))
    assert result.metrics == ("psnr", "ssim", "niqe") and result.reference


def test_metric_names_are_checked_before_any_work(tiny_set: Path) -> None:
    with pytest.raises(EvalError, match="unknown metric 'psnrr'"):
        evaluate([tiny_set], ["bicubic"], [2], metrics="psnrr")
    with pytest.raises(EvalError, match="docs/metrics.md"):
        evaluate([tiny_set], ["bicubic"], [2], metrics=["niqe", "pi"])
    with pytest.raises(EvalError, match="no-reference metric"):
        evaluate([tiny_set], ["bicubic", "none"], [2], metrics="ssim,niqe")


def test_default_reports_have_no_niqe(tiny_set: Path) -> None:
    results = evaluate([tiny_set], ["bicubic"], [2])
    assert results_csv(results).splitlines()[0] == ",".join(CSV_FIELDS)
    data = json.loads(results_json(results))["results"][0]
    assert "niqe" not in data and "niqe" not in data["images"][0] and data["metrics"] == ["psnr", "ssim"]


def test_cli_niqe_of_photos_as_they_are_and_upscaled(tmp_path: Path) -> None:
    photos = make_photos(tmp_path / "photos")
    csv_path, table = tmp_path / "r.csv", tmp_path / "r.md"
    result = run_cli(str(photos), "-m", "none", "-m", "bicubic", "--metric", "niqe", "-x", "2", "--per-image",
                     "--csv", str(csv_path), "--markdown", str(table), "--quiet")
    assert result.exit_code == 0, result.output
    assert "Mean NIQE on Y" in result.output and "photos NIQE" in result.output and "PSNR" not in result.output
    assert "none NIQE" in result.output and "n/a" in result.output and "not scored" in result.output
    assert "images as inputs, no reference" in result.output
    expected = evaluate([photos], ["bicubic"], [2], metrics="niqe")[0].niqe
    assert f"{expected:.3f}" in result.output
    rows = list(csv.DictReader(csv_path.open()))
    assert [row["model"] for row in rows] == ["none"] * 4 + ["bicubic"] * 4 and "psnr" not in rows[0]
    lines = table.read_text().splitlines()
    assert lines[0] == "| model | scale | parameters | photos NIQE | ms per output MP |"
    assert lines[3].startswith(f"| bicubic | x2 | - | {expected:.3f} |")


def test_cli_psnr_ssim_and_niqe_together(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    Image.fromarray(synthetic_image(21, 192, 208)).save(folder / "a.png")
    json_path, table = tmp_path / "r.json", tmp_path / "r.md"
    result = run_cli(str(folder), "-m", "bicubic", "--metric", "psnr,ssim", "--metric", "niqe", "-x", "2",
                     "--json-file", str(json_path), "--markdown", str(table), "--quiet")
    assert result.exit_code == 0, result.output
    assert "Mean PSNR (dB) / SSIM on Y, NIQE on Y" in result.output and "big NIQE" in result.output
    data = json.loads(json_path.read_text())["results"][0]
    assert set(data["images"][0]) >= {"psnr", "ssim", "niqe"} and data["niqe_unscored"] == 0
    assert table.read_text().splitlines()[0] == \
        "| model | scale | parameters | big PSNR / SSIM (Y) / NIQE | ms per output MP |"
    cells = table.read_text().splitlines()[2].split(" | ")[3].split(" / ")
    assert cells == [f"{data['psnr']:.2f}", f"{data['ssim']:.4f}", f"{data['niqe']:.3f}"]
