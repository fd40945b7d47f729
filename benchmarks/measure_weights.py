"""Measure shipped weights and write the figures into weights/manifest.json.

For each manifest entry (or ``--only NAME``): Set5/Set14 PSNR/SSIM (Y, border = scale, fp32)
with the bicubic row beside it, and CPU milliseconds per output megapixel (default precision).
DSGAN entries get their degradation statistics instead (ratios to the real corrupted LR).

    python benchmarks/measure_weights.py --data-root ../shared/data/benchmarks [--only edsr]
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
from srcli.checkpoints.shipped import find_entry, read_manifest, upsert_entry, weights_dir  # noqa: E402
from srcli.evaluation.evaluate import InferenceOptions, ModelSpec, evaluate  # noqa: E402
from srcli.inference.upscaler import Upscaler  # noqa: E402


def ms_per_megapixel(name: str, scale: int, size: int = 256, repeats: int = 2) -> float:
    """Wall-clock ms per *output* megapixel on the CPU in the default precision (tiles as needed)."""
    resolved = resolve_model(name, scale)
    upscaler = Upscaler(resolved.network, scale=resolved.scale, device="cpu")
    image = torch.rand(3, size, size)
    upscaler.upscale(image)  # warm-up (and pad calibration, if tiling)
    started = time.perf_counter()
    for _ in range(repeats):
        upscaler.upscale(image)
    seconds = (time.perf_counter() - started) / repeats
    return 1000 * seconds / ((size * scale) ** 2 / 1e6)


def measure_photos(entry: dict, folder: str) -> dict:
    """PSNR/SSIM on everyday-photo LR/HR pairs (x4), beside bicubic: what photo models are for."""
    results = evaluate([folder], [ModelSpec("bicubic"), ModelSpec(entry["name"])], [4],
                       options=InferenceOptions(precision="fp32"))
    cell: dict = {}
    for result in results:
        record_result(cell, result)
    return {"4": cell}


#: A small image in the repository: the shipped-weight tests re-run ``srcli eval`` on it and compare
#: with the figure recorded here, so a changed file, loader or inference path cannot go unnoticed.
CHECK_IMAGE = ROOT / "examples" / "lowres.png"


def measure_check(entry: dict) -> dict:
    """Y-PSNR/SSIM of ``srcli eval examples/lowres.png -m NAME -x S`` (fp32, eval's defaults) per scale."""
    cells: dict = {}
    for scale in entry["scales"]:
        results = evaluate([str(CHECK_IMAGE)], [ModelSpec(entry["name"])], [scale],
                           options=InferenceOptions(precision="fp32"))
        record_result(cells.setdefault(str(scale), {}), results[0])
    return cells


def record_result(cell: dict, result) -> None:
    """PSNR/SSIM of one result into a manifest cell, the bicubic baseline under bicubic_ keys."""
    prefix = "bicubic_" if result.model == "bicubic" else ""
    cell[prefix + "psnr"] = round(result.psnr, 3)
    cell[prefix + "ssim"] = round(result.ssim, 4)


def measure(entry: dict, data_root: str, datasets: list[str], keep_timing: bool = False) -> dict:
    """PSNR/SSIM beside bicubic per dataset and scale; timing too unless kept (a busy CPU gives slow figures)."""
    metrics: dict = {}
    old_timing = entry.get("metrics", {}).get("cpu_ms_per_output_mp", {})
    for scale in entry["scales"]:
        if entry["architecture"] == "dsgan":
            from dsgan_stats import content_matched_ratios

            val = Path(data_root).parent / "realworld" / "val_set14_x4"
            metrics["ratio_to_real_lr_on_val_set14_x4"] = content_matched_ratios(str(weights_dir() / entry["file"]), val, scale)
            metrics["measured_with"] = "python benchmarks/measure_weights.py --only dsgan (benchmarks/dsgan_stats.py)"
            return metrics
        results = evaluate(datasets, [ModelSpec("bicubic"), ModelSpec(entry["name"])], [scale], data_root=data_root,
                           options=InferenceOptions(precision="fp32"))
        for result in results:
            record_result(metrics.setdefault(result.dataset, {}).setdefault(str(scale), {}), result)
        if keep_timing and str(scale) in old_timing:
            metrics.setdefault("cpu_ms_per_output_mp", {})[str(scale)] = old_timing[str(scale)]
            metrics["cpu_threads"] = entry["metrics"].get("cpu_threads", 1)
            continue
        metrics.setdefault("cpu_ms_per_output_mp", {})[str(scale)] = round(ms_per_megapixel(entry["name"], scale), 1)
        metrics["cpu_threads"] = torch.get_num_threads()  # timings depend on it (and on what else runs)
    metrics["measured_with"] = ("python benchmarks/measure_weights.py --data-root ../shared/data/benchmarks "
                                "(Y channel, border = scale, fp32; timing on this machine's CPU, default precision)")
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared/data/benchmarks"))
    parser.add_argument("--datasets", default="Set5,Set14")
    parser.add_argument("--only", action="append", help="entry name(s) to measure")
    parser.add_argument("--timing-only", action="store_true",
                        help="re-measure cpu_ms_per_output_mp only (e.g. after a default-precision change)")
    parser.add_argument("--file", action="append", help="only the entry with this weights file name(s)")
    parser.add_argument("--photos", help="also measure x4 entries on this LR/HR photo folder "
                                         "(e.g. ../shared/data/photos/val_set14_x4), stored as photos_val_set14_x4")
    parser.add_argument("--check-only", action="store_true",
                        help="re-measure only the check figure on examples/lowres.png (what the tests compare)")
    parser.add_argument("--keep-timing", action="store_true",
                        help="measure PSNR/SSIM but keep the manifest's timings (when trainings occupy the CPU)")
    args = parser.parse_args()
    datasets = args.datasets.split(",")
    for entry in read_manifest():
        if args.only and entry["name"] not in args.only:
            continue
        if args.file and entry["file"] not in args.file:
            continue
        find_entry(entry["name"], entry["scales"][0])  # fails early on a broken manifest
        if entry["architecture"] != "dsgan" and args.check_only:
            entry.setdefault("metrics", {})["check_examples_lowres"] = measure_check(entry)
        elif args.timing_only:
            if entry["architecture"] == "dsgan":  # measured by its degradation statistics, not speed
                continue
            timings = {str(scale): round(ms_per_megapixel(entry["name"], scale), 1) for scale in entry["scales"]}
            entry.setdefault("metrics", {})["cpu_ms_per_output_mp"] = timings
            entry["metrics"]["cpu_threads"] = torch.get_num_threads()
        else:
            entry["metrics"] = measure(entry, args.data_root, datasets, keep_timing=args.keep_timing)
            if entry["architecture"] != "dsgan":
                entry["metrics"]["check_examples_lowres"] = measure_check(entry)
            if args.photos and 4 in entry["scales"] and entry["architecture"] != "dsgan":
                entry["metrics"]["photos_val_set14_x4"] = measure_photos(entry, args.photos)
                entry["metrics"]["measured_with"] += f"; photos: --photos {args.photos}"
        upsert_entry(entry, weights_dir())
        print(entry["name"], entry["scales"], entry["metrics"])


if __name__ == "__main__":
    main()
