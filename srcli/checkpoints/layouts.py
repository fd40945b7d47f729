"""Recognising foreign checkpoint layouts and translating them to srcli's module names.

Each supported layout has one detector. A detector looks for the keys only that layout has; if they
are absent it returns ``None`` so the next one is tried. If they are present it infers the
hyper-parameters from tensor names and shapes (as the original code would have built the network),
renames the tensors to srcli's names and checks them against a freshly built network, so a file is
never half-loaded: a mismatch raises :class:`CheckpointError` with a one-line reason.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

import torch

from ..errors import CheckpointError
from . import registry

#: What srcli reads; named in every error about an unreadable file.
SUPPORTED_FORMATS = (
    "srcli .safetensors; EDSR-PyTorch EDSR/MDSR .pt; ESRGAN old/new RRDBNet .pth; "
    "BasicSR/Real-ESRGAN RRDBNet, MSRResNet, EDSR .pth (params/params_ema); "
    "Real-ESRGAN compact SRVGGNetCompact .pth (realesr-general-x4v3, realesr-animevideov3); DSGAN .tar"
)

Tensors = dict[str, torch.Tensor]
Detection = tuple[str, dict[str, Any], Tensors]
Rule = tuple[str, str]

#: Keys a file may lack because they hold no learnt values; taken from a fresh network instead.
MEAN_SHIFT_KEYS = ("sub_mean.", "add_mean.")
BN_COUNTER_SUFFIX = "num_batches_tracked"


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------

def _indices(tensors: Tensors, prefix: str, suffix: str = "") -> list[int]:
    """Sorted integers N of keys ``prefix + N + rest`` (rest ending in ``suffix``); counts repeated modules."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.(.+)$")
    found = set()
    for key in tensors:
        match = pattern.match(key)
        if match and match.group(2).endswith(suffix):
            found.add(int(match.group(1)))
    return sorted(found)


def _has_prefix(tensors: Tensors, prefix: str) -> bool:
    """True when any key starts with ``prefix`` (a layout's signature module)."""
    return any(key.startswith(prefix) for key in tensors)


def _rename(tensors: Tensors, rules: list[Rule]) -> Tensors:
    """Apply the first fully matching regex rule to each key; keys no rule matches are kept as they are."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    renamed: Tensors = {}
    for key, value in tensors.items():
        new_key = key
        for pattern, replacement in compiled:
            match = pattern.fullmatch(key)
            if match:
                new_key = match.expand(replacement)
                break
        renamed[new_key] = value
    return renamed


def _out_channels(tensors: Tensors, key: str) -> int:
    """Output channels of a conv weight, or a one-line error when the key is missing."""
    if key not in tensors or tensors[key].dim() != 4:
        raise CheckpointError(f"checkpoint lacks the 4-D conv weight {key!r}; supported: {SUPPORTED_FORMATS}")
    return int(tensors[key].shape[0])


def _shuffle_scale(tensors: Tensors, conv_keys: list[str], num_features: int) -> int:
    """Scale of a pixel-shuffle upsampler: one conv to 9*nf is x3, n convs to 4*nf are x2**n."""
    widths = [_out_channels(tensors, key) for key in conv_keys]
    if widths == [9 * num_features]:
        return 3
    if widths and all(width == 4 * num_features for width in widths):
        return 2 ** len(widths)
    if not widths:
        return 1
    raise CheckpointError(f"cannot tell the scale from upsampler widths {widths}; supported: {SUPPORTED_FORMATS}")


def _sequential_convs(tensors: Tensors, prefix: str) -> list[str]:
    """Weights of the 4-D convs directly inside an ``nn.Sequential`` at ``prefix`` (skipping PReLU etc.)."""
    keys = [f"{prefix}{index}.weight" for index in _indices(tensors, prefix, "weight")]
    return [key for key in keys if key in tensors and tensors[key].dim() == 4]


def _paper_res_scale(num_features: int) -> float:
    """EDSR's paper model (256 features) needs residual scaling 0.1 to train; smaller ones use 1.0."""
    return 0.1 if num_features == 256 else 1.0


