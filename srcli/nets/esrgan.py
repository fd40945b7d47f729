"""ESRGAN (Wang et al. 2018): RRDBNet generator and the VGG-style 128x128 discriminator.

Native key names follow BasicSR/Real-ESRGAN (``conv_first``, ``body.N.rdb1.conv1``, ``conv_body``,
``conv_up1``...), the layout most released RRDBNet files use today.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import ConfigurableModule


class ResidualDenseBlock(nn.Module):
    """Five densely connected convs; output scaled by 0.2 before the skip (stabilises deep nets)."""

    def __init__(self, num_features: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_features, growth, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_features + growth, growth, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_features + 2 * growth, growth, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_features + 3 * growth, growth, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_features + 4 * growth, num_features, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return torch.add(x, x5, alpha=0.2)  # one pass over memory instead of a multiply then an add


class RRDB(nn.Module):
    def __init__(self, num_features: int, growth: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_features, growth)
        self.rdb2 = ResidualDenseBlock(num_features, growth)
        self.rdb3 = ResidualDenseBlock(num_features, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.add(x, self.rdb3(self.rdb2(self.rdb1(x))), alpha=0.2)


class RRDBNet(ConfigurableModule):
    """RRDBNet; ``unshuffle`` > 1 is Real-ESRGAN's pixel-unshuffle input (x2: 12 ch, x1: 48 ch)."""

    architecture = "esrgan"
    # Kept fp32 at half precision (device.keep_sensitive_layers_fp32): it feeds the output conv.
    fp32_layers = ("conv_hr",)

    def __init__(
        self,
        *,
        scale: int = 4,
        num_blocks: int = 23,
        num_features: int = 64,
        growth: int = 32,
        unshuffle: int | None = None,
        in_channels: int = 3,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        if unshuffle is None:  # x1 only exists as Real-ESRGAN's pixel-unshuffle variant
            unshuffle = 4 if scale == 1 else 1
        self.remember(scale=scale, num_blocks=num_blocks, num_features=num_features, growth=growth,
                      unshuffle=unshuffle, in_channels=in_channels, out_channels=out_channels)
        total = scale * unshuffle
        if total < 2 or total & (total - 1):
            raise ValueError(f"RRDBNet needs scale*unshuffle to be a power of two >= 2, got x{scale} with unshuffle {unshuffle}")
        self.unshuffle = unshuffle
        self.num_upsamples = int(math.log2(total))
        self.conv_first = nn.Conv2d(in_channels * unshuffle * unshuffle, num_features, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_features, growth) for _ in range(num_blocks)))
        self.conv_body = nn.Conv2d(num_features, num_features, 3, 1, 1)
        for index in range(1, self.num_upsamples + 1):
            self.add_module(f"conv_up{index}", nn.Conv2d(num_features, num_features, 3, 1, 1))
        self.conv_hr = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_features, out_channels, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.unshuffle > 1:
            # Sizes must divide the unshuffle factor: pad (replicate) and crop the output back.
            pad_h, pad_w = -height % self.unshuffle, -width % self.unshuffle
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for index in range(1, self.num_upsamples + 1):
            conv = getattr(self, f"conv_up{index}")
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        scale = self.config["scale"]
        return out[..., : height * scale, : width * scale]


class VGGStyleDiscriminator(ConfigurableModule):
    """ESRGAN's discriminator for 128x128 patches (five stride-2 stages, then 8nf*4*4 -> 100 -> 1)."""

    architecture = "esrgan_discriminator"

    def __init__(self, *, num_features: int = 64, input_size: int = 128) -> None:
        super().__init__()
        self.remember(num_features=num_features, input_size=input_size)
        nf = num_features
        widths = [nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf]
        in_channels = 3
        for stage, width in enumerate(widths):
            if stage == 0:
                self.add_module("conv0_0", nn.Conv2d(3, nf, 3, 1, 1, bias=True))
            else:
                self.add_module(f"conv{stage}_0", nn.Conv2d(in_channels, width, 3, 1, 1, bias=False))
                self.add_module(f"bn{stage}_0", nn.BatchNorm2d(width, affine=True))
            self.add_module(f"conv{stage}_1", nn.Conv2d(width, width, 4, 2, 1, bias=False))
            self.add_module(f"bn{stage}_1", nn.BatchNorm2d(width, affine=True))
            in_channels = width
        side = max(1, input_size // 32)
        self.side = side
        self.linear1 = nn.Linear(8 * nf * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for stage in range(1, 5):
            feat = self.lrelu(getattr(self, f"bn{stage}_0")(getattr(self, f"conv{stage}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{stage}_1")(getattr(self, f"conv{stage}_1")(feat)))
        if feat.shape[-1] != self.side or feat.shape[-2] != self.side:
            feat = F.adaptive_avg_pool2d(feat, self.side)
        return self.linear2(self.lrelu(self.linear1(feat.flatten(1))))
