"""How far an output pixel can "see" into the input, in theory and in practice.

Tiling is seamless only if every tile carries enough real context (the *pad*) around the
pixels it writes. ``theoretical_radius`` gives the exact distance beyond which input pixels
cannot change an output pixel, so ``pad = theoretical_radius`` makes tiled output equal to
untiled output up to float rounding. That bound is loose in practice (RRDBNet x4: 349 px,
while its weights barely look past a few dozen), so ``calibrate_pad`` measures the smallest
pad whose tiles stay within a tolerance of untiled output, within a memory and compute
budget, and caches it per model.

Radii are computed by walking the layers from the output back to the input, tracking the
interval of positions an output pixel depends on: a k x k conv widens it by (k - 1) / 2 at
its resolution, an x f upsample divides it by f (floor: an upsampled pixel copies one
source pixel), so a conv after an x f upsample costs 1/f input pixel, rounded up once at
the end; a bilinear upsample adds one source pixel and a pixel-unshuffle by u multiplies
by u. Residual and dense connections never make a path longer than the chain through
every conv, so the chain gives the longest path.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..files import atomic_write
from ..nets.esrgan import RRDBNet
from ..nets.mdsr import MDSR, MDSRAtScale
from ..nets.srresnet import MSRResNet
from .budget import memory_budget, network_cost
from .device import keeps_fp32

DEFAULT_TOLERANCE = 0.5 / 255
SAFETY_MARGIN = 0.5  # calibrate to tolerance * margin: unseen images may be a little worse
# ...and add pixels: the mismatch falls ~3x per pixel of pad (measured on EDSR and RRDBNet), so 2
# more give ~10x headroom. Needed: a pad calibrated at 0.25/255 gave 0.53/255 on another image.
PAD_MARGIN = 2
CALIBRATION_CORE = 16  # written pixels per side of the calibration tile (many border positions)
CALIBRATION_IMAGES = 3
# Multiply-adds all calibration probes together may cost, by device type: ~4 s on one busy CPU
# core (RRDBNet-23 ran 37 GMAC/s single-threaded); enough to settle the shipped networks' pads.
CALIBRATION_MACS = {"cpu": 1.5e11, "mps": 1.5e11, "cuda": 3e12}
CACHE_FILE = "receptive_fields.json"
CACHE_VERSION = "bounded-1"  # entries of the unbounded search (e.g. RRDBNet-23's 349) are measured again


@dataclass(frozen=True)
class Upscale:
    """A resize by ``factor`` that is not a module (``F.pixel_shuffle``, ``F.interpolate``)."""

    factor: int
    bilinear: bool = False


@dataclass(frozen=True)
class Unshuffle:
    """``F.pixel_unshuffle`` by ``factor``: the network works on factor x factor input blocks."""

    factor: int


Step = nn.Module | Upscale | Unshuffle


# ---------------------------------------------------------------------------------------------
# theoretical radius
# ---------------------------------------------------------------------------------------------

def forward_plan(model: nn.Module) -> list[Step]:
    """Layers in the order ``forward`` runs them, for nets whose module order is not that order.

    EDSR, SRResNet, DSGAN and SRVGGNetCompact register their modules in forward order and
    upsample with ``nn.PixelShuffle``, so the model itself is its plan (SRVGGNetCompact's
    nearest-upsampled input skip reaches no farther than the pixel itself). MDSR holds
    heads/tails for every scale (only one runs); MSRResNet and RRDBNet resize with functional ops.
    """
    if isinstance(model, MDSRAtScale):
        return _mdsr_plan(model.mdsr, model.scale)
    if isinstance(model, MDSR):
        return _mdsr_plan(model, model.scale_list[0])
    if isinstance(model, RRDBNet):
        plan: list[Step] = [Unshuffle(model.unshuffle)] if model.unshuffle > 1 else []
        plan += [model.conv_first, model.body, model.conv_body]
        for index in range(1, model.num_upsamples + 1):
            plan += [Upscale(2), getattr(model, f"conv_up{index}")]
        return plan + [model.conv_hr, model.conv_last]
    if isinstance(model, MSRResNet):
        plan = [model.conv_first, model.body, model.upconv1, Upscale(model.steps[0])]
        if len(model.steps) == 2:
            plan += [model.upconv2, Upscale(2)]
        # the bilinear global skip reaches 1 source pixel, far less than the conv path
        return plan + [model.conv_hr, model.conv_last]
    return [model]


def _mdsr_plan(mdsr: MDSR, scale: int) -> list[Step]:
    index = mdsr.scale_index(scale)
    return [mdsr.head, mdsr.pre_process[index], mdsr.body, mdsr.upsample[index], mdsr.tail]


def _leaf_steps(plan: Iterable[Step]) -> list[Step]:
    """Flatten modules into their leaves, keeping registration (= forward) order."""
    leaves: list[Step] = []
    for step in plan:
        if not isinstance(step, nn.Module):
            leaves.append(step)
        elif isinstance(step, nn.PixelShuffle):
            leaves.append(Upscale(step.upscale_factor))
        elif isinstance(step, nn.PixelUnshuffle):
            leaves.append(Unshuffle(step.downscale_factor))
        elif isinstance(step, nn.Upsample):
            factor = int(step.scale_factor) if step.scale_factor else 1
            leaves.append(Upscale(factor, bilinear=step.mode != "nearest"))
        elif isinstance(step, nn.Conv2d) or not any(True for _ in step.children()):
            leaves.append(step)
        else:
            leaves.extend(_leaf_steps(step.children()))
    return leaves


def theoretical_radius(model: nn.Module) -> int:
    """Input pixels farther than this (Chebyshev distance) cannot change an output pixel.

    Exact: the output block of one input pixel is walked back to the input interval it
    depends on, for every phase of that pixel against the resampling grids (pixel-unshuffle
    blocks and upsampling factors make the reach depend on the position within a block).
    A model's ``block_reach`` (a JPEG ending: a pixel depends on its whole coding unit and the
    neighbouring one's chroma) is added on top.
    """
    steps = list(reversed(_leaf_steps(forward_plan(model))))
    scale = _net_scale(steps)
    period = math.prod(s.factor for s in steps if isinstance(s, (Upscale, Unshuffle)))
    radius = 0
    for axis in (0, 1):
        for x in range(1000 * period, 1001 * period):
            low, high = _input_interval(steps, scale * x, scale * x + scale - 1, axis)
            radius = max(radius, x - low, high - x)
    return radius + int(getattr(model, "block_reach", 0))


def _net_scale(steps: Sequence[Step]) -> int:
    up = math.prod(s.factor for s in steps if isinstance(s, Upscale))
    down = math.prod(s.factor for s in steps if isinstance(s, Unshuffle))
    if up % down:
        raise ValueError(f"network scale {up}/{down} is not an integer")
    return up // down


def _input_interval(steps_backward: Sequence[Step], low: int, high: int, axis: int) -> tuple[int, int]:
    """The input indices (along ``axis``) that output indices [low, high] depend on."""
    for step in steps_backward:
        if isinstance(step, Upscale) and step.bilinear:  # align_corners=False: two source taps
            low = math.floor((low + 0.5) / step.factor - 0.5)
            high = math.floor((high + 0.5) / step.factor - 0.5) + 1
        elif isinstance(step, Upscale):  # pixel-shuffle or nearest: one source pixel
            low, high = low // step.factor, high // step.factor
        elif isinstance(step, Unshuffle):
            low, high = low * step.factor, high * step.factor + step.factor - 1
        elif isinstance(step, nn.Conv2d):
            before, span = _conv_reach(step, axis)
            low, high = low * step.stride[axis] - before, high * step.stride[axis] - before + span
    return low, high


def _conv_reach(conv: nn.Conv2d, axis: int) -> tuple[int, int]:
    """(padding before, full span) of a conv's window along ``axis``."""
    span = conv.dilation[axis] * (conv.kernel_size[axis] - 1)
    if isinstance(conv.padding, str):
        return (span // 2 if conv.padding == "same" else 0), span
    return conv.padding[axis], span


def input_multiple(model: nn.Module) -> int:
    """Input sides must be multiples of this (pixel-unshuffle); tiles are aligned to it."""
    return math.prod(s.factor for s in _leaf_steps(forward_plan(model)) if isinstance(s, Unshuffle))


def tile_alignment(model: nn.Module) -> int:
    """Tile corners and pads must be multiples of this: the input multiple and, for nets that
    know where a pixel lies in a grid (grid-aware DSGAN), that grid, so a tile sees each pixel
    at the same grid phase as the whole image does."""
    return math.lcm(input_multiple(model), int(getattr(model, "position_period", 1)))


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


# ---------------------------------------------------------------------------------------------
# running a model the way inference does
# ---------------------------------------------------------------------------------------------

def precision_context(device: torch.device, dtype: torch.dtype) -> object:
    """Autocast for half precisions: weights stay fp32, so an fp32 redo needs no second copy."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def run_model(model: nn.Module, batch: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(N, C, H, W) CPU batch -> float32 CPU output, unclamped."""
    memory_format = torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format
    batch = batch.to(device, non_blocking=True).contiguous(memory_format=memory_format)
    with torch.inference_mode(), precision_context(device, dtype):
        return model(batch).float().cpu()


# ---------------------------------------------------------------------------------------------
# calibrated pad
# ---------------------------------------------------------------------------------------------

class ProbeLimit(Exception):
    """The next probe run would pass the calibration's compute budget."""


class ReachBeyond(Exception):
    """The search could not settle within its budgets: pads up to ``pad`` were measured too small."""

    def __init__(self, pad: int) -> None:
        super().__init__(f"reach beyond {pad} px")
        self.pad = pad


@dataclass(frozen=True)
class PadCalibration:
    """A measured pad (``resolved``), or (not resolved) the largest pad measured too small."""

    pad: int
    resolved: bool
    theoretical: int

    @property
    def safe_pad(self) -> int:
        """The measured pad, or the theoretical radius (exact) where the measurement did not settle."""
        return self.pad if self.resolved else self.theoretical


def calibration_images(side: int, count: int = 2, seed: int = 0) -> torch.Tensor:
    """Natural-ish content: a smooth colour field, hard edges at random angles, and noise.

    Smooth areas alone under-state how far texture propagates and pure noise over-states
    it; real photos are a mix, so the calibration images are too.
    """
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, max(2, side // 16), max(2, side // 16), generator=generator)
    smooth = F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False)
    axis = torch.linspace(-1, 1, side)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    images = smooth.clone()
    for _ in range(6):
        angle = torch.rand(count, 1, 1, generator=generator) * 2 * math.pi
        offset = torch.rand(count, 1, 1, generator=generator) * 1.6 - 0.8
        mask = (x * torch.cos(angle) + y * torch.sin(angle) > offset).unsqueeze(1)
        colour = torch.rand(count, 3, 1, 1, generator=generator)
        images = torch.where(mask, 0.6 * images + 0.4 * colour, images)
    images = images + 0.03 * torch.randn(images.shape, generator=generator)
    return images.clamp(0, 1)


def _fit(image: torch.Tensor, side: int) -> torch.Tensor:
    """Centre-crop (or replicate-pad) a (C, H, W) image to (3, side, side)."""
    image = image.expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
    pad_h, pad_w = max(0, side - image.shape[1]), max(0, side - image.shape[2])
    if pad_h or pad_w:
        padding = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        image = F.pad(image.unsqueeze(0), padding, mode="replicate").squeeze(0)
    top, left = (image.shape[1] - side) // 2, (image.shape[2] - side) // 2
    return image[:, top:top + side, left:left + side]


class _PadProbe:
    """Runs the centre tile of the calibration images with a given pad, one image at a time.

    ``mismatch(pad, reference)`` is <= 1 when ``pad`` is enough. In fp32 that is the max
    difference over ``target``. Half precision rounds outputs to steps of ~1/255 (EDSR's
    output is rounded on the 0..255 scale), so any pad short of the theoretical radius lets
    a far pixel's negligible influence flip some roundings by one step: the half-precision
    difference is therefore judged against the flips that an invisible input dither
    (+-0.25/255) causes, while the fp32 difference still has to meet ``target``, so the
    pad covers the network's real reach and the precision's own behaviour (e.g. overflow).

    Bounded: one image per forward pass (the caller keeps regions within the tile memory
    budget), and ``ProbeLimit`` before a run that would pass ``mac_budget`` multiply-adds.
    """

    def __init__(self, model: nn.Module, images: torch.Tensor, device: torch.device, dtype: torch.dtype,
                 core: int, target: float, macs_per_pixel: float = 0.0, mac_budget: float = math.inf) -> None:
        self.model, self.images, self.device, self.dtype = model, images, device, dtype
        self.core, self.target = core, target
        self.macs_per_pixel, self.mac_budget, self.spent = macs_per_pixel, mac_budget, 0.0
        self.outputs: dict[tuple[int, int, torch.dtype, bool], torch.Tensor] = {}

    def output(self, index: int, pad: int, dtype: torch.dtype, dithered: bool = False) -> torch.Tensor:
        key = (index, pad, dtype, dithered)
        if key not in self.outputs:
            start = (self.images.shape[-1] - self.core) // 2 - pad
            side = self.core + 2 * pad
            cost = side * side * self.macs_per_pixel
            if self.spent + cost > self.mac_budget:
                raise ProbeLimit()
            self.spent += cost
            region = self.images[index:index + 1, :, start:start + side, start:start + side]
            if dithered:
                dither = torch.rand(region.shape, generator=torch.Generator().manual_seed(1 + index)) - 0.5
                region = region + dither * (0.5 / 255)
            result = run_model(self.model, region, self.device, dtype)
            scale = result.shape[-1] // side
            # unclamped: calibration content that saturates must not hide a mismatch
            self.outputs[key] = result[..., pad * scale:(pad + self.core) * scale,
                                       pad * scale:(pad + self.core) * scale]
        return self.outputs[key]

    def difference(self, index: int, pad: int, reference: int, dtype: torch.dtype) -> float:
        """Max abs difference; NaN (half-precision overflow) counts as a mismatch."""
        value = (self.output(index, pad, dtype) - self.output(index, reference, dtype)).abs().max().item()
        return math.inf if math.isnan(value) else value

    def image_mismatch(self, index: int, pad: int, reference: int) -> float:
        ratio = self.difference(index, pad, reference, torch.float32) / self.target
        if self.dtype != torch.float32 and ratio <= 1:
            flips = (self.output(index, reference, self.dtype, dithered=True)
                     - self.output(index, reference, self.dtype)).abs()
            allowed = max(self.target, flips.max().nan_to_num(0.0).item())
            ratio = max(ratio, self.difference(index, pad, reference, self.dtype) / allowed)
        return ratio

    def mismatch(self, pad: int, reference: int) -> float:
        """Worst ratio over the images; stops at the first image that fails (the rest cannot pass it)."""
        worst = 0.0
        for index in range(self.images.shape[0]):
            worst = max(worst, self.image_mismatch(index, pad, reference))
            if worst > 1:
                break
        return worst


def search_pad(probe: Callable[[int, int], float], cap: int, target: float, multiple: int = 1,
               cap_is_exact: bool = True) -> int:
    """Smallest pad p (multiple of ``multiple``, <= cap) with probe(p, reference) <= target.

    Doubling first: the pad is only compared with twice itself, so the search never runs a
    tile larger than needed (the cap can be hundreds of pixels). Once p passes against 2p,
    bisection between the last failing pad and p, against that same reference, refines it
    to within 1/16 (fine enough: a few pixels of pad change tile cost by a few percent).

    Reaching the cap returns it when it is exact (the theoretical radius); when it is only
    what the budgets allow, or the probe raises ``ProbeLimit`` before a pad passed, the
    search raises ``ReachBeyond`` with the largest pad found too small. A limit during the
    bisection keeps the passing pad found so far.
    """
    cap = round_up(cap, multiple) if cap_is_exact else cap // multiple * multiple
    low, high = 0, min(cap, round_up(4, multiple))
    while True:
        reference = min(cap, 2 * high)
        if high >= cap:
            if cap_is_exact:
                return cap
            raise ReachBeyond(low)
        try:
            passed = probe(high, reference) <= target
        except ProbeLimit:
            raise ReachBeyond(low) from None
        if passed:
            break
        low, high = high, reference
    while high - low > max(multiple, math.ceil(high / 16)):
        middle = round_up((low + high) // 2, multiple)
        if middle >= high:
            break
        try:
            passed = probe(middle, reference) <= target
        except ProbeLimit:
            break
        if passed:
            high = middle
        else:
            low = middle
    return high


def calibrate_pad(
    model: nn.Module,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    tolerance: float = DEFAULT_TOLERANCE,
    images: Sequence[torch.Tensor] | None = None,
    use_cache: bool = True,
    memory_budget: float | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> PadCalibration:
    """Smallest pad whose tiles match untiled output within ``tolerance * SAFETY_MARGIN``, plus ``PAD_MARGIN``.

    Half precision must also keep its tiles within the rounding flips that an invisible
    input change causes (see ``_PadProbe``): it can only raise the pad.
    Measured in the precision and on the device inference will use (rounding differs), on
    ``images`` ((C, H, W) in [0, 1]) or synthetic natural-ish ones; capped at the
    theoretical radius. Cached per weights + precision + device type, so it runs once.

    Bounded, because a deep net's reach can be hundreds of pixels (unbounded, RRDBNet-23 x4
    once took 20 minutes and 14.5 GB): each probe is one image whose activations fit
    ``memory_budget`` bytes (default: the device's tile budget), and all probes together
    stay within ``CALIBRATION_MACS`` multiply-adds (a few seconds). A reach past what those
    allow comes back not ``resolved``; the caller picks a fallback. ``on_notice`` hears a
    one-line notice when a measurement (not a cache hit) starts.
    """
    device = torch.device(device)
    key = cache_key(model, dtype, device, tolerance)
    if use_cache and (cached := read_cache().get(key)) is not None:
        return PadCalibration(int(cached["pad"]), bool(cached.get("resolved", True)),
                              int(cached.get("theoretical", theoretical_radius(model))))
    if on_notice is not None:
        on_notice("measuring tile overlap for this network, once")
    calibration = _measure_pad(model, device, dtype, tolerance, images, memory_budget)
    if use_cache:
        write_cache_entry(key, {"pad": calibration.pad, "resolved": calibration.resolved,
                                "theoretical": calibration.theoretical,
                                "architecture": getattr(model, "architecture", "")})
    return calibration


def calibrated_pad(model: nn.Module, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                   tolerance: float = DEFAULT_TOLERANCE, images: Sequence[torch.Tensor] | None = None,
                   use_cache: bool = True) -> int:
    """``calibrate_pad``'s pad, or the theoretical radius (exact) where the measurement did not settle."""
    return calibrate_pad(model, device=device, dtype=dtype, tolerance=tolerance, images=images,
                         use_cache=use_cache).safe_pad


def _measure_pad(model: nn.Module, device: torch.device, dtype: torch.dtype, tolerance: float,
                 images: Sequence[torch.Tensor] | None, memory: float | None) -> PadCalibration:
    """Run the bounded search; see ``calibrate_pad``."""
    theoretical, multiple = theoretical_radius(model), input_multiple(model)
    core = round_up(CALIBRATION_CORE, multiple)
    cost = network_cost(model, device, dtype, multiple)
    memory = memory_budget(device).tile if memory is None else memory
    fitting = (math.isqrt(int(memory / cost.bytes_per_pixel)) - core) // 2 // multiple * multiple
    cap = min(round_up(theoretical, multiple), max(0, fitting))
    side = core + 2 * cap
    if images:
        batch = torch.stack([_fit(image.float(), side) for image in images])
    else:
        batch = calibration_images(side, count=CALIBRATION_IMAGES)
    probe = _PadProbe(model, batch, device, dtype, core, tolerance * SAFETY_MARGIN,
                      cost.macs_per_pixel, CALIBRATION_MACS.get(device.type, CALIBRATION_MACS["cpu"]))
    try:
        found = search_pad(probe.mismatch, cap, 1.0, multiple, cap_is_exact=cap >= theoretical)
    except ReachBeyond as beyond:
        return PadCalibration(beyond.pad, False, theoretical)
    return PadCalibration(min(theoretical, round_up(found + PAD_MARGIN, multiple)), True, theoretical)


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------

def cache_path() -> Path:
    folder = os.environ.get("SRCLI_CACHE") or Path.home() / ".cache" / "srcli"
    return Path(folder) / CACHE_FILE


def weights_digest(model: nn.Module) -> str:
    """sha256 of the class, config, scale and every tensor: identical weights share a pad."""
    digest = hashlib.sha256()
    identity = {"class": type(model).__name__, "config": getattr(model, "config", {}),
                "scale": getattr(model, "scale", None)}
    digest.update(json.dumps(identity, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu").contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_key(model: nn.Module, dtype: torch.dtype, device: torch.device, tolerance: float) -> str:
    precision = str(dtype).removeprefix("torch.")
    key = (f"{weights_digest(model)}|{precision}|{device.type}|tol={tolerance:.6g}|margin={PAD_MARGIN}"
           f"|{CACHE_VERSION}")
    if dtype != torch.float32:  # which layers stay fp32 changes the half-precision rounding
        key += "|fp32=" + ",".join(name for name, module in model.named_modules() if keeps_fp32(module))
    return key


def read_cache() -> dict[str, dict]:
    """The cache as a dict; a missing, unreadable or corrupt file is an empty cache."""
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_cache_entry(key: str, entry: dict) -> None:
    """Atomic read-modify-replace: a reader never sees half a file. Unwritable: skip silently."""
    path = cache_path()
    data = read_cache()
    data[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda temp: temp.write_text(json.dumps(data, indent=1, sort_keys=True)))
    except OSError:
        pass
