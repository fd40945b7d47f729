"""Is the degradation learned? High-frequency energy and noise level of DSGAN outputs vs the source.

Two comparisons, each against a reference with the real corruption:
* content-matched: Set14 HR -> DSGAN(bicubic) and bicubic, vs the corrupted Set14 LR
  (``realworld/val_set14_x4``: the same images with the real degradation);
* unpaired: clean training HR -> DSGAN(bicubic) and bicubic, vs the source photos.
Per set, in 8-bit levels:
* HF std: std of (image - 5x5 average-pool low-pass) on Y, whole image;
* noise: Immerkaer's fast noise estimate on Y, whole image;
* flat noise: the same estimate in the flattest 10% of 16x16 blocks (content barely leaks in);
* RGB flat noise: flat noise per RGB channel, averaged (Y hides colour noise);
* blockiness: mean |step| between neighbouring pixels across the 8x8 grid's block edges over the
  mean |step| elsewhere, on Y (1.0: no grid; JPEG at the image's own resolution: > 1);
* residual std (content-matched only): RGB std of (LR - bicubic LR of the same HR image);
* bicubic-upscale PSNR (content-matched only): Y-PSNR (border = scale) of the LR upscaled by
  bicubic against the HR: how much the degradation costs a method that cannot undo it;
* per radial frequency band (content-matched only, Y): the signal gain (cross-power of LR with
  the bicubic LR over the bicubic LR's power: <1 where the degradation blurs) and the residual
  power (power of LR - bicubic LR over the bicubic LR's power: the noise the degradation adds).
Target: DSGAN within 20% of the reference, bicubic far from it.

* generator noise sigma (noise-channel generators): RGB std, before the JPEG stage, of the
  difference between two outputs for the same LR and two noise draws, over sqrt(2): the part of
  what G adds that is random, which texture statistics cannot tell from content-shaped detail.
The unpaired comparison downscales the clean images by the generator's own training scale
(``--clean-scale`` overrides): the source photos' content density is what G was matched to.

    python benchmarks/dsgan_stats.py --weights weights/dsgan_x4.safetensors \
        [--source ../shared/data/realworld/source] [--clean ../shared/data/train/sun80] [-x 4]

``--classical blur=S,noise=S,jpeg=Q`` measures a hand-made chain in the DSGAN column instead
(the same statistics for a degradation known to train good real-world SR models: a target that
says which of the DSGAN's deviations matter).
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

from srcli.degradation.classical import ClassicalDegradation, bicubic_lr, parse_classical  # noqa: E402
from srcli.degradation.dsgan import DSGANDegrader  # noqa: E402
from srcli.evaluation.datasets import read_rgb  # noqa: E402
from srcli.evaluation.metrics import psnr, rgb_to_y  # noqa: E402
from srcli.imresize import (  # noqa: E402
    crop_to_multiple,  # noqa: E402
    imresize,
    quantize,
)
from srcli.nets.dsgan import high_pass  # noqa: E402
from srcli.train.data import list_images  # noqa: E402

Degrader = DSGANDegrader | ClassicalDegradation

IMMERKAER = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]]).view(1, 1, 3, 3)


def luma(image: torch.Tensor) -> torch.Tensor:
    return rgb_to_y(image.unsqueeze(0), round_to_8bit=False).float()  # (1, 1, H, W), 8-bit scale


def channels(image: torch.Tensor) -> torch.Tensor:
    return (image.double() * 255).unsqueeze(1)  # (3, 1, H, W): each RGB channel on its own


def high_frequency_std(image: torch.Tensor) -> float:
    return high_pass(luma(image) / 255.0).std().item() * 255.0


def immerkaer_map(planes: torch.Tensor) -> torch.Tensor:
    """Per-pixel |I * M| scaled so that its mean is sigma for white Gaussian noise (Immerkaer 1996)."""
    return F.conv2d(planes.double(), IMMERKAER.double()).abs() * math.sqrt(math.pi / 2) / 6


def noise_sigma(planes: torch.Tensor) -> float:
    return immerkaer_map(planes).mean().item()


def flat_noise_sigma(planes: torch.Tensor, block: int = 16, quantile: float = 0.1) -> float:
    """The estimate in the flattest blocks of each plane, where texture barely leaks in."""
    blocks = F.avg_pool2d(immerkaer_map(planes), block).flatten(1)
    return torch.quantile(blocks, quantile, dim=1).mean().item()


def blockiness(planes: torch.Tensor, grid: int = 8) -> float:
    """Steps across the grid's block edges over steps elsewhere (JPEG blocks start at the origin)."""
    steps = []
    for axis in (-1, -2):
        diff = planes.diff(dim=axis).abs()
        edge = (torch.arange(diff.shape[axis]) % grid) == grid - 1
        index = edge.nonzero().flatten(), (~edge).nonzero().flatten()
        steps.append([diff.index_select(axis, i).mean().item() for i in index])
    return sum(e for e, _ in steps) / sum(o for _, o in steps)


