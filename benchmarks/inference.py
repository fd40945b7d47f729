"""Inference benchmark: speed, efficiency, tiling cost, bf16 quality and peak memory.

Prints figures, asserts nothing. Random weights are fine for speed; quality needs real
ones (``--weights``). Run from the repository root::

    PYTHONPATH=. python benchmarks/inference.py [--weights X4.safetensors] [--device cuda]
    PYTHONPATH=. python benchmarks/inference.py --quick     # seconds: tiny sizes, smoke test

Figures: ms per input megapixel; achieved conv GFLOP/s (2 x MACs of the convs actually run,
counted by forward hooks) as a fraction of a large matmul's GFLOP/s in the same precision, same run; the
tiled/untiled time ratio at tile 256 with the default (calibrated) pad and the largest
tiled-vs-untiled difference; Set5 x4 Y-PSNR of bf16 vs fp32; the peak RSS of
``srcli upscale`` with RRDBNet x4 on a 2048x2048 image.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from srcli import registry  # noqa: E402
from srcli.checkpoints.io import load_model, save_model  # noqa: E402
from srcli.inference import device as srcli_device  # noqa: E402
from srcli.inference.device import pick_device  # noqa: E402
from srcli.inference.receptive_field import calibration_images  # noqa: E402
from srcli.inference.upscaler import PRECISIONS, Upscaler  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    """Everything that --quick shrinks."""

    side: int
    tile: int
    matmul: int
    rss_side: int
    repeats: int
    networks: dict[str, dict]


FULL = Sizes(512, 256, 4096, 2048, 3, {
    "EDSR-baseline x4": dict(name="edsr", scale=4, num_blocks=16, num_features=64),
    "RRDBNet x4": dict(name="esrgan", scale=4, num_blocks=23, num_features=64, growth=32),
})
QUICK = Sizes(48, 24, 256, 64, 1, {
    "EDSR tiny x4": dict(name="edsr", scale=4, num_blocks=2, num_features=16),
    "RRDBNet tiny x4": dict(name="esrgan", scale=4, num_blocks=1, num_features=16, growth=8),
})


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up (kernel selection, allocator)."""
    function()
    synchronize(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def executed_conv_flops(upscaler: Upscaler, image: torch.Tensor) -> float:
    """2 x multiply-accumulates of every conv the upscaler actually runs on ``image``.

    Counted with hooks during one real call, so folded tails count their folded conv and the
    border strips they recompute with the original layers, not the FLOPs they avoid.
    """
    from srcli.nets.tailfold import FoldedTail

    macs = 0

    def count(module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal macs
        kernel = module.kernel_size[0] * module.kernel_size[1]
        macs += output.numel() * (module.in_channels // module.groups) * kernel

    modules = list(upscaler.runner.modules())
    for module in list(modules):
        if isinstance(module, FoldedTail):
            modules.extend(module.exact.modules())
    handles = [m.register_forward_hook(count) for m in modules if isinstance(m, nn.Conv2d)]
    try:
        upscaler.upscale(image)
    finally:
        for handle in handles:
            handle.remove()
    return 2.0 * macs


def matmul_gflops(size: int, dtype: torch.dtype, device: torch.device, repeats: int) -> float:
    """Peak-ish throughput of this device in ``dtype``: one large square matmul."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    with srcli_device.large_allocations_on_heap():  # the same allocator setting as the networks get
        seconds = timed(lambda: a @ b, device, max(repeats, 3))
    return 2 * size**3 / seconds / 1e9


def build_random(config: dict) -> nn.Module:
    config = dict(config)
    torch.manual_seed(0)
    return registry.build(config.pop("name"), **config).eval()


def speed_report(label: str, config: dict, sizes: Sizes, device: torch.device, matmul: dict[str, float],
                 precisions: tuple[str, ...] = ("fp32", "bf16")) -> None:
    image = calibration_images(sizes.side, count=1, seed=3)[0]
    megapixels = sizes.side * sizes.side / 1e6
    for precision in precisions:
        model = build_random(config)
        whole = Upscaler(model, device=device, precision=precision, tile=None)
        tiled = Upscaler(model, device=device, precision=precision, tile=sizes.tile, tile_pad="auto")
        started = time.perf_counter()
        pad = tiled.pad()
        calibration = time.perf_counter() - started
        flops = executed_conv_flops(whole, image)
        untiled_seconds = timed(lambda: whole.upscale(image), device, sizes.repeats)
        tiled_seconds = timed(lambda: tiled.upscale(image), device, sizes.repeats)
        difference = (whole.upscale(image) - tiled.upscale(image)).abs().max().item()
        achieved = flops / untiled_seconds / 1e9
        print(f"{label:<18} {precision}: {untiled_seconds / megapixels * 1e3:9.0f} ms/MP  "
              f"{achieved:7.1f} GFLOP/s = {achieved / matmul[precision]:5.1%} of matmul  "
              f"tile {sizes.tile} pad {pad} (calibrated in {calibration:.1f} s): "
              f"x{tiled_seconds / untiled_seconds:.2f} time, max diff {difference * 255:.3f}/255")
        if whole.fp32_runner is not whole.model:  # a folded tail: show what folding buys
            unfolded = Upscaler(model, device=device, precision=precision, tile=None, fold=False)
            unfolded_flops = executed_conv_flops(unfolded, image)
            unfolded_seconds = timed(lambda: unfolded.upscale(image), device, sizes.repeats)
            change = (unfolded.upscale(image) - whole.upscale(image)).abs().max().item()
            print(f"{'  (tail unfolded)':<18} {precision}: {unfolded_seconds / megapixels * 1e3:9.0f} ms/MP  "
                  f"{unfolded_flops / unfolded_seconds / 1e9:7.1f} GFLOP/s = "
                  f"{unfolded_flops / unfolded_seconds / 1e9 / matmul[precision]:5.1%} of matmul, "
                  f"{unfolded_flops / flops:.2f}x the FLOPs; folded-vs-unfolded max diff {change * 255:.3f}/255")


def set5_report(weights: str | None, set5: Path, device: torch.device) -> None:
    if weights is None:
        print("Set5 bf16 vs fp32: skipped (pass --weights PATH of a trained x4 network)")
        return
    if not set5.is_dir():
        print(f"Set5 bf16 vs fp32: skipped ({set5} not found; pass --set5 DIR)")
        return
    from srcli.evaluation.datasets import load_benchmark_pairs
    from srcli.evaluation.metrics import psnr

    model = load_model(weights)
    scores: dict[str, float] = {}
    for precision in ("fp32", "bf16"):
        upscaler = Upscaler(model, device=device, precision=precision, tile=None)
        pairs = load_benchmark_pairs(set5, upscaler.scale)
        values = [psnr(upscaler.upscale(lr), hr, border=upscaler.scale) for lr, hr in pairs]
        scores[precision] = sum(values) / len(values)
    print(f"Set5 x{upscaler.scale} Y-PSNR: fp32 {scores['fp32']:.3f} dB, bf16 {scores['bf16']:.3f} dB "
          f"(change {scores['bf16'] - scores['fp32']:+.3f} dB)")


RUN_AND_MEASURE = textwrap.dedent("""
    import json, resource, subprocess, sys
    result = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"rc": result.returncode, "peak_kib": peak_kib, "stderr": result.stderr[-2000:]}))
