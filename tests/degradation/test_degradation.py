"""Degradations for real-world training: the JPEG layer, JPEG-quality estimation, classical pairs,
and the DSGAN generator's noise input and JPEG ending."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from synthetic import synthetic_image

from srcli.checkpoints import registry
from srcli.cli import main
from srcli.degradation.classical import ClassicalDegradation, DegradeError, parse_classical
from srcli.inference import receptive_field
from srcli.inference.upscaler import Upscaler
from srcli.nets.jpeg import LUMA_TABLE, DifferentiableJPEG, estimate_jpeg_quality, quality_table
from srcli.train.data import PairedBatches


def as_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a - b).square().mean()))


def pillow_jpeg(array: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue()))).copy()


def test_quality_tables_follow_libjpeg_scaling():
    assert quality_table(LUMA_TABLE, 50)[0, 0] == 16  # quality 50 is the base table
    assert quality_table(LUMA_TABLE, 75)[0, 1] == 6  # (11 * 50 + 50) // 100
    assert quality_table(LUMA_TABLE, 100).eq(1).all()
    assert quality_table(LUMA_TABLE, 1).max() == 255  # baseline clamps steps to 8 bits


@pytest.mark.parametrize("quality", [40, 75, 95])
def test_differentiable_jpeg_matches_pillow(quality: int):
    """Same tables, 4:2:0 sampling and block grid as Pillow: far closer to it than to the original."""
    array = synthetic_image(1, 45, 70)  # not a multiple of 16: the layer pads like an encoder
    original = as_tensor(array)
    pillow = as_tensor(pillow_jpeg(array, quality))
    ours = DifferentiableJPEG(quality)(original[None])[0]
    assert ours.shape == original.shape
    assert psnr(ours, pillow) > psnr(original, pillow) + 8
    assert psnr(ours, pillow) > 36


def test_differentiable_jpeg_passes_gradients():
    image = as_tensor(synthetic_image(2, 32, 32))[None].requires_grad_()
    DifferentiableJPEG(50)(image).square().sum().backward()
    assert image.grad is not None and image.grad.abs().mean() > 0.1  # straight-through rounding


def test_jpeg_quality_is_estimated_from_decoded_photos():
    arrays = [synthetic_image(seed, 96, 96) for seed in range(4)]
    for quality in (60, 85):
        decoded = [as_tensor(pillow_jpeg(array, quality)) for array in arrays]
        estimate, fit = estimate_jpeg_quality(decoded)
        assert estimate is not None and abs(estimate - quality) <= 1, (quality, estimate, fit)
    never_compressed = [as_tensor(array) for array in arrays]
    assert estimate_jpeg_quality(never_compressed)[0] is None


def test_classical_spec_is_parsed_and_checked():
    assert parse_classical("noise=10,jpeg=75") == ClassicalDegradation(noise=10.0, jpeg=75)
    assert parse_classical("blur=0.8") == ClassicalDegradation(blur=0.8)
    for bad in ("noise", "grain=3", "jpeg=0", "noise=-1", "noise=abc"):
        with pytest.raises(DegradeError):
            parse_classical(bad)


def test_classical_degradation_on_a_batch_uses_the_given_randomness():
    hr = torch.stack([as_tensor(synthetic_image(seed, 32, 32)) for seed in range(3)])
    degradation = ClassicalDegradation(noise=8, jpeg=70)
    first = degradation(hr, 2, torch.Generator().manual_seed(1))
    again = degradation(hr, 2, torch.Generator().manual_seed(1))
    other = degradation(hr, 2, torch.Generator().manual_seed(2))
    assert first.shape == (3, 3, 16, 16)
    assert torch.equal(first, again) and not torch.equal(first, other)
    # JPEG is applied image by image, exactly as to a single image
    single = ClassicalDegradation(jpeg=70)
    assert torch.equal(single(hr, 2)[1], single(hr[1], 2))


def test_training_batches_with_classical_degradation_are_reproducible(image_folder: Path):
    from srcli.train.data import load_image_cache

    images = load_image_cache([image_folder], 32)
    batches = PairedBatches(images, scales=[2], degrader=parse_classical("noise=5,jpeg=80"), batch=2, patch=8, seed=4)
    first, again, later = batches[3], batches[3], batches[4]
    assert torch.equal(first["lr"], again["lr"]) and not torch.equal(first["lr"], later["lr"])
    assert first["lr"].shape == (2, 3, 8, 8) and first["hr"].shape == (2, 3, 16, 16)


def test_train_cli_accepts_a_classical_degradation(image_folder: Path, tmp_path: Path):
    run = tmp_path / "run"
    args = ["train", "edsr", "--data", str(image_folder), "-x", "2", "--iters", "2", "--batch", "2", "--patch", "8",
            "--blocks", "1", "--features", "8", "--amp", "off", "--workers", "0", "--quiet", "--out", str(run)]
    result = CliRunner().invoke(main, args + ["--degradation", "classical:noise=5,jpeg=80"])
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(main, args + ["--degradation", "classical:grain=2", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "grain=2" in bad.output and "Traceback" not in bad.output


def test_dsgan_noise_input_and_jpeg_ending():
    torch.manual_seed(0)
    model = registry.build("dsgan", num_blocks=1, num_features=8, noise_channels=3, jpeg_quality=50).eval()
    assert model.block_input[0].weight.shape[1] == 6
    assert model.position_period == 16 and receptive_field.tile_alignment(model) == 16
    with torch.no_grad():
        model.block_input[0].weight[:, 3:] *= 50  # make the noise matter
        image = as_tensor(synthetic_image(3, 40, 40))[None]
        noise = torch.randn(1, 3, 40, 40)
        fixed = model(image, noise)
        assert torch.equal(fixed, model(image, noise))  # given noise: deterministic
        assert not torch.equal(model(image), model(image))  # drawn noise: a new sample each call
        # the same network without the JPEG ending, then the JPEG layer: the same image
        plain = registry.build("dsgan", num_blocks=1, num_features=8, noise_channels=3).eval()
        plain.load_state_dict(model.state_dict())
        assert torch.allclose(DifferentiableJPEG(50)(plain(image, noise)), fixed, atol=1e-5)


def test_jpeg_ending_dsgan_tiles_match_the_whole_image():
    """Tiles start on JPEG's 16-px units, so every block is compressed as in the whole image."""
    torch.manual_seed(0)
    model = registry.build("dsgan", num_blocks=1, num_features=8, jpeg_quality=60).eval()
    image = torch.rand(3, 45, 61)
    with torch.no_grad():
        direct = model(image[None])[0]
    for tile in (None, 16, 32):
        runner = Upscaler(model, device="cpu", precision="fp32", tile=tile, tile_pad="full")
        assert torch.allclose(runner.upscale(image), direct, atol=1e-4), tile


