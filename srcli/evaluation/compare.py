"""Side-by-side crops: bicubic vs SR models on one HR image (the README picture)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..files import atomic_write
from ..imresize import bicubic_downscale, crop_to_multiple
from .datasets import read_rgb
from .evaluate import InferenceOptions, ModelSpec, make_runner
from .metrics import psnr

LABEL_HEIGHT = 18


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


def make_panels(hr_path: str | Path, models: list[str], scale: int, crop: str | None = None, crop_size: int = 128,
                options: InferenceOptions | None = None) -> list[Panel]:
    """HR -> MATLAB-bicubic LR -> each model (and bicubic); crops of the same region, with PSNR (Y)."""
    options = options or InferenceOptions()
    hr = crop_to_multiple(read_rgb(Path(hr_path)), scale)
    lr = bicubic_downscale(hr.double(), scale).float()
    x, y, w, h = parse_crop(crop, hr.shape[1], hr.shape[2], crop_size)
    panels = [Panel("HR", hr[:, y:y + h, x:x + w], None)]
    for name in ["bicubic", *[m for m in models if m != "bicubic"]]:
        weights = name if Path(name).suffix in (".safetensors", ".pth", ".pt", ".tar") else None
        spec = ModelSpec(Path(name).stem if weights else name, weights)
        sr = make_runner(spec, scale, options)(lr).clamp(0, 1)
        panels.append(Panel(spec.name, sr[:, y:y + h, x:x + w], psnr(sr, hr, border=scale)))
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
