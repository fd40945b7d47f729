"""Turn what the user typed (``--model``, ``-x``, ``--weights``, ``--alpha``) into a ready network."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..defaults import DEFAULT_MODEL
from ..nets.mdsr import MDSR, MDSRAtScale
from .interpolate import check_alpha, interpolate_models
from .io import load_model
from .shipped import MissingScale, WeightsError, find_entry, load_entry, load_shipped

#: (PSNR-oriented, GAN) pairs that ``--alpha`` blends, keyed by either name.
INTERPOLATION_PAIRS = {
    "esrgan": ("esrgan-psnr", "esrgan"),
    "esrgan-psnr": ("esrgan-psnr", "esrgan"),
    "srgan": ("srresnet", "srgan"),
    "srresnet": ("srresnet", "srgan"),
}


#: File suffixes that make ``--model`` mean a checkpoint path rather than a shipped name.
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".tar")


class ModelChoiceError(ValueError):
    pass


def names_a_checkpoint(model: str | None) -> bool:
    """``-m mix.safetensors`` is what people type after ``srcli interpolate``; treat it as ``--weights``."""
    return bool(model) and Path(model).suffix.lower() in CHECKPOINT_SUFFIXES


@dataclass
class ResolvedModel:
    network: nn.Module  # single-scale: MDSR comes wrapped at the chosen scale
    name: str
    scale: int
    source: str  # file it came from, or a description of the blend


def native_scales(model: nn.Module) -> tuple[int, ...]:
    if isinstance(model, MDSR):
        return tuple(model.scale_list)
    config = getattr(model, "config", {})
    return (int(config.get("scale", 1)),)


def at_scale(model: nn.Module, scale: int | None, source: str) -> tuple[nn.Module, int]:
    scales = native_scales(model)
    if scale is None:
        scale = scales[-1] if isinstance(model, MDSR) else scales[0]
    if scale not in scales:
        raise MissingScale(f"{source} is a x{'/x'.join(map(str, scales))} network; it cannot run at x{scale}")
    if isinstance(model, MDSR):
        return MDSRAtScale(model, scale).eval(), scale
    return model, scale


def require_super_resolution(resolved: ResolvedModel) -> ResolvedModel:
    """DSGAN maps clean LR to degraded LR at the same size: upscaling or scoring with it is a mistake."""
    from ..nets.dsgan import DSGANGenerator

    if isinstance(resolved.network, DSGANGenerator):
        raise ModelChoiceError(f"{resolved.name} is a degradation model (LR in, LR out), not a super-resolution "
                               "network; use it with 'srcli degrade --model dsgan' or 'srcli train --degradation'")
    return resolved


def resolve_model(model: str | None = None, scale: int | None = None, weights: str | None = None,
                  alpha: float | None = None) -> ResolvedModel:
    """Shipped weights by name, or any checkpoint ``load_model`` accepts; optional on-the-fly blend."""
    if not weights and names_a_checkpoint(model):
        model, weights = Path(model).stem, model
    if weights:
        if alpha is not None:
            raise ModelChoiceError("--alpha blends a shipped pair; with your own files use 'srcli interpolate' first")
        network = load_model(weights)
        network, scale = at_scale(network, scale, weights)
        return ResolvedModel(network, model or getattr(network, "architecture", "model"), scale, weights)
    name = model or DEFAULT_MODEL
    if alpha is not None:
        return _blend(name, scale, check_alpha(alpha))
    network, entry = load_shipped(name, scale)
    network, scale = at_scale(network, scale, entry.file)
    return ResolvedModel(network, name, scale, str(entry.path))


def _blend(name: str, scale: int | None, alpha: float) -> ResolvedModel:
    if name not in INTERPOLATION_PAIRS:
        pairs = ", ".join(sorted({pair[1] for pair in INTERPOLATION_PAIRS.values()}))
        raise ModelChoiceError(f"--alpha needs a model with a PSNR/GAN pair ({pairs}), not {name}")
    psnr_name, gan_name = INTERPOLATION_PAIRS[name]
    psnr_entry, gan_entry = find_entry(psnr_name, scale), find_entry(gan_name, scale)
    blended = interpolate_models(load_entry(psnr_entry), load_entry(gan_entry), alpha)
    network, chosen = at_scale(blended, scale, gan_entry.file)
    label = f"{gan_name}-a{alpha:g}"
    return ResolvedModel(network, label, chosen, f"{psnr_entry.file} <-> {gan_entry.file} at alpha {alpha:g}")


__all__ = ["ResolvedModel", "resolve_model", "require_super_resolution", "ModelChoiceError", "WeightsError", "INTERPOLATION_PAIRS"]
