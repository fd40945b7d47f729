"""Wall time of NIQE on a 1-megapixel image (target: under 2 s on a CPU), and optionally its accuracy.

NIQE of a 1000x1000 colour image (1/f noise, a natural image's spectrum) is timed with torch's
default thread count and with one thread; the script prints the CPU model and the best and
median of several runs. With ``--reference`` it also scores the 19 Set5/Set14 HR images
against BasicSR's MATLAB-matching figures.

    python benchmarks/niqe_speed.py [--repeat 5] [--size 1000] [--reference ../shared/data]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srcli.evaluation.datasets import read_rgb  # noqa: E402
from srcli.evaluation.niqe import niqe  # noqa: E402


def cpu_name() -> str:
    """lscpu's "Model name", else /proc/cpuinfo's "model name", else what Python knows."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in output.splitlines():
            if line.strip().lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pink_noise(size: int, seed: int = 0) -> torch.Tensor:
    """(3, size, size) colour 1/f noise in [0, 1], quantised to 8 bits."""
    rng = np.random.default_rng(seed)
    frequency = np.sqrt(np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None, :] ** 2)
    frequency[0, 0] = 1
    channels = []
    for _ in range(3):
        values = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) / frequency))
        channels.append((values - values.mean()) / values.std())
    return torch.from_numpy((np.clip(np.stack(channels) * 0.12 + 0.5, 0, 1) * 255).round() / 255).float()


def time_niqe(image: torch.Tensor, repeat: int) -> tuple[float, float, float]:
    """(score, best seconds, median seconds); one untimed warm-up run loads the pristine model."""
    score = niqe(image)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        niqe(image)
        times.append(time.perf_counter() - start)
    return score, min(times), statistics.median(times)


def reference_table(data: Path) -> float:
    reference = json.loads((data / "niqe" / "reference_set5_set14.json").read_text())
    worst = 0.0
    for name, expected in reference.items():
        value = niqe(read_rgb(data / "benchmarks" / name))
        worst = max(worst, abs(value - expected))
        print(f"  {name:22s} {value:.6f}  reference {expected:.6f}  diff {value - expected:+.1e}")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000, help="image side in pixels (default 1000: 1 MP)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reference", type=Path, help="shared data folder with niqe/ and benchmarks/")
    args = parser.parse_args()

    image = pink_noise(args.size)
    print(f"CPU: {cpu_name()}  (torch {torch.__version__}, {torch.get_num_threads()} threads by default)")
    print(f"NIQE of a {args.size}x{args.size} image ({args.size * args.size / 1e6:.2f} MP), {args.repeat} runs")
    for threads in dict.fromkeys([torch.get_num_threads(), 1]):
        torch.set_num_threads(threads)
        score, best, median = time_niqe(image, args.repeat)
        print(f"  {threads} thread(s): NIQE {score:.4f}, best {best:.3f} s, median {median:.3f} s"
              f"  ({'under' if median < 2 else 'OVER'} the 2 s target)")
    if args.reference is not None:
        print("Set5/Set14 HR against BasicSR's MATLAB-matching figures:")
        print(f"  max |difference| {reference_table(args.reference):.2e} (tolerance 1e-3)")


if __name__ == "__main__":
    main()
