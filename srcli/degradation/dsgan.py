"""A learned degradation: a DSGAN generator applied to the bicubic-downscaled image.

It adds the texture (sensor noise, compression) of the real photos it was trained on, so SR
networks trained on these pairs learn to undo that degradation.
"""
from __future__ import annotations

import torch
from torch import nn

from ..checkpoints.io import CheckpointError, load_model
from ..imresize import imresize, quantize
from ..nets.dsgan import DSGANGenerator


def load_dsgan(weights: str) -> DSGANGenerator:
    model = load_model(weights)
    if not isinstance(model, DSGANGenerator):
        raise CheckpointError(f"{weights} is a {getattr(model, 'architecture', 'network')} network, not a DSGAN generator")
    return model.eval()


class DSGANDegrader:
    """Callable (HR batch, scale) -> LR batch for the trainer: bicubic, then G, then 8-bit."""

    def __init__(self, weights: str | nn.Module, device: str | torch.device = "cpu") -> None:
        self.model = load_dsgan(weights) if isinstance(weights, str) else weights.eval()
        self.device = torch.device(device)
        self.model.to(self.device)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    def __call__(self, hr: torch.Tensor, scale: int, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.inference_mode():
            lr = imresize(hr.float(), 1.0 / scale).clamp(0, 1)
            lr = lr.to(self.device)
            noise = None
            if getattr(self.model, "noise_channels", 0):  # from the batch's generator: batches stay reproducible
                noise = self.model.draw_noise(lr, generator)
            return quantize(self.model(lr, noise).float().cpu())
