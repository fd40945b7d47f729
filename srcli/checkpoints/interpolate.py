"""Network interpolation (ESRGAN): theta = (1 - alpha) * theta_a + alpha * theta_b.

Blending the weights of a PSNR-oriented and a GAN-trained network of the same architecture
gives a continuous trade-off between fidelity and perceptual sharpness without retraining.
Real-ESRGAN's ``dni`` is the same blend: its denoise strength d for ``realesr-general-x4v3``
is ``alpha = d`` with A = ``realesr-general-wdn-x4v3`` and B = ``realesr-general-x4v3``
(d * general + (1 - d) * wdn), computed with dni's arithmetic so both give the same weights.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class InterpolationError(ValueError):
    pass


def check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha <= 1.0:
        raise InterpolationError(f"--alpha must be between 0 and 1, got {alpha}")
    return float(alpha)


def interpolate_state_dicts(state_a: dict[str, torch.Tensor], state_b: dict[str, torch.Tensor],
                            alpha: float) -> dict[str, torch.Tensor]:
    """Blend two state dicts key by key; refuses pairs whose keys or shapes differ."""
    alpha = check_alpha(alpha)
    if state_a.keys() != state_b.keys():
        only_a = sorted(set(state_a) - set(state_b))[:2]
        only_b = sorted(set(state_b) - set(state_a))[:2]
        raise InterpolationError(f"the two networks have different layers (only in A: {only_a}, only in B: {only_b})")
    blended: dict[str, torch.Tensor] = {}
    for key, tensor_a in state_a.items():
        tensor_b = state_b[key]
        if tensor_a.shape != tensor_b.shape:
            raise InterpolationError(f"layer {key} has shape {tuple(tensor_a.shape)} in A but {tuple(tensor_b.shape)} in B")
        if tensor_a.is_floating_point():  # dni's weighted sum (not lerp): the same bits as Real-ESRGAN
            blended[key] = ((1 - alpha) * tensor_a.float() + alpha * tensor_b.float()).to(tensor_a.dtype)
        else:  # integer buffers (e.g. BN's num_batches_tracked) are taken from the nearer end
            blended[key] = (tensor_b if alpha >= 0.5 else tensor_a).clone()
    return blended


def denoise_strength_blend(general: nn.Module, weak_denoise: nn.Module, strength: float) -> nn.Module:
    """Real-ESRGAN's ``-dn``: strength * general-x4v3 + (1 - strength) * general-wdn-x4v3 (1 = full denoise)."""
    return interpolate_models(weak_denoise, general, strength)


def interpolate_models(model_a: nn.Module, model_b: nn.Module, alpha: float) -> nn.Module:
    """A new network with blended weights; both must be the same architecture and config."""
    config_a, config_b = getattr(model_a, "config", None), getattr(model_b, "config", None)
    if type(model_a) is not type(model_b) or config_a != config_b:
        raise InterpolationError(
            f"cannot interpolate different networks ({type(model_a).__name__} {config_a} vs {type(model_b).__name__} {config_b})")
    blended = interpolate_state_dicts(model_a.state_dict(), model_b.state_dict(), alpha)
    result = copy.deepcopy(model_a)
    result.load_state_dict(blended)
    return result.eval()
