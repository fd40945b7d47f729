"""File-level network interpolation used by ``srcli interpolate``."""
from __future__ import annotations

from pathlib import Path

from .interpolate import interpolate_models
from .io import load_model, save_model
from .resolve import default_interpolation_pair, interpolation_pair
from .shipped import find_entry, load_entry


def interpolate_files(alpha: float, weights_a: str | None, weights_b: str | None, output: Path,
                      model: str | None = None) -> tuple[Path, str, str]:
    """Blend A and B and save as safetensors. Unnamed sides come from ``model``'s shipped PSNR/GAN
    pair (see ``srcli models``), else the default ESRGAN pair."""
    pair = interpolation_pair(model) if model else default_interpolation_pair()
    if weights_a:
        model_a, source_a = load_model(weights_a), weights_a
    else:
        entry = find_entry(pair[0])
        model_a, source_a = load_entry(entry), entry.file
    if weights_b:
        model_b, source_b = load_model(weights_b), weights_b
    else:
        entry = find_entry(pair[1])
        model_b, source_b = load_entry(entry), entry.file
    blended = interpolate_models(model_a, model_b, alpha)
    extra = {"name": f"interp-a{alpha:g}", "interpolation": {"alpha": alpha, "a": source_a, "b": source_b}}
    return save_model(blended, output, extra=extra), source_a, source_b
