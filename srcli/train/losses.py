"""Losses: pixel, perceptual (VGG19 or discriminator features), GAN (standard and relativistic)."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.vgg import VGG19Features

TORCHVISION_VGG19_FILE = "vgg19-dcbb9e9d.pth"


class MissingVGGWeights(RuntimeError):
    pass


def pixel_loss(kind: str, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(prediction, target)
    return F.l1_loss(prediction, target)


def find_vgg_weights(explicit: str | None) -> Path:
    """``--vgg-weights`` or torchvision's cache; never downloads (srcli runs offline)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise MissingVGGWeights(f"--vgg-weights {explicit}: no such file")
        return path
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    cached = torch_home / "hub" / "checkpoints" / TORCHVISION_VGG19_FILE
    if cached.is_file():
        return cached
    raise MissingVGGWeights(
        "perceptual loss needs ImageNet VGG19 weights: pass --vgg-weights PATH (torchvision's vgg19 state dict) "
        f"or place {TORCHVISION_VGG19_FILE} in {cached.parent}; or choose --perceptual dfeat "
        "(feature matching on the discriminator) or --perceptual none"
    )


def load_vgg(layer: str, weights: str | None) -> VGG19Features:
    path = find_vgg_weights(weights)
    state = torch.load(path, map_location="cpu", weights_only=True)
    vgg = VGG19Features(layer)
    vgg.load_torchvision_state(state)
    return vgg.eval()


class FeatureCollector:
    """Collects the outputs of every LeakyReLU of a discriminator during one forward pass.

    Feature matching on these ("dfeat") is the perceptual loss used when no ImageNet VGG is
    available offline: it compares SR and HR in a learned feature space.
    """

    def __init__(self, discriminator: nn.Module) -> None:
        self.features: list[torch.Tensor] = []
        self.active = False
        self.handles = [m.register_forward_hook(self._hook) for m in discriminator.modules()
                        if isinstance(m, (nn.LeakyReLU, nn.ReLU))]

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if self.active:
            self.features.append(output)

    def run(self, discriminator: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self.features, self.active = [], True
        try:
            logits = discriminator(x)
        finally:
            self.active = False
        return logits, self.features


def feature_matching(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    losses = [F.l1_loss(f.float(), r.detach().float()) for f, r in zip(fake, real) if f.dim() == 4]
    return torch.stack(losses).mean()


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def generator_gan_loss(kind: str, fake_logits: torch.Tensor, real_logits: torch.Tensor | None) -> torch.Tensor:
    if kind == "ragan":
        assert real_logits is not None
        real_logits = real_logits.detach()
        return 0.5 * (bce(real_logits - fake_logits.mean(), 0.0) + bce(fake_logits - real_logits.mean(), 1.0))
    return bce(fake_logits, 1.0)


def discriminator_gan_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    if kind == "ragan":
        return 0.5 * (bce(real_logits - fake_logits.mean(), 1.0) + bce(fake_logits - real_logits.mean(), 0.0))
    return 0.5 * (bce(real_logits, 1.0) + bce(fake_logits, 0.0))
