"""Upscaler and receptive fields on tiny random networks of every family (fast, CPU only)."""
from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch import nn

from srcli.checkpoints import registry
from srcli.checkpoints.interpolate import interpolate_models
from srcli.inference import receptive_field, upscaler
from srcli.inference.budget import MemoryBudget
from srcli.inference.device import DeviceError, keeps_fp32
from srcli.inference.receptive_field import (
    _leaf_steps,
    calibrated_pad,
    calibration_images,
    forward_plan,
    input_multiple,
    read_cache,
    theoretical_radius,
)
from srcli.inference.upscaler import Upscaler, inverse_transform, plan_tiles, resolve_precision, transform
from srcli.nets.mdsr import MDSRAtScale
from srcli.nets.tailfold import FoldedTail, tail_reach_of

TINY: dict[str, tuple[str, dict[str, Any]]] = {
    "edsr": ("edsr", dict(scale=2, num_blocks=2, num_features=8)),
    "mdsr": ("mdsr", dict(scales=(2, 3), num_blocks=1, num_features=8)),
    "srresnet": ("srresnet", dict(scale=2, num_blocks=1, num_features=8)),
    "srgan": ("srgan", dict(scale=4, num_blocks=1, num_features=8)),
    "esrgan": ("esrgan", dict(scale=4, num_blocks=1, num_features=8, growth=4)),
    "esrgan-unshuffle": ("esrgan", dict(scale=2, unshuffle=2, num_blocks=1, num_features=8, growth=4)),
    "dsgan": ("dsgan", dict(num_blocks=1, num_features=8)),
    "msrresnet": ("msrresnet", dict(scale=3, num_blocks=1, num_features=8)),
    "srvgg": ("srvgg", dict(scale=4, num_convs=3, num_features=8)),
}
FAMILIES = sorted(set(registry.ARCHITECTURES) | set(TINY))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convs gain nothing from threads, and on a busy machine OpenMP spin-waits make them ~40x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Never touch the user's ~/.cache from tests."""
    monkeypatch.setenv("SRCLI_CACHE", str(tmp_path / "cache"))


def test_every_registered_architecture_has_a_tiny_config():
    assert set(registry.ARCHITECTURES) <= set(TINY)


def symmetrise(model: nn.Module) -> None:
    """Average every kernel over its 8 flips/transposes: such convs commute with them."""
    with torch.no_grad():
        for conv in (m for m in model.modules() if isinstance(m, nn.Conv2d)):
            kernels = [transform(conv.weight, code) for code in range(8)]
            conv.weight.copy_(torch.stack(kernels).mean(0))


def tiny(name: str, seed: int = 0, symmetric: bool = False) -> nn.Module:
    """Random weights scaled so that outputs vary (mean ~0.5, std ~0.15) without clamping."""
    architecture, config = TINY[name]
    torch.manual_seed(seed)
    model = registry.build(architecture, **config)
    if architecture == "mdsr":
        model = MDSRAtScale(model, 3)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key.endswith("running_var"):
                value.copy_(torch.rand_like(value) + 0.5)
            elif key.endswith(("running_mean", ".bias")) and "mean." not in key:
                value.copy_(torch.randn_like(value) * 0.05)
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module.weight.requires_grad:
                module.weight.mul_(1.7)  # default init shrinks the signal ~sqrt(3) per layer
    if symmetric:
        symmetrise(model)
    normalise_output(model.eval())
    return model


def normalise_output(model: nn.Module) -> None:
    """Scale/shift the last conv so the output on random input has mean 0.5 and std 0.15."""
    last = [s for s in _leaf_steps(forward_plan(model)) if isinstance(s, nn.Conv2d) and s.weight.requires_grad][-1]
    probe = calibration_images(32, count=1, seed=5)
    with torch.no_grad():
        for _ in range(3):
            output = model(probe)
            factor = 0.15 / max(output.std().item(), 1e-6)
            last.weight.mul_(factor)
            last.bias.mul_(factor)
            before = model(probe).mean().item()
            last.bias.add_(1.0)
            slope = model(probe).mean().item() - before
            last.bias.add_((0.5 - before) / slope - 1.0)