COLUMNS = ("hf_std", "noise", "flat_noise", "rgb_flat_noise", "blockiness")


def image_stats(image: torch.Tensor) -> tuple[float, ...]:
    y, rgb = luma(image).double(), channels(image)
    return high_frequency_std(image), noise_sigma(y), flat_noise_sigma(y), flat_noise_sigma(rgb), blockiness(y)


def stats(images: list[torch.Tensor]) -> tuple[float, ...]:
    rows = [image_stats(image) for image in images]
    return tuple(sum(column) / len(rows) for column in zip(*rows))


def residual_std(images: list[torch.Tensor], clean_lr: list[torch.Tensor]) -> float:
    """RGB std of (LR - bicubic LR of the same HR): the degradation's own energy, content removed."""
    values = [((image.double() - clean.double()) * 255).std().item() for image, clean in zip(images, clean_lr)]
    return sum(values) / len(values)


def residual_autocorrelation(images: list[torch.Tensor], clean_lr: list[torch.Tensor],
                             lags: tuple[int, ...] = (1, 2, 4)) -> tuple[float, ...]:
    """Horizontal autocorrelation of (LR - bicubic LR) at ``lags``: white-ish noise falls to 0 by
    lag 2, band-pass GAN 'noise' (e.g. period 4: negative at 2, positive at 4) does not."""
    values = []
    for lag in lags:
        left = torch.cat([(i.double() - c.double())[..., :-lag].flatten() for i, c in zip(images, clean_lr)])
        right = torch.cat([(i.double() - c.double())[..., lag:].flatten() for i, c in zip(images, clean_lr)])
        left, right = left - left.mean(), right - right.mean()
        denominator = (left.norm() * right.norm()).item()
        values.append((left @ right).item() / denominator if denominator else float("nan"))
    return tuple(values)


BANDS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.71))


def spectral_bands(images: list[torch.Tensor], clean_lr: list[torch.Tensor]) -> list[tuple[float, float]]:
    """(signal gain, residual power) per radial band of cycles/pixel, both relative to the clean LR.

    Why: one std mixes blur and noise; a degradation can match the total and still be wrong per
    frequency (too little noise at 0.3-0.5, sharpening near Nyquist), which an SR network then
    learns to undo wrongly.
    """
    totals = torch.zeros(len(BANDS), 3, dtype=torch.float64)  # cross, clean power, residual power
    for image, clean in zip(images, clean_lr):
        height, width = min(image.shape[-2], clean.shape[-2]), min(image.shape[-1], clean.shape[-1])
        degraded = luma(image[..., :height, :width])[0, 0].double()
        reference = luma(clean[..., :height, :width])[0, 0].double()
        spectrum_d = torch.fft.fft2(degraded - degraded.mean())
        spectrum_r = torch.fft.fft2(reference - reference.mean())
        radius = torch.sqrt(torch.fft.fftfreq(height)[:, None] ** 2 + torch.fft.fftfreq(width)[None, :] ** 2)
        for index, (low, high) in enumerate(BANDS):
            band = (radius >= low) & (radius < high)
            d, r = spectrum_d[band], spectrum_r[band]
            totals[index, 0] += (d * r.conj()).real.sum()
            totals[index, 1] += r.abs().square().sum()
            totals[index, 2] += (d - r).abs().square().sum()
    return [(float(cross / power), float(residual / power)) for cross, power, residual in totals]


