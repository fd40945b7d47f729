"""Benchmark datasets: finding them by name, recognising their layout, loading LR/HR pairs.

SR benchmarks circulate in several layouts. A folder of HR images is the canonical one: the LR
is then made here with MATLAB bicubic (HR cropped to a multiple of the scale first), which is
how every published bicubic-degradation number was produced. Paired layouts (DIV2K-style
``HR/`` + ``LR_bicubic/X4/``, ``hr/`` + ``lr/``, ``*_HR.png`` + ``*_LR.png``) are read as
given, so users can evaluate on LR images that someone else made.
"""
from __future__ import annotations

import dataclasses

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import DataError
from ..images.io import IMAGE_SUFFIXES, ImageReadError, read_image
from ..imresize import bicubic_downscale, crop_to_multiple

#: Canonical benchmark names and the folder names they go by.
BENCHMARKS: dict[str, tuple[str, ...]] = {
    "Set5": ("Set5",),
    "Set14": ("Set14",),
    "B100": ("B100", "BSD100", "BSDS100"),
    "Urban100": ("Urban100",),
    "Manga109": ("Manga109",),
    "DIV2K": ("DIV2K",),
}
DATA_ENV = "SRCLI_DATA"
ROOT_SUBFOLDERS = ("", "benchmarks", "benchmark")
LAYOUT_HELP = ("a folder of HR images, or HR/ + LR_bicubic/X<scale>/, or hr/ + lr/, "
               "or *_HR.png + *_LR.png pairs")


class DatasetError(DataError):
    """A dataset that cannot be found or read; a subclass of DataError so the CLI shows one line."""


@dataclass(frozen=True)
class ImagePair:
    """One benchmark image: ``lr`` is None when the LR is to be made from the HR by bicubic."""

    name: str
    hr: Path
    lr: Path | None = None


@dataclass(frozen=True)
class Dataset:
    """A resolved dataset at one scale: where it is, how it is laid out, and its image pairs."""

    name: str
    root: Path
    layout: str
    pairs: tuple[ImagePair, ...]


# ----------------------------------------------------------------------------- finding


def canonical_name(spec: str) -> str | None:
    """``bsd100`` -> ``B100``; None for names that are not known benchmarks."""
    lowered = spec.lower()
    for name, aliases in BENCHMARKS.items():
        if lowered in (alias.lower() for alias in aliases):
            return name
    return None


