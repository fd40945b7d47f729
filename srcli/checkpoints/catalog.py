"""Rows for ``srcli models``: registered architectures and shipped weights."""
from __future__ import annotations

from typing import Any

from ..nets.common import count_parameters
from . import registry
from .shipped import entries


def architecture_rows() -> list[dict[str, Any]]:
    rows = []
    for name, architecture in registry.ARCHITECTURES.items():
        default_scale = {} if name == "mdsr" else {"scale": architecture.scales[-1]}
        model = registry.build(name, **default_scale)
        rows.append({"name": name, "description": architecture.description,
                     "scales": "/".join(f"x{s}" for s in architecture.scales),
                     "parameters": count_parameters(model),
                     "layouts": ", ".join(layout.split(" (")[0] for layout in architecture.layouts),
                     "layout_details": list(architecture.layouts)})
    return rows


def shipped_rows() -> list[dict[str, Any]]:
    rows = []
    for entry in entries():
        metrics = entry.raw.get("metrics", {}).get("Set5", {})
        psnrs = [f"x{scale}: {values['psnr']:.2f}" for scale, values in sorted(metrics.items())
                 if isinstance(values, dict) and "psnr" in values]
        rows.append({"name": entry.name, "architecture": entry.architecture,
                     "scales": "/".join(f"x{s}" for s in entry.scales),
                     "parameters": int(entry.raw.get("parameters", 0)), "file": entry.file,
                     "set5_psnr": ", ".join(psnrs) or ("n/a: degradation model" if entry.architecture == "dsgan"
                                                       else "not measured")})
    return rows
