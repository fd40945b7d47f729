"""Reading and writing network weights.

srcli writes safetensors files whose metadata names the architecture and its hyper-parameters.
It reads those and the layouts people actually have (EDSR-PyTorch, ESRGAN, BasicSR,
Real-ESRGAN, DSGAN), detecting architecture and hyper-parameters from tensor names and shapes.
Nothing is ever unpickled: torch files are read with ``weights_only=True``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..files import atomic_write
from . import registry
from .layouts import SUPPORTED_FORMATS, detect_layout


@dataclass(frozen=True)
class CheckpointFile:
    """A weights file's tensors, metadata and sha256, all taken from one read of its bytes.

    Training from ``--init`` records the hash of the weights it started from; hashing and
    loading the same bytes means the record cannot describe a file replaced in between."""
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    sha256: str


def read_checkpoint_file(path: str | os.PathLike[str]) -> CheckpointFile:
    """Read a safetensors or torch file once and hash those bytes, never unpickling objects."""
    data = _file_bytes(Path(path))
    tensors, metadata = state_dict_from_bytes(data, Path(path))
    return CheckpointFile(tensors, metadata, hashlib.sha256(data).hexdigest())


def read_state_dict(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return (tensors, metadata) from a safetensors or torch file, never unpickling objects.

    Nothing here needs the file's hash, so the file is memory-mapped rather than read: a large
    foreign checkpoint then costs one copy in memory (its tensors), not two (bytes + tensors).
    Torch files in the pre-1.6 format cannot be mapped and are read whole."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    with path.open("rb") as handle:
        head = handle.read(16)
    if path.suffix == ".safetensors" or _looks_like_safetensors(head):
        return _safetensors_mapped(path)
    return _torch_file_mapped(path), {}


def state_dict_from_bytes(data: bytes, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Parse a file's bytes already read (``path`` names it in errors and picks the format)."""
    if path.suffix == ".safetensors" or _looks_like_safetensors(data[:16]):
        return _safetensors_from_bytes(data, path)
    return _torch_file_from_bytes(data, path), {}


def _file_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    return path.read_bytes()


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    header_length = int.from_bytes(head[:8], "little")
    return 0 < header_length < 100_000_000 and head[8:9] == b"{"


def shorten(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters at a word boundary, marked with an ellipsis.

    Torch's messages can run to kilobytes (every missing key); a user needs their start, whole words."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:")
    return (cut or text[:limit]) + " ..."


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return shorten(text.splitlines()[0] if text else type(error).__name__, 160)


def _safetensors_from_bytes(data: bytes, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors.torch import load

    try:
        header_length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_length])
        metadata = {str(key): str(value) for key, value in (header.get("__metadata__") or {}).items()}
        tensors = load(data)
    except Exception as error:  # truncated bytes, bad JSON or a bad header each raise their own type
        raise _damaged_safetensors(path, error) from None
    return tensors, metadata


def _damaged_safetensors(path: Path, error: BaseException) -> CheckpointError:
    return CheckpointError(f"{path}: damaged safetensors file ({_first_line(error)}); supported: {SUPPORTED_FORMATS}")


def _safetensors_mapped(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # truncated file, bad JSON or a bad header each raise their own type
        raise _damaged_safetensors(path, error) from None
    return tensors, {str(key): str(value) for key, value in metadata.items()}


def _torch_file_mapped(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a legacy (pre-zip) file cannot be mapped; a corrupt one fails again below
        return _torch_file_from_bytes(path.read_bytes(), path)
    return unwrap_state_dict(loaded, path)


def _torch_file_from_bytes(data: bytes, path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt/non-checkpoint files
        raise CheckpointError(f"{path}: not a readable checkpoint ({_first_line(error)}); supported: {SUPPORTED_FORMATS}") from None
    return unwrap_state_dict(loaded, path)


def unwrap_state_dict(loaded: Any, path: Path | str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the generator's tensors inside the wrappers training code adds.

    Prefers ``params_ema`` over ``params`` (BasicSR keeps the better EMA weights there), accepts
    DSGAN's ``model_g_state_dict`` and srcli's own training checkpoints, and strips ``module.``.
    """
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path}: not a state dict; supported: {SUPPORTED_FORMATS}")
    for wrapper in ("params_ema", "params", "model_g_state_dict", "state_dict", "model", "generator_ema", "generator"):
        inner = loaded.get(wrapper)
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            loaded = inner
            break
    tensors = {key: value for key, value in loaded.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors; supported: {SUPPORTED_FORMATS}")
    prefix = "module."
    if all(key.startswith(prefix) for key in tensors):
        tensors = {key[len(prefix):]: value for key, value in tensors.items()}
    return tensors


def model_metadata(model: nn.Module, extra: dict[str, Any] | None = None) -> dict[str, str]:
    metadata = {
        "format": "srcli",
        "format_version": "1",
        "architecture": getattr(model, "architecture", ""),
        "config": json.dumps(getattr(model, "config", {}), sort_keys=True),
    }
    for key, value in (extra or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return metadata


def save_model(model: nn.Module, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Write a network as safetensors with its architecture and config in the metadata (atomically)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    atomic_write(path, lambda temp: save_file(state, str(temp), metadata=model_metadata(model, extra)))
    return path


def build_from_metadata(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path | str) -> nn.Module:
    architecture = metadata.get("architecture", "")
    try:
        config = json.loads(metadata.get("config", "{}"))
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: srcli metadata has an unreadable config") from None
    try:
        model = registry.build(architecture, **config)
    except (registry.UnknownArchitecture, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot build {architecture!r} from its metadata ({error})") from None
    _load_strict(model, tensors, path)
    return model


def _load_strict(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path | str) -> None:
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = shorten(" ".join(line.strip() for line in first[:2]), 240)
        raise CheckpointError(f"{path}: tensors do not fit the detected network ({detail})") from None


def load_model(path: str | os.PathLike[str], *, architecture: str | None = None) -> nn.Module:
    """Load any supported checkpoint and return the network in eval mode on the CPU.

    ``architecture`` overrides detection for the rare file whose layout is ambiguous
    (e.g. ``srgan`` vs ``srresnet``, which share one layout).
    """
    tensors, metadata = read_state_dict(path)
    return model_from_state_dict(tensors, metadata, path, architecture=architecture)


def model_from_state_dict(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: str | os.PathLike[str],
                          *, architecture: str | None = None) -> nn.Module:
    """Build the network that tensors read from ``path`` describe (srcli metadata or a known layout)."""
    if metadata.get("format") == "srcli":
        model = build_from_metadata(tensors, metadata, path)
    else:
        detected = detect_layout(tensors)
        if detected is None:
            raise CheckpointError(f"{path}: unknown checkpoint layout; supported: {SUPPORTED_FORMATS}")
        name, config, converted = detected
        if architecture in ("srgan", "srresnet") and name in ("srgan", "srresnet"):
            name = architecture
        model = registry.build(name, **config)
        _load_strict(model, converted, path)
    model.source_metadata = metadata  # type: ignore[attr-defined]
    return model.eval()