def report(title: str, rows: list[tuple[str, tuple[float, ...]]], columns: tuple[str, ...] = COLUMNS) -> None:
    reference = rows[0][1]
    print(title)
    print(f"  {'set':<26}" + "".join(f" {name:>14} {'ratio':>6}" for name in columns))
    for name, values in rows:
        cells = " ".join(f"{v:14.3f} {v / r if r else float('nan'):6.2f}" for v, r in zip(values, reference))
        print(f"  {name:<26} {cells}")


def as_degrader(weights: str | torch.nn.Module | Degrader) -> Degrader:
    """A DSGAN file or network as a degrader; a degrader built already (a classical chain too) as is."""
    return weights if isinstance(weights, Degrader) else DSGANDegrader(weights)


def degrade_sets(clean: list[torch.Tensor], degrader: Degrader, scale: int) -> tuple[list, list]:
    with torch.inference_mode():
        dsgan = [degrader(hr.unsqueeze(0), scale, torch.Generator().manual_seed(index))[0]
                 for index, hr in enumerate(clean)]
    return dsgan, [bicubic_lr(hr, scale) for hr in clean]


def bicubic_upscale_psnr(images: list[torch.Tensor], hr: list[torch.Tensor], scale: int) -> float:
    values = [psnr(quantize(imresize(lr, float(scale)).clamp(0, 1)), target, border=scale)
              for lr, target in zip(images, hr)]
    return sum(values) / len(values)


def generator_noise_sigma(degrader: Degrader, hr_images: list[torch.Tensor], scale: int) -> float | None:
    """Random part of G's change, 8-bit RGB std before JPEG; None for generators without noise input."""
    model = getattr(degrader, "model", None)
    if not getattr(model, "noise_channels", 0):
        return None
    jpeg, model.jpeg = model.jpeg, None
    values = []
    try:
        with torch.inference_mode():
            for seed, hr in enumerate(hr_images):
                lr = imresize(hr.unsqueeze(0).float(), 1.0 / scale).clamp(0, 1)
                draws = [model(lr, model.draw_noise(lr, torch.Generator().manual_seed(2 * seed + k))) for k in (0, 1)]
                values.append(((draws[0] - draws[1]).double() * 255).std().item() / math.sqrt(2))
    finally:
        model.jpeg = jpeg
    return sum(values) / len(values)


def content_matched(weights: str | torch.nn.Module | Degrader, val: Path,
                    scale: int = 4) -> dict[str, tuple[float, ...]]:
    """Statistics (COLUMNS + residual std) of real corrupted LR, DSGAN LR and bicubic LR of the same HR,
    and the generator's random noise sigma (``noise_sigma``: empty for a deterministic generator or
    a classical chain, which ``weights`` may also be)."""
    degrader = as_degrader(weights)
    hr = [crop_to_multiple(read_rgb(p), scale) for p in list_images([val / "hr"])]
    real = [read_rgb(p) for p in list_images([val / "lr"])]
    dsgan, bicubic = degrade_sets(hr, degrader, scale)
    table = {label: (*stats(images), residual_std(images, bicubic), *residual_autocorrelation(images, bicubic))
             for label, images in (("real", real), ("dsgan", dsgan), ("bicubic", bicubic))}
    table["upscale_psnr"] = tuple(bicubic_upscale_psnr(images, hr, scale) for images in (real, dsgan, bicubic))
    table["bands"] = tuple((*real_band, *dsgan_band) for real_band, dsgan_band in
                           zip(spectral_bands(real, bicubic), spectral_bands(dsgan, bicubic)))
    sigma = generator_noise_sigma(degrader, hr, scale)
    table["noise_sigma"] = () if sigma is None else (sigma,)
    return table


