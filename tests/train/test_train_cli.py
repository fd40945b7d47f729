"""``srcli train`` / ``srcli export`` as a user meets them: run-folder safety, progress lines, help, formats."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from srcli.checkpoints.io import load_model, read_state_dict
from srcli.cli import main
from srcli.train.config import FAMILIES, FAMILY_DEFAULTS
from srcli.train.progress import ProgressEvery, TrainingProgress, eta, parse_progress_every


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "edsr", "--data", str(data), "--out", str(out), "--batch", "2", "--patch", "8", "--blocks", "1",
            "--features", "8", "--workers", "0", "--amp", "off", *extra]


def progress_lines(result: Result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("iteration ")]


def test_an_existing_run_is_refused_unless_resumed_or_overwritten(image_folder: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = invoke(*train_args(image_folder, run_dir, "--iters", "3", "--quiet", "--val", str(image_folder)))
    assert first.exit_code == 0 and (run_dir / "best.safetensors").is_file()
    checkpoint = (run_dir / "checkpoints" / "last.pt").read_bytes()
    result = invoke(*train_args(image_folder, run_dir, "--iters", "2", "--quiet"))
    assert result.exit_code == 1 and "--resume" in result.output and "--overwrite" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == checkpoint, "the refused run touched nothing"
    result = invoke(*train_args(image_folder, run_dir, "--iters", "2", "--quiet", "--overwrite"))
    assert result.exit_code == 0 and "finished at iteration 2" in result.output
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [record["iteration"] for record in log] == [2], "the old log was cleared, not appended to"
    assert not (run_dir / "best.safetensors").exists(), "the old run's best weights are gone too"
    result = invoke("train", "edsr", "--resume", str(run_dir), "--overwrite")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke(*train_args(image_folder, empty, "--iters", "1", "--quiet")).exit_code == 0, "an empty folder is fine"


def test_progress_lines_when_not_a_terminal(image_folder: Path, tmp_path: Path) -> None:
    result = invoke(*train_args(image_folder, tmp_path / "run", "--iters", "6", "--progress-every", "2it",
                                "--val", str(image_folder), "--val-every", "3"))
    assert result.exit_code == 0, result.output
    lines = progress_lines(result)
    assert [line.split()[1] for line in lines] == ["2/6", "4/6", "6/6"]
    assert all(" it/s" in line and "loss " in line and "ETA " in line for line in lines)
    assert "val PSNR" not in lines[0] and "@3" in lines[1]
    assert re.search(r"val PSNR [\d.]+ dB @6", lines[-1]), "the final line shows the last validation"
    quiet = invoke(*train_args(image_folder, tmp_path / "quiet", "--iters", "4", "--progress-every", "1it", "--quiet"))
    assert quiet.exit_code == 0 and not progress_lines(quiet)


def test_eta_comes_from_the_time_budget_not_the_default_iterations(image_folder: Path, tmp_path: Path) -> None:
    """--time-budget with the 300,000-iteration default: the ETA is the budget left, not hundreds of hours."""
    result = invoke(*train_args(image_folder, tmp_path / "run", "--time-budget", "0.001"))
    assert result.exit_code == 0 and "time-budget at iteration 1" in result.output
    (line,) = progress_lines(result)
    assert line.startswith("iteration 1/300000") and line.endswith("ETA 0s (time budget)")


def test_eta_and_progress_with_a_fake_clock() -> None:
    now = [0.0]
    lines: list[str] = []
    progress = TrainingProgress("lines", total=300_000, start=0, budget=60.0, every=ProgressEvery(seconds=10),
                                echo=lines.append, clock=lambda: now[0])
    for iteration in range(1, 21):
        now[0] += 1.0
        progress.update(iteration, {"loss": 0.5})
    assert lines == ["iteration 10/300000  1.00 it/s  loss 0.5  elapsed 10s  ETA 50s (time budget)",
                     "iteration 20/300000  1.00 it/s  loss 0.5  elapsed 20s  ETA 40s (time budget)"]
    progress.validated(20, 30.5)
    progress.close()
    assert lines[-1] == "iteration 20/300000  1.00 it/s  loss 0.5  val PSNR 30.500 dB @20  elapsed 20s  ETA 40s (time budget)"
    assert eta(100, 200, 10.0, 5.0, None) == (10.0, "iters")
    assert eta(100, 200, 10.0, 5.0, 3600.0) == (10.0, "iters")
    assert eta(0, 300_000, 0.0, 0.0, 60.0) == (60.0, "time budget")
    assert parse_progress_every("500it") == ProgressEvery(seconds=None, iterations=500)
    assert parse_progress_every("2m") == ProgressEvery(seconds=120.0)
    result = CliRunner().invoke(main, ["train", "edsr", "--progress-every", "often"])
    assert result.exit_code == 2 and "--progress-every" in result.output


def help_entries(command: str) -> dict[str, str]:
    """``srcli COMMAND --help`` as {option name: its whole entry} (wrapped lines joined)."""
    entries: dict[str, str] = {}
    names: list[str] = []
    for line in invoke(command, "--help").output.splitlines():
        match = re.match(r"\s{2}(-[\w-]+(?:, -[\w-]+)*)", line)
        if match:
            names = match.group(1).split(", ")
            entries.update({name: line.strip() for name in names})
        elif names and line.startswith(" " * 10):
            entries.update({name: entries[name] + " " + line.strip() for name in names})
    return entries


@pytest.mark.parametrize("flag", ["-x", "--iters", "--batch", "--patch", "--lr", "--seed", "--amp", "--workers",
                                  "--val-every", "--checkpoint-every"])
def test_train_help_states_every_default(flag: str) -> None:
    assert "default" in help_entries("train")[flag]


def test_train_help_family_defaults_come_from_the_config() -> None:
    text = " ".join(help_entries("train").values())
    for key in ("scale", "patch"):
        expected = ", ".join(f"{family} {FAMILY_DEFAULTS[family][key]}" for family in FAMILIES)
        assert f"family default: {expected}" in text


def test_export_writes_the_format_the_suffix_names(image_folder: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert invoke(*train_args(image_folder, run_dir, "--iters", "2", "--quiet")).exit_code == 0
    weights = tmp_path / "w"
    assert invoke("export", str(run_dir), "-o", str(weights / "mine_x2.safetensors")).exit_code == 0
    result = invoke("export", str(run_dir), "-o", str(weights / "mine_x2.pth"))
    assert result.exit_code == 0, result.output
    pth = weights / "mine_x2.pth"
    assert pth.read_bytes()[:2] == b"PK", "a torch (zip) file, not safetensors bytes"
    loaded = torch.load(pth, weights_only=True)
    reference, _ = read_state_dict(weights / "mine_x2.safetensors")
    assert loaded.keys() == reference.keys() and all(torch.equal(loaded[k], reference[k]) for k in reference)
    assert load_model(pth).architecture == "edsr"
    files = {entry["file"] for entry in json.loads((weights / "manifest.json").read_text())["models"]}
    assert "mine_x2.pth" in files
    result = CliRunner().invoke(main, ["export", str(run_dir), "-o", str(tmp_path / "mine.bin")])
    assert result.exit_code == 2 and ".safetensors" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "mine.bin").exists()
    help_text = " ".join(invoke("export", "--help").output.split())
    assert "manifest.json beside the output" in help_text and "weights/manifest.json" not in help_text