def _rgb_range(tensors: Tensors) -> float:
    """EDSR-PyTorch stores the mean as ``rgb_range * mean``: a small bias means images in [0, 1]."""
    bias = tensors.get("sub_mean.bias")
    if bias is not None and float(bias.abs().max()) <= 1.5:
        return 1.0
    return 255.0


def _fillable(key: str, fill_prefixes: tuple[str, ...]) -> bool:
    """Whether a missing key may come from a fresh network (BN counters, EDSR mean shifts)."""
    return key.endswith(BN_COUNTER_SUFFIX) or key.startswith(fill_prefixes)


def _checked(label: str, name: str, config: dict[str, Any], tensors: Tensors,
             fill_prefixes: tuple[str, ...] = ()) -> Detection:
    """Build the detected network and demand exactly its keys and shapes, so nothing loads half-way."""
    try:
        expected = registry.build(name, **config).state_dict()
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{label} checkpoint with unsupported hyper-parameters {config} ({error})") from None
    converted = dict(tensors)
    for key, value in expected.items():
        if key not in converted and _fillable(key, fill_prefixes):
            converted[key] = value.clone()
    missing = [key for key in expected if key not in converted]
    unexpected = [key for key in converted if key not in expected]
    wrong = [key for key in expected if key in converted and converted[key].shape != expected[key].shape]
    if missing or unexpected or wrong:
        problems = [f"{kind} {keys[:3]}" for kind, keys in
                    (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise CheckpointError(f"looks like {label} but does not fit it ({'; '.join(problems)}); "
                              f"supported: {SUPPORTED_FORMATS}")
    return name, config, converted


# ---------------------------------------------------------------------------------------------
# RRDBNet family (ESRGAN old/new, BasicSR, Real-ESRGAN)
# ---------------------------------------------------------------------------------------------

def _rrdb_config(tensors: Tensors, num_upsamples: int) -> dict[str, Any]:
    """RRDBNet hyper-parameters from native-named tensors; 12/48 input channels are Real-ESRGAN's unshuffle."""
    first = tensors["conv_first.weight"]
    conv_in = int(first.shape[1])
    unshuffle, in_channels = 1, conv_in
    if conv_in % 3 == 0 and conv_in > 3 and math.isqrt(conv_in // 3) ** 2 == conv_in // 3:
        unshuffle, in_channels = math.isqrt(conv_in // 3), 3
    total = 2 ** num_upsamples
    if total % unshuffle:
        raise CheckpointError(f"RRDBNet with {num_upsamples} upsamplings cannot undo a x{unshuffle} unshuffle; "
                              f"supported: {SUPPORTED_FORMATS}")
    return {
        "scale": total // unshuffle,
        "num_blocks": len(_indices(tensors, "body.", "weight")),
        "num_features": int(first.shape[0]),
        "growth": _out_channels(tensors, "body.0.rdb1.conv1.weight"),
        "unshuffle": unshuffle,
        "in_channels": in_channels,
        "out_channels": _out_channels(tensors, "conv_last.weight"),
    }


def _conv_up_indices(tensors: Tensors) -> list[int]:
    """Numbers N of ``conv_upN`` weights (keys have no dot between name and number)."""
    found = {int(m.group(1)) for key in tensors if (m := re.fullmatch(r"conv_up(\d+)\.weight", key))}
    return sorted(found)


def detect_basicsr_rrdbnet(tensors: Tensors) -> Detection | None:
    """BasicSR/Real-ESRGAN RRDBNet (``body.N.rdb1``, ``conv_body``, ``conv_upN``) is srcli's native RRDBNet."""
    if "conv_body.weight" not in tensors or not _has_prefix(tensors, "body.0.rdb1."):
        return None
    return _finish_rrdb("a BasicSR/Real-ESRGAN RRDBNet", tensors)


def detect_esrgan_new(tensors: Tensors) -> Detection | None:
    """ESRGAN repository's later RRDBNet_arch.py names (``RRDB_trunk``, ``trunk_conv``, ``HRconv``)."""
    if not _has_prefix(tensors, "RRDB_trunk."):
        return None
    rules: list[Rule] = [
        (r"RRDB_trunk\.(\d+)\.RDB([123])\.(conv[1-5])\.(weight|bias)", r"body.\1.rdb\2.\3.\4"),
        (r"trunk_conv\.(weight|bias)", r"conv_body.\1"),
        (r"upconv(\d+)\.(weight|bias)", r"conv_up\1.\2"),
        (r"HRconv\.(weight|bias)", r"conv_hr.\1"),
    ]
    return _finish_rrdb("an ESRGAN (new layout) RRDBNet", _rename(tensors, rules))


def _finish_rrdb(label: str, renamed: Tensors) -> Detection:
    """Infer and check an RRDBNet whose keys were renamed to srcli's names."""
    if "conv_first.weight" not in renamed or "body.0.rdb1.conv1.weight" not in renamed:
        raise CheckpointError(f"{label} checkpoint lacks conv_first or its first block; supported: {SUPPORTED_FORMATS}")
    return _checked(label, "esrgan", _rrdb_config(renamed, len(_conv_up_indices(renamed))), renamed)


def detect_esrgan_old(tensors: Tensors) -> Detection | None:
    """Original ESRGAN release (flattened ``model.K`` Sequential): convs after ``model.1`` are ups, HR, last."""
    if "model.0.weight" not in tensors or not _has_prefix(tensors, "model.1.sub."):
        return None
    label = "an ESRGAN (old layout) RRDBNet"
    num_blocks = len(_indices(tensors, "model.1.sub.", "conv1.0.weight"))
    tail = [k for k in _indices(tensors, "model.", "weight") if k > 1 and f"model.{k}.weight" in tensors]
    if len(tail) < 3:
        raise CheckpointError(f"{label} checkpoint has too few convs after the trunk; supported: {SUPPORTED_FORMATS}")
    rules: list[Rule] = [
        (r"model\.0\.(weight|bias)", r"conv_first.\1"),
        (r"model\.1\.sub\.(\d+)\.RDB([123])\.(conv[1-5])\.0\.(weight|bias)", r"body.\1.rdb\2.\3.\4"),
        (rf"model\.1\.sub\.{num_blocks}\.(weight|bias)", r"conv_body.\1"),
        (rf"model\.{tail[-2]}\.(weight|bias)", r"conv_hr.\1"),
        (rf"model\.{tail[-1]}\.(weight|bias)", r"conv_last.\1"),
    ]
    rules += [(rf"model\.{index}\.(weight|bias)", rf"conv_up{number}.\1")
              for number, index in enumerate(tail[:-2], start=1)]
    return _finish_rrdb(label, _rename(tensors, rules))


# ---------------------------------------------------------------------------------------------
# EDSR / MDSR (EDSR-PyTorch is srcli's native naming; BasicSR EDSR is renamed)
# ---------------------------------------------------------------------------------------------

def _edsr_blocks(tensors: Tensors) -> int:
    """Residual blocks are ``body.N.body.0``; the conv after them is ``body.{num_blocks}``."""
    return len(_indices(tensors, "body.", "body.0.weight"))


def detect_edsr(tensors: Tensors) -> Detection | None:
    """EDSR-PyTorch EDSR (``head.0``, ``body.N.body.0``, ``tail.0.K``, ``tail.1``), srcli's native EDSR."""
    if "head.0.weight" not in tensors or "tail.1.weight" not in tensors or _has_prefix(tensors, "pre_process."):
        return None
    num_features = _out_channels(tensors, "head.0.weight")
    config = {
        "scale": _shuffle_scale(tensors, _sequential_convs(tensors, "tail.0."), num_features),
        "num_blocks": _edsr_blocks(tensors),
        "num_features": num_features,
        "res_scale": _paper_res_scale(num_features),
        "rgb_range": _rgb_range(tensors),
        "in_channels": int(tensors["head.0.weight"].shape[1]),
    }
    return _checked("an EDSR-PyTorch EDSR", "edsr", config, tensors, MEAN_SHIFT_KEYS)


def detect_mdsr(tensors: Tensors) -> Detection | None:
    """EDSR-PyTorch MDSR (``pre_process.k``, ``upsample.k``): one upsampler branch per scale, in order."""
    if not _has_prefix(tensors, "pre_process.") or "head.0.weight" not in tensors:
        return None
    num_features = _out_channels(tensors, "head.0.weight")
    branches = _indices(tensors, "upsample.", "weight")
    scales = [_shuffle_scale(tensors, _sequential_convs(tensors, f"upsample.{k}."), num_features) for k in branches]
    config = {
        "scales": tuple(scales),
        "num_blocks": _edsr_blocks(tensors),
        "num_features": num_features,
        "res_scale": 1.0,
        "rgb_range": _rgb_range(tensors),
    }
    return _checked("an EDSR-PyTorch MDSR", "mdsr", config, tensors, MEAN_SHIFT_KEYS)


def detect_basicsr_edsr(tensors: Tensors) -> Detection | None:
    """BasicSR EDSR (``conv_first``, ``body.N.conv1``, ``conv_after_body``, ``upsample.K``), mapped onto EDSR."""
    if "conv_after_body.weight" not in tensors:
        return None
    label = "a BasicSR EDSR"
    num_blocks = len(_indices(tensors, "body.", "conv1.weight"))
    rules: list[Rule] = [
        (r"conv_first\.(weight|bias)", r"head.0.\1"),
        (r"body\.(\d+)\.conv1\.(weight|bias)", r"body.\1.body.0.\2"),
        (r"body\.(\d+)\.conv2\.(weight|bias)", r"body.\1.body.2.\2"),
        (r"conv_after_body\.(weight|bias)", rf"body.{num_blocks}.\1"),
        (r"upsample\.(\d+)\.(weight|bias)", r"tail.0.\1.\2"),
        (r"conv_last\.(weight|bias)", r"tail.1.\1"),
    ]
    renamed = _rename(tensors, rules)
    num_features = _out_channels(renamed, "head.0.weight")
    config = {
        "scale": _shuffle_scale(renamed, _sequential_convs(renamed, "tail.0."), num_features),
        "num_blocks": num_blocks,
        "num_features": num_features,
        "res_scale": _paper_res_scale(num_features),
        "rgb_range": 255.0,  # BasicSR's img_range: (x - mean) * 255, the same maths as EDSR-PyTorch
        "in_channels": int(renamed["head.0.weight"].shape[1]),
    }
    return _checked(label, "edsr", config, renamed, MEAN_SHIFT_KEYS)


# ---------------------------------------------------------------------------------------------
# SRResNet family and DSGAN (native names)
# ---------------------------------------------------------------------------------------------

def detect_msrresnet(tensors: Tensors) -> Detection | None:
    """BasicSR MSRResNet (``body.N.conv1``, ``upconv1``, ``conv_hr``): upconv1 to 9*nf is x3, upconv2 means x4."""
    if "upconv1.weight" not in tensors or "conv_hr.weight" not in tensors:
        return None
    num_features = _out_channels(tensors, "conv_first.weight")
    ups = [key for key in ("upconv1.weight", "upconv2.weight") if key in tensors]
    config = {
        "scale": _shuffle_scale(tensors, ups, num_features),
        "num_blocks": len(_indices(tensors, "body.", "conv1.weight")),
        "num_features": num_features,
    }
    return _checked("a BasicSR MSRResNet", "msrresnet", config, tensors)


def detect_srresnet(tensors: Tensors) -> Detection | None:
    """srcli's SRResNet/SRGAN with batch norm (``bn_body``, 9x9 ``conv_first.0``)."""
    if "bn_body.weight" not in tensors or "conv_first.0.weight" not in tensors:
        return None
    num_features = _out_channels(tensors, "conv_first.0.weight")
    config = {
        "scale": _shuffle_scale(tensors, _sequential_convs(tensors, "upsample."), num_features),
        "num_blocks": len(_indices(tensors, "body.", "conv1.weight")),
        "num_features": num_features,
    }
    return _checked("an SRResNet", "srresnet", config, tensors)


def detect_dsgan(tensors: Tensors) -> Detection | None:
    """DSGAN authors' generator (``block_input``, ``res_blocks.N``, ``block_output``), srcli's native names."""
    if "block_input.0.weight" not in tensors:
        return None
    config = {
        "num_blocks": len(_indices(tensors, "res_blocks.", "conv1.weight")),
        "num_features": _out_channels(tensors, "block_input.0.weight"),
    }
    extra_inputs = tensors["block_input.0.weight"].shape[1] - 3
    if extra_inputs > 0:  # srcli's grid-aware variant: one-hot column and row phase channels
        # (noise inputs and the JPEG layer are known only from srcli's own metadata)
        config["block_grid"] = extra_inputs // 2
    return _checked("a DSGAN generator", "dsgan", config, tensors)


# ---------------------------------------------------------------------------------------------
# Real-ESRGAN compact (SRVGGNetCompact): one ``body`` list, srcli's native names
# ---------------------------------------------------------------------------------------------

_SRVGG_KEY = re.compile(r"body\.(\d+)\.(weight|bias)")


def detect_srvgg(tensors: Tensors) -> Detection | None:
    """SRVGGNetCompact: every key is ``body.N.weight/bias``; convs sit at even N, activations at odd N.

    num_features and in_channels come from the first conv, num_convs from the conv count (minus
    first and last), the scale from the last conv's out_channels = channels * scale^2, and the
    activation from the PReLU slopes at odd N (ReLU and LeakyReLU hold no tensors).
    """
    if "body.0.weight" not in tensors or not all(_SRVGG_KEY.fullmatch(key) for key in tensors):
        return None
    label = "a Real-ESRGAN compact (SRVGGNetCompact)"
    convs = [index for index in _indices(tensors, "body.", "weight") if tensors[f"body.{index}.weight"].dim() == 4]
    if len(convs) < 2 or convs != list(range(0, 2 * len(convs), 2)):
        raise CheckpointError(f"{label} checkpoint needs convs at body.0, body.2, body.4 ... (found {convs[:4]}); "
                              f"supported: {SUPPORTED_FORMATS}")
    first, last = tensors["body.0.weight"], tensors[f"body.{convs[-1]}.weight"]
    channels = int(first.shape[1])
    shuffled = int(last.shape[0])
    scale = math.isqrt(shuffled // channels)
    if shuffled % channels or scale * scale * channels != shuffled:
        raise CheckpointError(f"{label} checkpoint: last conv has {shuffled} outputs, not {channels} x scale^2; "
                              f"supported: {SUPPORTED_FORMATS}")
    config = {
        "scale": scale,
        "num_features": int(first.shape[0]),
        "num_convs": len(convs) - 2,
        "activation": _srvgg_activation(tensors, label),
        "in_channels": channels,
        "out_channels": channels,
    }
    return _checked(label, "srvgg", config, tensors)


def _srvgg_activation(tensors: Tensors, label: str) -> str:
    """PReLU when its slopes are stored; the parameter-free variants cannot be told apart, so refuse them."""
    if "body.1.weight" in tensors:
        return "prelu"
    raise CheckpointError(f"{label} checkpoint has no PReLU weights: its ReLU or LeakyReLU cannot be told apart "
                          "from tensors, so only PReLU models (all Real-ESRGAN releases) load")


#: Tried in order; each one's signature keys exclude the others, the order only makes that explicit.
DETECTORS: tuple[Callable[[Tensors], Detection | None], ...] = (
    detect_esrgan_old,
    detect_esrgan_new,
    detect_basicsr_rrdbnet,
    detect_mdsr,
    detect_edsr,
    detect_basicsr_edsr,
    detect_srresnet,
    detect_msrresnet,
    detect_dsgan,
    detect_srvgg,
)


def detect_layout(tensors: Tensors) -> Detection | None:
    """Return (architecture, config, tensors renamed to srcli's keys), or None for an unknown layout.

    Raises :class:`CheckpointError` when a layout is recognised but its tensors do not fit it.
    """
    for detector in DETECTORS:
        detected = detector(tensors)
        if detected is not None:
            return detected
    return None