def sample_image(height: int = 23, width: int = 37, channels: int = 3, seed: int = 1) -> torch.Tensor:
    side = max(height, width)
    return calibration_images(side, count=1, seed=seed)[0, :channels, :height, :width].contiguous()


def upscale(model: nn.Module, image: torch.Tensor, **options: Any) -> torch.Tensor:
    options = {"device": "cpu", "precision": "fp32", **options}
    return Upscaler(model, **options).upscale(image)


# ---------------------------------------------------------------------------------------------
# theoretical radius
# ---------------------------------------------------------------------------------------------

def test_radius_of_the_published_configurations():
    assert theoretical_radius(registry.build("edsr", scale=4)) == 36
    assert theoretical_radius(registry.build("esrgan", scale=4)) == 349  # the ~350 px of RRDBNet x4
    assert theoretical_radius(registry.build("srresnet", scale=4)) == 40  # 9x9 head and tail
    assert theoretical_radius(MDSRAtScale(registry.build("mdsr"), 2)) == 44  # includes the 5x5 blocks
    unshuffled = registry.build("esrgan", scale=2, unshuffle=2)
    assert input_multiple(unshuffled) == 2
    assert theoretical_radius(unshuffled) == 2 * 349  # not 2 * 349 + 1: the worst phases differ


def centre_block_change(model: nn.Module, radius: int, offset: tuple[int, int]) -> float:
    """How much the centre pixel's output block moves when one input pixel at ``offset`` changes."""
    multiple = input_multiple(model)
    centre = receptive_field.round_up(radius + 2, multiple)
    side = receptive_field.round_up(centre + radius + 3, multiple)
    image = sample_image(side, side, seed=3).unsqueeze(0)
    changed = image.clone()
    changed[..., centre + offset[0], centre + offset[1]] = 1 - changed[..., centre + offset[0], centre + offset[1]]
    with torch.inference_mode():
        before, after = model(image), model(changed)
    scale = before.shape[-1] // side
    block = slice(centre * scale, (centre + 1) * scale)
    return (before[..., block, block] - after[..., block, block]).abs().max().item()


@pytest.mark.parametrize("name", FAMILIES)
def test_pixels_beyond_the_radius_cannot_change_the_output(name):
    model = tiny(name)
    radius = theoretical_radius(model)
    outside = [(radius + 1, 0), (0, radius + 1), (-radius - 1, 0), (0, -radius - 1), (radius + 1, radius + 1)]
    assert max(centre_block_change(model, radius, offset) for offset in outside) == 0.0


@pytest.mark.parametrize("name", FAMILIES)
def test_theoretical_radius_is_tight(name):
    """The farthest input pixel with a non-zero gradient is exactly at the radius.

    In float64 through autograd: the longest path is a product of ~20 small weights, far
    below what a perturbation of the fp32 output could show, but its gradient is non-zero.
    """
    model = tiny(name).double()
    radius = theoretical_radius(model)
    multiple = input_multiple(model)
    reach = 0
    for phase in range(multiple):  # the reach depends on the position within an unshuffle block
        centre = receptive_field.round_up(radius + 2, multiple) + phase
        side = receptive_field.round_up(centre + radius + 3, multiple)
        image = sample_image(side, side, seed=3).double().unsqueeze(0).requires_grad_(True)
        output = model(image)
        scale = output.shape[-1] // side
        output[..., centre * scale:(centre + 1) * scale, centre * scale:(centre + 1) * scale].sum().backward()
        rows, columns = torch.nonzero(image.grad.abs().sum(dim=(0, 1)), as_tuple=True)
        reach = max(reach, torch.maximum((rows - centre).abs(), (columns - centre).abs()).max().item())
    assert reach == radius


# ---------------------------------------------------------------------------------------------
# tiling
# ---------------------------------------------------------------------------------------------

