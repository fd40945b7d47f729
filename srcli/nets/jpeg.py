"""A differentiable baseline JPEG round trip (4:2:0), and a blind estimate of a photo set's quality.

Why a DSGAN generator needs it: real photos are often noisy *and then* JPEG-compressed. The
quantisation of 8x8 DCT coefficients removes high-frequency texture block by block and leaves
steps on the block edges; a small convolutional generator trained by a GAN did not learn that
(it blurred mid frequencies and sharpened the top octave instead). With this layer after the
generator, the generator only has to learn the noise, and the compression is the real one.

Rounding uses a straight-through gradient, so the generator still gets gradients through it.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# The example tables of the JPEG standard (Annex K), which libjpeg and Pillow scale by quality.
LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61), (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56), (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77), (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101), (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99), (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99), (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8 for _ in range(4)),
)
MCU = 16  # 4:2:0 sampling: a minimum coded unit is 16x16 pixels


def quality_table(base: Sequence[Sequence[int]], quality: int) -> torch.Tensor:
    """libjpeg's scaling of a base table to ``quality`` (1-100), baseline (steps 1-255)."""
    quality = min(100, max(1, int(quality)))
    factor = 5000 // quality if quality < 50 else 200 - 2 * quality
    table = torch.tensor(base, dtype=torch.float64)
    return torch.floor((table * factor + 50) / 100).clamp(1, 255).float()


def dct_matrix() -> torch.Tensor:
    """Orthonormal 8-point DCT-II (rows are frequencies)."""
    rows = [[math.sqrt((1 if k == 0 else 2) / 8) * math.cos((2 * n + 1) * k * math.pi / 16) for n in range(8)]
            for k in range(8)]
    return torch.tensor(rows)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """JPEG's full-range YCbCr, 0-255, on (N, 3, H, W) RGB in 0-255."""
    red, green, blue = rgb.unbind(1)
    y = 0.299 * red + 0.587 * green + 0.114 * blue
    cb = 128 - 0.168736 * red - 0.331264 * green + 0.5 * blue
    cr = 128 + 0.5 * red - 0.418688 * green - 0.081312 * blue
    return torch.stack([y, cb, cr], 1)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    y, cb, cr = ycbcr[:, 0], ycbcr[:, 1] - 128, ycbcr[:, 2] - 128
    return torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)


def round_straight_through(values: torch.Tensor) -> torch.Tensor:
    return values + (torch.round(values) - values).detach()


def blocks_dct(plane: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, H/8, W/8, 8, 8) DCT coefficients of the level-shifted 8x8 blocks."""
    n, height, width = plane.shape
    blocks = (plane - 128).reshape(n, height // 8, 8, width // 8, 8).transpose(2, 3)
    return basis @ blocks @ basis.t()


def blocks_idct(coefficients: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    n, rows, columns = coefficients.shape[:3]
    blocks = basis.t() @ coefficients @ basis
    return blocks.transpose(2, 3).reshape(n, rows * 8, columns * 8) + 128


class DifferentiableJPEG(nn.Module):
    """RGB in [0, 1] -> the same image after a baseline 4:2:0 JPEG round trip at ``quality``.

    Close to Pillow/libjpeg (box-averaged chroma, triangle-filter chroma upsampling, Annex K
    tables); the blocks are anchored at the image's origin, like a saved photo's.
    """

    def __init__(self, quality: int) -> None:
        super().__init__()
        self.quality = int(quality)
        self.register_buffer("luma_steps", quality_table(LUMA_TABLE, quality), persistent=False)
        self.register_buffer("chroma_steps", quality_table(CHROMA_TABLE, quality), persistent=False)
        self.register_buffer("basis", dct_matrix(), persistent=False)

    def _quantise(self, plane: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        coefficients = blocks_dct(plane, self.basis)
        return blocks_idct(round_straight_through(coefficients / steps) * steps, self.basis)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        with torch.autocast(device_type=image.device.type, enabled=False):
            # Coefficients reach ~1000 with steps of ~5: bf16/fp16 would round them wrongly.
            rgb = image.float() * 255
            padded = F.pad(rgb, (0, -width % MCU, 0, -height % MCU), mode="replicate")
            ycbcr = rgb_to_ycbcr(padded)
            luma = self._quantise(ycbcr[:, 0], self.luma_steps)
            chroma = F.avg_pool2d(ycbcr[:, 1:], 2)
            n, _, chroma_height, chroma_width = chroma.shape
            chroma = self._quantise(chroma.reshape(2 * n, chroma_height, chroma_width), self.chroma_steps)
            chroma = F.interpolate(chroma.reshape(n, 2, chroma_height, chroma_width), scale_factor=2,
                                   mode="bilinear", align_corners=False)
            decoded = ycbcr_to_rgb(torch.cat([luma[:, None], chroma], 1))[..., :height, :width]
            return (decoded / 255).clamp(0, 1).to(image.dtype)


def estimate_jpeg_quality(images: Sequence[torch.Tensor], positions: int = 12,
                          max_blocks: int = 200_000) -> tuple[int | None, float]:
    """Blind estimate of the JPEG quality a set of decoded photos was saved at, and a confidence.

    A decoded JPEG's luma DCT coefficients (on the 8x8 grid at the origin) sit near multiples of
    that quality's quantisation steps; for each quality 1-100 measure how far they sit from the
    nearest multiple (0 = on it, 0.25 = random) over the lowest AC frequencies, and take the best.
    Returns (None, score) when no quality fits clearly better than chance (not JPEG-compressed).
    """
    basis = dct_matrix().double()
    coefficient_sets = []
    for image in images:
        rgb = image.double()[None] * 255
        height, width = rgb.shape[-2] // 8 * 8, rgb.shape[-1] // 8 * 8
        if height == 0 or width == 0:
            continue
        luma = rgb_to_ycbcr(rgb[..., :height, :width])[:, 0]
        coefficient_sets.append(blocks_dct(luma, basis).reshape(-1, 8, 8))
    if not coefficient_sets:
        return None, float("nan")
    coefficients = torch.cat(coefficient_sets)[:max_blocks]
    order = sorted(((u, v) for u in range(8) for v in range(8) if u + v > 0), key=lambda uv: (sum(uv), uv))[:positions]
    rows = torch.tensor([u for u, _ in order])
    columns = torch.tensor([v for _, v in order])
    picked = coefficients[:, rows, columns]  # (blocks, positions)
    scores = []
    for quality in range(1, 101):
        steps = quality_table(LUMA_TABLE, quality).double()[rows, columns]
        ratio = picked / steps
        kept = ratio.abs() >= 0.5  # coefficients that survived quantisation; zeros fit any step
        if kept.sum() < 100:
            scores.append(0.25)
            continue
        scores.append((ratio - ratio.round()).abs()[kept].mean().item())
    best = min(range(100), key=scores.__getitem__)
    confident = scores[best] < 0.125  # halfway between on-the-grid (0) and chance (0.25)
    return (best + 1 if confident else None), scores[best]
