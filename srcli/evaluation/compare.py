"""Side-by-side crops: bicubic vs SR models on one image (the README pictures).

Two modes. Given an HR image (``degradation`` bicubic or realworld), the LR is made from it and
each panel carries its PSNR against the HR. Given a photo with no ground truth (``degradation``
none), the photo itself is the LR: panels show how each model upscales it, with no PSNR.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..files import atomic_write
from ..imresize import bicubic_downscale, crop_to_multiple
from .datasets import read_rgb
from .evaluate import InferenceOptions, ModelSpec, make_runner
from .metrics import psnr

LABEL_HEIGHT = 18
DEGRADATIONS = ("none", "bicubic", "realworld")
#: LR pixels of context around an LR-mode crop, so that each network sees its neighbourhood
#: (more than any shipped network's practical reach) without upscaling the whole photo.
CONTEXT = 24


@dataclass
class Panel:
    label: str
    image: torch.Tensor  # (3, h, w) crop in [0, 1]
    psnr: float | None


def parse_crop(text: str | None, height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """``x,y,w,h`` in HR pixels, or a centred square of ``size``."""
    if text:
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"--crop must be x,y,w,h in pixels, got {text!r}") from None
    else:
        w = h = min(size, width, height)
        x, y = (width - w) // 2, (height - h) // 2
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(f"crop {x},{y},{w},{h} is outside the {width}x{height} image")
    return x, y, w, h


def model_specs(models: list[str]) -> list[ModelSpec]:
    """bicubic first, then each model once; weight files are labelled by their stem."""
    specs = []
    for name in ["bicubic", *[m for m in dict.fromkeys(models) if m != "bicubic"]]:
        weights = name if Path(name).suffix in (".safetensors", ".pth", ".pt", ".tar") else None
        specs.append(ModelSpec(Path(name).stem if weights else name, weights))
    return specs


def make_lr(hr: torch.Tensor, scale: int, degradation: str, seed: int = 0,
            realworld: dict[str, Any] | None = None) -> torch.Tensor:
    """The LR that an HR image becomes: MATLAB bicubic, or one realworld chain drawn from ``seed``."""
    if degradation == "bicubic":
        return bicubic_downscale(hr.double(), scale).float()
    from ..degradation.realworld import RealWorldDegradation, settings_from

    generator = torch.Generator().manual_seed(seed)
    return RealWorldDegradation(settings_from(realworld)).one(hr, scale, generator)


def make_panels(image_path: str | Path, models: list[str], scale: int, crop: str | None = None, crop_size: int = 128,
                options: InferenceOptions | None = None, degradation: str = "bicubic", seed: int = 0,
                realworld: dict[str, Any] | None = None) -> list[Panel]:
    """Crops of the same region from bicubic and each model; see the module docstring for the modes."""
    if degradation not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {degradation!r}; use {', '.join(DEGRADATIONS)}")
    options = options or InferenceOptions()
    if degradation == "none":
        return lr_panels(read_rgb(Path(image_path)), models, scale, crop, crop_size, options)
    hr = crop_to_multiple(read_rgb(Path(image_path)), scale)
    lr = make_lr(hr, scale, degradation, seed, realworld)
    x, y, w, h = parse_crop(crop, hr.shape[1], hr.shape[2], crop_size)
    panels = [Panel("HR", hr[:, y:y + h, x:x + w], None)]
    for spec in model_specs(models):
        sr = make_runner(spec, scale, options)(lr).clamp(0, 1)
        panels.append(Panel(spec.name, sr[:, y:y + h, x:x + w], psnr(sr, hr, border=scale)))
    return panels


def lr_window(crop: tuple[int, int, int, int], scale: int, height: int, width: int
              ) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """(LR region with context as top, bottom, left, right; the crop inside its upscaled output as x, y, w, h).

    The crop (output pixels) is snapped outwards to whole LR pixels."""
    x, y, w, h = crop
    left, top = x // scale, y // scale
    right, bottom = min(width, -(-(x + w) // scale)), min(height, -(-(y + h) // scale))
    region = (max(0, top - CONTEXT), min(height, bottom + CONTEXT), max(0, left - CONTEXT), min(width, right + CONTEXT))
    inside = ((left - region[2]) * scale, (top - region[0]) * scale, (right - left) * scale, (bottom - top) * scale)
    return region, inside


def lr_panels(lr: torch.Tensor, models: list[str], scale: int, crop: str | None, crop_size: int,
              options: InferenceOptions) -> list[Panel]:
    """The photo is the LR: each model upscales a window around the crop; no ground truth, no PSNR."""
    height, width = lr.shape[-2:]
    chosen = parse_crop(crop, height * scale, width * scale, crop_size)
    (top, bottom, left, right), (x, y, w, h) = lr_window(chosen, scale, height, width)
    window = lr[:, top:bottom, left:right]
    panels = []
    for spec in model_specs(models):
        sr = make_runner(spec, scale, options)(window).clamp(0, 1)
        panels.append(Panel(spec.name, sr[:, y:y + h, x:x + w], None))
    return panels


def draw_panels(panels: list[Panel], output: str | Path, zoom: int = 2) -> Path:
    """One row of zoomed (nearest) crops with labels; written atomically as PNG."""
    tiles = []
    for panel in panels:
        array = (panel.image.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        picture = Image.fromarray(array).resize((array.shape[1] * zoom, array.shape[0] * zoom), Image.NEAREST)
        canvas = Image.new("RGB", (picture.width, picture.height + LABEL_HEIGHT), (255, 255, 255))
        canvas.paste(picture, (0, LABEL_HEIGHT))
        label = panel.label if panel.psnr is None else f"{panel.label} {panel.psnr:.2f} dB"
        ImageDraw.Draw(canvas).text((3, 3), label, fill=(0, 0, 0))
        tiles.append(canvas)
    gap = 4
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), tiles[0].height), (255, 255, 255))
    left = 0
    for tile in tiles:
        sheet.paste(tile, (left, 0))
        left += tile.width + gap
    output = Path(output)
    atomic_write(output, lambda temp: sheet.save(temp, format="PNG"))
    return output
