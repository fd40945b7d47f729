"""MATLAB-compatible bicubic ``imresize`` in torch.

SR benchmarks are defined with MATLAB's resize (cubic a=-0.5, antialiased downscaling,
mirrored borders). PIL/OpenCV bicubic differ by tenths of a dB, so srcli makes every LR
image with this function. Resizing is separable and linear, so each axis is one matrix
product with a cached (out x in) weight matrix: exact, batched, and fast on CPU or GPU.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic kernel with a = -0.5 (MATLAB's ``cubic``)."""
    absx = x.abs()
    absx2 = absx * absx
    absx3 = absx2 * absx
    near = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2))
    return near + far


@lru_cache(maxsize=64)
def _weight_matrix_cpu(in_length: int, out_length: int, scale: float, antialias: bool) -> torch.Tensor:
    kernel_width = 4.0
    if scale < 1 and antialias:
        kernel_width /= scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    distance = u[:, None] - indices
    if scale < 1 and antialias:
        weights = scale * cubic(scale * distance)
    else:
        weights = cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # MATLAB mirrors out-of-range taps: 1..n then n..1 (symmetric with edge repeat).
    mirror = torch.cat([torch.arange(in_length), torch.arange(in_length - 1, -1, -1)])
    source = mirror[torch.remainder(indices.long() - 1, 2 * in_length)]
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, source, weights)
    return matrix


def weight_matrix(in_length: int, out_length: int, scale: float, antialias: bool = True,
                  dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """Dense (out_length, in_length) matrix M such that resized = M @ signal."""
    return _weight_matrix_cpu(in_length, out_length, float(scale), antialias).to(device=device, dtype=dtype)


def output_size(in_length: int, scale: float) -> int:
    return int(math.ceil(in_length * scale - 1e-9))


def imresize(image: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True) -> torch.Tensor:
    """Resize (..., H, W) float tensor like MATLAB ``imresize(img, scale, 'bicubic')``.

    Give either ``scale`` (e.g. 1/4) or ``size`` = (out_h, out_w). No rounding or clipping:
    to mimic MATLAB on uint8 images, quantise the result (see ``quantize``).
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale or size")
    in_h, in_w = image.shape[-2:]
    if size is not None:
        out_h, out_w = size
        scale_h, scale_w = out_h / in_h, out_w / in_w
    else:
        out_h, out_w = output_size(in_h, scale), output_size(in_w, scale)
        scale_h = scale_w = float(scale)
    work_dtype = image.dtype if image.dtype in (torch.float32, torch.float64) else torch.float32
    source = image.to(work_dtype)
    rows = weight_matrix(in_h, out_h, scale_h, antialias, work_dtype, image.device)
    cols = weight_matrix(in_w, out_w, scale_w, antialias, work_dtype, image.device)
    return torch.matmul(torch.matmul(rows, source), cols.transpose(0, 1))


def quantize(image: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """Round a [0, 1] image to 8-bit levels (what saving as uint8 does)."""
    return torch.round(image.clamp(0, 1) * levels) / levels


def crop_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    height, width = image.shape[-2:]
    return image[..., : height - height % multiple, : width - width % multiple]


def bicubic_downscale(hr: torch.Tensor, scale: int, quantized: bool = True) -> torch.Tensor:
    """Make the LR image as the SR literature does: crop HR to a multiple of ``scale``, MATLAB bicubic."""
    lr = imresize(crop_to_multiple(hr, scale), 1.0 / scale)
    return quantize(lr) if quantized else lr.clamp(0, 1)
