"""Rows for ``srcli models``: registered architectures and shipped weights."""
from __future__ import annotations

from typing import Any

from ..defaults import ALIASES
from ..nets.common import count_parameters
from . import registry
from .shipped import WeightsEntry, canonical_name, entries


def architecture_rows() -> list[dict[str, Any]]:
    rows = []
    for name, architecture in registry.ARCHITECTURES.items():
        default_scale = {} if name == "mdsr" else {"scale": architecture.scales[-1]}
        model = registry.build(name, **default_scale)
        rows.append({"name": name, "description": architecture.description,  # parameters: paper configuration
                     "scales": "/".join(f"x{s}" for s in architecture.scales),
                     "parameters": count_parameters(model),
                     "layouts": ", ".join(layout.split(" (")[0] for layout in architecture.layouts),
                     "layout_details": list(architecture.layouts)})
    return rows


#: What a model is for, from the LR its training pairs had (``recipe.degradation``).
PURPOSES = {
    "realworld": "real photos (JPEG, noise, blur)",
    "dsgan": "the DSGAN domain (the noise + JPEG its DSGAN learned)",
    "bicubic": "clean / bicubic LR (benchmarks)",
}


def purpose(entry: WeightsEntry) -> str:
    """One phrase for the 'for' column; a manifest ``use`` field wins over the recipe."""
    if entry.raw.get("use"):
        return str(entry.raw["use"])
    if entry.architecture == "dsgan":
        return "making LR (srcli degrade, train --degradation)"
    degradation = str(entry.raw.get("recipe", {}).get("degradation", "bicubic"))
    return PURPOSES.get(degradation.split(":", 1)[0], f"LR made by {degradation}")


def structure(entry: WeightsEntry) -> str:
    """Blocks x features of the shipped file: the architecture's paper defaults often differ."""
    config = entry.raw.get("config", {})
    blocks, features = config.get("num_blocks", config.get("num_conv")), config.get("num_features")
    return f"{blocks} x {features}" if blocks and features else ""


def shipped_rows() -> list[dict[str, Any]]:
    rows = []
    for entry in entries():
        metrics = entry.raw.get("metrics", {}).get("Set5", {})
        psnrs = [f"x{scale}: {values['psnr']:.2f}" for scale, values in sorted(metrics.items())
                 if isinstance(values, dict) and "psnr" in values]
        rows.append({"name": entry.name, "for": purpose(entry), "architecture": entry.architecture,
                     "blocks_x_features": structure(entry), "scales": "/".join(f"x{s}" for s in entry.scales),
                     "parameters": int(entry.raw.get("parameters", 0)), "file": entry.file,
                     "set5_psnr": ", ".join(psnrs) or ("n/a: degradation model" if entry.architecture == "dsgan"
                                                       else "not measured")})
    return rows


def alias_rows() -> list[dict[str, str]]:
    """Plain names and what they stand for on this installation."""
    installed = entries()
    return [{"name": name, "means": canonical_name(name, installed), "candidates": ", ".join(candidates)}
            for name, candidates in ALIASES.items()]
