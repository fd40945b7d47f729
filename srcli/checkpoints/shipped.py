"""Shipped weights: where they live, the manifest that describes them, and verified loading.

The manifest (``weights/manifest.json``) lists every file with its architecture, scale(s),
sha256, training recipe, measured PSNR/SSIM and license. Loading checks the sha256 so that a
corrupted or swapped file is never used silently.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..defaults import ALIASES
from ..files import atomic_write
from .io import CheckpointError, model_from_state_dict, state_dict_from_bytes

MANIFEST_NAME = "manifest.json"


class WeightsError(ValueError):
    """Missing, unknown or corrupted shipped weights; one line for the user."""


class MissingScale(WeightsError):
    """The model exists but not at the requested scale (a table of several scales can skip it)."""


def weights_dir() -> Path:
    """``$SRCLI_WEIGHTS``, else the copy inside the installed package (``srcli/shipped_weights``,
    mapped from ``weights/`` at build time), else the checkout's ``weights/``."""
    override = os.environ.get("SRCLI_WEIGHTS")
    if override:
        return Path(override)
    package = Path(__file__).resolve().parents[1]  # srcli/
    for candidate in (package / "shipped_weights", package.parent / "weights"):
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    return package.parent / "weights"


@dataclass
class WeightsEntry:
    name: str
    architecture: str
    file: str
    scales: list[int]
    sha256: str
    raw: dict[str, Any]

    @property
    def path(self) -> Path:
        return weights_dir() / self.file


def read_manifest(directory: Path | None = None) -> list[dict[str, Any]]:
    path = (directory or weights_dir()) / MANIFEST_NAME
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise WeightsError(f"{path} is not valid JSON ({error})") from None
    return list(data.get("models", []))


def write_manifest(entries: list[dict[str, Any]], directory: Path | None = None) -> Path:
    directory = directory or weights_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST_NAME
    entries = sorted(entries, key=lambda e: (e["name"], e.get("scales", [0])))
    text = json.dumps({"models": entries}, indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda temp: temp.write_text(text, encoding="utf-8"))
    return path


def same_slot(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two manifest entries for the same shipped model: one name and the same scales."""
    return a["name"] == b["name"] and a.get("scales") == b.get("scales")


def same_network(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """One architecture, config and set of scales: the same forward pass, whatever the weights."""
    return (a.get("architecture") == b.get("architecture") and a.get("config") == b.get("config")
            and a.get("scales") == b.get("scales"))


def upsert_entry(entry: dict[str, Any], directory: Path | None = None,
                 current: list[dict[str, Any]] | None = None) -> Path:
    """Add or replace the entry with the same name and scales (``current``: the manifest, if already read)."""
    entries = [e for e in (read_manifest(directory) if current is None else current) if not same_slot(e, entry)]
    entries.append(entry)
    return write_manifest(entries, directory)


def entries() -> list[WeightsEntry]:
    return [WeightsEntry(e["name"], e["architecture"], e["file"], list(e.get("scales", [])), e.get("sha256", ""), e)
            for e in read_manifest()]


def canonical_name(name: str, installed: list[WeightsEntry] | None = None) -> str:
    """``esrgan`` -> the first of its alias candidates that is shipped; other names unchanged.

    A weights folder that ships an entry under the plain name itself (an older manifest,
    ``$SRCLI_WEIGHTS``) keeps it: the user's own files win over the alias."""
    if name not in ALIASES:
        return name
    shipped = {e.name for e in (entries() if installed is None else installed)}
    if name in shipped:
        return name
    return next((candidate for candidate in ALIASES[name] if candidate in shipped), ALIASES[name][0])


def find_entry(name: str, scale: int | None = None) -> WeightsEntry:
    """The shipped file for ``name`` (or what it stands for) at ``scale`` (or the largest scale when not given)."""
    installed = entries()
    name = canonical_name(name, installed)
    candidates = [e for e in installed if e.name == name]
    if not candidates:
        shipped = sorted({e.name for e in entries()})
        listing = ", ".join(shipped) if shipped else "none are installed"
        raise WeightsError(f"no shipped weights named {name!r} (shipped: {listing}); use --weights PATH for your own")
    if scale is None:
        return max(candidates, key=lambda e: max(e.scales))
    for entry in candidates:
        if scale in entry.scales:
            return entry
    available = sorted({s for e in candidates for s in e.scales})
    raise MissingScale(f"{name} is shipped for x{', x'.join(map(str, available))}, not x{scale}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_entry(entry: WeightsEntry) -> nn.Module:
    path = entry.path
    if not path.is_file():
        raise WeightsError(f"shipped weights {entry.file} are missing from {weights_dir()} (reinstall srcli or set SRCLI_WEIGHTS)")
    data = path.read_bytes()  # verified and loaded from one read, so what runs is what was checked
    actual = hashlib.sha256(data).hexdigest()
    if entry.sha256 and actual != entry.sha256:
        raise WeightsError(f"{path} is corrupted: sha256 {actual[:12]}... does not match the manifest's {entry.sha256[:12]}...")
    try:
        tensors, metadata = state_dict_from_bytes(data, path)
        return model_from_state_dict(tensors, metadata, path)
    except CheckpointError as error:
        raise WeightsError(str(error)) from None


def load_shipped(name: str, scale: int | None = None) -> tuple[nn.Module, WeightsEntry]:
    entry = find_entry(name, scale)
    return load_entry(entry), entry
