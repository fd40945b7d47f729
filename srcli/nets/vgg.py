"""VGG19 feature extractor with torchvision's key layout (``features.N.weight``).

Used for perceptual losses; ESRGAN takes features *before* the activation (conv5_4 = index 34).
"""
from __future__ import annotations

import torch
from torch import nn

VGG19_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_layer_names() -> dict[str, int]:
    """Map names like ``conv5_4``/``relu5_4`` to indices of ``features``."""
    names: dict[str, int] = {}
    block, conv_in_block, index = 1, 0, 0
    for item in VGG19_LAYOUT:
        if item == "M":
            names[f"pool{block}"] = index
            block, conv_in_block = block + 1, 0
            index += 1
        else:
            conv_in_block += 1
            names[f"conv{block}_{conv_in_block}"] = index
            names[f"relu{block}_{conv_in_block}"] = index + 1
            index += 2
    return names


class VGG19Features(nn.Module):
    """Returns the feature map at ``layer`` (e.g. ``conv5_4``: before activation) for RGB in [0, 1]."""

    def __init__(self, layer: str = "conv5_4") -> None:
        super().__init__()
        names = vgg19_layer_names()
        if layer not in names:
            raise ValueError(f"unknown VGG19 layer {layer!r}; examples: conv5_4, relu5_4, conv2_2")
        self.layer = layer
        last = names[layer]
        layers: list[nn.Module] = []
        in_channels = 3
        for item in VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                in_channels = int(item)
        self.features = nn.Sequential(*layers[: last + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for parameter in self.parameters():
            parameter.requires_grad = False

    def load_torchvision_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchvision ``vgg19`` state dict (classifier keys and deeper layers ignored)."""
        own = self.state_dict()
        missing = [key for key in own if key not in state]
        if missing:
            raise ValueError(f"VGG19 weights lack {missing[0]} (expected torchvision's vgg19 layout)")
        self.load_state_dict({key: state[key] for key in own})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)
