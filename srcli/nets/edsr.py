"""EDSR (Lim et al. 2017): residual blocks without batch norm, residual scaling for wide models.

Module names follow EDSR-PyTorch so its released ``.pt`` files load without renaming.
"""
from __future__ import annotations

import torch
from torch import nn

from .common import ConfigurableModule, MeanShift, Upsampler, conv3x3, shallow_copy
from .tailfold import FoldedTail

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class ResBlock(nn.Module):
    """conv-ReLU-conv, scaled by ``res_scale`` and added to the input (no BN: it hurts SR)."""

    def __init__(self, channels: int, kernel_size: int = 3, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(channels, channels, kernel_size), nn.ReLU(True), conv3x3(channels, channels, kernel_size)
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.add(x, self.body(x), alpha=self.res_scale)  # scale and add in one pass


class EDSR(ConfigurableModule):
    """Single-scale EDSR; input and output are RGB in [0, 1]."""

    architecture = "edsr"

    def __init__(
        self,
        *,
        scale: int = 2,
        num_blocks: int = 16,
        num_features: int = 64,
        res_scale: float = 1.0,
        rgb_range: float = 255.0,
        rgb_mean: tuple[float, float, float] = DIV2K_MEAN,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.remember(scale=scale, num_blocks=num_blocks, num_features=num_features, res_scale=res_scale,
                      rgb_range=rgb_range, rgb_mean=list(rgb_mean), in_channels=in_channels)
        self.rgb_range = rgb_range
        self.sub_mean = MeanShift(rgb_range, rgb_mean, sign=-1)
        self.add_mean = MeanShift(rgb_range, rgb_mean, sign=1)
        self.head = nn.Sequential(conv3x3(in_channels, num_features))
        blocks: list[nn.Module] = [ResBlock(num_features, res_scale=res_scale) for _ in range(num_blocks)]
        blocks.append(conv3x3(num_features, num_features))
        self.body = nn.Sequential(*blocks)
        self.tail = nn.Sequential(Upsampler(scale, num_features), conv3x3(num_features, in_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sub_mean(x * self.rgb_range)
        x = self.head(x)
        x = x + self.body(x)
        x = self.tail(x)
        return self.add_mean(x) / self.rgb_range

    def inference_copy(self) -> EDSR:
        """This network with its linear tail folded into one low-resolution conv (same weights)."""
        runner = shallow_copy(self)
        runner.tail = FoldedTail(self.tail, self.config["num_features"])
        return runner


def edsr_baseline(scale: int = 2) -> EDSR:
    return EDSR(scale=scale, num_blocks=16, num_features=64, res_scale=1.0)


def edsr_paper(scale: int = 2) -> EDSR:
    return EDSR(scale=scale, num_blocks=32, num_features=256, res_scale=0.1)
