"""Is the degradation learned? High-frequency energy and noise level of DSGAN outputs vs the source.

Two comparisons, each against a reference with the real corruption:
* content-matched: Set14 HR -> DSGAN(bicubic) and bicubic, vs the corrupted Set14 LR
  (``realworld/val_set14_x4``: the same images with the real degradation);
* unpaired: clean training HR -> DSGAN(bicubic) and bicubic, vs the source photos.
Per set, on Y in 8-bit levels:
* HF std: std of (image - 5x5 average-pool low-pass), whole image;
* noise: Immerkaer's fast noise estimate, whole image;
* flat noise: the same estimate in the flattest 10% of 16x16 blocks (content barely leaks in).
Target: DSGAN within 20% of the reference, bicubic far from it.

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


def flat_noise_sigma(image: torch.Tensor, block: int = 16, quantile: float = 0.1) -> float:
    """Immerkaer's estimate per block; the flattest blocks measure noise rather than texture."""
    y = luma(image).double()
    response = F.conv2d(y, IMMERKAER.double()).abs() * math.sqrt(math.pi / 2) / 6
    blocks = F.avg_pool2d(response, block).flatten()
    return torch.quantile(blocks, quantile).item()


def stats(images: list[torch.Tensor]) -> tuple[float, float, float]:
    count = len(images)
    return (sum(high_frequency_std(i) for i in images) / count, sum(noise_sigma(i) for i in images) / count,
            sum(flat_noise_sigma(i) for i in images) / count)


def report(title: str, rows: list[tuple[str, tuple[float, float, float]]]) -> None:
    reference = rows[0][1]
    print(title)
    print(f"  {'set':<26} {'HF std':>7} {'ratio':>6} {'noise':>7} {'ratio':>6} {'flat':>7} {'ratio':>6}")
    for name, values in rows:
        cells = " ".join(f"{v:7.3f} {v / r:6.2f}" for v, r in zip(values, reference))
        print(f"  {name:<26} {cells}")


def degrade_sets(clean: list[torch.Tensor], degrader: DSGANDegrader, scale: int) -> tuple[list, list]:
    with torch.inference_mode():
        dsgan = [degrader(hr.unsqueeze(0), scale)[0] for hr in clean]
    return dsgan, [bicubic_lr(hr, scale) for hr in clean]


def content_matched_ratios(weights: str, val: Path, scale: int = 4) -> dict[str, dict[str, float]]:
    """DSGAN and bicubic LR statistics as ratios to the real corrupted LR of the same HR images."""
    degrader = DSGANDegrader(weights)
    hr = [crop_to_multiple(read_rgb(p), scale) for p in list_images([val / "hr"])]
    real = stats([read_rgb(p) for p in list_images([val / "lr"])])
    dsgan, bicubic = degrade_sets(hr, degrader, scale)
    names = ("hf_std", "noise", "flat_noise")
    return {label: {name: round(value / reference, 3) for name, value, reference in zip(names, stats(images), real)}
            for label, images in (("dsgan", dsgan), ("bicubic", bicubic))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="DSGAN generator")
    parser.add_argument("--source", default=str(ROOT.parent / "shared/data/realworld/source"))
    parser.add_argument("--clean", default=str(ROOT.parent / "shared/data/train/sun80"))
    parser.add_argument("--val", default=str(ROOT.parent / "shared/data/realworld/val_set14_x4"))
    parser.add_argument("-x", "--scale", type=int, default=4)
    parser.add_argument("--limit", type=int, default=40, help="images per unpaired set")
    args = parser.parse_args()
    degrader = DSGANDegrader(args.weights)
    val = Path(args.val)
    if (val / "hr").is_dir() and (val / "lr").is_dir():
        hr = [crop_to_multiple(read_rgb(p), args.scale) for p in list_images([val / "hr"])]
        real = [read_rgb(p) for p in list_images([val / "lr"])]
        dsgan, bicubic = degrade_sets(hr, degrader, args.scale)
        report("content-matched (Set14)", [("real corrupted LR", stats(real)), ("DSGAN(bicubic LR)", stats(dsgan)),
                                            ("bicubic LR", stats(bicubic))])
    source = [read_rgb(p) for p in list_images([args.source])[: args.limit]]
    clean = [crop_to_multiple(read_rgb(p), args.scale) for p in list_images([args.clean])[: args.limit]]
    dsgan, bicubic = degrade_sets(clean, degrader, args.scale)
    report("unpaired (source photos vs clean training images)",
           [("source photos", stats(source)), ("DSGAN(bicubic LR)", stats(dsgan)), ("bicubic LR", stats(bicubic))])
    print("(Y channel, 8-bit levels; target: DSGAN ratios within 0.8-1.2)")


if __name__ == "__main__":
    main()
