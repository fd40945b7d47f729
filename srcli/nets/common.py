"""Building blocks shared by several network families."""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


class ConfigurableModule(nn.Module):
    """A module that remembers the keyword arguments it was built with.

    Checkpoints written by srcli store ``architecture`` and ``config`` beside the
    tensors, so a file can be turned back into the same network without guessing.
    """

    architecture: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}

    def remember(self, **config: Any) -> None:
        self.config = dict(config)

    @property
    def scales(self) -> tuple[int, ...]:
        if "scales" in self.config:
            return tuple(self.config["scales"])
        return (int(self.config.get("scale", 1)),)

    @property
    def scale(self) -> int:
        return self.scales[0]


def conv3x3(in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    """1x1 conv that subtracts (sign=-1) or adds (sign=+1) the dataset mean.

    Kept as a frozen conv (not a buffer) because EDSR-PyTorch checkpoints store it
    as ``sub_mean.weight``/``sub_mean.bias`` and we load those files unchanged.
    """

    keeps_fp32 = True  # see MeanShift.forward

    def __init__(self, rgb_range: float, rgb_mean: tuple[float, float, float], sign: int = -1) -> None:
        super().__init__(3, 3, kernel_size=1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(rgb_mean))
        for parameter in self.parameters():
            parameter.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Always fp32: under bf16 autocast a [0, 255]-range image would be rounded in steps of 1.
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.to(self.weight.dtype))


def pixel_shuffle_steps(scale: int) -> list[int]:
    """Factors of the pixel-shuffle stages used by EDSR/SRResNet-style tails."""
    if scale == 1:
        return []
    if scale & (scale - 1) == 0:
        return [2] * int(math.log2(scale))
    if scale == 3:
        return [3]
    raise ValueError(f"unsupported scale {scale}: use 1, 2, 3 or a power of two")


class Upsampler(nn.Sequential):
    """conv -> pixel-shuffle (-> activation) per step; EDSR-PyTorch key layout (``N.0``, ``N.2``)."""

    def __init__(self, scale: int, channels: int, activation: str | None = None) -> None:
        layers: list[nn.Module] = []
        for factor in pixel_shuffle_steps(scale):
            layers.append(conv3x3(channels, factor * factor * channels))
            layers.append(nn.PixelShuffle(factor))
            if activation == "prelu":
                layers.append(nn.PReLU(channels))
            elif activation == "relu":
                layers.append(nn.ReLU(True))
        super().__init__(*layers)


def shallow_copy(module: nn.Module) -> nn.Module:
    """A copy that shares parameters and child modules but whose children can be replaced."""
    duplicate = copy.copy(module)
    duplicate._modules = dict(module._modules)
    return duplicate


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
