"""Inference core: run an SR network over an image of any size without seams or memory blow-up.

The image and the output stay in CPU memory; tiles go to the device one at a time. Each
tile carries ``pad`` pixels of real image context on every side (clipped at the image
border, so border tiles see exactly what the untiled network sees) and only its centre is
written into a preallocated output. Peak memory is therefore input + output + one tile,
whatever the image size.

Decisions:

* ``tile='auto'``: the whole image if its activations fit the whole-image budget, else the
  largest square tile whose padded region fits the tile budget (``budget.py``: on the CPU
  half of MemAvailable, at most 16 GiB, for whole images, and 1 GiB for tiles). Activation
  bytes per input pixel are measured once with hooks (widest layer's input + output, times
  ``ACTIVATION_SAFETY`` for skips and allocator slack). The tile and pad chosen are kept in
  ``last_tile_size`` / ``last_tile_pad`` and told to ``on_notice`` once per choice.
* ``tile_pad='auto'``: the calibrated pad (see ``receptive_field.calibrate_pad``),
  measured only when tiling actually happens, within the tile memory budget and a few
  seconds; ``'full'``: the theoretical radius (exact). When the measurement cannot settle
  (a reach past what the budgets let it probe), the pad is the larger of the reach measured
  so far and a sixth of the budget's region side, capped at the theoretical radius, so the
  tile keeps two thirds of its side for output instead of shrinking to a sliver.
* Greyscale input is replicated to RGB per tile and the RGB result averaged back to one
  channel: on a grey input any difference between channels is network colour noise, and
  the mean treats the channels symmetrically (luma weights would favour green's noise).
* EDSR/MDSR run with their linear sub-pixel tail folded into one fp32 low-resolution conv
  (``nets/tailfold.py``): equal to the unfolded net up to float rounding, ~10x fewer tail
  FLOPs, and no 256-channel tensors at 2x/4x resolution. ``fold=False`` runs the net as is.
* Half precision on the CPU runs a copy of the network with bf16 weights and no autocast
  (``device.half_precision_copy``: ~30% faster than autocast, same arithmetic); on CUDA/MPS
  it runs under autocast. The output conv / folded tail stay fp32 either way. A tile that
  overflows (NaN/Inf) is redone with the fp32 network; ``notices`` says so once.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints.interpolate import interpolate_models
from ..nets.dsgan import DSGANGenerator
from ..nets.tailfold import exact_rings_only_on, folded_tails
from .budget import MemoryBudget, activation_bytes_per_pixel, memory_budget
from .device import (
    HEAP_KEEP_BETWEEN,
    DeviceError,
    cpu_has_native_bf16,
    half_precision_copy,
    keep_sensitive_layers_fp32,
    large_allocations_on_heap,
    pick_device,
    release_free_heap_above,
)
from .geometry import inverse_transform, transform  # noqa: F401  (re-exported)
from .receptive_field import (
    DEFAULT_TOLERANCE,
    PadCalibration,
    calibrate_pad,
    input_multiple,
    precision_context,
    round_up,
    theoretical_radius,
    tile_alignment,
)

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Auto precision and bf16: bf16 rounds every layer output, and the far-away change a tile border
# makes flips some roundings; the flips cascade through the whole receptive field instead of fading,
# so with the calibrated pad shipped models' bf16 tiles differed from untiled by up to 0.82/255
# (edsr) and 0.86/255 (esrgan-psnr) on Set5+Set14 (benchmarks/tiling.py), above the 0.5/255
# promise. Only the theoretical pad makes bf16 tiles exact. Up to this radius (EDSR/MDSR baseline,
# SRResNet, DSGAN: 18-44 px) that is cheap on CPU-sized tiles (edsr x2's auto tile is 1,376 px:
# pad 36 instead of 9 is 1.08x the pixels), far less than fp32's ~2x, so auto keeps bf16 and tiles
# with the full pad; deeper networks (RRDBNet: 94-349 px) run fp32.
AUTO_BF16_MAX_RADIUS = 48
MIN_TILE = 32
FALLBACK_PAD_SHARE = 1 / 6  # of the region side, when the reach is too far to measure

TileCallback = Callable[[int, int], None]
NoticeCallback = Callable[[str], None]


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto``: fp16 on CUDA, bf16 on CPUs that compute it natively, else fp32."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return torch.float32
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16")
    if precision == "fp16" and device.type == "cpu":
        raise DeviceError("fp16 needs a CUDA or MPS device; use bf16 or fp32 on the CPU")
    return PRECISIONS[precision]


def native_scale(model: nn.Module) -> int:
    """The network's own factor; DSGAN's config ``scale`` names its data, not its output size."""
    if isinstance(model, DSGANGenerator):
        return 1
    scale = getattr(model, "scale", None)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"cannot tell the scale of {type(model).__name__}; pass scale=")
    return scale


@dataclass(frozen=True)
class Tile:
    """``top/left/height/width``: the input pixels written; ``region_*``: what the network sees."""

    top: int
    left: int
    height: int
    width: int
    region_top: int
    region_left: int
    region_bottom: int
    region_right: int


def plan_tiles(height: int, width: int, tile_size: int, pad: int, multiple: int = 1) -> list[Tile]:
    """Cover the image with ``tile_size`` squares plus ``pad`` context, aligned to ``multiple``.

    Regions are clipped to the image rounded up to ``multiple`` (the part past the image is
    replicate-padded, exactly as the untiled image is), so tiles may be smaller than the pad.
    """
    padded_height, padded_width = round_up(height, multiple), round_up(width, multiple)
    tiles = []
    for top in range(0, height, tile_size):
        for left in range(0, width, tile_size):
            tile_height, tile_width = min(tile_size, height - top), min(tile_size, width - left)
            tiles.append(Tile(
                top, left, tile_height, tile_width,
                max(0, top - pad), max(0, left - pad),
                min(padded_height, round_up(top + tile_height, multiple) + pad),
                min(padded_width, round_up(left + tile_width, multiple) + pad),
            ))
    return tiles


def read_region(image: torch.Tensor, tile: Tile) -> torch.Tensor:
    """(1, 3, h, w) float32 copy of a tile's region; replicate-padded past the image, grey -> RGB."""
    region = image[:, tile.region_top:tile.region_bottom, tile.region_left:tile.region_right]
    region = region.unsqueeze(0).float()
    missing_rows = tile.region_bottom - tile.region_top - region.shape[-2]
    missing_columns = tile.region_right - tile.region_left - region.shape[-1]
    if missing_rows or missing_columns:
        region = F.pad(region, (0, missing_columns, 0, missing_rows), mode="replicate")
    return region.expand(-1, 3, -1, -1) if region.shape[1] == 1 else region