def test_plan_tiles_covers_the_image_once_and_clips_regions():
    tiles = plan_tiles(23, 37, 8, 5)
    covered = torch.zeros(23, 37, dtype=torch.int32)
    for tile in tiles:
        covered[tile.top:tile.top + tile.height, tile.left:tile.left + tile.width] += 1
        assert 0 <= tile.region_top <= tile.top and tile.region_bottom <= 23
        assert tile.region_bottom - (tile.top + tile.height) == min(5, 23 - tile.top - tile.height)
    assert bool((covered == 1).all())
    aligned = plan_tiles(23, 37, 8, 4, multiple=4)
    assert all(t.region_bottom % 4 == 0 and t.region_right % 4 == 0 for t in aligned)


@pytest.mark.parametrize("name", FAMILIES)
def test_tiles_with_full_pad_match_untiled(name):
    model = tiny(name)
    image = sample_image()
    whole = upscale(model, image, tile=None)
    assert whole.shape == (3, 23 * upscaler.native_scale(model), 37 * upscaler.native_scale(model))
    assert whole.std() > 0.03  # outputs really vary: the comparison means something
    for tile_size in (4, 7, 16):  # tiles smaller than the pad; 23x37 is divisible by none
        tiled = upscale(model, image, tile=tile_size, tile_pad="full")
        assert (tiled - whole).abs().max() <= 1e-4, tile_size


@pytest.mark.parametrize("name", FAMILIES)
def test_calibrated_pad_matches_untiled_within_tolerance(name):
    model = tiny(name)
    pad = calibrated_pad(model)
    assert 0 <= pad <= theoretical_radius(model)
    image = sample_image(40, 44, seed=7)
    whole = upscale(model, image, tile=None)
    tiled = upscale(model, image, tile=9, tile_pad="auto")
    assert (tiled - whole).abs().max() <= 0.5 / 255


def test_half_precision_calibration_allows_only_rounding_flips():
    """bf16 rounds EDSR's output to ~1/255 steps: tiles may differ by one step, no more."""
    torch.manual_seed(0)
    model = registry.build("edsr", scale=2, num_blocks=4, num_features=16).eval()
    pad_fp32, pad_bf16 = calibrated_pad(model), calibrated_pad(model, dtype=torch.bfloat16)
    assert pad_fp32 <= pad_bf16 < theoretical_radius(model)
    image = sample_image(40, 44, seed=7)
    whole = upscale(model, image, tile=None, precision="bf16")
    tiled = upscale(model, image, tile=9, tile_pad="auto", precision="bf16")
    assert (tiled - whole).abs().max() <= 1.01 / 255


def test_each_tile_sees_at_most_tile_plus_pad():
    model = tiny("edsr")
    largest = []
    model.register_forward_pre_hook(lambda module, inputs: largest.append(max(inputs[0].shape[-2:])))
    upscale(model, sample_image(60, 61), tile=10, tile_pad=3)
    assert max(largest) == 10 + 2 * 3


def test_auto_tile_runs_whole_within_the_whole_budget_and_tiles_within_the_tile_budget(monkeypatch):
    model = tiny("edsr")
    image = sample_image(40, 50)
    runner = Upscaler(model, device="cpu", precision="fp32", tile="auto", tile_pad="full")
    assert runner.tile_size(40, 50) is None  # a tiny image fits any budget
    per_pixel = runner._runner_bytes_per_pixel()
    budgets = MemoryBudget(whole=per_pixel * 40 * 49, tile=per_pixel * 30 * 30)
    monkeypatch.setattr(upscaler, "memory_budget", lambda device: budgets)
    assert runner.tile_size(40, 49) is None
    pad = theoretical_radius(model)
    assert runner.tile_size(40, 50) == max(upscaler.MIN_TILE, 30 - 2 * pad)
    whole = upscale(model, image, tile=None)
    assert (runner.upscale(image) - whole).abs().max() <= 1e-4
    assert (runner.last_tile_size, runner.last_tile_pad) == (max(upscaler.MIN_TILE, 30 - 2 * pad), pad)


def test_progress_callback_counts_tiles():
    calls = []
    runner = Upscaler(tiny("dsgan"), device="cpu", precision="fp32", tile=10, tile_pad=2)
    runner.upscale(sample_image(), on_tile=lambda done, total: calls.append((done, total)))
    assert calls == [(index, 12) for index in range(1, 13)]  # ceil(23/10) * ceil(37/10)


