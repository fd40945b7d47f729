"""Inference-time folding of a linear sub-pixel tail into one low-resolution conv.

EDSR's and MDSR's tails (conv -> pixel-shuffle -> conv -> pixel-shuffle -> conv, with no
activation in between) are one linear, shift-equivariant map from the body's features to
the image. At x4 that map costs ~40% of EDSR-baseline's FLOPs, runs on 256-channel tensors at
2x and 4x resolution (gigabytes for a 2048^2 output), and its 3-channel output conv must
stay fp32 because bf16 output rounding costs ~0.02 dB. The same map is a single conv on the
low-resolution features with ``3 * s^2`` outputs and a ``2R + 1`` kernel followed by one
pixel-shuffle: ~10x fewer FLOPs, cheap enough to run in fp32.

Equality: the original layers zero-pad their intermediate maps at the image border, the
folded conv cannot, so within ``R`` low-resolution pixels of the border the two differ.
Those rings are recomputed with the original layers on thin strips, which makes the folded
tail equal the original up to float rounding everywhere (tests check it), so tiling,
receptive-field calibration and checkpoints are unaffected.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def linear_layers(module: nn.Module) -> list[nn.Module] | None:
    """The layers of ``module`` in order if it is only stride-1 'same' convs and pixel-shuffles."""
    layers: list[nn.Module] = []
    pending = [module]
    while pending:
        layer = pending.pop(0)
        if isinstance(layer, nn.Sequential):
            pending[0:0] = list(layer.children())
        elif isinstance(layer, nn.PixelShuffle):
            layers.append(layer)
        elif isinstance(layer, nn.Conv2d):
            kernel, dilation = layer.kernel_size, layer.dilation
            same = tuple(layer.padding) == tuple(d * (k // 2) for k, d in zip(kernel, dilation))  # type: ignore[arg-type]
            if (layer.stride != (1, 1) or layer.groups != 1 or not same or layer.padding_mode != "zeros"
                    or kernel[0] % 2 == 0 or kernel[1] % 2 == 0):
                return None
            layers.append(layer)
        else:
            return None
    return layers


def tail_reach(layers: list[nn.Module]) -> int:
    """Upper bound, in input pixels, on how far an output block depends on its input pixel."""
    reach, factor = 0.0, 1
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            half = max(d * (k // 2) for k, d in zip(layer.kernel_size, layer.dilation))
            reach += half / factor
        else:
            factor *= layer.upscale_factor  # type: ignore[union-attr]
    return math.ceil(reach)


class FoldedTail(nn.Module):
    """A linear tail as one fp32 conv + pixel-shuffle, with exact border rings; see module doc."""

    keeps_fp32 = True  # the 3-channel output must not be rounded to half precision

    def __init__(self, tail: nn.Module, in_channels: int) -> None:
        super().__init__()
        layers = linear_layers(tail)
        if layers is None or not any(isinstance(layer, nn.PixelShuffle) for layer in layers):
            raise ValueError("only a tail of plain convs and pixel-shuffles can be folded")
        self.scale = math.prod(layer.upscale_factor for layer in layers if isinstance(layer, nn.PixelShuffle))
        self.reach = tail_reach(layers)
        weight, bias = _probe(tail, in_channels, self.scale, self.reach)
        device = next(tail.parameters()).device
        self.conv = nn.Conv2d(in_channels, weight.shape[0], weight.shape[-1], padding=self.reach).to(device)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(bias)
        self.conv.requires_grad_(False)
        # Not a submodule: hooks and module walks should see the folded conv, not the layers it
        # replaces. The caller keeps ``tail`` on the same device (it is part of the original net).
        object.__setattr__(self, "exact", tail)
        # Which sides (top, bottom, left, right) get their exact ring: a tiler turns off the sides
        # that face a neighbouring tile, whose outer ``reach`` pixels it crops away anyway.
        self.exact_sides: tuple[bool, bool, bool, bool] = (True, True, True, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            ring, scale = self.reach, self.scale
            if min(x.shape[-2:]) <= 4 * ring:
                return self.exact(x).float()
            out = F.pixel_shuffle(self.conv(x), scale)
            strip, edge = 2 * ring, ring * scale
            top, bottom, left, right = self.exact_sides
            if top:
                out[..., :edge, :] = self.exact(x[..., :strip, :])[..., :edge, :]
            if bottom:
                out[..., -edge:, :] = self.exact(x[..., -strip:, :])[..., -edge:, :]
            if left:
                out[..., :, :edge] = self.exact(x[..., :, :strip])[..., :, :edge]
            if right:
                out[..., :, -edge:] = self.exact(x[..., :, -strip:])[..., :, -edge:]
            return out


def folded_tails(*modules: nn.Module) -> list[FoldedTail]:
    """The folded tails inside ``modules`` (found once, so tilers need no module walk per tile)."""
    return [m for module in modules for m in module.modules() if isinstance(m, FoldedTail)]


def tail_reach_of(module: nn.Module) -> int:
    """Largest ring (input pixels) of the folded tails in ``module``; 0 if it has none."""
    return max((tail.reach for tail in folded_tails(module)), default=0)


@contextmanager
def exact_rings_only_on(tails: list[FoldedTail], sides: tuple[bool, bool, bool, bool]) -> Iterator[None]:
    """Run ``tails`` with exact rings only on ``sides`` (restored after)."""
    previous = [tail.exact_sides for tail in tails]
    for tail in tails:
        tail.exact_sides = sides
    try:
        yield
    finally:
        for tail, sides_before in zip(tails, previous):
            tail.exact_sides = sides_before


def _probe(tail: nn.Module, in_channels: int, scale: int, reach: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the folded kernel off the tail's response to impulses, in float64 on the CPU.

    The map is linear and shift-equivariant with period ``scale`` in the output, so an
    impulse at the centre of a ``4R + 1`` square answers, at the output blocks within ``R``
    of it (far enough from the border to be exact), with one tap of the kernel each.
    """
    exact = copy.deepcopy(tail).to("cpu", torch.float64)
    size, centre = 4 * reach + 1, 2 * reach
    with torch.no_grad(), torch.autocast(device_type="cpu", enabled=False):
        zeros = torch.zeros(1, in_channels, size, size, dtype=torch.float64)
        base = F.pixel_unshuffle(exact(zeros), scale)
        impulses = torch.zeros(in_channels, in_channels, size, size, dtype=torch.float64)
        impulses[torch.arange(in_channels), torch.arange(in_channels), centre, centre] = 1.0
        response = F.pixel_unshuffle(exact(impulses), scale) - base
    window = response[:, :, centre - reach:centre + reach + 1, centre - reach:centre + reach + 1]
    # output[q] = sum_k W[k] * input[q + k - R]; an impulse at c gives output[q] = W[c - q + R].
    weight = window.flip(-1, -2).transpose(0, 1).contiguous()
    return weight.float(), base[0, :, centre, centre].float()
