"""The realworld degradation: deterministic per generator, every drawn value within its range,
and each stage's observable effect (noise level, blur width, JPEG quality) within bounds."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from synthetic import synthetic_image

from srcli.degradation.realworld import (
    DegradationSettingsError,
    OrderSettings,
    RealWorldDegradation,
    RealWorldSettings,
    _choice,
    anisotropic_kernel,
    encode_round_trip,
    fast_fft_length,
    filter2d,
    parse_settings_text,
    settings_from,
    sinc_kernel,
)


def chw(seed: int, size: int = 64) -> torch.Tensor:
    return torch.from_numpy(synthetic_image(seed, size, size)).permute(2, 0, 1).float() / 255


def hr_batch(count: int = 4, size: int = 64) -> torch.Tensor:
    return torch.stack([chw(index, size) for index in range(count)])


def traced(settings: RealWorldSettings, hr: torch.Tensor, scale: int, seed: int) -> tuple[torch.Tensor, list]:
    records: list[tuple[str, dict[str, Any]]] = []
    degradation = RealWorldDegradation(settings)
    generator = torch.Generator().manual_seed(seed)
    out = torch.stack([degradation.one(image, scale, generator, note=lambda s, v: records.append((s, v)))
                       for image in hr])
    return out, records


def only(**order: Any) -> OrderSettings:
    """An order that does nothing unless told: no blur, no resize, zero noise, no compression."""
    base = dict(blur_prob=0.0, resize_probs=(0.0, 0.0, 1.0), noise_prob=1.0, gaussian_noise_prob=1.0, noise_sigma=(0.0, 0.0),
                gray_noise_prob=0.0, sharpen_prob=0.0, compression_prob=0.0)
    base.update(order)
    return OrderSettings(**base)


def settings_with(first: OrderSettings, **rest: Any) -> RealWorldSettings:
    values: dict[str, Any] = dict(first=first, clean_prob=0.0, compressed_prob=0.0, second_order_prob=0.0, final_sinc_prob=0.0,
                                  final_compression_prob=0.0, final_resize_probs=(1.0, 0.0, 0.0))
    values.update(rest)
    return RealWorldSettings(**values)


def test_same_generator_same_lr_and_another_seed_differs() -> None:
    hr = hr_batch()
    degradation = RealWorldDegradation()
    a = degradation(hr, 4, torch.Generator().manual_seed(7))
    b = degradation(hr, 4, torch.Generator().manual_seed(7))
    c = degradation(hr, 4, torch.Generator().manual_seed(8))
    assert a.shape == (4, 3, 16, 16)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(a, torch.round(a * 255) / 255)  # 8-bit, like a saved LR


def test_every_drawn_value_is_within_its_range() -> None:
    settings = RealWorldSettings()
    _, records = traced(settings, hr_batch(32, 96), 4, seed=1)
    stages = {stage for stage, _ in records}
    assert {"first.blur", "first.resize", "first.noise", "first.compress", "final.final", "clean",
            "compressed.compress"} <= stages
    assert any(stage.startswith("second.") for stage in stages)  # second order happens (p = 0.5)
    for stage, values in records:
        order = settings.second if stage.startswith("second.") else settings.first
        if stage.endswith(".blur") and values["shape"] != "sinc":
            assert order.blur_sigma[0] <= values["sigma_x"] <= order.blur_sigma[1]
            assert order.blur_sigma[0] <= values["sigma_y"] <= order.blur_sigma[1]
            assert order.kernel_size[0] <= values["kernel_size"] <= order.kernel_size[1]
            assert values["kernel_size"] % 2 == 1
        elif stage.endswith(".noise") and values["kind"] == "gaussian":
            assert order.noise_sigma[0] <= values["sigma"] <= order.noise_sigma[1]
        elif stage.endswith(".noise"):
            assert order.poisson_scale[0] <= values["scale"] <= order.poisson_scale[1]
        elif stage in ("final.compress", "compressed.compress"):
            assert settings.final_jpeg_quality[0] <= values["quality"] <= settings.final_jpeg_quality[1]
        elif stage.endswith(".compress"):
            assert order.jpeg_quality[0] <= values["quality"] <= order.jpeg_quality[1]
        elif stage in ("first.resize", "second.resize") and values["factor"] != 1.0:
            assert order.resize_range[0] <= values["factor"] <= order.resize_range[1]


@pytest.mark.parametrize("sigma_range", [(2.0, 2.0), (10.0, 10.0), (25.0, 25.0)])
def test_observed_gaussian_noise_level_matches_the_drawn_sigma(sigma_range: tuple[float, float]) -> None:
    flat = torch.full((1, 3, 128, 128), 0.5)
    settings = settings_with(only(noise_sigma=sigma_range))
    out, _ = traced(settings, flat, 1, seed=0)
    observed = (out - 0.5).std().item() * 255
    assert observed == pytest.approx(sigma_range[0], rel=0.08, abs=0.3)


def test_observed_noise_stays_within_the_range_bounds() -> None:
    flat = torch.full((8, 3, 96, 96), 0.5)
    settings = settings_with(only(noise_sigma=(4.0, 12.0)))
    out, records = traced(settings, flat, 1, seed=5)
    for image in out:
        assert 4.0 * 0.9 <= (image - 0.5).std().item() * 255 <= 12.0 * 1.1
    levels = {round(values["sigma"], 3) for stage, values in records if stage == "first.noise"}
    assert len(levels) == 8  # a new level per image


def test_observed_blur_width_matches_the_drawn_sigma() -> None:
    impulse = torch.zeros(1, 3, 63, 63)
    impulse[..., 31, 31] = 1.0
    settings = settings_with(only(blur_prob=1.0, blur_sigma=(2.0, 2.0), kernel_size=(21, 21),
                                  kernel_probs=(1, 0, 0, 0, 0, 0, 0)))
    degradation = RealWorldDegradation(settings)
    # 8-bit output would quantise the spread-out impulse away: look at the filter stage directly
    from srcli.degradation.realworld import degrade_order

    out = degrade_order(torch.Generator().manual_seed(0), impulse * 40, settings.first)[0, 0]
    coords = torch.arange(63, dtype=torch.float64) - 31
    weights = out.double() / out.double().sum()
    variance = (weights.sum(0) * coords**2).sum().item()
    assert math.sqrt(variance) == pytest.approx(2.0, rel=0.05)
    assert degradation.settings.first.blur_sigma == (2.0, 2.0)


@pytest.mark.parametrize("quality", [35, 60, 90])
def test_observed_jpeg_is_the_drawn_quality(quality: int) -> None:
    image = chw(2).unsqueeze(0)
    settings = settings_with(only(compression_prob=1.0, jpeg_quality=(quality, quality), webp_prob=0.0,
                                  chroma_subsampling_probs=(0.0, 0.0, 1.0)))
    out, records = traced(settings, image, 1, seed=0)
    expected = encode_round_trip(image, "jpeg", quality, 2)
    assert torch.equal(out, expected)
    assert [values["quality"] for stage, values in records if stage == "first.compress"] == [quality]


def test_noise_prob_zero_adds_no_noise_and_antialias_filters_a_downscale() -> None:
    flat = torch.full((2, 3, 64, 64), 128 / 255)  # an 8-bit grey, so the 8-bit output can equal it
    quiet, records = traced(settings_with(only(noise_prob=0.0, noise_sigma=(20.0, 20.0))), flat, 1, seed=0)
    assert torch.equal(quiet, flat) and not any(stage == "first.noise" for stage, _ in records)
    stripes = torch.zeros(1, 3, 64, 64)
    stripes[..., ::4] = 1.0  # one bright column in four: mean 0.25
    for antialias in (False, True):
        settings = settings_with(only(), final_resize_probs=(0.0, 1.0, 0.0), final_antialias_prob=float(antialias))
        out, records = traced(settings, stripes, 4, seed=0)
        assert [values["antialias"] for stage, values in records if stage == "final.final"] == [antialias]
        if antialias:  # filtered first: every LR pixel sees its share of the bright column
            assert abs(out.mean().item() - 0.25) < 0.03
        else:  # a x4 bilinear that skips pixels samples between two dark columns and never sees it
            assert out.max().item() < 0.05


def test_clean_samples_are_matlab_bicubic_and_nothing_else() -> None:
    from srcli.imresize import bicubic_downscale

    hr = hr_batch(2, 64)
    out, records = traced(RealWorldSettings(clean_prob=1.0), hr, 4, seed=3)
    assert [stage for stage, _ in records] == ["clean", "clean"]
    assert torch.allclose(out, bicubic_downscale(hr, 4), atol=1e-6)
    _, mixed = traced(RealWorldSettings(), hr_batch(40, 32), 4, seed=4)
    clean = sum(stage == "clean" for stage, _ in mixed)
    assert 2 <= clean <= 16  # about a fifth of 40 samples by default


def test_lr_size_is_hr_over_scale_for_every_chain() -> None:
    hr = hr_batch(6, 60)
    for scale in (2, 3, 4):
        out = RealWorldDegradation()(hr, scale, torch.Generator().manual_seed(scale))
        assert out.shape[-2:] == (60 // scale, 60 // scale)


def test_sinc_kernel_is_normalised_and_rings() -> None:
    kernel = sinc_kernel(21, math.pi / 3)
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert kernel.min().item() < 0  # the negative lobes that make ringing


def test_settings_from_text_and_tables() -> None:
    settings = settings_from(parse_settings_text("second_order_prob=0.2,first.noise_sigma=1:20"))
    assert settings.second_order_prob == 0.2
    assert settings.first.noise_sigma == (1.0, 20.0)
    nested = settings_from({"first": {"jpeg_quality": [50, 80]}, "final_sinc_prob": 0})
    assert nested.first.jpeg_quality == (50.0, 80.0) and nested.final_sinc_prob == 0.0
    for bad, message in (({"second_order_prob": 1.5}, "within 0-1"), ({"first.jpeg_quality": "80:20"}, "LOW:HIGH"),
                         ({"first.nosie_sigma": "1:2"}, "unknown realworld setting"),
                         ({"first.noise_sigma": "a:b"}, "not a number"),
                         ({"second.jpeg_quality": "40:60"}, "set final_jpeg_quality")):
        with pytest.raises(DegradationSettingsError, match=message):
            settings_from(bad)


def test_degrade_realworld_from_the_cli_is_reproducible_per_seed(tmp_path) -> None:
    from click.testing import CliRunner
    from PIL import Image

    from srcli.cli import main

    source = tmp_path / "hr"
    source.mkdir()
    for index in range(2):
        Image.fromarray(synthetic_image(index, 70, 66)).save(source / f"photo{index}.png")
    runner = CliRunner()
    outputs = {}
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        result = runner.invoke(main, ["degrade", str(source), "-m", "realworld", "-x", "4", "--seed", seed,
                                      "-o", str(tmp_path / name), "--quiet"])
        assert result.exit_code == 0, result.output
        outputs[name] = [Image.open(tmp_path / name / f"photo{index}.png") for index in range(2)]
    assert outputs["a"][0].size == (16, 17)  # HR cropped to a multiple of 4, then / 4
    same = [np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(outputs["a"], outputs["b"])]
    other = [np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(outputs["a"], outputs["c"])]
    assert all(same) and not any(other)
    bad = runner.invoke(main, ["degrade", str(source), "-m", "realworld", "--realworld", "first.nosie=1:2",
                               "-o", str(tmp_path / "d")])
    assert bad.exit_code == 2 and "unknown realworld setting 'first.nosie'" in bad.output
    wrong_model = runner.invoke(main, ["degrade", str(source), "-m", "bicubic", "--realworld", "second_order_prob=0",
                                       "-o", str(tmp_path / "e")])
    assert wrong_model.exit_code == 2 and "belong to --model realworld" in wrong_model.output


def test_degrade_json_prints_each_images_drawn_chain(tmp_path) -> None:
    import json

    from click.testing import CliRunner
    from PIL import Image

    from srcli.cli import main

    source = tmp_path / "hr"
    source.mkdir()
    for index in range(2):
        Image.fromarray(synthetic_image(index, 64, 64)).save(source / f"photo{index}.png")
    result = CliRunner().invoke(main, ["degrade", str(source), "-m", "realworld", "-x", "4", "--seed", "1",
                                       "--realworld", "clean_prob=0,first.jpeg_quality=61:61,first.webp_prob=0",
                                       "-o", str(tmp_path / "lr"), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["output"]).name for r in records] == ["photo0.png", "photo1.png"]
    for record in records:
        stages = [step["stage"] for step in record["chain"]]
        assert stages[0] == "first.blur" and "final.final" in stages
        compress = next(step for step in record["chain"] if step["stage"] == "first.compress")
        assert (compress["codec"], compress["quality"]) == ("jpeg", 61)


def test_a_toml_realworld_table_and_cli_settings_merge(tmp_path) -> None:
    from srcli.train.config import ConfigError, load_toml, resolve_config

    toml = tmp_path / "run.toml"
    toml.write_text("[realworld]\nsecond_order_prob = 1.0\n\n[realworld.first]\nresize_range = [0.15, 1.5]\n")
    config = resolve_config("edsr", load_toml(toml), {"degradation": "realworld", "data": ["hr"],
                                                      "realworld": {"final_sinc_prob": "0.8"}})
    settings = settings_from(config.realworld)
    assert (settings.second_order_prob, settings.first.resize_range, settings.final_sinc_prob) == (1.0, (0.15, 1.5), 0.8)
    with pytest.raises(ConfigError, match="need --degradation realworld"):
        resolve_config("edsr", load_toml(toml), {"data": ["hr"]})


def _direct_correlation(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    pad = kernel.shape[-1] // 2
    mode = "reflect" if min(image.shape[-2:]) > pad else "replicate"
    padded = torch.nn.functional.pad(image, (pad, pad, pad, pad), mode=mode)
    weight = kernel.expand(image.shape[1], 1, *kernel.shape)
    return torch.nn.functional.conv2d(padded, weight, groups=image.shape[1])


@pytest.mark.parametrize("size,height,width", [(7, 40, 33), (13, 40, 33), (21, 57, 64), (21, 6, 9)])
def test_fft_filter_equals_the_direct_correlation(size: int, height: int, width: int) -> None:
    torch.manual_seed(size)
    image = torch.rand(1, 3, height, width)
    kernel = torch.rand(size, size)  # asymmetric: a flipped kernel would not match
    kernel /= kernel.sum()
    out = filter2d(image, kernel)
    assert out.shape == image.shape
    assert torch.allclose(out, _direct_correlation(image, kernel), atol=1e-5)
    gaussian = anisotropic_kernel(size, 3.0, 1.0, 0.7)
    assert torch.allclose(filter2d(image, gaussian), _direct_correlation(image, gaussian), atol=1e-5)


def test_fast_fft_lengths_have_only_small_prime_factors() -> None:
    assert [fast_fft_length(n) for n in (1, 7, 53, 212, 256)] == [1, 8, 54, 216, 256]


def test_shot_noise_spread_grows_with_the_square_root_of_the_signal() -> None:
    order = only(gaussian_noise_prob=0.0, poisson_scale=(1.0, 1.0))
    degradation = RealWorldDegradation(settings_with(order, final_resize_probs=(1.0, 0.0, 0.0)))
    spreads = []
    for level in (0.1, 0.4):
        flat = torch.full((3, 128, 128), level)
        out = degradation.one(flat, 1, torch.Generator().manual_seed(3))
        spreads.append(out.std().item() * 255)
    assert spreads[0] == pytest.approx(math.sqrt(0.1 * 255), rel=0.1)
    assert spreads[1] / spreads[0] == pytest.approx(2.0, rel=0.1)


def test_choice_follows_the_weights_and_never_picks_a_zero_weight() -> None:
    generator = torch.Generator().manual_seed(0)
    picks = [_choice(generator, (0.0, 3.0, 1.0, 0.0)) for _ in range(2000)]
    assert set(picks) == {1, 2}
    assert picks.count(1) / len(picks) == pytest.approx(0.75, abs=0.04)


def test_compressed_chains_resize_and_compress_only() -> None:
    settings = RealWorldSettings(clean_prob=0.0, compressed_prob=1.0, recompress_prob=0.5,
                                 final_jpeg_quality=(40.0, 60.0))
    out, records = traced(settings, hr_batch(12, 64), 4, seed=2)
    assert out.shape == (12, 3, 16, 16)
    assert {stage for stage, _ in records} == {"compressed.resize", "compressed.compress"}
    assert all(values["antialias"] for stage, values in records if stage == "compressed.resize")
    qualities = [values["quality"] for stage, values in records if stage == "compressed.compress"]
    assert all(40 <= quality <= 60 for quality in qualities)
    assert 12 < len(qualities) < 24  # some re-shared (compressed twice), some once


def test_compressed_prob_zero_draws_nothing_for_it() -> None:
    """At 0 the setting consumes no random draw: every chain is the full pipeline's, draw for draw."""
    hr = hr_batch(3, 48)
    default, _ = traced(RealWorldSettings(compressed_prob=0.0), hr, 4, seed=5)
    explicit, _ = traced(RealWorldSettings(compressed_prob=0.0, recompress_prob=0.9), hr, 4, seed=5)
    assert torch.equal(default, explicit)