# ---------------------------------------------------------------------------------------------
# ensemble, greyscale, precision, interpolation
# ---------------------------------------------------------------------------------------------

def test_transforms_invert():
    batch = torch.rand(1, 3, 5, 7)
    for code in range(8):
        assert torch.equal(inverse_transform(transform(batch, code), code), batch)
    assert len({tuple(transform(batch, code).flatten().tolist()) for code in range(8)}) == 8


@pytest.mark.parametrize("name", ["dsgan", "esrgan"])
def test_ensemble_of_an_equivariant_model_is_its_plain_output(name):
    model = tiny(name, symmetric=True)  # symmetric kernels + nearest upsampling commute with flips
    image = sample_image()
    plain = upscale(model, image, tile=None)
    assert (upscale(model, image, tile=None, ensemble=True) - plain).abs().max() <= 1e-5


@pytest.mark.parametrize("name", ["edsr", "esrgan-unshuffle"])
def test_ensemble_is_the_mean_of_transformed_outputs_and_composes_with_tiling(name):
    model = tiny(name)
    image = sample_image(24, 36)
    with torch.inference_mode():
        manual = torch.stack([inverse_transform(model(transform(image[None], code)), code) for code in range(8)])
    expected = manual.mean(0)[0].clamp(0, 1)
    whole = upscale(model, image, tile=None, ensemble=True)
    assert (whole - expected).abs().max() <= 1e-5
    assert (whole - upscale(model, image, tile=None)).abs().max() > 1e-3  # not equivariant: ensemble matters
    tiled = upscale(model, image, tile=7, tile_pad="full", ensemble=True)
    assert (tiled - whole).abs().max() <= 1e-4


def test_greyscale_in_greyscale_out_as_the_channel_mean():
    model = tiny("edsr")
    grey = sample_image(channels=1)
    result = upscale(model, grey, tile=8, tile_pad="full")
    assert result.shape == (1, 46, 74)
    with torch.inference_mode():
        rgb = model(grey.expand(3, -1, -1)[None])[0].clamp(0, 1)
    assert (result - rgb.clamp(0, 1).mean(0, keepdim=True)).abs().max() <= 1e-4


def test_forced_fp32_equals_the_plain_network():
    model = tiny("msrresnet")
    image = sample_image()
    runner = Upscaler(model, device="cpu", precision="fp32", tile=None)
    assert runner.dtype == torch.float32 and runner.precision == "fp32"
    with torch.inference_mode():
        direct = model(image[None])[0].clamp(0, 1)
    assert (runner.upscale(image) - direct).abs().max() <= 1e-6


