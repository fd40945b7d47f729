"""Tiled vs untiled output of the shipped weights on real benchmark images, per precision.

The random-weight figures in inference.py show the pad reaches far enough; this shows what a
user gets: for each shipped SR model, every Set5/Set14 image (MATLAB-bicubic LR) is upscaled
untiled and with small tiles (default calibrated pad), and the script prints the max
difference on [0, 1] floats (in /255) and the share of 8-bit output values that differ.

    python benchmarks/tiling.py --data-root ../shared/data/benchmarks [--only esrgan-psnr]
    python benchmarks/tiling.py --calibration [--only NAME]   # first-use cost of the pad calibration

The peak-RSS target of a 2048x2048 RRDBNet-23 x4 job is measured by benchmarks/inference.py.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srcli.checkpoints.resolve import resolve_model  # noqa: E402
from srcli.checkpoints.shipped import read_manifest  # noqa: E402
from srcli.images.io import read_image  # noqa: E402
from srcli.imresize import bicubic_downscale, crop_to_multiple  # noqa: E402
from srcli.inference.receptive_field import calibrate_pad  # noqa: E402
from srcli.inference.upscaler import Upscaler, resolve_precision  # noqa: E402
from srcli.train.data import list_images  # noqa: E402


def low_resolution_images(data_root: Path, datasets: list[str], scale: int) -> list[tuple[str, torch.Tensor]]:
    images = []
    for dataset in datasets:
        for path in list_images([data_root / dataset]):
            hr = crop_to_multiple(read_image(path).rgb, scale)
            images.append((path.stem, bicubic_downscale(hr, scale)))
    return images


def compare(name: str, scale: int, precision: str, tiles: list[int], tile_pad: str | int,
            images: list[tuple[str, torch.Tensor]]) -> list[str]:
    resolved = resolve_model(name, scale)
    whole = Upscaler(resolved.network, scale=resolved.scale, device="cpu", precision=precision, tile=None)
    rows = []
    for tile in tiles:
        tiled = Upscaler(resolved.network, scale=resolved.scale, device="cpu", precision=precision, tile=tile,
                         tile_pad=tile_pad)
        worst, differing, total = 0.0, 0, 0
        for _, lr in images:
            a, b = whole.upscale(lr), tiled.upscale(lr)
            worst = max(worst, (a - b).abs().max().item())
            differing += int((to_8bit(a) != to_8bit(b)).sum())
            total += a.numel()
        rows.append(f"{name:12s} x{scale} {precision:4s} (runs {tiled.precision}) tile {tile:4d} pad {tiled.pad():3d}: "
                    f"max {worst * 255:.3f}/255, 8-bit values differing {100 * differing / total:.3f}%")
        print(rows[-1], flush=True)
    return rows


def calibration_cost(name: str, scale: int, precision: str) -> str:
    """Seconds, pad and whether it settled, for one uncached calibration (what a first tiled run pays)."""
    network = resolve_model(name, scale).network
    dtype = resolve_precision(precision, torch.device("cpu"))
    started = time.perf_counter()
    result = calibrate_pad(network, dtype=dtype, use_cache=False)
    seconds = time.perf_counter() - started
    row = (f"{name:12s} x{scale} {precision:4s} calibration: {seconds:5.1f} s, pad {result.pad:3d} "
           f"({'measured' if result.resolved else 'reach beyond it: fallback'}; theoretical {result.theoretical})")
    print(row, flush=True)
    return row


def to_8bit(image: torch.Tensor) -> torch.Tensor:
    return (image.clamp(0, 1) * 255).round()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared/data/benchmarks"))
    parser.add_argument("--datasets", default="Set5,Set14")
    parser.add_argument("--only", action="append", help="shipped model name(s)")
    parser.add_argument("--precision", action="append", choices=["auto", "fp32", "bf16"],
                        help="default: auto, fp32 and bf16")
    parser.add_argument("--tile-pad", default="auto", help="auto, full or pixels")
    parser.add_argument("--tiles", default="48,96")
    parser.add_argument("--calibration", action="store_true", help="only time each model's pad calibration")
    args = parser.parse_args()
    tiles = [int(value) for value in args.tiles.split(",")]
    tile_pad = int(args.tile_pad) if args.tile_pad.isdigit() else args.tile_pad
    for entry in read_manifest():
        if entry["architecture"] == "dsgan" or (args.only and entry["name"] not in args.only):
            continue
        for scale in entry["scales"]:
            if args.calibration:
                for precision in args.precision or ["fp32"]:
                    calibration_cost(entry["name"], scale, precision)
                continue
            images = low_resolution_images(Path(args.data_root), args.datasets.split(","), scale)
            for precision in args.precision or ["auto", "fp32", "bf16"]:
                compare(entry["name"], scale, precision, tiles, tile_pad, images)


if __name__ == "__main__":
    main()
