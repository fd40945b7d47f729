"""Where a run's starting weights came from, so an export counts all the training behind it.

Shipped weights are often continued across sessions (``--init weights/edsr_x3.safetensors``,
then exported back over that same file). The init file is therefore gone by export time, so
the trainer records what it started from when the run begins, and export adds it up.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..checkpoints.io import CheckpointFile
from ..checkpoints.shipped import WeightsError, read_manifest, weights_dir
from ..files import atomic_write

LINEAGE_FILE = "lineage.json"


@dataclass(frozen=True)
class Lineage:
    file: str
    sha256: str
    iterations_total: int | None  # training iterations behind the init weights; None: unknown
    train_hours_total: float | None
    continued: bool  # every tensor came from the file (a continuation), not e.g. x3 from x2's body


def _recipe_in_manifests(path: Path, sha256: str) -> dict[str, Any] | None:
    """The recipe of a manifest entry (beside the file, or the shipped one) with this exact file."""
    for directory in dict.fromkeys([path.parent.resolve(), weights_dir().resolve()]):
        try:
            manifest = read_manifest(directory)
        except WeightsError:  # a broken manifest only loses the history, not the run
            continue
        for entry in manifest:
            if entry.get("sha256") == sha256:
                return dict(entry.get("recipe") or {})
    return None


def _recipe_in_metadata(metadata: dict[str, str]) -> dict[str, Any] | None:
    """The recipe srcli's export writes into the file itself (safetensors metadata)."""
    try:
        return json.loads(metadata["recipe"]) if "recipe" in metadata else None
    except json.JSONDecodeError:
        return None


def lineage_of(init_path: str | Path, source: CheckpointFile, continued: bool) -> Lineage:
    """What ``--init`` named: the hash of the bytes read and, where a manifest or the file's
    metadata says, the training behind them."""
    path = Path(init_path)
    recipe = _recipe_in_manifests(path, source.sha256) or _recipe_in_metadata(source.metadata) or {}
    iterations = recipe.get("iterations_total", recipe.get("iterations"))
    hours = recipe.get("train_hours_total")
    if hours is None and iterations == recipe.get("iterations"):  # one run: its own estimate is the total
        hours = recipe.get("train_hours_estimate")
    return Lineage(path.name, source.sha256, None if iterations is None else int(iterations),
                   None if hours is None else float(hours), continued)


def write_lineage(run_dir: Path, lineage: Lineage) -> None:
    text = json.dumps(asdict(lineage), indent=2) + "\n"
    atomic_write(run_dir / LINEAGE_FILE, lambda temp: temp.write_text(text, encoding="utf-8"))


def read_lineage(run_dir: Path) -> Lineage | None:
    path = run_dir / LINEAGE_FILE
    if not path.is_file():
        return None
    return Lineage(**json.loads(path.read_text(encoding="utf-8")))


def lineage_recipe(lineage: Lineage, iterations: int, hours: float) -> dict[str, Any]:
    """Recipe fields for weights trained ``iterations`` (``hours``) on from ``lineage``'s file.

    Only a continuation adds up: x3 initialised from x2's body counts its own iterations, and
    names the x2 file (with its training) as its starting point.
    """
    fields: dict[str, Any] = {"initialised_from": asdict(lineage)}
    if not lineage.continued:
        return fields
    if lineage.iterations_total is not None:
        fields["iterations_total"] = lineage.iterations_total + iterations
    if lineage.train_hours_total is not None:
        fields["train_hours_total"] = round(lineage.train_hours_total + hours, 3)
    return fields
