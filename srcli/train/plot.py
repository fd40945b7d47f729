"""Loss and PSNR curves drawn with Pillow (no plotting library needed at run time)."""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

from ..files import atomic_write
from .trainer import LOG_NAME, TrainError, read_log

WIDTH, HEIGHT, MARGIN = 900, 300, 60


def _read_log(run_dir: Path) -> list[dict]:
    if not (run_dir / LOG_NAME).is_file():
        raise TrainError(f"{run_dir} has no {LOG_NAME} to plot")
    return read_log(run_dir)


def _panel(draw: ImageDraw.ImageDraw, top: int, title: str, points: list[tuple[float, float]], log_y: bool) -> None:
    draw.rectangle([MARGIN, top + 20, WIDTH - 20, top + HEIGHT - 30], outline=(0, 0, 0))
    draw.text((MARGIN, top + 4), title, fill=(0, 0, 0))
    if len(points) < 1:
        draw.text((MARGIN + 10, top + 40), "no data", fill=(120, 0, 0))
        return
    xs = [p[0] for p in points]
    ys = [math.log10(p[1]) if log_y else p[1] for p in points if not log_y or p[1] > 0]
    xs = xs[-len(ys):]
    x_min, x_max = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y_min, y_max = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1e-6
    left, right, upper, lower = MARGIN, WIDTH - 20, top + 20, top + HEIGHT - 30

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x_min) / (x_max - x_min) * (right - left),
                lower - (y - y_min) / (y_max - y_min) * (lower - upper))

    pixels = [to_pixel(x, y) for x, y in zip(xs, ys)]
    if len(pixels) > 1:
        draw.line(pixels, fill=(30, 90, 200), width=2)
    else:
        draw.ellipse([pixels[0][0] - 3, pixels[0][1] - 3, pixels[0][0] + 3, pixels[0][1] + 3], fill=(30, 90, 200))
    label = (lambda v: f"{10 ** v:.3g}") if log_y else (lambda v: f"{v:.3f}")
    draw.text((4, upper), label(y_max), fill=(0, 0, 0))
    draw.text((4, lower - 10), label(y_min), fill=(0, 0, 0))
    draw.text((left, lower + 6), f"{int(x_min)}", fill=(0, 0, 0))
    draw.text((right - 60, lower + 6), f"{int(x_max)} it", fill=(0, 0, 0))


def plot_run(run_dir: str | Path, output: str | Path | None = None) -> Path:
    run_dir = Path(run_dir)
    records = _read_log(run_dir)
    losses = [(r["iteration"], r["loss"]) for r in records if "loss" in r]
    psnrs = [(r["iteration"], r["val_psnr"]) for r in records if "val_psnr" in r]
    image = Image.new("RGB", (WIDTH, 2 * HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    _panel(draw, 0, f"training loss (log scale) - {run_dir.name}", losses, log_y=True)
    _panel(draw, HEIGHT, "validation PSNR (dB, Y channel)", psnrs, log_y=False)
    target = Path(output) if output else run_dir / "curves.png"
    atomic_write(target, lambda temp: image.save(temp, format="PNG"))
    return target