def content_matched_ratios(weights: str, val: Path, scale: int = 4) -> dict[str, dict[str, float]]:
    """DSGAN and bicubic LR statistics as ratios to the real corrupted LR of the same HR images."""
    table = content_matched(weights, val, scale)
    names = (*COLUMNS, "residual_std")  # ratios only; the autocorrelations are printed by main()
    return {label: {name: round(value / reference, 3) for name, value, reference in zip(names, table[label], table["real"])}
            for label in ("dsgan", "bicubic")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    reference = parser.add_mutually_exclusive_group(required=True)
    reference.add_argument("--weights", help="DSGAN generator")
    reference.add_argument("--classical", metavar="SPEC", help="blur=S,noise=S,jpeg=Q chain in the DSGAN column")
    parser.add_argument("--source", default=str(ROOT.parent / "shared/data/realworld/source"))
    parser.add_argument("--clean", default=str(ROOT.parent / "shared/data/train/sun80"))
    parser.add_argument("--val", default=str(ROOT.parent / "shared/data/realworld/val_set14_x4"))
    parser.add_argument("-x", "--scale", type=int, default=4)
    parser.add_argument("--clean-scale", type=int, default=None,
                        help="downscale of the clean images in the unpaired comparison (default: G's training scale)")
    parser.add_argument("--limit", type=int, default=40, help="images per unpaired set")
    args = parser.parse_args()
    degrader = parse_classical(args.classical) if args.classical else DSGANDegrader(args.weights)
    model = getattr(degrader, "model", None)
    clean_scale = args.clean_scale or int(getattr(model, "config", {}).get("scale", args.scale))
    val = Path(args.val)
    if (val / "hr").is_dir() and (val / "lr").is_dir():
        table = content_matched(degrader, val, args.scale)
        width = len(COLUMNS) + 1
        report("content-matched (Set14)", [("real corrupted LR", table["real"][:width]),
                                            ("DSGAN(bicubic LR)", table["dsgan"][:width]),
                                            ("bicubic LR", table["bicubic"][:width])], (*COLUMNS, "residual_std"))
        print("  residual (LR - bicubic LR) horizontal autocorrelation at lags 1 / 2 / 4:")
        for label in ("real", "dsgan"):
            print(f"    {label:<8} " + " / ".join(f"{value:+.3f}" for value in table[label][width:]))
        print("  bicubic-upscale Y-PSNR vs HR, real / dsgan / bicubic LR: "
              + " / ".join(f"{value:.3f}" for value in table["upscale_psnr"]))
        print("  per frequency band (cycles/pixel, Y): signal gain real / dsgan, residual power real / dsgan")
        for (low, high), (gain_real, residual_real, gain_dsgan, residual_dsgan) in zip(BANDS, table["bands"]):
            print(f"    {low:.1f}-{high:.2f}  {gain_real:.3f} / {gain_dsgan:.3f}   {residual_real:.3f} / {residual_dsgan:.3f}")
        for sigma in table["noise_sigma"]:
            print(f"  generator noise sigma (random part, RGB, before JPEG; 8-bit): {sigma:.2f}")
    source = [read_rgb(p) for p in list_images([args.source])[: args.limit]]
    clean = [crop_to_multiple(read_rgb(p), clean_scale) for p in list_images([args.clean])[: args.limit]]
    dsgan, bicubic = degrade_sets(clean, degrader, clean_scale)
    report(f"unpaired (source photos vs clean training images downscaled x{clean_scale})",
           [("source photos", stats(source)), ("DSGAN(bicubic LR)", stats(dsgan)), ("bicubic LR", stats(bicubic))])
    print("(8-bit levels; hf_std, noise, flat_noise on Y; rgb_flat_noise per RGB channel (colour noise "
          "counts); residual_std = RGB std of LR minus the bicubic LR of the same HR. "
          "Target: DSGAN ratios within 0.8-1.2)")


if __name__ == "__main__":
    main()
