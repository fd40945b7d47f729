"""DSGAN (Fritsche et al. 2019): learns a real-world degradation from unpaired images.

Key names follow the authors' code (``block_input``, ``res_blocks.N.conv1``, ``block_output``)
so their ``checkpoint_*.tar`` files load.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import ConfigurableModule
from .jpeg import MCU, DifferentiableJPEG


class DSGANResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.prelu(self.conv1(x)))


class DSGANGenerator(ConfigurableModule):
    """conv+PReLU, residual blocks, conv, sigmoid; same size in and out (it only changes texture).

    ``block_grid`` (0 = the paper's network) adds one-hot channels for each pixel's column and
    row inside a ``block_grid``-pixel grid anchored at the image origin. A convolutional net
    cannot otherwise tell where JPEG's 8x8 blocks lie (it is translation-equivariant), so it
    cannot reproduce blocking or the per-block loss of texture that compressed photos carry.

    ``noise_channels`` feeds that many N(0, 1) planes beside the image: a deterministic network
    can only make content-shaped pseudo-noise, and sensor noise is independent of the content.
    ``jpeg_quality`` (0 = off) ends the network with a real JPEG round trip (``nets.jpeg``), so
    the network learns the noise and the compression is applied as cameras apply it: after.
    """

    architecture = "dsgan"

    def __init__(self, *, num_blocks: int = 8, num_features: int = 64, scale: int = 1, block_grid: int = 0,
                 noise_channels: int = 0, jpeg_quality: int = 0) -> None:
        super().__init__()
        # ``scale`` is the SR factor of the pairs it makes; the network itself is size-preserving.
        config = dict(num_blocks=num_blocks, num_features=num_features, scale=scale)
        # Extensions are recorded only when used, so paper-layout files stay as they were.
        for name, value in (("block_grid", block_grid), ("noise_channels", noise_channels),
                            ("jpeg_quality", jpeg_quality)):
            if value:
                config[name] = value
        self.remember(**config)
        self.block_grid = block_grid
        self.noise_channels = noise_channels
        self.jpeg = DifferentiableJPEG(jpeg_quality) if jpeg_quality else None
        # Tiles must start on the grid and on JPEG's 16x16 units (see receptive_field.tile_alignment).
        self.position_period = math.lcm(max(1, block_grid), MCU if jpeg_quality else 1)
        # An output pixel of JPEG depends on its own 16x16 unit and, through chroma upsampling, on
        # the neighbouring unit: up to 16 px beyond what the convolutions reach.
        self.block_reach = MCU if jpeg_quality else 0
        in_channels = 3 + 2 * block_grid + noise_channels
        self.block_input = nn.Sequential(nn.Conv2d(in_channels, num_features, 3, padding=1), nn.PReLU())
        self.res_blocks = nn.ModuleList(DSGANResidualBlock(num_features) for _ in range(num_blocks))
        self.block_output = nn.Conv2d(num_features, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``noise``: the N(0, 1) planes (N, noise_channels, H, W) to use; drawn here when None."""
        inputs = [x]
        if self.block_grid:
            inputs.append(grid_phase_channels(x, self.block_grid))
        if self.noise_channels:
            inputs.append((self.draw_noise(x) if noise is None else noise).to(x.dtype))
        feat = self.block_input(torch.cat(inputs, dim=1) if len(inputs) > 1 else x)
        for block in self.res_blocks:
            feat = block(feat)
        image = torch.sigmoid(self.block_output(feat))
        return self.jpeg(image) if self.jpeg is not None else image

    def draw_noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fresh N(0, 1) planes for ``x``, from ``generator`` (a CPU one) when given.

        A method, so a test can make the network deterministic.
        """
        shape = (x.shape[0], self.noise_channels, *x.shape[-2:])
        if generator is not None:
            return torch.randn(shape, generator=generator).to(device=x.device, dtype=x.dtype)
        return torch.randn(shape, device=x.device, dtype=x.dtype)


def grid_phase_channels(x: torch.Tensor, period: int) -> torch.Tensor:
    """(N, 2*period, H, W): one-hot of (column mod period) then of (row mod period), origin at (0, 0)."""
    height, width = x.shape[-2:]
    columns = F.one_hot(torch.arange(width, device=x.device) % period, period).to(x.dtype)  # (W, P)
    rows = F.one_hot(torch.arange(height, device=x.device) % period, period).to(x.dtype)  # (H, P)
    column_maps = columns.t()[:, None, :].expand(period, height, width)
    row_maps = rows.t()[:, :, None].expand(period, height, width)
    maps = torch.cat([column_maps, row_maps])[None].expand(x.shape[0], -1, -1, -1)
    return maps.contiguous()


class DSGANDiscriminator(ConfigurableModule):
    """Patch discriminator: 5x5 convs 64-128-256 with BN and LeakyReLU 0.2, then 1x1 conv to a map."""

    architecture = "dsgan_discriminator"

    def __init__(self, *, num_features: int = 64, in_channels: int = 3, block_grid: int = 0) -> None:
        super().__init__()
        self.remember(num_features=num_features, in_channels=in_channels, block_grid=block_grid)
        # With ``block_grid`` it sees where the 8x8 blocks are as well (real crops start on the grid,
        # generated ones are made with the grid at their origin): a translation-equivariant D can
        # only ask "are there steps somewhere", a grid-aware one "are there steps on block edges".
        # The input is split by grid column and by grid row (x times each one-hot phase map): plain
        # constant phase channels beside a faint high-pass image swamped it (D stayed at chance,
        # loss ln 2 for 450 iterations).
        self.block_grid = block_grid
        nf = num_features
        self.net = nn.Sequential(
            nn.Conv2d(in_channels * max(1, 2 * block_grid), nf, 5, padding=2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(nf, 2 * nf, 5, padding=2), nn.BatchNorm2d(2 * nf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * nf, 4 * nf, 5, padding=2), nn.BatchNorm2d(4 * nf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * nf, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.block_grid:
            phases = grid_phase_channels(x, self.block_grid)  # (N, 2P, H, W)
            x = (x[:, None] * phases[:, :, None]).flatten(1, 2)  # (N, 2P*C, H, W)
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


def colour_loss(output: torch.Tensor, target: torch.Tensor, kernel_size: int = 5, gaussian: bool = False,
                reduction: str = "mean") -> torch.Tensor:
    """DSGAN's colour term: L1 between low-passes, so the generator keeps the input's colours while
    its high frequencies stay free for the GAN term. reduction as in torch's l1_loss ('none' gives the map)."""
    return F.l1_loss(low_pass(output, kernel_size, gaussian), low_pass(target, kernel_size, gaussian),
                     reduction=reduction)
