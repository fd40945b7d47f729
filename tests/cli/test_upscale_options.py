"""``srcli upscale`` as a Real-ESRGAN user types it: its flags, output names, batch errors, file safety."""
from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from PIL import Image
from test_cli import tiny_edsr

from srcli.cli import main
from srcli.images import upscale_job

MODEL_FLAGS = {"-m", "-n", "--model", "--model-name", "--model_name", "--weights", "--help"}


def invoke(*args: str) -> Result:
    """``srcli upscale ARGS``, naming the fixture's edsr unless ARGS name a model (the default may change)."""
    model = [] if MODEL_FLAGS & set(args) else ["-m", "edsr"]
    return CliRunner().invoke(main, ["upscale", *args, *model], catch_exceptions=False)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def upscaler_arguments(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the command handed the Upscaler (tile, tile_pad, precision): the real one still runs."""
    seen: dict[str, Any] = {}
    real = upscale_job.Upscaler

    def spy(network: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real(network, **kwargs)

    monkeypatch.setattr(upscale_job, "Upscaler", spy)
    return seen


def test_input_option_adds_to_the_positional_inputs(shipped: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(str(images / "a.png"), "-i", str(images / "b.jpg"), "--input", str(images / "sub" / "c.png"),
                    "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a_edsr_x4.png", "b_edsr_x4.jpg", "c_edsr_x4.png"]
    assert invoke("-i", str(images / "a.png"), "-o", str(tmp_path / "only"), "-q").exit_code == 0
    result = invoke("-o", str(tmp_path / "none"))
    assert result.exit_code == 2 and "no input" in result.output


@pytest.mark.parametrize("flag", ["-n", "--model-name", "--model_name"])
def test_model_name_is_model(flag: str, shipped: Path, images: Path, tmp_path: Path) -> None:
    result = invoke(str(images / "a.png"), flag, "edsr", "-x", "2", "-o", str(tmp_path / "out"), "-q")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "a_edsr_x2.png").size == (48, 40)


def test_outscale_short_flag_and_names_that_keep_both_factors(shipped: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for scale in ("2", "4"):
        assert invoke(str(images / "a.png"), "-x", scale, "-s", "3.5", "-o", str(out), "-q").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_edsr_x2_s3.5.png", "a_edsr_x4_s3.5.png"]
    assert Image.open(out / "a_edsr_x2_s3.5.png").size == (84, 70)
    assert invoke(str(images / "a.png"), "-x", "2", "-s", "2", "-o", str(out), "-q").exit_code == 0
    assert (out / "a_edsr_x2.png").is_file(), "an outscale equal to the network scale adds nothing to the name"
    assert invoke(str(images / "a.png"), "-s", "0").exit_code == 2


@pytest.mark.parametrize("flags,tile", [(["-t", "0"], None), (["--tile", "none"], None), (["-t", "16"], 16),
                                        ([], "auto")])
def test_tile_values(flags: list[str], tile: Any, shipped: Path, images: Path, tmp_path: Path,
                     upscaler_arguments: dict[str, Any]) -> None:
    result = invoke(str(images / "a.png"), *flags, "-o", str(tmp_path / "out"), "-q")
    assert result.exit_code == 0, result.output
    assert upscaler_arguments["tile"] == tile


def test_tile_refuses_tiny_or_unknown_values(shipped: Path, images: Path) -> None:
    for value in ("4", "big"):
        result = invoke(str(images / "a.png"), "-t", value)
        assert result.exit_code == 2 and "--tile" in result.output


@pytest.mark.parametrize("flag", ["--tile_pad", "--tile-pad"])
def test_tile_pad_both_spellings(flag: str, shipped: Path, images: Path, tmp_path: Path,
                                 upscaler_arguments: dict[str, Any]) -> None:
    assert invoke(str(images / "a.png"), flag, "3", "-t", "8", "-o", str(tmp_path / "out"), "-q").exit_code == 0
    assert upscaler_arguments["tile_pad"] == 3 and upscaler_arguments["tile"] == 8


def test_fp32_is_precision_fp32(shipped: Path, images: Path, tmp_path: Path,
                                upscaler_arguments: dict[str, Any]) -> None:
    assert invoke(str(images / "a.png"), "--fp32", "-o", str(tmp_path / "out"), "-q").exit_code == 0
    assert upscaler_arguments["precision"] == "fp32"
    result = invoke(str(images / "a.png"), "--fp32", "--precision", "bf16")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


def test_suffix_and_ext(shipped: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke(str(images / "b.jpg"), "--suffix", "out", "--ext", "png", "-o", str(out), "-q").exit_code == 0
    assert Image.open(out / "b_out.png").format == "PNG"


@pytest.mark.parametrize("flag", ["--face_enhance", "--face-enhance"])
def test_face_enhance_is_refused_in_one_line(flag: str, shipped: Path, images: Path, tmp_path: Path) -> None:
    result = invoke(str(images / "a.png"), flag, "-o", str(tmp_path / "out"))
    assert result.exit_code == 2 and "not supported" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def transparent_png(path: Path) -> Path:
    pixels = [[(200, 30, 30, 0 if x < 8 else 255) for x in range(16)] for _ in range(16)]
    image = Image.new("RGBA", (16, 16))
    image.putdata([value for row in pixels for value in row])
    image.save(path)
    return path


def test_transparency_and_the_deprecated_alpha_mode(shipped: Path, tmp_path: Path) -> None:
    source = transparent_png(tmp_path / "t.png")
    result = invoke(str(source), "--transparency", "bicubic", "-x", "2", "-o", str(tmp_path / "new.png"), "-q")
    assert result.exit_code == 0 and "deprecated" not in result.output
    result = invoke(str(source), "--alpha-mode", "bicubic", "-x", "2", "-o", str(tmp_path / "old.png"), "-q")
    assert result.exit_code == 0
    assert [line for line in result.stderr.splitlines() if "deprecated" in line] == \
        ["note: --alpha-mode is deprecated; use --transparency (--alpha is the network blend)"]
    assert Image.open(tmp_path / "new.png").tobytes() == Image.open(tmp_path / "old.png").tobytes()
    result = invoke(str(source), "--alpha-mode", "bicubic", "--transparency", "model")
    assert result.exit_code == 2 and "contradicts" in result.output
    assert "--alpha-mode" not in invoke("--help").output and "--transparency" in invoke("--help").output


def test_summary_and_json_say_where_each_file_went(shipped: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(str(images / "a.png"), str(images / "b.jpg"), "-o", str(out))
    assert result.exit_code == 0
    assert f"{images / 'a.png'} -> {out / 'a_edsr_x4.png'}" in result.stderr.splitlines()
    assert f"{images / 'b.jpg'} -> {out / 'b_edsr_x4.jpg'}" in result.stderr.splitlines()
    result = invoke(str(images / "a.png"), "-o", str(out), "--skip-existing", "--json", "-q")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0]["status"] == "skipped" and Path(records[0]["output"]) == out / "a_edsr_x4.png"
    result = invoke(str(images / "sub" / "c.png"), "-o", str(out), "--json", "-q")
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert Path(record["output"]).is_file() and Path(record["output"]).name == "c_edsr_x4.png"


def test_weights_name_outputs_after_the_file(images: Path, tmp_path: Path) -> None:
    comic = tiny_edsr(tmp_path / "comic_x2.safetensors")
    out = tmp_path / "out"
    assert invoke(str(images / "a.png"), "--weights", str(comic), "-o", str(out), "-q").exit_code == 0
    assert invoke(str(images / "b.jpg"), "-m", str(comic), "-o", str(out), "-q").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_comic_x2.png", "b_comic_x2.jpg"]  # not _edsr_, not _x2_x2


def test_model_and_weights_are_exclusive(shipped: Path, images: Path, tmp_path: Path) -> None:
    weights = tiny_edsr(tmp_path / "mine.safetensors")
    result = invoke(str(images / "a.png"), "-m", "edsr", "--weights", str(weights),
                                       "-o", str(tmp_path / "out"))
    assert result.exit_code == 2 and "--weights" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_input_file_is_never_overwritten(shipped: Path, images: Path, tmp_path: Path) -> None:
    source = images / "a.png"
    before = source.read_bytes()
    result = invoke(str(source), "-o", str(source), "--overwrite", "-q")
    assert result.exit_code == 1 and len(error_lines(result)) == 1 and "input file" in result.stderr
    assert source.read_bytes() == before
    # in a batch: outputs named like the inputs, in the input folder
    result = invoke(str(images), "-o", str(images), "--suffix", "", "--overwrite", "-q")
    assert result.exit_code == 1 and len(error_lines(result)) == 2
    assert source.read_bytes() == before and sorted(p.name for p in images.iterdir()) == ["a.png", "b.jpg", "sub"]


def test_a_missing_input_is_reported_and_the_batch_goes_on(shipped: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(str(images / "a.png"), str(tmp_path / "typo.png"),
                                       str(images / "b.jpg"), "-o", str(out), "--json", "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert error_lines(result) == [f"error: {tmp_path / 'typo.png'}: no such file or folder"]
    statuses = [(Path(r["input"]).name, r["status"]) for r in map(json.loads, result.stdout.splitlines())]
    assert statuses == [("a.png", "ok"), ("typo.png", "failed"), ("b.jpg", "ok")]
    assert sorted(p.name for p in out.iterdir()) == ["a_edsr_x4.png", "b_edsr_x4.jpg"]
    result = invoke(str(tmp_path / "typo.png"), str(tmp_path / "nope*.png"))
    assert result.exit_code == 2, "nothing at all to do is a usage error"


def test_write_errors_name_the_output_not_the_temporary_file(shipped: Path, images: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import srcli.files

    def read_only(dir: str, prefix: str, suffix: str) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system", f"{dir}/{prefix}5rd28dt_{suffix}")

    monkeypatch.setattr(srcli.files.tempfile, "mkstemp", read_only)
    monkeypatch.chdir(tmp_path)
    result = invoke(str(images / "a.png"), "-q")
    assert result.exit_code == 1
    assert error_lines(result) == ["error: cannot write upscaled/a_edsr_x4.png: read-only file system"]
