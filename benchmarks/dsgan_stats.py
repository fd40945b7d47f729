"""Is the degradation learned? High-frequency energy and noise level of DSGAN outputs vs the source.

For each image set (real source photos; DSGAN(bicubic(clean HR)); bicubic(clean HR)) it prints
* high-frequency energy: std of (image - 5x5 average-pool low-pass), on Y, in 8-bit levels;
* noise level: Immerkaer's fast noise estimate (sigma, 8-bit levels) on Y.
Target: DSGAN within 20% of the source on both, bicubic far from it.

    python benchmarks/dsgan_stats.py --weights weights/dsgan_x4.safetensors \
        [--source ../shared/data/realworld/source] [--clean ../shared/data/train/sun80] [-x 4]
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srcli.datasets import read_rgb  # noqa: E402
from srcli.degrade import DSGANDegrader, bicubic_lr  # noqa: E402
from srcli.imresize import crop_to_multiple  # noqa: E402
from srcli.metrics import rgb_to_y  # noqa: E402
from srcli.nets.dsgan import high_pass  # noqa: E402
from srcli.train.data import list_images  # noqa: E402

IMMERKAER = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]]).view(1, 1, 3, 3)


def luma(image: torch.Tensor) -> torch.Tensor:
    return rgb_to_y(image.unsqueeze(0), round_to_8bit=False).float()  # (1, 1, H, W), 8-bit scale


def high_frequency_std(image: torch.Tensor) -> float:
    return high_pass(luma(image) / 255.0).std().item() * 255.0


def noise_sigma(image: torch.Tensor) -> float:
    """Immerkaer (1996): sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * M|."""
    y = luma(image).double()
    response = F.conv2d(y, IMMERKAER.double()).abs()
    height, width = y.shape[-2:]
    return math.sqrt(math.pi / 2) * response.sum().item() / (6 * (width - 2) * (height - 2))


def stats(images: list[torch.Tensor]) -> tuple[float, float]:
    hf = sum(high_frequency_std(i) for i in images) / len(images)
    noise = sum(noise_sigma(i) for i in images) / len(images)
    return hf, noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="DSGAN generator")
    parser.add_argument("--source", default=str(ROOT.parent / "shared/data/realworld/source"))
    parser.add_argument("--clean", default=str(ROOT.parent / "shared/data/train/sun80"))
    parser.add_argument("-x", "--scale", type=int, default=4)
    parser.add_argument("--limit", type=int, default=40, help="images per set")
    args = parser.parse_args()
    source = [read_rgb(p) for p in list_images([args.source])[: args.limit]]
    clean = [crop_to_multiple(read_rgb(p), args.scale) for p in list_images([args.clean])[: args.limit]]
    degrader = DSGANDegrader(args.weights)
    with torch.inference_mode():
        dsgan = [degrader(hr.unsqueeze(0), args.scale)[0] for hr in clean]
    bicubic = [bicubic_lr(hr, args.scale) for hr in clean]
    rows = [("source (real)", stats(source)), ("DSGAN(bicubic LR)", stats(dsgan)), ("bicubic LR", stats(bicubic))]
    reference = rows[0][1]
    print(f"{'set':<20} {'HF std':>8} {'ratio':>7} {'noise':>8} {'ratio':>7}")
    for name, (hf, noise) in rows:
        print(f"{name:<20} {hf:8.3f} {hf / reference[0]:7.2f} {noise:8.3f} {noise / reference[1]:7.2f}")
    print("(8-bit levels on Y; target: DSGAN ratios within 0.8-1.2)")


if __name__ == "__main__":
    main()
