"""How much memory one forward pass may take, and what a network costs per input pixel.

Two budgets, because they answer different questions:

* ``whole``: may the image run untiled? Tiling costs time (the pad is computed twice, and
  RRDBNet x4 on 500x500 ran 14% slower in 256-px tiles than whole), so an image runs whole
  when its activations fit comfortably: half of MemAvailable on the CPU, at most
  ``WHOLE_IMAGE_MAX`` so that a job too big for that (RRDBNet-23 x4 on 2048^2 needs ~68 GB)
  tiles on every machine and keeps its peak-RSS target.
* ``tile``: how large may one tile (or calibration probe) be? 1 GiB on the CPU, or a quarter
  of MemAvailable if that is less: tiles of a few hundred pixels run about as fast as whole
  images, and with 2 GiB a 2048^2 RRDBNet-23 x4 job peaked at 3.8 GB RSS against its 3 GB
  target (1 GiB: 1.9 GB, benchmarks/inference.py).

On CUDA both are 70% of the free device memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

GIB = 1024**3
CPU_TILE_BUDGET = 1 * GIB
TILE_RAM_FRACTION = 0.25  # of MemAvailable: the output image and the batch's other buffers need the rest
WHOLE_IMAGE_RAM_FRACTION = 0.5  # the estimate already doubles the widest layer (ACTIVATION_SAFETY)
WHOLE_IMAGE_MAX = 16 * GIB
CUDA_FREE_FRACTION = 0.7
ACTIVATION_SAFETY = 2.0  # widest layer's input + output, doubled for skips and allocator slack
PROBE_SIDE = 16
MEMINFO = "/proc/meminfo"


@dataclass(frozen=True)
class MemoryBudget:
    """Activation bytes an untiled pass (``whole``) and one tile's pass (``tile``) may take."""

    whole: float
    tile: float


@dataclass(frozen=True)
class NetworkCost:
    """Per input pixel: peak activation bytes (with ``ACTIVATION_SAFETY``) and conv multiply-adds."""

    bytes_per_pixel: float
    macs_per_pixel: float


def available_ram_bytes(meminfo: str = MEMINFO) -> int | None:
    """MemAvailable from /proc/meminfo (Linux), or None where it cannot be read."""
    try:
        with open(meminfo, encoding="ascii") as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_memory_budget(available: int | None) -> MemoryBudget:
    """Budgets from MemAvailable; unreadable (macOS, Windows, containers without /proc): 1 GiB for both."""
    if available is None:
        return MemoryBudget(CPU_TILE_BUDGET, CPU_TILE_BUDGET)
    tile = min(CPU_TILE_BUDGET, TILE_RAM_FRACTION * available)
    return MemoryBudget(max(tile, min(WHOLE_IMAGE_MAX, WHOLE_IMAGE_RAM_FRACTION * available)), tile)


def memory_budget(device: torch.device) -> MemoryBudget:
    """The budgets for ``device`` now (free memory changes between calls)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return MemoryBudget(CUDA_FREE_FRACTION * free, CUDA_FREE_FRACTION * free)
    return cpu_memory_budget(available_ram_bytes())


def network_cost(model: nn.Module, device: torch.device, dtype: torch.dtype, multiple: int = 1) -> NetworkCost:
    """Measured on a small probe with hooks: the widest leaf layer's tensors and every conv's MACs."""
    widest, macs = 0, 0

    def record(module: nn.Module, inputs: tuple, output: object) -> None:
        nonlocal widest, macs
        tensors = {t.data_ptr(): t.numel() for t in (*inputs, output) if isinstance(t, torch.Tensor)}
        widest = max(widest, sum(tensors.values()))  # in-place layers count once
        if isinstance(module, nn.Conv2d) and isinstance(output, torch.Tensor):
            macs += output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [leaf.register_forward_hook(record) for leaf in leaves]
    side = -(-PROBE_SIDE // multiple) * multiple
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, side, side, device=device))
    finally:
        for handle in handles:
            handle.remove()
    element_size = torch.empty(0, dtype=dtype).element_size()
    return NetworkCost(widest / (side * side) * element_size * ACTIVATION_SAFETY, macs / (side * side))


def activation_bytes_per_pixel(model: nn.Module, device: torch.device, dtype: torch.dtype, multiple: int) -> float:
    """Peak activation bytes per input pixel, from the widest layer seen on a small probe."""
    return network_cost(model, device, dtype, multiple).bytes_per_pixel
