"""SRResNet / SRGAN (Ledig et al. 2017) and BasicSR's MSRResNet variant.

``SRResNet`` is the paper network (BN + PReLU, 9x9 head and tail, pixel-shuffle x2 steps).
``MSRResNet`` is BasicSR's BN-free variant (LeakyReLU, ``conv_hr``, bilinear global skip),
built when a BasicSR checkpoint is loaded.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import ConfigurableModule, conv3x3, pixel_shuffle_steps


class BNResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.prelu = nn.PReLU(channels)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class SRResNet(ConfigurableModule):
    """SRGAN generator; input and output RGB in [0, 1]."""

    architecture = "srresnet"

    def __init__(self, *, scale: int = 4, num_blocks: int = 16, num_features: int = 64) -> None:
        super().__init__()
        self.remember(scale=scale, num_blocks=num_blocks, num_features=num_features)
        self.conv_first = nn.Sequential(nn.Conv2d(3, num_features, 9, padding=4), nn.PReLU(num_features))
        self.body = nn.Sequential(*(BNResidualBlock(num_features) for _ in range(num_blocks)))
        self.conv_body = conv3x3(num_features, num_features)
        self.bn_body = nn.BatchNorm2d(num_features)
        layers: list[nn.Module] = []
        for factor in pixel_shuffle_steps(scale):
            layers += [conv3x3(num_features, num_features * factor * factor), nn.PixelShuffle(factor),
                       nn.PReLU(num_features)]
        self.upsample = nn.Sequential(*layers)
        self.conv_last = nn.Conv2d(num_features, 3, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.bn_body(self.conv_body(self.body(feat)))
        return self.conv_last(self.upsample(feat))


class PlainResidualBlock(nn.Module):
    def __init__(self, channels: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x))) * self.res_scale


class MSRResNet(ConfigurableModule):
    """BasicSR's modified SRResNet (no BN); key layout ``conv_first``, ``body.N.conv1``, ``upconv1``."""

    architecture = "msrresnet"

    def __init__(self, *, scale: int = 4, num_blocks: int = 16, num_features: int = 64) -> None:
        super().__init__()
        self.remember(scale=scale, num_blocks=num_blocks, num_features=num_features)
        self.conv_first = conv3x3(3, num_features)
        self.body = nn.Sequential(*(PlainResidualBlock(num_features) for _ in range(num_blocks)))
        self.steps = pixel_shuffle_steps(scale)
        if scale == 3:
            self.upconv1 = conv3x3(num_features, num_features * 9)
        else:
            self.upconv1 = conv3x3(num_features, num_features * 4)
            if scale == 4:
                self.upconv2 = conv3x3(num_features, num_features * 4)
        self.conv_hr = conv3x3(num_features, num_features)
        self.conv_last = conv3x3(num_features, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.leaky_relu(self.conv_first(x), 0.1)
        feat = self.body(feat)
        feat = F.leaky_relu(F.pixel_shuffle(self.upconv1(feat), self.steps[0]), 0.1)
        if len(self.steps) == 2:
            feat = F.leaky_relu(F.pixel_shuffle(self.upconv2(feat), 2), 0.1)
        out = self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.1))
        return out + F.interpolate(x, scale_factor=self.config["scale"], mode="bilinear", align_corners=False)


class SRGANDiscriminator(ConfigurableModule):
    """VGG-style discriminator: 8 convs (stride 1/2 alternating), BN, LeakyReLU 0.2, dense 1024 -> 1."""

    architecture = "srgan_discriminator"

    def __init__(self, *, num_features: int = 64, input_size: int = 96) -> None:
        super().__init__()
        self.remember(num_features=num_features, input_size=input_size)
        widths = [num_features, num_features, 2 * num_features, 2 * num_features,
                  4 * num_features, 4 * num_features, 8 * num_features, 8 * num_features]
        layers: list[nn.Module] = []
        in_channels = 3
        for index, width in enumerate(widths):
            stride = 2 if index % 2 == 1 else 1
            layers.append(nn.Conv2d(in_channels, width, 3, stride=stride, padding=1))
            if index > 0:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2, True))
            in_channels = width
        self.features = nn.Sequential(*layers)
        side = max(1, input_size // 16)
        self.pool = nn.AdaptiveAvgPool2d(side)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(in_channels * side * side, 1024), nn.LeakyReLU(0.2, True), nn.Linear(1024, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))
