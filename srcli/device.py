"""Device and precision selection shared by inference and training."""
from __future__ import annotations

import types
from contextlib import nullcontext
from functools import lru_cache
from typing import Any, ContextManager

import torch


class DeviceError(ValueError):
    pass


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: CUDA (this process's LOCAL_RANK under torchrun), then Apple MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA device is available")
    return device


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX): there bf16 is ~3x faster."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Training precision: ``auto`` is fp16 on CUDA, bf16 on CPUs with native bf16, else fp32 (None)."""
    if amp == "off":
        return None
    if amp == "fp16":
        if device.type != "cuda":
            raise DeviceError("--amp fp16 needs a CUDA device; use bf16 or off on the CPU")
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> ContextManager[Any]:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def keep_output_layer_fp32(model: torch.nn.Module) -> torch.nn.Module | None:
    """Run the network's last conv in fp32 even under autocast.

    SR outputs are images: a bf16 output (8-bit mantissa) is rounded in steps of up to ~0.5/255
    for EDSR's [0, 255]-range tail, which alone costs measurable PSNR. The last conv is a few
    percent of the FLOPs, so keeping it fp32 is nearly free. Returns the patched layer.
    """
    convs = [module for module in model.modules() if isinstance(module, torch.nn.Conv2d)]
    if not convs or getattr(convs[-1], "_srcli_fp32", False):
        return None
    layer = convs[-1]
    # A bound method (not a closure) so that deepcopy (EMA copies, interpolation) rebinds it.
    layer.forward = types.MethodType(_fp32_conv_forward, layer)  # type: ignore[method-assign]
    layer._srcli_fp32 = True  # type: ignore[attr-defined]
    return layer


def _fp32_conv_forward(self: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.nn.Conv2d.forward(self, x.to(self.weight.dtype))
