"""Iterations/s of ``srcli train edsr`` (baseline x2, batch 16, LR patch 48) vs a bare PyTorch loop.

Both sides use the same model, optimiser, precision (bf16 autocast where the CPU has it) and
channels_last; the bare loop feeds pre-made in-memory tensors, so the ratio shows what the
trainer's data pipeline, EMA, logging and checkpoint logic cost. Target: ratio >= 0.9.

    python benchmarks/train_throughput.py [--data DIR] [--iters 30] [--amp auto|bf16|off] [-x 4]

It also times the trainer with ``--degradation realworld`` (LR made in the DataLoader worker by
the randomized photo pipeline) against bicubic LR: target at most 10% slower per step.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srcli.inference.device import autocast_context, pick_device, resolve_amp  # noqa: E402
from srcli.nets.edsr import edsr_baseline  # noqa: E402
from srcli.train.config import resolve_config  # noqa: E402
from srcli.train.trainer import Trainer  # noqa: E402


def synthetic_folder(directory: Path, count: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for index in range(count):
        image = (rng.random((256, 256, 3)) * 255).astype(np.uint8)
        Image.fromarray(image).save(directory / f"{index}.png")
    return directory


def trainer_rate(data: str, iters: int, warmup: int, amp: str, out: Path, scale: int = 2,
                 degradation: str = "bicubic") -> float:
    config = resolve_config("edsr", overrides=dict(data=[data], out=str(out), iters=warmup + iters, batch=16,
                                                   patch=48, scale=scale, amp=amp, log_every=10**9,
                                                   checkpoint_every=10**9, val_every=10**9,
                                                   degradation=degradation))
    trainer = Trainer(config, progress=False, echo=lambda text: None)
    timestamps: list[float] = []
    original = trainer.psnr_step

    def timed_step(batch: dict) -> dict:
        result = original(batch)
        timestamps.append(time.perf_counter())
        return result

    trainer.psnr_step = timed_step  # type: ignore[method-assign]
    trainer.run()
    # steady state: from the end of warm-up to the end, including data, EMA and scheduler work
    return iters / (timestamps[-1] - timestamps[warmup - 1])


def bare_rate(iters: int, warmup: int, amp: str, scale: int = 2) -> float:
    device = pick_device("auto")
    dtype = resolve_amp(amp, device)
    model = edsr_baseline(scale).to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    lr = torch.rand(16, 3, 48, 48, device=device).contiguous(memory_format=torch.channels_last)
    hr = torch.rand(16, 3, 48 * scale, 48 * scale, device=device).contiguous(memory_format=torch.channels_last)
    for step in range(warmup + iters):
        if step == warmup:
            started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast_context(device, dtype):
            sr = model(lr)
        loss = torch.nn.functional.l1_loss(sr.float(), hr)
        loss.backward()
        optimizer.step()
    return iters / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="HR folder (default: synthetic 256x256 images)")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"])
    parser.add_argument("-x", "--scale", type=int, default=2, choices=[2, 3, 4])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or str(synthetic_folder(Path(scratch)))
        bare = bare_rate(args.iters, args.warmup, args.amp, args.scale)
        trained = trainer_rate(data, args.iters, args.warmup, args.amp, Path(scratch) / "run", args.scale)
        realworld = trainer_rate(data, args.iters, args.warmup, args.amp, Path(scratch) / "run_rw", args.scale,
                                 "realworld")
    precision = resolve_amp(args.amp, pick_device("auto"))
    print(f"cpu: {cpu_name()}, precision: {precision or 'fp32'}, threads: {torch.get_num_threads()}, "
          f"x{args.scale}, batch 16, LR patch 48")
    print(f"bare PyTorch loop               : {bare:.3f} it/s ({1000 / bare:.0f} ms/it)")
    print(f"srcli train edsr (bicubic LR)   : {trained:.3f} it/s ({1000 / trained:.0f} ms/it)")
    print(f"srcli train edsr (realworld LR) : {realworld:.3f} it/s ({1000 / realworld:.0f} ms/it)")
    print(f"trainer / bare                  : {trained / bare:.3f} (target >= 0.9)")
    print(f"realworld step slowdown         : {100 * (trained / realworld - 1):+.1f}% (target <= 10%)")


def cpu_name() -> str:
    """lscpu's model name and torch's ISA level: timings mean little without them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.backends.cpu.get_cpu_capability()})"
    except OSError:
        pass
    return f"unknown ({torch.backends.cpu.get_cpu_capability()})"


if __name__ == "__main__":
    main()
