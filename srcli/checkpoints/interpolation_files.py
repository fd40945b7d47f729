"""File-level network interpolation used by ``srcli interpolate``."""
from __future__ import annotations

from pathlib import Path

from .interpolate import interpolate_models
from .io import load_model, save_model
from .shipped import find_entry, load_entry


def interpolate_files(alpha: float, weights_a: str | None, weights_b: str | None,
                      output: Path) -> tuple[Path, str, str]:
    """Blend A and B (defaults: the shipped esrgan-psnr / esrgan pair) and save as safetensors."""
    if weights_a:
        model_a, source_a = load_model(weights_a), weights_a
    else:
        entry = find_entry("esrgan-psnr")
        model_a, source_a = load_entry(entry), entry.file
    if weights_b:
        model_b, source_b = load_model(weights_b), weights_b
    else:
        entry = find_entry("esrgan")
        model_b, source_b = load_entry(entry), entry.file
    blended = interpolate_models(model_a, model_b, alpha)
    extra = {"name": f"interp-a{alpha:g}", "interpolation": {"alpha": alpha, "a": source_a, "b": source_b}}
    return save_model(blended, output, extra=extra), source_a, source_b
