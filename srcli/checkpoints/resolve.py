"""Turn what the user typed (``--model``, ``-x``, ``--weights``, ``--alpha``) into a ready network."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..defaults import DEFAULT_MODEL, INTERPOLATION_PAIRS
from ..nets.mdsr import MDSR, MDSRAtScale
from .interpolate import check_alpha, denoise_strength_blend, interpolate_models
from .io import load_model
from .shipped import MissingScale, WeightsError, canonical_name, find_entry, load_entry, load_shipped

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
            return _blend_with_twin(weights, scale, check_alpha(alpha), model)
        network = load_model(weights)
        network, scale = at_scale(network, scale, weights)
        return ResolvedModel(network, model or getattr(network, "architecture", "model"), scale, weights)
    name = canonical_name(model or DEFAULT_MODEL)  # outputs are named after what ran
    if alpha is not None:
        return _blend(name, scale, check_alpha(alpha))
    network, entry = load_shipped(name, scale)
    network, scale = at_scale(network, scale, entry.file)
    return ResolvedModel(network, name, scale, str(entry.path))


def interpolation_pair(name: str) -> tuple[str, str]:
    """(PSNR, GAN) shipped names that ``--alpha`` blends for ``name``; both must be installed."""
    from .shipped import entries

    name = canonical_name(name)
    if name not in INTERPOLATION_PAIRS:
        pairs = ", ".join(sorted({pair[1] for pair in INTERPOLATION_PAIRS.values()}))
        raise ModelChoiceError(f"--alpha needs a model with a PSNR/GAN pair ({pairs}), not {name}")
    pair = INTERPOLATION_PAIRS[name]
    shipped = {entry.name for entry in entries()}
    missing = [member for member in pair if member not in shipped]
    if missing:
        complete = sorted(gan for psnr, gan in set(INTERPOLATION_PAIRS.values()) if {psnr, gan} <= shipped)
        raise ModelChoiceError(f"--alpha blends {pair[0]} with {pair[1]}, and {' and '.join(missing)} is not "
                               f"installed; pairs you can blend: {', '.join(complete) or 'none'}")
    return pair


def default_interpolation_pair() -> tuple[str, str]:
    """The photo ESRGAN pair once its GAN stage is shipped, else the bicubic one."""
    from .shipped import entries

    shipped = {entry.name for entry in entries()}
    for gan in ("esrgan-photo", "esrgan-bicubic"):
        if set(INTERPOLATION_PAIRS[gan]) <= shipped:
            return INTERPOLATION_PAIRS[gan]
    return INTERPOLATION_PAIRS["esrgan-photo"]


#: Real-ESRGAN's compact general model and its weak-denoise twin: ``--alpha`` is its ``-dn``.
DENOISE_TWINS = ("realesr-general-x4v3", "realesr-general-wdn-x4v3")


def _blend_with_twin(weights: str, scale: int | None, alpha: float, label: str | None) -> ResolvedModel:
    """``--weights realesr-general-x4v3.pth --alpha d`` blends it with the wdn file beside it, as
    Real-ESRGAN's ``-dn d`` does: d * general + (1 - d) * wdn. Other files have no known twin."""
    path = Path(weights)
    general, weak = DENOISE_TWINS
    if general not in path.name and weak not in path.name:
        raise ModelChoiceError("--alpha with --weights works for Real-ESRGAN's realesr-general-x4v3 (blended with "
                               "realesr-general-wdn-x4v3 beside it); for other files use 'srcli interpolate' first")
    general_path = path.with_name(path.name.replace(weak, general))
    weak_path = path.with_name(path.name.replace(general, weak) if weak not in path.name else path.name)
    missing = [str(p) for p in (general_path, weak_path) if not p.is_file()]
    if missing:
        raise ModelChoiceError(f"--alpha blends {general_path.name} with {weak_path.name}; missing {', '.join(missing)}")
    blended = denoise_strength_blend(load_model(str(general_path)), load_model(str(weak_path)), alpha)
    network, chosen = at_scale(blended, scale, str(general_path))
    name = f"{label or general}-dn{alpha:g}"
    return ResolvedModel(network, name, chosen, f"{general_path.name} <-> {weak_path.name} at denoise strength {alpha:g}")


def _blend(name: str, scale: int | None, alpha: float) -> ResolvedModel:
    psnr_name, gan_name = interpolation_pair(name)
    psnr_entry, gan_entry = find_entry(psnr_name, scale), find_entry(gan_name, scale)
    blended = interpolate_models(load_entry(psnr_entry), load_entry(gan_entry), alpha)
    network, chosen = at_scale(blended, scale, gan_entry.file)
    label = f"{gan_name}-a{alpha:g}"
    return ResolvedModel(network, label, chosen, f"{psnr_entry.file} <-> {gan_entry.file} at alpha {alpha:g}")


__all__ = ["ResolvedModel", "resolve_model", "require_super_resolution", "ModelChoiceError", "WeightsError", "INTERPOLATION_PAIRS"]