""")

UPSCALER_ONLY = textwrap.dedent("""
    import sys, torch
    from srcli.checkpoints.io import load_model
    from srcli.images.io import read_image
    from srcli.inference.upscaler import Upscaler
    image = read_image(sys.argv[2]).rgb
    Upscaler(load_model(sys.argv[1]), device=sys.argv[3], tile="auto").upscale(image)
""")


def measure_peak_rss(command: list[str]) -> tuple[int, float, str]:
    """Peak RSS (MiB) of ``command`` via a small launcher process.

    The launcher's own children are measured (RUSAGE_CHILDREN), not this process's: a child
    started from this big process could inherit its high-water mark at exec time.
    """
    import json

    started = time.perf_counter()
    launcher = subprocess.run([sys.executable, "-c", RUN_AND_MEASURE, *command], capture_output=True,
                              text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - started
    report = json.loads(launcher.stdout.strip().splitlines()[-1])
    error = "" if report["rc"] == 0 else (report["stderr"].strip().splitlines() or ["failed"])[-1]
    return report["peak_kib"] // 1024, seconds, error


def rss_report(side: int, config: dict, device: torch.device, workdir: Path) -> None:
    """Peak RSS of the CLI on a side x side image with RRDBNet x4 (random weights)."""
    weights = save_model(build_random(config), workdir / "rrdbnet_x4_random.safetensors")
    image_path = workdir / f"input_{side}.png"
    pixels = (calibration_images(side, count=1, seed=4)[0].permute(1, 2, 0).numpy() * 255).round()
    Image.fromarray(pixels.astype(np.uint8)).save(image_path)
    input_mib = 3 * side * side * 4 / 2**20
    output_mib = input_mib * config["scale"] ** 2
    cli = [sys.executable, "-m", "srcli", "upscale", str(image_path), "--weights", str(weights),
           "-o", str(workdir / "out.png"), "--device", str(device), "--quiet", "--overwrite"]
    peak, seconds, error = measure_peak_rss(cli)
    what = "srcli upscale"
    if error:
        print(f"peak RSS: 'srcli upscale' did not run ({error}); measuring the Upscaler alone instead")
        peak, seconds, error = measure_peak_rss(
            [sys.executable, "-c", UPSCALER_ONLY, str(weights), str(image_path), str(device)])
        what = "Upscaler in a subprocess"
    if error:
        print(f"peak RSS: failed ({error})")
        return
    print(f"peak RSS of {what}, RRDBNet x{config['scale']} on {side}x{side} ({device}): {peak} MiB in {seconds:.0f} s "
          f"(float input {input_mib:.0f} MiB + output {output_mib:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny networks and images: a smoke test")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--weights", help="trained x4 network for the Set5 bf16-vs-fp32 PSNR change")
    parser.add_argument("--set5", type=Path, default=REPO.parent / "shared" / "data" / "benchmarks" / "Set5")
    parser.add_argument("--skip-rss", action="store_true", help="skip the (slow on CPU) 2048x2048 CLI run")
    parser.add_argument("--only", help="run the speed rows only for networks whose label contains this")
    parser.add_argument("--precision", action="append", choices=["fp32", "bf16"],
                        help="speed rows in this precision only (repeatable; default both)")
    parser.add_argument("--glibc-default", action="store_true",
                        help="leave glibc's mmap-per-large-tensor behaviour on (srcli turns it off), to compare")
    args = parser.parse_args()
    srcli_device.HEAP_ENABLED = heap = not args.glibc_default
    sizes = QUICK if args.quick else FULL
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory(prefix="srcli-bench-") as folder:
        os.environ["SRCLI_CACHE"] = folder  # random weights: keep their calibrations out of ~/.cache
        print(f"torch {torch.__version__} on {device}, {torch.get_num_threads()} threads"
              f"{' (quick: tiny sizes)' if args.quick else ''}; large tensors "
              f"{'kept on the heap while tiles run (as srcli runs)' if heap else 'mmapped per allocation (glibc default)'}")
        matmul = {name: matmul_gflops(sizes.matmul, PRECISIONS[name], device, sizes.repeats) for name in ("fp32", "bf16")}
        print(f"matmul {sizes.matmul}^2: fp32 {matmul['fp32']:.0f} GFLOP/s, bf16 {matmul['bf16']:.0f} GFLOP/s")
        for label, config in sizes.networks.items():
            if args.only and args.only.lower() not in label.lower():
                continue
            speed_report(label, config, sizes, device, matmul, tuple(args.precision or ("fp32", "bf16")))
        set5_report(args.weights, args.set5, device)
        if not args.skip_rss:
            rrdb = next(config for config in sizes.networks.values() if config["name"] == "esrgan")
            rss_report(sizes.rss_side, rrdb, device, Path(folder))


if __name__ == "__main__":
    main()