class Upscaler:
    """An SR network ready to upscale (C, H, W) images of any size; see the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        *,
        scale: int | None = None,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: str | int | None = "auto",
        tile_pad: str | int = "auto",
        ensemble: bool = False,
        tolerance: float = DEFAULT_TOLERANCE,
        on_notice: NoticeCallback | None = None,
        fold: bool = True,
    ) -> None:
        self.device = pick_device(device) if isinstance(device, str) else torch.device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.scale = scale if scale is not None else native_scale(model)
        self.multiple = input_multiple(model)
        self.alignment = tile_alignment(model)
        self.tolerance = tolerance
        self.model = self._prepare(model)
        self.exact_half_tiles = False
        if precision == "auto":
            self._settle_auto_precision()
        self.fp32_runner = self._fold(self.model) if fold else self.model
        self.runner = self._half_copy(self.fp32_runner)
        self._tails = folded_tails(self.fp32_runner) + ([] if self.runner is self.fp32_runner else folded_tails(self.runner))
        self._tail_reach = max((tail.reach for tail in self._tails), default=0)
        self.tile = _check_tile(tile)
        self.tile_pad = _check_tile_pad(tile_pad)
        self.ensemble = ensemble
        self.on_notice = on_notice
        self.notices: list[str] = []  # warnings (also told to on_notice); progress notes only go there
        self.fp32_redone_tiles = 0
        self.last_tile_size: int | None = None  # the last upscale's tile side (input px), None: ran whole
        self.last_tile_pad: int | None = None  # ... and its pad per side (input px), None: ran whole
        self._announced: set[tuple[int, int]] = set()
        self._pad: int | None = None
        self._bytes_per_pixel: float | None = None

    @classmethod
    def from_pair(cls, model_a: nn.Module, model_b: nn.Module, alpha: float, **options: object) -> Upscaler:
        """Network interpolation (ESRGAN): blend two same-architecture nets' weights, then upscale."""
        return cls(interpolate_models(model_a, model_b, alpha), **options)  # type: ignore[arg-type]

    def _prepare(self, model: nn.Module) -> nn.Module:
        model = model.eval().to(self.device)
        if self.device.type in ("cpu", "cuda"):
            model = model.to(memory_format=torch.channels_last)  # faster convs on both
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        if self.dtype != torch.float32:
            keep_sensitive_layers_fp32(model)
        return model

    def _settle_auto_precision(self) -> None:
        """Auto bf16 must keep tiled == untiled: full-pad tiles where affordable, else fp32."""
        if self.dtype != torch.bfloat16:
            return
        self.exact_half_tiles = theoretical_radius(self.model) <= AUTO_BF16_MAX_RADIUS
        if not self.exact_half_tiles:
            self.dtype = torch.float32

    def _fold(self, model: nn.Module) -> nn.Module:
        """The network as it runs: linear tails folded where the family supports it (nets/tailfold.py).

        ``self.model`` stays the unfolded network for receptive-field analysis and calibration.
        """
        make_copy = getattr(model, "inference_copy", None)
        if make_copy is None:
            return model
        runner = make_copy()
        if self.device.type in ("cpu", "cuda"):
            runner = runner.to(memory_format=torch.channels_last)
        return runner

    def _half_copy(self, runner: nn.Module) -> nn.Module:
        """What runs at ``self.dtype``: the fp32 runner itself, or (CPU half) its half-weight copy."""
        if self.dtype == torch.float32 or self.device.type != "cpu":
            return runner
        return half_precision_copy(runner, self.dtype)

    @property
    def uses_autocast(self) -> bool:
        return self.dtype != torch.float32 and self.runner is self.fp32_runner

    @property
    def precision(self) -> str:
        return next(name for name, dtype in PRECISIONS.items() if dtype == self.dtype)

    # -- sizes --------------------------------------------------------------------------------

    def pad(self) -> int:
        """Context per tile side in input pixels (calibrated once, lazily: only tiling needs it)."""
        if self._pad is None:
            self._pad = round_up(self._choose_pad(), self.alignment)
        return self._pad

    def _choose_pad(self) -> int:
        if self.tile_pad == "full" or (self.tile_pad == "auto" and self.exact_half_tiles):
            return theoretical_radius(self.model)
        if self.tile_pad != "auto":
            return int(self.tile_pad)
        calibration = calibrate_pad(self.model, device=self.device, dtype=self.dtype, tolerance=self.tolerance,
                                    memory_budget=self._memory_budget().tile, on_notice=self._tell)
        return calibration.pad if calibration.resolved else self._fallback_pad(calibration)

    def _fallback_pad(self, calibration: PadCalibration) -> int:
        """A reach too far to measure: a sixth of the budget's region side (at least what was measured).

        Why: the theoretical radius of a deep net (RRDBNet-23 x4: 349 px) leaves no room for
        output in a tile that fits memory; hundreds of slivers are what took 20 minutes.
        """
        side = math.isqrt(int(self.max_region_pixels()))
        pad = min(calibration.theoretical, max(calibration.pad, int(side * FALLBACK_PAD_SHARE)))
        self._tell(f"tile overlap for this network reaches past {calibration.pad} px, more than a quick "
                   f"measurement settles; using a {pad} px pad, so tiles may differ slightly from untiled "
                   "output (a full pad is exact)", warning=True)
        return pad

    def _memory_budget(self) -> MemoryBudget:
        return memory_budget(self.device)

    def _runner_bytes_per_pixel(self) -> float:
        if self._bytes_per_pixel is None:
            self._bytes_per_pixel = activation_bytes_per_pixel(self.runner, self.device, self.dtype, self.multiple)
        return self._bytes_per_pixel

    def max_region_pixels(self) -> float:
        """How many input pixels one tile's forward pass may cover within the tile budget."""
        return self._memory_budget().tile / self._runner_bytes_per_pixel()

    def whole_image_pixels(self) -> float:
        """How many input pixels may run untiled within the whole-image budget."""
        return self._memory_budget().whole / self._runner_bytes_per_pixel()

    def tile_size(self, height: int, width: int) -> int | None:
        """Tile side in input pixels, or None to run the image whole."""
        if self.tile is None:
            return None
        if self.tile != "auto":
            return round_up(int(self.tile), self.alignment)
        if round_up(height, self.multiple) * round_up(width, self.multiple) <= self.whole_image_pixels():
            return None
        side = math.isqrt(int(self.max_region_pixels())) - 2 * self.pad()
        side = side // self.alignment * self.alignment
        return max(side, round_up(MIN_TILE, self.alignment))

    # -- running ------------------------------------------------------------------------------

    def upscale(self, image: torch.Tensor, on_tile: TileCallback | None = None) -> torch.Tensor:
        """(C, H, W) float in [0, 1], C = 1 or 3 -> (C, H*s, W*s) float32 in [0, 1], on the CPU."""
        _check_image(image)
        channels, height, width = image.shape
        scale = self.scale
        tile_size = self.tile_size(height, width)
        if tile_size is None:
            tiles = plan_tiles(height, width, max(height, width), 0, self.multiple)
        else:
            tiles = plan_tiles(height, width, tile_size, self.pad(), self.multiple)
        self._record_tiling(tile_size, len(tiles))
        with large_allocations_on_heap() if self.device.type == "cpu" else nullcontext():
            output = torch.empty(channels, height * scale, width * scale, dtype=torch.float32)
            self._run_tiles(image, output, tiles, on_tile)
        return output

    def _record_tiling(self, tile_size: int | None, count: int) -> None:
        """Keep the choice for callers (``--json``) and tell an automatic one once."""
        self.last_tile_size = tile_size
        self.last_tile_pad = None if tile_size is None else self.pad()
        if tile_size is None or self.tile != "auto" or (tile_size, self.pad()) in self._announced:
            return
        self._announced.add((tile_size, self.pad()))
        self._tell(f"tiling: {tile_size} px tiles with a {self.pad()} px pad "
                   f"({count} tile{'s' if count != 1 else ''} for this image)")

    def _tell(self, message: str, warning: bool = False) -> None:
        """Warnings are kept in ``notices``; everything goes to ``on_notice`` (silent without one)."""
        if warning:
            self.notices.append(message)
        if self.on_notice is not None:
            self.on_notice(message)

    def _run_tiles(self, image: torch.Tensor, output: torch.Tensor, tiles: list[Tile],
                   on_tile: TileCallback | None) -> None:
        channels, height, width = image.shape
        scale = self.scale
        for done, tile in enumerate(tiles, start=1):
            region = read_region(image, tile)
            result = self._run_region(region, self._image_border_sides(tile, height, width))
            if result.shape[-2:] != (region.shape[-2] * scale, region.shape[-1] * scale):
                raise ValueError(f"the network turned {tuple(region.shape[-2:])} into {tuple(result.shape[-2:])}, "
                                 f"not x{scale}: wrong scale for this model")
            row, column = (tile.top - tile.region_top) * scale, (tile.left - tile.region_left) * scale
            result = result[0, :, row:row + tile.height * scale, column:column + tile.width * scale]
            if channels == 1:
                result = result.mean(dim=0, keepdim=True)
            output[:, tile.top * scale:(tile.top + tile.height) * scale,
                   tile.left * scale:(tile.left + tile.width) * scale] = result.clamp(0, 1).cpu()
            if self.device.type == "cpu":
                release_free_heap_above(HEAP_KEEP_BETWEEN)
            if on_tile is not None:
                on_tile(done, len(tiles))

    def _image_border_sides(self, tile: Tile, height: int, width: int) -> tuple[bool, bool, bool, bool]:
        """Sides of the region on the image border (top, bottom, left, right); all when it matters.

        A folded tail's exact ring is only needed where the region ends at the image border:
        sides facing another tile lose their outer ``pad >= reach`` pixels to the crop.
        """
        if self.ensemble or self._pad is None or self._pad < self._tail_reach:
            return (True, True, True, True)
        return (tile.region_top == 0, tile.region_bottom >= height, tile.region_left == 0, tile.region_right >= width)

    def _run_region(self, region: torch.Tensor, border_sides: tuple[bool, bool, bool, bool]) -> torch.Tensor:
        """Network output (float32, on the device) for one region, self-ensembled if asked."""
        region = region.to(self.device, non_blocking=True)
        if not self.ensemble:
            with exact_rings_only_on(self._tails, border_sides):
                return self._forward(region)
        total = None
        for code in range(8):
            result = inverse_transform(self._forward(transform(region, code)), code)
            total = result if total is None else total + result
        return total / 8

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        memory_format = torch.channels_last if self.device.type in ("cpu", "cuda") else torch.contiguous_format
        batch = batch.contiguous(memory_format=memory_format)
        with torch.inference_mode():
            with precision_context(self.device, self.dtype if self.uses_autocast else torch.float32):
                result = self.runner(batch).float()
            if self.dtype != torch.float32 and not bool(torch.isfinite(result).all()):
                self._note_fp32_redo()
                result = self.fp32_runner(batch).float()
        return result

    def _note_fp32_redo(self) -> None:
        self.fp32_redone_tiles += 1
        if self.fp32_redone_tiles == 1:
            self._tell(f"{self.precision} overflowed (NaN/Inf) in a tile; such tiles are recomputed in fp32 "
                       "(use --precision fp32 to avoid the double work)", warning=True)


def _check_tile(tile: str | int | None) -> str | int | None:
    if tile is None or tile == 0:
        return None
    if tile == "auto":
        return tile
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 0:
        raise ValueError(f"tile must be 'auto', a positive number of pixels, or 0/None for no tiling; got {tile!r}")
    return tile


def _check_tile_pad(tile_pad: str | int) -> str | int:
    if tile_pad in ("auto", "full"):
        return tile_pad
    if isinstance(tile_pad, bool) or not isinstance(tile_pad, int) or tile_pad < 0:
        raise ValueError(f"tile_pad must be 'auto', 'full' or a number of pixels >= 0; got {tile_pad!r}")
    return tile_pad


def _check_image(image: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] not in (1, 3):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"expected a (C, H, W) image with 1 or 3 channels, got {shape}")
    if not image.is_floating_point():
        raise ValueError(f"expected a float image in [0, 1], got {image.dtype}")
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError("the image is empty")
