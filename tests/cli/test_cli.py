"""The command line as a user runs it: exit codes, one-line errors, file safety, shipped weights."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from synthetic import synthetic_image

from srcli import save_model
from srcli.checkpoints import registry
from srcli.checkpoints.io import load_model
from srcli.checkpoints.shipped import sha256_of, write_manifest
from srcli.cli import main


def run(*args: str) -> "CliRunner.invoke":
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def tiny_edsr(path: Path, scale: int = 2, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return save_model(registry.build("edsr", scale=scale, num_blocks=1, num_features=8), path)


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights folder like the real one, with tiny networks: the default edsr-photo x2/x4, edsr x2/x4
    (bicubic-trained) and the esrgan-bicubic-psnr/esrgan-bicubic pair."""
    folder = tmp_path / "weights"
    folder.mkdir()
    entries = []
    for name, arch, scale, seed in (("edsr-photo", "edsr", 2, 0), ("edsr-photo", "edsr", 4, 1), ("edsr", "edsr", 2, 4),
                                    ("edsr", "edsr", 4, 5), ("esrgan-bicubic-psnr", "esrgan", 4, 2),
                                    ("esrgan-bicubic", "esrgan", 4, 3)):
        torch.manual_seed(seed)
        config = dict(scale=scale, num_blocks=1, num_features=8)
        if arch == "esrgan":
            config["growth"] = 4
        model = registry.build(arch, **config)
        path = save_model(model, folder / f"{name}_x{scale}.safetensors")
        entries.append({"name": name, "architecture": arch, "file": path.name, "scales": [scale],
                        "sha256": sha256_of(path), "parameters": 1, "metrics": {}})
    write_manifest(entries, folder)
    monkeypatch.setenv("SRCLI_WEIGHTS", str(folder))
    return folder


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(synthetic_image(0, 20, 24)).save(folder / "a.png")
    Image.fromarray(synthetic_image(1, 18, 16)).save(folder / "b.jpg", quality=95)
    Image.fromarray(synthetic_image(2, 16, 16)).save(folder / "sub" / "c.png")
    return folder


def test_help_and_usage_errors() -> None:
    assert run("--help").exit_code == 0
    for command in ("upscale", "eval", "train", "interpolate", "models", "degrade", "export", "plot"):
        assert run(command, "--help").exit_code == 0, command
    result = CliRunner().invoke(main, ["upscale"])
    assert result.exit_code == 2
    result = CliRunner().invoke(main, ["upscale", "nowhere.png"])
    assert result.exit_code == 2 and "no such file" in result.output and "Traceback" not in result.output


def test_models_lists_architectures_and_weights(shipped: Path) -> None:
    result = run("models", "--json")
    records = [json.loads(line) for line in result.output.splitlines()]
    assert {row["name"] for row in records if row["kind"] == "architecture"} == set(registry.ARCHITECTURES)
    assert {row["name"] for row in records if row["kind"] == "weights"} == \
        {"edsr-photo", "edsr", "esrgan-bicubic", "esrgan-bicubic-psnr"}
    assert run("models").exit_code == 0