def test_precision_rules(monkeypatch):
    assert resolve_precision("auto", torch.device("cuda")) == torch.float16
    monkeypatch.setattr(upscaler, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(upscaler, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) == torch.float32
    assert resolve_precision("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(DeviceError):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError):
        resolve_precision("int8", torch.device("cpu"))


class BreaksInHalfPrecision(nn.Module):
    """Two convs; the first returns NaN when it computes in half precision on a saturated pixel."""

    scale = 1

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(3, 3, 3, padding=1)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.first(x)
        if hidden.dtype != torch.float32 and bool((x >= 1).any()):
            hidden = hidden * torch.nan
        return self.conv(hidden)


def test_half_precision_overflow_redoes_the_tile_in_fp32_and_says_so_once():
    torch.manual_seed(0)
    model = BreaksInHalfPrecision().eval()
    image = sample_image() * 0.5
    image[:, 2, 2] = 1.0
    image[:, 20, 28] = 1.0
    heard = []
    runner = Upscaler(model, device="cpu", precision="bf16", tile=8, tile_pad=2, on_notice=heard.append)
    result = runner.upscale(image)
    assert bool(torch.isfinite(result).all())
    assert runner.fp32_redone_tiles == 2 and len(runner.notices) == 1 and heard == runner.notices
    assert "fp32" in runner.notices[0]
    with torch.inference_mode():
        direct = model(image[None])[0].clamp(0, 1)
    assert (result[:, :8, :8] - direct[:, :8, :8]).abs().max() <= 1e-5  # the redone tile is exact fp32


def test_from_pair_blends_the_weights():
    model_a, model_b = tiny("edsr", seed=0), tiny("edsr", seed=1)
    image = sample_image()
    options = dict(device="cpu", precision="fp32", tile=None)
    assert torch.equal(Upscaler.from_pair(model_a, model_b, 0.0, **options).upscale(image),
                       Upscaler(model_a, **options).upscale(image))
    halfway = Upscaler(interpolate_models(model_a, model_b, 0.5), **options).upscale(image)
    assert torch.equal(Upscaler.from_pair(model_a, model_b, 0.5, **options).upscale(image), halfway)


def test_rejects_bad_inputs():
    runner = Upscaler(tiny("dsgan"), device="cpu", precision="fp32")
    for bad in (torch.rand(4, 8, 8), torch.rand(8, 8), torch.zeros(3, 8, 8, dtype=torch.uint8)):
        with pytest.raises(ValueError):
            runner.upscale(bad)
    with pytest.raises(ValueError):
        Upscaler(tiny("dsgan"), device="cpu", tile=-3)
    with pytest.raises(ValueError):
        Upscaler(tiny("dsgan"), device="cpu", tile_pad="huge")


# ---------------------------------------------------------------------------------------------
# calibration cache
# ---------------------------------------------------------------------------------------------

def test_calibration_is_cached_and_reused(monkeypatch):
    model = tiny("edsr")
    pad = calibrated_pad(model)
    path = receptive_field.cache_path()
    entries = json.loads(path.read_text())
    assert len(entries) == 1 and next(iter(entries.values()))["pad"] == pad
    assert not list(path.parent.glob("*.tmp"))

    def no_search(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("calibrated twice")

    monkeypatch.setattr(receptive_field, "search_pad", no_search)
    assert calibrated_pad(model) == pad
    assert Upscaler(model, device="cpu", precision="fp32", tile=8).pad() == pad
    with pytest.raises(AssertionError):
        calibrated_pad(model, dtype=torch.bfloat16)  # another precision is another entry


def test_corrupt_cache_is_ignored_and_replaced():
    path = receptive_field.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert read_cache() == {}
    model_a, model_b = tiny("dsgan", seed=0), tiny("dsgan", seed=1)
    calibrated_pad(model_a)
    calibrated_pad(model_b)
    assert len(read_cache()) == 2  # different weights, different keys


def test_search_pad_finds_the_smallest_passing_pad():
    needed = 37
    probe = lambda pad, reference: 0.0 if pad >= needed else 1.0  # noqa: E731
    found = receptive_field.search_pad(probe, cap=300, target=0.1)
    assert needed <= found <= needed + max(1, needed // 16 + 1)
    assert receptive_field.search_pad(probe, cap=20, target=0.1) == 20
    assert receptive_field.search_pad(probe, cap=300, target=0.1, multiple=4) % 4 == 0


def test_a_wrong_scale_is_reported_not_mangled():
    with pytest.raises(ValueError, match="wrong scale"):
        Upscaler(tiny("edsr"), scale=3, device="cpu", precision="fp32").upscale(sample_image())


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(5, 7), (9, 9), (23, 31)])
def test_folded_tail_equals_the_unfolded_network(scale, size):
    """Folding is an exact rewrite: interior, border rings and images too small to fold."""
    torch.manual_seed(scale)
    model = registry.build("edsr", scale=scale, num_blocks=1, num_features=8).eval()
    folded = model.inference_copy()
    image = torch.rand(2, 3, *size)
    with torch.no_grad():
        expected, actual = model(image), folded(image)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() < 1e-5
    assert isinstance(folded.tail, FoldedTail) and folded.tail.scale == scale


def test_folded_mdsr_matches_every_scale_and_leaves_the_original_intact():
    torch.manual_seed(0)
    mdsr = registry.build("mdsr", scales=(2, 3, 4), num_blocks=1, num_features=8).eval()
    before = {key: value.clone() for key, value in mdsr.state_dict().items()}
    image = torch.rand(1, 3, 17, 29)
    for scale in (2, 3, 4):
        model = MDSRAtScale(mdsr, scale)
        with torch.no_grad():
            assert (model.inference_copy()(image) - model(image)).abs().max().item() < 1e-5
    assert isinstance(mdsr.tail[0], nn.Conv2d) and len(mdsr.upsample) == 3
    assert all(torch.equal(before[key], value) for key, value in mdsr.state_dict().items())


def test_upscaler_runs_the_folded_tail_and_matches_the_unfolded_one():
    torch.manual_seed(1)
    model = registry.build("edsr", scale=4, num_blocks=1, num_features=8).eval()
    image = torch.rand(3, 21, 26)
    folded = Upscaler(model, device="cpu", precision="fp32", tile=None)
    plain = Upscaler(model, device="cpu", precision="fp32", tile=None, fold=False)
    assert folded.runner is not folded.model and plain.runner is plain.model
    assert (folded.upscale(image) - plain.upscale(image)).abs().max().item() < 1e-5
    # the folded tail runs one conv at input resolution: no 64-channel tensor at 4x
    assert folded.max_region_pixels() > plain.max_region_pixels()


@pytest.mark.parametrize("name", FAMILIES)
def test_cpu_half_precision_runs_a_bf16_weight_copy_that_matches_autocast(name):
    """The bf16-weight copy computes what autocast computes (both round weights to bf16)."""
    model = tiny(name)
    image = sample_image()
    half = Upscaler(model, device="cpu", precision="bf16", tile=None)
    assert half.runner is not half.fp32_runner and not half.uses_autocast
    fp32_layers = [m for m in half.runner.modules() if keeps_fp32(m)]
    assert fp32_layers, "the output layer must stay fp32"
    for module in half.runner.modules():
        if keeps_fp32(module):
            assert all(p.dtype == torch.float32 for p in module.parameters())
        elif isinstance(module, nn.Conv2d) and not any(module is inner for m in fp32_layers for inner in m.modules()):
            assert module.weight.dtype == torch.bfloat16
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        batch = image[None].contiguous(memory_format=torch.channels_last)
        reference = half.fp32_runner(batch).float()[0].clamp(0, 1)
    assert (half.upscale(image) - reference).abs().max() <= 2 / 255
    assert all(p.dtype == torch.float32 for p in half.fp32_runner.parameters())


def test_large_allocations_on_heap_is_a_scoped_speed_setting(monkeypatch):
    """Same bytes out with and without it; nests; a large block allocated inside is usable."""
    from srcli.inference import device

    model = tiny("edsr")
    image = sample_image()
    monkeypatch.setattr(device, "HEAP_ENABLED", False)
    with device.large_allocations_on_heap() as applied:
        assert applied is False
    plain = Upscaler(model, device="cpu", precision="fp32", tile=None).upscale(image)
    monkeypatch.setattr(device, "HEAP_ENABLED", True)
    with device.large_allocations_on_heap() as outer, device.large_allocations_on_heap() as inner:
        assert outer == inner == (device._glibc() is not None)
        big = torch.ones(64 * 1024 * 1024 // 4)  # above glibc's 32 MB mmap ceiling
        assert float(big.sum()) == big.numel()
    assert device._heap_depth == 0
    assert torch.equal(plain, Upscaler(model, device="cpu", precision="fp32", tile=None).upscale(image))


@pytest.mark.parametrize("tile_pad", ["full", 3])
def test_tiled_folded_tail_skips_rings_facing_other_tiles_without_changing_the_output(tile_pad, monkeypatch):
    """Rings are recomputed only on image-border sides when the pad covers the tail's reach."""
    torch.manual_seed(1)
    model = registry.build("edsr", scale=4, num_blocks=1, num_features=8).eval()
    image = torch.rand(3, 29, 34)
    folded = Upscaler(model, device="cpu", precision="fp32", tile=12, tile_pad=tile_pad)
    plain = Upscaler(model, device="cpu", precision="fp32", tile=12, tile_pad=tile_pad, fold=False)
    seen = []
    original = FoldedTail.forward

    def spy(self, x):  # noqa: ANN001, ANN202
        seen.append(self.exact_sides)
        return original(self, x)

    monkeypatch.setattr(FoldedTail, "forward", spy)
    assert folded.pad() >= tail_reach_of(folded.runner) > 0
    assert (folded.upscale(image) - plain.upscale(image)).abs().max().item() < 1e-5
    assert (True, True, True, True) not in seen and (True, False, True, False) in seen
    assert all(sides == (True, True, True, True) for sides in [t.exact_sides for t in folded.runner.modules()
                                                              if isinstance(t, FoldedTail)])


@pytest.mark.parametrize("name", ["edsr", "esrgan"])
def test_auto_bf16_tiles_with_the_full_pad_so_tiled_equals_untiled(name, monkeypatch):
    """bf16 rounding flips cascade past any calibrated pad; auto precision keeps tiles exact anyway."""
    monkeypatch.setattr(upscaler, "cpu_has_native_bf16", lambda: True)
    model = tiny(name)
    image = sample_image(30, 34)
    auto = Upscaler(model, device="cpu", precision="auto", tile=9)
    assert auto.dtype == torch.bfloat16
    assert auto.pad() == receptive_field.round_up(theoretical_radius(model), auto.multiple)
    untiled = Upscaler(model, device="cpu", precision="auto", tile=None).upscale(image)
    assert (auto.upscale(image) - untiled).abs().max() <= 1e-4
    forced = Upscaler(model, device="cpu", precision="bf16", tile=9)  # what the user asks for, they get
    assert forced.pad() == calibrated_pad(forced.model, dtype=torch.bfloat16)
    # a network too deep for full-pad tiles runs fp32 under auto, tiled or not
    monkeypatch.setattr(upscaler, "AUTO_BF16_MAX_RADIUS", 0)
    for tile in (None, 9):
        deep = Upscaler(model, device="cpu", precision="auto", tile=tile)
        assert deep.dtype == torch.float32 and deep.runner is deep.fp32_runner
        assert torch.equal(deep.upscale(image), upscale(model, image, tile=tile))


def test_rrdbnet_keeps_the_conv_feeding_its_output_in_fp32_at_half_precision():
    model = tiny("esrgan")
    half = Upscaler(model, device="cpu", precision="bf16", tile=None)
    assert half.runner.conv_hr.weight.dtype == torch.float32 and keeps_fp32(half.runner.conv_hr)
    assert half.runner.conv_last.weight.dtype == torch.float32
    assert half.runner.conv_body.weight.dtype == torch.bfloat16
    assert half.upscale(sample_image()).dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# position-aware networks (grid-aware DSGAN)
# ---------------------------------------------------------------------------------------------

def test_grid_aware_dsgan_tiles_match_the_whole_image():
    """Tiles start on the 8-px grid, so each sees the grid phase the whole image gives it."""
    torch.manual_seed(0)
    model = registry.build("dsgan", num_blocks=1, num_features=8, block_grid=8)
    with torch.no_grad():
        model.block_input[0].weight[:, 3:] *= 20  # make the grid channels matter
    image = torch.rand(3, 45, 61)
    with torch.no_grad():
        direct = model(image[None])[0]
    assert receptive_field.tile_alignment(model) == 8 and input_multiple(model) == 1
    for tile in (None, 10, 20):
        runner = Upscaler(model, device="cpu", precision="fp32", tile=tile, tile_pad="full")
        assert torch.allclose(runner.upscale(image), direct, atol=1e-5), tile


def test_grid_phase_channels_mark_column_and_row_in_the_grid():
    from srcli.nets.dsgan import grid_phase_channels

    maps = grid_phase_channels(torch.zeros(2, 3, 11, 13), 4)
    assert maps.shape == (2, 8, 11, 13)
    assert maps.sum(1).eq(2).all()  # one column phase and one row phase per pixel
    assert maps[0, :4, 5, :].argmax(0).tolist() == [c % 4 for c in range(13)]
    assert maps[1, 4:, :, 7].argmax(0).tolist() == [r % 4 for r in range(11)]
