"""Device and precision selection shared by inference and training."""
from __future__ import annotations

import copy
import ctypes
import ctypes.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from typing import Any, ContextManager

import torch


class DeviceError(ValueError):
    pass


M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
GLIBC_DEFAULT_MMAP_MAX = 65536
HEAP_KEEP_INSIDE = 1 << 30  # free heap kept while tiles run
HEAP_KEEP_BETWEEN = 512 << 20  # ... and between calls: enough for a 512^2 EDSR tile's layers
HEAP_ENABLED = True  # benchmarks flip this to show glibc's default behaviour
_heap_depth = 0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only: musl has no mallopt tunables
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        if hasattr(libc, "mallinfo2"):  # glibc >= 2.33
            libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None
    return libc


def release_free_heap_above(limit: int) -> bool:
    """Give free heap pages back to the OS when more than ``limit`` bytes are free; True if done.

    Why: tiles of a deep network (RRDBNet's concatenations of 64..192 channels) leave holes that
    the next tile cannot always reuse, so a heap that keeps everything grew to 3.2 GB on a
    2048^2 job; trimming whenever the free part passes ``limit`` bounds the RSS, and small
    jobs, whose free heap stays below it, never pay the page faults.
    """
    libc = _glibc()
    if libc is None:
        return False
    if hasattr(libc, "mallinfo2") and libc.mallinfo2().fordblks <= limit:
        return False
    libc.malloc_trim(0)
    return True


@contextmanager
def large_allocations_on_heap() -> Iterator[bool]:
    """While inside, glibc serves large tensors from its heap and keeps freed ones for reuse.

    Why: a 512^2 tile's activations are 32-64 MB each, above glibc's 32 MB mmap ceiling, so
    every layer output was a fresh mmap whose pages the kernel zero-fills on first touch and
    unmaps on free. Measured on EDSR-baseline x4, 512^2, 2 threads: bf16 2.46 -> 1.84 s, fp32
    4.56 -> 3.29 s, system time 4.8 -> 0.6 s. Scoped (not process-wide) because a heap that
    keeps everything also keeps what other code frees: made global, a 2048^2 RRDBNet job
    peaked at 3005 instead of 2377 MiB. On exit large blocks go back to mmap and free heap at
    the top beyond ``HEAP_KEEP_BETWEEN`` goes back to the OS; free blocks inside the heap are
    released only when they pass that size (``release_free_heap_above``), because re-faulting
    them after every call cost ~10% per 512^2 EDSR call. Yields False where libc is not glibc.
    """
    global _heap_depth
    libc = _glibc() if HEAP_ENABLED else None
    if libc is None:
        yield False
        return
    if _heap_depth == 0:
        libc.mallopt(M_MMAP_MAX, 0)
        libc.mallopt(M_TRIM_THRESHOLD, HEAP_KEEP_INSIDE)
    _heap_depth += 1
    try:
        yield True
    finally:
        _heap_depth -= 1
        if _heap_depth == 0:
            libc.mallopt(M_MMAP_MAX, GLIBC_DEFAULT_MMAP_MAX)
            libc.mallopt(M_TRIM_THRESHOLD, HEAP_KEEP_BETWEEN)  # the next free() trims the top
            release_free_heap_above(HEAP_KEEP_BETWEEN)


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
    if not convs or keeps_fp32(convs[-1]):
        return None
    return keep_layer_fp32(convs[-1])


def keep_sensitive_layers_fp32(model: torch.nn.Module) -> None:
    """The output conv plus the layers a family lists in ``fp32_layers``, all kept fp32.

    Why a family lists a layer: RRDBNet's ``conv_hr`` feeds the output conv directly, so one
    bf16 rounding step of its 64 output-resolution channels lands in the image. In fp32 (~3%
    of RRDBNet-23's FLOPs) it cut the 8-bit values that differ between bf16 tiled and untiled
    runs of the shipped esrgan-psnr from 4.98% to 3.29% (benchmarks/tiling.py, tile 48).
    """
    for name in getattr(model, "fp32_layers", ()):
        if not keeps_fp32(layer := model.get_submodule(name)):
            keep_layer_fp32(layer)
    keep_output_layer_fp32(model)


def keep_layer_fp32(layer: torch.nn.Conv2d) -> torch.nn.Conv2d:
    """Make one conv compute in fp32 whatever its input (autocast off, input cast up)."""
    # A bound method (not a closure) so that deepcopy (EMA copies, interpolation) rebinds it.
    layer.forward = types.MethodType(_fp32_conv_forward, layer)  # type: ignore[method-assign]
    layer.keeps_fp32 = True  # type: ignore[attr-defined]
    return layer


def _fp32_conv_forward(self: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.nn.Conv2d.forward(self, x.to(self.weight.dtype))


def keeps_fp32(module: torch.nn.Module) -> bool:
    """Layers that must compute in fp32 whatever the precision (output conv, mean shift, folded tail)."""
    return bool(getattr(module, "keeps_fp32", False))


def half_precision_copy(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of ``model`` that holds its weights in ``dtype``, for inference without autocast.

    Why: CPU autocast re-casts every fp32 weight on every call and oneDNN then re-lays it out;
    with persistent bf16 weights EDSR's 64->64 convs ran at 414 instead of 318 GFLOP/s on this
    CPU (same arithmetic: autocast rounds the weights to bf16 too). Layers that ``keeps_fp32``
    stay fp32 (they cast their own input); every other layer with weights casts its floating
    inputs to its own dtype, so fp32 and half layers connect in any order.
    """
    runner = copy.deepcopy(model)
    for module in _half_leaves(runner):
        for name, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
            if tensor is not None and tensor.is_floating_point():
                converted = tensor.detach().to(dtype)
                if isinstance(tensor, torch.nn.Parameter):
                    converted = torch.nn.Parameter(converted, requires_grad=False)
                setattr(module, name, converted)
        module.register_forward_pre_hook(_cast_inputs_hook(dtype))
    return runner


def _half_leaves(module: torch.nn.Module) -> list[torch.nn.Module]:
    """Modules with their own floating weights, not inside a layer that keeps fp32."""
    if keeps_fp32(module):
        return []
    found = []
    tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
    if any(t is not None and t.is_floating_point() for t in tensors):
        found.append(module)
    for child in module.children():
        found.extend(_half_leaves(child))
    return found


def _cast_inputs_hook(dtype: torch.dtype) -> Any:
    def cast(module: torch.nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs)
    return cast