def test_upscale_default_model_and_naming(shipped: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("upscale", str(images / "a.png"), str(images / "b.jpg"), "-o", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    a = Image.open(out / "a_edsr-photo_x4.png")  # the default model is the photo one
    assert a.size == (24 * 4, 20 * 4)
    assert Image.open(out / "b_edsr-photo_x4.jpg").format == "JPEG"


def test_upscale_scale_choice_and_single_file_output(shipped: Path, images: Path, tmp_path: Path) -> None:
    target = tmp_path / "one.png"
    assert run("upscale", str(images / "a.png"), "-x", "2", "-o", str(target), "-q").exit_code == 0
    assert Image.open(target).size == (48, 40)
    result = CliRunner().invoke(main, ["upscale", str(images / "a.png"), "-x", "3", "-o", str(tmp_path / "x3")])
    assert result.exit_code == 1 and "x2, x4" in result.output


def test_upscale_refuses_a_degradation_model(images: Path, tmp_path: Path) -> None:
    weights = save_model(registry.build("dsgan", num_blocks=1, num_features=8), tmp_path / "dsgan_x4.safetensors")
    result = CliRunner().invoke(main, ["upscale", str(images / "a.png"), "--weights", str(weights),
                                       "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "srcli degrade" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_no_overwrite_and_skip_existing(shipped: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "a_edsr-photo_x4.png"
    existing.write_bytes(b"precious")
    result = CliRunner().invoke(main, ["upscale", str(images / "a.png"), str(images / "sub" / "c.png"),
                                       "-o", str(out), "-q"])
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert existing.read_bytes() == b"precious"
    assert (out / "c_edsr-photo_x4.png").is_file()
    result = run("upscale", str(images / "a.png"), "-o", str(out), "-q", "--skip-existing")
    assert result.exit_code == 0 and existing.read_bytes() == b"precious"
    result = run("upscale", str(images / "a.png"), "-o", str(out), "-q", "--overwrite")
    assert result.exit_code == 0 and Image.open(existing).size == (96, 80)
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_bad_inputs_fail_alone(shipped: Path, images: Path, tmp_path: Path) -> None:
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    truncated = images / "truncated.png"
    Image.fromarray(synthetic_image(5, 32, 32)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["upscale", str(images), "-o", str(out), "--json", "-q"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    status = {Path(r["input"]).name: r["status"] for r in records}
    assert status == {"a.png": "ok", "b.jpg": "ok", "broken.png": "failed", "truncated.png": "failed"}
    assert sorted(p.name for p in out.iterdir()) == ["a_edsr-photo_x4.png", "b_edsr-photo_x4.jpg"]


def test_too_many_pixels_refused(shipped: Path, images: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["upscale", str(images / "a.png"), "-o", str(tmp_path / "o"), "--max-pixels", "100"])
    assert result.exit_code == 1 and "--max-pixels" in result.output


def test_recursive_keeps_structure_and_suffix(shipped: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("upscale", str(images), "-r", "-o", str(out), "--suffix", "big", "-x", "2", "-q").exit_code == 0
    assert (out / "sub" / "c_big.png").is_file() and (out / "a_big.png").is_file()


def test_outscale_any_factor(shipped: Path, images: Path, tmp_path: Path) -> None:
    target = tmp_path / "o.png"
    assert run("upscale", str(images / "a.png"), "--outscale", "3.5", "-o", str(target), "-q").exit_code == 0
    assert Image.open(target).size == (round(24 * 3.5), round(20 * 3.5))


def test_sixteen_bit_greyscale_and_alpha(shipped: Path, tmp_path: Path) -> None:
    grey16 = (np.linspace(0, 65535, 20 * 16).reshape(20, 16)).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    rgba = np.concatenate([synthetic_image(3, 16, 16), np.full((16, 16, 1), 255, np.uint8)], axis=2)
    rgba[:, :8, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    out = tmp_path / "out"
    assert run("upscale", str(tmp_path / "g16.png"), str(tmp_path / "t.png"), "-o", str(out), "-x", "2", "-q").exit_code == 0
    grey = Image.open(out / "g16_edsr-photo_x2.png")
    assert grey.mode.startswith("I") and grey.size == (32, 40)
    values = np.asarray(grey)
    assert len(np.unique(values % 257)) > 1  # genuinely 16-bit, not an 8-bit round trip
    assert Image.open(out / "t_edsr-photo_x2.png").mode == "RGBA"  # random tiny net: only the mode is meaningful
    assert run("upscale", str(tmp_path / "t.png"), "-o", str(tmp_path / "bicubic_alpha.png"), "-x", "2", "-q",
               "--alpha-mode", "bicubic").exit_code == 0
    alpha = np.asarray(Image.open(tmp_path / "bicubic_alpha.png"))[..., 3]
    assert alpha[:, :12].max() < 40 and alpha[:, 20:].min() > 215


def test_jpg_output_refused_for_alpha(shipped: Path, tmp_path: Path) -> None:
    Image.new("RGBA", (12, 12), (10, 20, 30, 128)).save(tmp_path / "t.png")
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "t.png"), "--ext", "jpg", "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "JPEG" in result.output


def test_alpha_on_the_fly_and_interpolate_command(shipped: Path, images: Path, tmp_path: Path) -> None:
    psnr_model = load_model(shipped / "esrgan-bicubic-psnr_x4.safetensors")
    gan_model = load_model(shipped / "esrgan-bicubic_x4.safetensors")
    for alpha, expected in (("0", psnr_model), ("1", gan_model)):
        target = tmp_path / f"blend{alpha}.safetensors"
        assert run("interpolate", "--alpha", alpha, "-o", str(target)).exit_code == 0
        blended = load_model(target)
        for key, value in expected.state_dict().items():
            assert torch.allclose(blended.state_dict()[key], value), key
    target = tmp_path / "half.safetensors"
    assert run("interpolate", "--alpha", "0.5", "-o", str(target)).exit_code == 0
    half = load_model(target).state_dict()["conv_first.weight"]
    assert torch.allclose(half, 0.5 * (psnr_model.conv_first.weight + gan_model.conv_first.weight), atol=1e-6)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temporary file's 0600
    result = CliRunner().invoke(main, ["interpolate", "--alpha", "0.5", "-o", str(target)])
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert run("upscale", str(images / "a.png"), "-m", "esrgan-bicubic", "--alpha", "0.3", "-o", str(tmp_path / "u"),
               "-q").exit_code == 0
    assert (tmp_path / "u" / "a_esrgan-bicubic-a0.3_x4.png").is_file()
    # the interpolated file, named with -m as users type it, reproduces the on-the-fly blend exactly
    blend_file = tmp_path / "blend03.safetensors"
    assert run("interpolate", "--alpha", "0.3", "-o", str(blend_file)).exit_code == 0
    assert run("upscale", str(images / "a.png"), "-m", str(blend_file), "-o", str(tmp_path / "u"), "-q").exit_code == 0
    from_file = np.asarray(Image.open(tmp_path / "u" / "a_blend03_x4.png"))
    on_the_fly = np.asarray(Image.open(tmp_path / "u" / "a_esrgan-bicubic-a0.3_x4.png"))
    assert from_file.shape == on_the_fly.shape and np.array_equal(from_file, on_the_fly)
    result = CliRunner().invoke(main, ["upscale", str(images / "a.png"), "-m", str(tmp_path / "none.safetensors")])
    assert result.exit_code == 1 and "no such file" in result.output and "Traceback" not in result.output


def test_interpolate_refusals(shipped: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["interpolate", "--alpha", "1.5", "-o", str(tmp_path / "x.safetensors")])
    assert result.exit_code != 0 and "between 0 and 1" in result.output
    a = tiny_edsr(tmp_path / "a.safetensors", 2)
    b = tiny_edsr(tmp_path / "b.safetensors", 4)
    result = CliRunner().invoke(main, ["interpolate", "--alpha", "0.5", "--a", str(a), "--b", str(b), "-o",
                                       str(tmp_path / "x.safetensors")])
    assert result.exit_code == 1 and "cannot interpolate" in result.output and "Traceback" not in result.output


def test_shipped_weights_are_verified(shipped: Path, images: Path, tmp_path: Path) -> None:
    path = shipped / "edsr-photo_x4.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["upscale", str(images / "a.png"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "corrupted" in result.output and len(result.output.strip().splitlines()) == 1
    path.unlink()
    result = CliRunner().invoke(main, ["upscale", str(images / "a.png"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "missing" in result.output


def test_bad_weights_file_one_line(images: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"this is not a checkpoint at all")
    result = CliRunner().invoke(main, ["upscale", str(images / "a.png"), "--weights", str(bogus), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "supported" in result.output and "Traceback" not in result.output


def test_degrade_sizes_and_methods(images: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    dsgan = save_model(registry.build("dsgan", num_blocks=1, num_features=8), tmp_path / "dsgan.safetensors")
    for method, extra in (("bicubic", []), ("classical", ["--blur", "1", "--noise", "3", "--jpeg", "80"]),
                          ("dsgan", ["--weights", str(dsgan)])):
        out = tmp_path / method
        result = run("degrade", str(images / "a.png"), str(images / "sub" / "c.png"), "-m", method, "-x", "4",
                     "-o", str(out), "-q", *extra)
        assert result.exit_code == 0, result.output
        assert Image.open(out / "a.png").size == (6, 5) and Image.open(out / "c.png").size == (4, 4)
    result = CliRunner().invoke(main, ["degrade", str(images / "a.png"), "-m", "bicubic", "--noise", "2", "-o", str(tmp_path / "z")])
    assert result.exit_code == 2


def test_train_export_plot_cli(image_folder: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["train", "edsr", "--data", str(image_folder), "--out", str(run_dir), "--iters", "3", "--batch", "2",
            "--patch", "8", "--blocks", "1", "--features", "8", "--workers", "0", "--amp", "off", "--quiet"]
    result = run(*args)
    assert result.exit_code == 0 and "finished at iteration 3" in result.output
    result = run("train", "edsr", "--resume", str(run_dir), "--iters", "5", "--quiet")
    assert result.exit_code == 0 and "iteration 5" in result.output
    result = CliRunner().invoke(main, ["train", "edsr", "--resume", str(run_dir), "--lr", "1"])
    assert result.exit_code == 2 and "cannot change lr (run has 0.0001)" in result.output
    result = run("train", "edsr", "--resume", str(run_dir), "--iters", "6", "--batch", "2", "--quiet",
                 "--val", str(image_folder), "--val-every", "1")
    assert result.exit_code == 0 and "iteration 6" in result.output, "restating a run's own setting is no change"
    assert "best val PSNR" in result.output, "a validation set may be added on resume (it does not change training)"
    output = tmp_path / "w" / "mine_x2.safetensors"
    assert run("export", str(run_dir), "-o", str(output)).exit_code == 0
    assert json.loads((output.parent / "manifest.json").read_text())["models"][0]["name"] == "mine"
    continued = tmp_path / "continued"
    assert run(*args[:4], "--out", str(continued), *args[6:], "--init", str(output)).exit_code == 0
    result = run("export", str(continued), "-o", str(output), "--overwrite", "--notes", "from mine")
    assert result.exit_code == 0 and "3 iterations, 9 in all" in result.output
    assert json.loads((output.parent / "manifest.json").read_text())["models"][0]["recipe"]["notes"] == "from mine"
    assert run("plot", str(run_dir)).exit_code == 0 and Image.open(run_dir / "curves.png").size[0] > 100
    result = CliRunner().invoke(main, ["export", str(run_dir), "-o", str(tmp_path / "bn.safetensors"),
                                       "--recalibrate-bn", "2"])
    assert result.exit_code != 0 and "has no BatchNorm layers" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "bn.safetensors").exists()
    result = CliRunner().invoke(main, ["train", "edsr", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r2")])
    assert result.exit_code != 0 and "no such folder" in result.output and "Traceback" not in result.output


def test_train_list_options_name_the_flag_on_bad_input(tmp_path: Path) -> None:
    for flag, value in (("--scales", "2,x"), ("--milestones", "100,,1e"), ("--hr-rescale", "1,half")):
        result = CliRunner().invoke(main, ["train", "mdsr", "--out", str(tmp_path / "r"), flag, value])
        assert result.exit_code == 2 and flag in result.output and repr(value) in result.output, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists(), "a refused command starts no run"


def test_train_toml_config(image_folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'data = ["{image_folder}"]\niters = 2\nbatch = 2\npatch = 8\nblocks = 1\nfeatures = 8\n'
                      f'workers = 0\namp = "off"\nlr = 0.0005\n')
    run_dir = tmp_path / "run"
    assert run("train", "edsr", "--config", str(config), "--out", str(run_dir), "--iters", "3", "--quiet").exit_code == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["iters"] == 3 and saved["lr"] == 0.0005 and saved["batch"] == 2


def test_torchrun_two_cpu_processes_share_the_inputs(images: Path, tmp_path: Path) -> None:
    """``torchrun --nproc-per-node 2 -m srcli upscale``: each rank takes its share, one summary."""
    import os
    import subprocess
    import sys

    weights = tiny_edsr(tmp_path / "tiny.safetensors")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "srcli", "upscale", str(images), "-r", "--weights", str(weights), "-o", str(out), "--json"]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert completed.returncode == 0, completed.stderr[-2000:]
    records = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    assert sorted(Path(r["input"]).name for r in records) == ["a.png", "b.jpg", "c.png"]  # printed once, by rank 0
    assert sum("3 upscaled" in line for line in completed.stderr.splitlines()) == 1
    assert {p.name for p in out.rglob("*") if p.is_file()} == {"a_tiny_x2.png", "b_tiny_x2.jpg", "c_tiny_x2.png"}
