"""DSGAN (Fritsche et al. 2019): learns a real-world degradation from unpaired images.

Key names follow the authors' code (``block_input``, ``res_blocks.N.conv1``, ``block_output``)
so their ``checkpoint_*.tar`` files load.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import ConfigurableModule


class DSGANResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.prelu(self.conv1(x)))


class DSGANGenerator(ConfigurableModule):
    """conv+PReLU, residual blocks, conv, sigmoid; same size in and out (it only changes texture)."""

    architecture = "dsgan"

    def __init__(self, *, num_blocks: int = 8, num_features: int = 64, scale: int = 1) -> None:
        super().__init__()
        # ``scale`` is the SR factor of the pairs it makes; the network itself is size-preserving.
        self.remember(num_blocks=num_blocks, num_features=num_features, scale=scale)
        self.block_input = nn.Sequential(nn.Conv2d(3, num_features, 3, padding=1), nn.PReLU())
        self.res_blocks = nn.ModuleList(DSGANResidualBlock(num_features) for _ in range(num_blocks))
        self.block_output = nn.Conv2d(num_features, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.block_input(x)
        for block in self.res_blocks:
            feat = block(feat)
        return torch.sigmoid(self.block_output(feat))


class DSGANDiscriminator(ConfigurableModule):
    """Patch discriminator: 5x5 convs 64-128-256 with BN and LeakyReLU 0.2, then 1x1 conv to a map."""

    architecture = "dsgan_discriminator"

    def __init__(self, *, num_features: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        self.remember(num_features=num_features, in_channels=in_channels)
        nf = num_features
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, nf, 5, padding=2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(nf, 2 * nf, 5, padding=2), nn.BatchNorm2d(2 * nf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * nf, 4 * nf, 5, padding=2), nn.BatchNorm2d(4 * nf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * nf, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def low_pass(image: torch.Tensor, kernel_size: int = 5, gaussian: bool = False, sigma: float = 1.0) -> torch.Tensor:
    """Low frequencies: kxk average (or Gaussian) filter, stride 1, same size (replicate padding)."""
    pad = kernel_size // 2
    padded = F.pad(image, (pad, pad, pad, pad), mode="replicate")
    if not gaussian:
        return F.avg_pool2d(padded, kernel_size, stride=1)
    coords = torch.arange(kernel_size, dtype=image.dtype, device=image.device) - pad
    kernel_1d = torch.exp(-(coords**2) / (2 * sigma * sigma))
    kernel_1d = kernel_1d / kernel_1d.sum()
    kernel = (kernel_1d[:, None] * kernel_1d[None, :]).expand(image.shape[1], 1, kernel_size, kernel_size)
    return F.conv2d(padded, kernel.contiguous(), groups=image.shape[1])


def high_pass(image: torch.Tensor, kernel_size: int = 5, gaussian: bool = False) -> torch.Tensor:
    """High frequencies: the image minus its low-pass."""
    return image - low_pass(image, kernel_size, gaussian)