def search_roots(data_root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where names are looked up, in order: ``--data-root``, ``$SRCLI_DATA``, the user cache."""
    roots = [Path(data_root).expanduser()] if data_root else []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]).expanduser())
    roots.append(Path.home() / ".cache" / "srcli" / "datasets")
    return roots


def _child_named(folder: Path, names: set[str]) -> Path | None:
    """The subfolder whose name matches one of ``names`` case-insensitively (sorted, so stable)."""
    if not folder.is_dir():
        return None
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name.lower() in names:
            return child
    return None


def find_dataset(spec: str | os.PathLike[str], data_root: str | os.PathLike[str] | None = None) -> Path:
    """A folder (or image file) as given, else ``<root>/[benchmarks/]<name>`` under the search roots."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    text = str(spec)
    canonical = canonical_name(text)
    names = {alias.lower() for alias in BENCHMARKS[canonical]} if canonical else {text.lower()}
    if any(sep in text for sep in ("/", os.sep)) or text.startswith("."):
        raise DatasetError(f"{text}: no such folder; expected {LAYOUT_HELP}")
    roots = search_roots(data_root)
    for root in roots:
        for sub in ROOT_SUBFOLDERS:
            found = _child_named(root / sub if sub else root, names)
            if found is not None:
                return found
    places = ", ".join(str(root) for root in roots)
    hint = (f"srcli downloads nothing: put the {canonical} images in {roots[-1] / canonical}/ "
            f"(or any folder, then --data-root or ${DATA_ENV}); " if canonical else "")
    raise DatasetError(f"dataset {text!r} not found: not a folder, and no {text}/ or benchmarks/{text}/ under "
                       f"{places}; {hint}expected {LAYOUT_HELP}")


# ----------------------------------------------------------------------------- layouts


def _images(folder: Path, recursive: bool = False) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def _keyed(paths: list[Path], key_of: Callable[[Path], str], what: str, folder: Path) -> dict[str, Path]:
    """Map each image to its pairing key; two images with one key are ambiguous, so refuse."""
    keyed: dict[str, Path] = {}
    for path in paths:
        key = key_of(path)
        if key in keyed:
            raise DatasetError(f"{folder}: two {what} images for {key!r} ({keyed[key].name}, {path.name})")
        keyed[key] = path
    return keyed


def _strip_scale(stem: str, scale: int) -> str:
    """``0801x4`` / ``baby_x4`` -> the HR name (DIV2K and benchmark packs tag LR names with the scale)."""
    return re.sub(rf"[_-]?[xX]{scale}$", "", stem)


def _match(hr: dict[str, Path], lr: dict[str, Path], folder: Path) -> tuple[ImagePair, ...]:
    """Pairs by name; any image without a partner is an error (a silent subset would skew means)."""
    lonely_hr = sorted(set(hr) - set(lr))
    lonely_lr = sorted(set(lr) - set(hr))
    if lonely_hr or lonely_lr:
        parts = []
        if lonely_hr:
            parts.append(f"no LR for {', '.join(lonely_hr[:5])}{' ...' if len(lonely_hr) > 5 else ''}")
        if lonely_lr:
            parts.append(f"no HR for {', '.join(lonely_lr[:5])}{' ...' if len(lonely_lr) > 5 else ''}")
        raise DatasetError(f"{folder}: HR and LR images do not pair up by name ({'; '.join(parts)})")
    if not hr:
        raise DatasetError(f"{folder}: no image pairs; expected {LAYOUT_HELP}")
    return tuple(ImagePair(key, hr[key], lr[key]) for key in sorted(hr))


def _paired_folders(hr_dir: Path, lr_dir: Path, scale: int, folder: Path) -> tuple[ImagePair, ...]:
    hr = _keyed(_images(hr_dir), lambda p: p.stem, "HR", hr_dir)
    lr = _keyed(_images(lr_dir), lambda p: _strip_scale(p.stem, scale), "LR", lr_dir)
    return _match(hr, lr, folder)


def _hr_only(folder: Path, images: list[Path], root: Path) -> tuple[ImagePair, ...]:
    if not images:
        raise DatasetError(f"{folder}: no images (PNG, JPEG, BMP, TIFF, WebP) found; expected {LAYOUT_HELP}")
    return tuple(ImagePair(path.relative_to(root).with_suffix("").as_posix(), path) for path in images)


def _hr_folder(folder: Path) -> Path | None:
    """``HR``/``hr``, or DIV2K's ``*_HR`` (preferring ``*valid*`` when train and valid are both there)."""
    candidates = sorted(c for c in folder.iterdir() if c.is_dir() and (c.name.lower() == "hr"
                                                                           or c.name.lower().endswith("_hr")))
    if len(candidates) > 1:
        candidates = [c for c in candidates if "valid" in c.name.lower()] or candidates
    if len(candidates) > 1:
        raise DatasetError(f"{folder}: several HR folders ({', '.join(c.name for c in candidates)}); "
                           "point at one of them")
    return candidates[0] if candidates else None


def _scale_folder(lr_dir: Path, scale: int) -> Path | None:
    return _child_named(lr_dir, {f"x{scale}"})


def _with_hr_folder(folder: Path, hr_dir: Path, scale: int) -> tuple[str, tuple[ImagePair, ...]]:
    """``HR/`` with ``LR_bicubic/X<s>/`` or ``lr/`` beside it; ``HR/`` alone means bicubic from HR."""
    prefix = hr_dir.name[:-2].lower()
    bicubic_dir = _child_named(folder, {prefix + "lr_bicubic"})
    if bicubic_dir is not None:
        lr_dir = _scale_folder(bicubic_dir, scale)
        if lr_dir is None:
            present = ", ".join(sorted(c.name for c in bicubic_dir.iterdir() if c.is_dir())) or "nothing"
            raise DatasetError(f"{bicubic_dir}: no X{scale}/ folder for x{scale} (found {present})")
        return f"{hr_dir.name}/ + {bicubic_dir.name}/{lr_dir.name}/", _paired_folders(hr_dir, lr_dir, scale, folder)
    lr_dir = _child_named(folder, {prefix + "lr"})
    if lr_dir is not None:
        lr_dir = _scale_folder(lr_dir, scale) or lr_dir
        label = f"{hr_dir.name}/ + {lr_dir.relative_to(folder).as_posix()}/"
        return label, _paired_folders(hr_dir, lr_dir, scale, folder)
    return f"{hr_dir.name}/ (LR by MATLAB bicubic)", _hr_only(hr_dir, _images(hr_dir), hr_dir)


_SUFFIX = re.compile(r"^(?P<key>.+)_(?P<kind>HR|LR)$", re.IGNORECASE)


def _suffix_pairs(folder: Path, images: list[Path]) -> tuple[ImagePair, ...]:
    """``name_HR.png`` + ``name_LR.png`` in one folder."""
    hr = _keyed([p for p in images if p.stem.upper().endswith("_HR")], lambda p: p.stem[:-3], "HR", folder)
    lr = _keyed([p for p in images if p.stem.upper().endswith("_LR")], lambda p: p.stem[:-3], "LR", folder)
    return _match(hr, lr, folder)


def detect_layout(folder: str | os.PathLike[str], scale: int) -> tuple[str, tuple[ImagePair, ...]]:
    """(description, pairs) for ``folder`` at ``scale``; the first layout whose markers are present wins."""
    folder = Path(folder)
    if folder.is_file():
        return "single HR image (LR by MATLAB bicubic)", (ImagePair(folder.stem, folder),)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    hr_dir = _hr_folder(folder)
    if hr_dir is not None:
        return _with_hr_folder(folder, hr_dir, scale)
    flat = _images(folder)
    if any(_SUFFIX.match(p.stem) for p in flat):
        return "*_HR + *_LR", _suffix_pairs(folder, flat)
    return "HR images (LR by MATLAB bicubic)", _hr_only(folder, _images(folder, recursive=True), folder)


def open_dataset(spec: str | os.PathLike[str], scale: int,
                 data_root: str | os.PathLike[str] | None = None) -> Dataset:
    """Find ``spec`` (folder or benchmark name) and list its pairs at ``scale``."""
    root = find_dataset(spec, data_root)
    layout, pairs = detect_layout(root, scale)
    canonical = canonical_name(str(spec)) if not Path(spec).expanduser().exists() else None
    return Dataset(canonical or _display_name(root), root, layout, pairs)


def distinct_names(datasets: list[Dataset]) -> list[Dataset]:
    """Datasets from different folders that share a name are called ``parent/name``, so that
    tables and reports never merge ``photos/val_set14_x4`` with ``realworld/val_set14_x4``."""
    roots: dict[str, set[Path]] = {}
    for dataset in datasets:
        roots.setdefault(dataset.name, set()).add(dataset.root.resolve())
    return [dataclasses.replace(dataset, name=f"{dataset.root.resolve().parent.name}/{dataset.name}")
            if len(roots[dataset.name]) > 1 else dataset for dataset in datasets]


def _display_name(root: Path) -> str:
    """The folder's name, or its parent's when the user pointed inside it (``Set5/HR``)."""
    if root.is_file() or root.name.lower() in ("hr", "lr"):
        return root.parent.name or root.name
    return root.name


# ----------------------------------------------------------------------------- loading


def read_rgb(path: Path) -> torch.Tensor:
    """(3, H, W) float64 in [0, 1]; greyscale is replicated, as the published evaluations do."""
    image = read_image(path).rgb.to(torch.float64)
    return image.expand(3, -1, -1).clone() if image.shape[0] == 1 else image


def _fit_hr(hr: torch.Tensor, lr: torch.Tensor, scale: int, pair: ImagePair) -> torch.Tensor:
    """Crop HR to exactly scale x LR (it may exceed it by less than ``scale``, i.e. before mod-crop)."""
    lr_h, lr_w = lr.shape[-2:]
    hr_h, hr_w = hr.shape[-2:]
    want_h, want_w = lr_h * scale, lr_w * scale
    if not (want_h <= hr_h < want_h + scale and want_w <= hr_w < want_w + scale):
        raise DatasetError(f"{pair.lr}: LR {lr_w}x{lr_h} at x{scale} is {want_w}x{want_h}, "
                           f"but HR {pair.hr.name} is {hr_w}x{hr_h}")
    return hr[..., :want_h, :want_w]


def load_pair(pair: ImagePair, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) as float32 (3, h, w) and (3, h*scale, w*scale) in [0, 1]."""
    try:
        hr = read_rgb(pair.hr)
        if pair.lr is None:
            hr = crop_to_multiple(hr, scale)
            if min(hr.shape[-2:]) < scale:
                raise DatasetError(f"{pair.hr}: too small for x{scale}")
            lr = bicubic_downscale(hr, scale)
        else:
            lr = read_rgb(pair.lr)
            hr = _fit_hr(hr, lr, scale, pair)
    except ImageReadError as error:
        raise DatasetError(str(error)) from None
    return lr.float(), hr.float()


def load_benchmark_pairs(folder: str | Path, scale: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(LR, HR) float tensors for a dataset folder (any supported layout); HR cropped to scale x LR."""
    _, pairs = detect_layout(find_dataset(folder), scale)
    return [load_pair(pair, scale) for pair in pairs]
