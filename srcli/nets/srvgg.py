"""Real-ESRGAN's compact network (SRVGGNetCompact): ``realesr-general-x4v3``, its ``wdn`` twin, ``animevideov3``.

A plain stack of 3x3 convs with activations, all at input resolution, one pixel shuffle at
the end, and the nearest-upsampled input added to the output, so the convs only learn the
residual. Nothing runs at output resolution, which is why it is ~10x faster than RRDBNet.

Modules are registered in forward order under Real-ESRGAN's key layout (one ``body`` list:
``body.{2k}`` convs, ``body.{2k+1}`` activations), so their files load without renaming and the
receptive-field walker reads the network as it is: (num_convs + 2) convs of reach 1 each.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import ConfigurableModule

ACTIVATIONS = ("prelu", "relu", "leakyrelu")
LEAKY_SLOPE = 0.1  # Real-ESRGAN's leakyrelu variant


def activation_layer(name: str, num_features: int) -> nn.Module:
    """PReLU learns one slope per channel (the released models); ReLU/LeakyReLU hold no tensors."""
    if name == "prelu":
        return nn.PReLU(num_parameters=num_features)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leakyrelu":
        return nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
    raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")


class SRVGGNetCompact(ConfigurableModule):
    """conv + act, ``num_convs`` x (conv + act), conv to out*scale^2, pixel shuffle, + nearest(input)."""

    architecture = "srvgg"

    def __init__(
        self,
        *,
        scale: int = 4,
        num_features: int = 64,
        num_convs: int = 32,
        activation: str = "prelu",
        in_channels: int = 3,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        if scale < 1 or num_convs < 0 or num_features < 1:
            raise ValueError(f"SRVGGNetCompact needs scale >= 1, num_convs >= 0 and num_features >= 1, "
                             f"got x{scale}, {num_convs} convs, {num_features} features")
        if in_channels != out_channels:
            raise ValueError(f"SRVGGNetCompact adds its input to its output: in_channels ({in_channels}) "
                             f"must equal out_channels ({out_channels})")
        self.remember(scale=scale, num_features=num_features, num_convs=num_convs, activation=activation,
                      in_channels=in_channels, out_channels=out_channels)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_features, 3, 1, 1),
                                   activation_layer(activation, num_features)]
        for _ in range(num_convs):
            layers += [nn.Conv2d(num_features, num_features, 3, 1, 1), activation_layer(activation, num_features)]
        layers.append(nn.Conv2d(num_features, out_channels * scale * scale, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.config["scale"]
        out = self.upsampler(self.body(x))
        return out + F.interpolate(x, scale_factor=scale, mode="nearest")
