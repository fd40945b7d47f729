"""Held-out photo test sets: HR images through fixed everyday chains written with PIL alone.

Why: the photo models are trained on ``--degradation realworld`` and validated on
``photos/val_set14_x4``; neither may decide whether they generalise. These chains are
independent code (PIL resamplers and codecs, NumPy noise), so a model cannot have learned
their exact steps, and they include chains the validation pairs do not show.

    python benchmarks/photo_chains.py ../shared/data/benchmarks/Set5 OUT_DIR [-x 4] [--seed 0]

writes OUT_DIR/CHAIN/{hr,lr}/NAME.png for every chain below (an eval layout:
``srcli eval OUT_DIR/* -m edsr -m edsr-photo -x 4``).
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

Chain = Callable[[Image.Image, int, np.random.Generator], Image.Image]


def _jpeg(image: Image.Image, quality: int, subsampling: int = 2) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _webp(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _shrink(image: Image.Image, scale: int, resample: int = Image.BICUBIC) -> Image.Image:
    return image.resize((image.width // scale, image.height // scale), resample)


def _noise(image: Image.Image, rng: np.random.Generator, sigma: float, signal_dependent: bool) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64)
    if signal_dependent:  # shot noise: variance grows with brightness (sigma at mid grey)
        spread = sigma * np.sqrt(np.maximum(pixels, 1.0) / 128.0)
    else:
        spread = sigma
    noisy = pixels + rng.normal(size=pixels.shape) * spread
    return Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8))


def web_jpeg(hr: Image.Image, scale: int, rng: np.random.Generator) -> Image.Image:
    return _jpeg(_shrink(hr, scale, Image.LANCZOS), int(rng.integers(55, 86)))


def camera(hr: Image.Image, scale: int, rng: np.random.Generator) -> Image.Image:
    blurred = hr.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.8, 2.0))))
    noisy = _noise(_shrink(blurred, scale), rng, float(rng.uniform(2, 6)), signal_dependent=False)
    return _jpeg(noisy, int(rng.integers(70, 91)))


def phone(hr: Image.Image, scale: int, rng: np.random.Generator) -> Image.Image:
    noisy = _noise(_shrink(hr, scale, Image.BILINEAR), rng, float(rng.uniform(2, 5)), signal_dependent=True)
    return _jpeg(noisy, int(rng.integers(75, 93)))


def reshared(hr: Image.Image, scale: int, rng: np.random.Generator) -> Image.Image:
    first = _jpeg(_shrink(hr, scale), int(rng.integers(80, 93)))
    return _jpeg(first, int(rng.integers(50, 76)))


def sharpened(hr: Image.Image, scale: int, rng: np.random.Generator) -> Image.Image:
    small = _shrink(hr, scale).filter(ImageFilter.UnsharpMask(radius=1.5, percent=int(rng.integers(60, 121)), threshold=0))
    return _jpeg(small, int(rng.integers(70, 91)))


def webp(hr: Image.Image, scale: int, rng: np.random.Generator) -> Image.Image:
    return _webp(_shrink(hr, scale), int(rng.integers(40, 71)))


def heavy_jpeg(hr: Image.Image, scale: int, rng: np.random.Generator) -> Image.Image:
    return _jpeg(_shrink(hr, scale), int(rng.integers(15, 31)))


EVERYDAY: dict[str, Chain] = {"web_jpeg": web_jpeg, "camera": camera, "phone": phone, "reshared": reshared}
OTHER: dict[str, Chain] = {"sharpened": sharpened, "webp": webp, "heavy_jpeg": heavy_jpeg}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hr_folder", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("-x", "--scale", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = sorted(p for p in args.hr_folder.iterdir() if p.suffix.lower() in {".png", ".bmp", ".jpg", ".tif"})
    for index, (name, chain) in enumerate({**EVERYDAY, **OTHER}.items()):
        for kind in ("hr", "lr"):
            (args.out / name / kind).mkdir(parents=True, exist_ok=True)
        for number, path in enumerate(paths):
            rng = np.random.default_rng([args.seed, index, number])
            hr = Image.open(path).convert("RGB")
            hr = hr.crop((0, 0, hr.width - hr.width % args.scale, hr.height - hr.height % args.scale))
            hr.save(args.out / name / "hr" / f"{path.stem}.png")
            chain(hr, args.scale, rng).save(args.out / name / "lr" / f"{path.stem}.png")
    print(f"wrote {len(paths)} images x {len(EVERYDAY) + len(OTHER)} chains under {args.out}")


if __name__ == "__main__":
    main()