def test_train_dsgan_estimates_jpeg_quality_from_the_source(tmp_path: Path):
    from srcli.checkpoints.io import load_model
    from srcli.checkpoints.shipped import read_manifest

    source, clean = tmp_path / "source", tmp_path / "clean"
    source.mkdir()
    clean.mkdir()
    for seed in range(3):
        Image.fromarray(synthetic_image(seed, 96, 96)).save(source / f"s{seed}.jpg", quality=70)
        Image.fromarray(synthetic_image(seed + 10, 96, 96)).save(clean / f"c{seed}.png")
    common = ["train", "dsgan", "--target", str(clean), "-x", "2", "--iters", "2", "--batch", "2", "--patch", "16",
              "--blocks", "1", "--features", "8", "--amp", "off", "--workers", "0", "--perceptual", "none", "--quiet"]
    result = CliRunner().invoke(main, common + ["--source", str(source), "--jpeg-quality", "auto",
                                                "--noise-channels", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "estimated: 70" in result.output
    out = tmp_path / "weights" / "dsgan_x2.safetensors"
    out.parent.mkdir()
    assert CliRunner().invoke(main, ["export", str(tmp_path / "run"), "-o", str(out)]).exit_code == 0
    assert load_model(out).config["jpeg_quality"] == 70
    command = read_manifest(out.parent)[0]["recipe"]["command"]
    assert "--jpeg-quality 70" in command and "--noise-channels 2" in command
    # a source that was never JPEG-compressed: a clear error, no traceback
    refused = CliRunner().invoke(main, common + ["--source", str(clean), "--jpeg-quality", "auto",
                                                 "--out", str(tmp_path / "run2")])
    assert refused.exit_code != 0 and "no JPEG quantisation" in refused.output and "Traceback" not in refused.output


def test_degrade_with_a_noise_input_dsgan_is_reproducible(tmp_path: Path):
    from srcli.checkpoints.io import save_model

    model = registry.build("dsgan", num_blocks=1, num_features=8, noise_channels=3)
    with torch.no_grad():
        model.block_input[0].weight[:, 3:] *= 50  # make the noise matter
    weights = save_model(model, tmp_path / "dsgan.safetensors")
    Image.fromarray(synthetic_image(5, 64, 64)).save(tmp_path / "hr.png")
    outputs = []
    for folder, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        result = CliRunner().invoke(main, ["degrade", str(tmp_path / "hr.png"), "-o", str(tmp_path / folder),
                                           "--weights", str(weights), "-x", "2", "--seed", seed])
        assert result.exit_code == 0, result.output
        outputs.append(np.asarray(Image.open(tmp_path / folder / "hr.png")))
    assert outputs[0].shape == (32, 32, 3)
    assert np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[0], outputs[2])


def test_benchmark_measures_only_the_random_part_of_what_dsgan_adds():
    """dsgan_stats' generator noise sigma: 0 when the noise input is cut off, > 0 when it is
    used, None for a deterministic generator; the JPEG ending is put back afterwards."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from dsgan_stats import generator_noise_sigma

    from srcli.degradation.dsgan import DSGANDegrader

    torch.manual_seed(0)
    hr = [as_tensor(synthetic_image(5, 64, 64))]
    model = registry.build("dsgan", num_blocks=1, num_features=8, noise_channels=3, jpeg_quality=50).eval()
    jpeg = model.jpeg
    with torch.no_grad():
        model.block_input[0].weight[:, 3:] = 0  # the noise planes reach nothing
    assert generator_noise_sigma(DSGANDegrader(model), hr, 2) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        model.block_input[0].weight[:, 3:] = 1.0
    assert generator_noise_sigma(DSGANDegrader(model), hr, 2) > 0.1
    assert model.jpeg is jpeg
    plain = registry.build("dsgan", num_blocks=1, num_features=8).eval()
    assert generator_noise_sigma(DSGANDegrader(plain), hr, 2) is None
