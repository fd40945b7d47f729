"""Making LR images with fixed, hand-set degradations: MATLAB bicubic, or one blur/noise/JPEG chain.

These are the reproducible baselines: the benchmark convention (bicubic) and a single chosen
corruption (``classical``) for controlled experiments. Learned and randomized degradations are in
``dsgan`` and ``realworld``.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..imresize import imresize, quantize


class DegradeError(ValueError):
    pass


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Isotropic Gaussian blur (kernel radius 3 sigma, reflect padding) on (C, H, W) or (N, C, H, W)."""
    if sigma <= 0:
        return image
    radius = max(1, int(np.ceil(3 * sigma)))
    coords = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-(coords**2) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    batch = image.unsqueeze(0) if image.dim() == 3 else image
    channels = batch.shape[1]
    padded = F.pad(batch, (radius, radius, radius, radius), mode="reflect")
    horizontal = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1).contiguous(), groups=channels)
    blurred = F.conv2d(horizontal, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1).contiguous(), groups=channels)
    return blurred[0] if image.dim() == 3 else blurred


def jpeg_round_trip(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode as JPEG at ``quality`` (colour (3, H, W) or grey (1, H, W))."""
    array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    picture = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=int(quality))
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    if decoded.ndim == 2:
        decoded = decoded[..., None]
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1).float() / 255


@dataclass
class ClassicalDegradation:
    """blur (on HR) -> bicubic downscale -> Gaussian noise (sigma in 8-bit levels) -> JPEG.

    Works on one image (C, H, W) or a batch; the noise comes from ``generator`` when given (the
    trainer passes its per-iteration one, so batches stay a pure function of the iteration),
    otherwise from ``seed``.
    """

    blur: float = 0.0
    noise: float = 0.0
    jpeg: int | None = None
    seed: int = 0

    def __call__(self, hr: torch.Tensor, scale: int, generator: torch.Generator | None = None) -> torch.Tensor:
        lr = imresize(gaussian_blur(hr, self.blur), 1.0 / scale).clamp(0, 1)
        if self.noise > 0:
            generator = generator if generator is not None else torch.Generator().manual_seed(self.seed)
            lr = (lr + torch.randn(lr.shape, generator=generator) * self.noise / 255).clamp(0, 1)
        lr = quantize(lr)
        if self.jpeg is not None:
            lr = jpeg_round_trip(lr, self.jpeg) if lr.dim() == 3 else torch.stack(
                [jpeg_round_trip(image, self.jpeg) for image in lr])
        return lr


def parse_classical(spec: str) -> ClassicalDegradation:
    """``blur=S,noise=S,jpeg=Q`` (any subset, comma-separated) -> ClassicalDegradation."""
    values: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, _, value = item.partition("=")
        if key not in ("blur", "noise", "jpeg") or not value:
            raise DegradeError(f"bad classical degradation item {item!r}; use blur=SIGMA,noise=SIGMA,jpeg=QUALITY")
        try:
            values[key] = float(value)
        except ValueError:
            raise DegradeError(f"bad number in {item!r}") from None
    if "jpeg" in values and not 1 <= values["jpeg"] <= 100:
        raise DegradeError("jpeg quality must be within 1-100")
    if values.get("blur", 0) < 0 or values.get("noise", 0) < 0:
        raise DegradeError("blur and noise sigmas must be >= 0")
    jpeg = values.pop("jpeg", None)
    return ClassicalDegradation(**values, jpeg=None if jpeg is None else int(jpeg))


def bicubic_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    return quantize(imresize(hr, 1.0 / scale))


def crop_for_scale(image: torch.Tensor, scale: int) -> torch.Tensor:
    height, width = image.shape[-2:]
    if height < scale or width < scale:
        raise DegradeError(f"image of {width}x{height} is smaller than the scale x{scale}")
    return image[..., : height - height % scale, : width - width % scale]
