"""Training data: HR images cached in memory, random crops, LR made on the fly.

Every batch is a pure function of (seed, iteration, rank): resuming from a checkpoint or
adding DataLoader workers therefore reproduces exactly the batches an uninterrupted run sees.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from ..errors import DataError
from ..images.io import IMAGE_SUFFIXES, read_image
from ..imresize import imresize, quantize
from ..inference.geometry import transform as augment

log = logging.getLogger("srcli.train")


def list_images(folders: Iterable[str | os.PathLike[str]]) -> list[Path]:
    paths: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            paths.append(folder)
            continue
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder")
        paths.extend(sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
    return paths


def load_rgb_uint8(path: Path) -> torch.Tensor:
    """(3, H, W) uint8, decoded like every other input (EXIF orientation, palettes, CMYK, 16-bit).

    The training cache holds 8-bit images: a quarter of the memory of float ones.
    """
    rgb = read_image(path, max_pixels=None).rgb  # the user chose these files; big photos are fine
    rgb = rgb.expand(3, -1, -1) if rgb.shape[0] == 1 else rgb
    return (rgb * 255).round_().to(torch.uint8).contiguous()


def load_image_cache(folders: Iterable[str | os.PathLike[str]], min_side: int,
                     warn: Callable[[str], None] = log.warning) -> list[torch.Tensor]:
    """Decode every image once (uint8 CHW); skip unreadable or too small ones with a warning."""
    images: list[torch.Tensor] = []
    for path in list_images(folders):
        try:
            image = load_rgb_uint8(path)
        except Exception as error:  # PIL raises many kinds for bad files
            warn(f"skipping unreadable image {path}: {error}")
            continue
        if min(image.shape[-2:]) < min_side:
            warn(f"skipping {path}: {image.shape[-1]}x{image.shape[-2]} is smaller than a {min_side}px crop")
            continue
        images.append(image)
    if not images:
        raise DataError(f"no usable training images (need at least {min_side}px per side) in {', '.join(map(str, folders))}")
    return images


def rescaled_copies(images: Sequence[torch.Tensor], factors: Sequence[float], min_side: int,
                    warn: Callable[[str], None] = log.warning) -> list[torch.Tensor]:
    """Each image at each size factor (MATLAB bicubic, 8-bit); copies smaller than a crop are left out.

    Why: scale augmentation (as in VDSR) multiplies a small training set, and shrinking a JPEG
    photo fades its block artefacts, which a network meant for clean images should not learn.
    """
    copies: list[torch.Tensor] = []
    skipped = 0
    for image in images:
        for factor in dict.fromkeys(factors):  # keeps order, drops repeats
            if factor == 1:
                copies.append(image)
                continue
            height, width = image.shape[-2:]
            size = (round(height * factor), round(width * factor))
            if min(size) < min_side:
                skipped += 1
                continue
            resized = quantize(imresize(image.float().div(255), size=size))
            copies.append(resized.mul(255).round_().to(torch.uint8).contiguous())
    if skipped:
        warn(f"--hr-rescale: left out {skipped} copies smaller than a {min_side}px crop")
    if not copies:
        raise DataError(f"no training image is at least {min_side}px per side at any --hr-rescale factor")
    return copies


def batch_generator(seed: int, iteration: int, rank: int = 0, stream: str = "data") -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{iteration}:{rank}:{stream}".encode()).digest()
    generator = torch.Generator()
    generator.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return generator


def random_crops(images: Sequence[torch.Tensor], count: int, size: int, generator: torch.Generator,
                 augmentation: bool = True, align: int = 1) -> torch.Tensor:
    """``count`` random size x size crops (float [0, 1]) from random images.

    ``align`` > 1 puts every crop's corner on that grid (JPEG's 8x8 blocks stay where a
    grid-aware generator is told they are; flips and rotations keep them on it when ``size`` is
    a multiple of ``align``).
    """
    crops = []
    for _ in range(count):
        image = images[int(torch.randint(len(images), (1,), generator=generator))]
        height, width = image.shape[-2:]
        top = int(torch.randint((height - size) // align + 1, (1,), generator=generator)) * align
        left = int(torch.randint((width - size) // align + 1, (1,), generator=generator)) * align
        code = int(torch.randint(8, (1,), generator=generator)) if augmentation else 0
        crops.append(augment(image[:, top:top + size, left:left + size], code))
    return torch.stack(crops).float().div_(255)


Degrader = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]  # (HR batch, scale, randomness) -> LR


def bicubic_degrader(hr: torch.Tensor, scale: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """MATLAB bicubic downscale, quantised to 8 bits like a saved LR image."""
    return quantize(imresize(hr, 1.0 / scale))


class IterationBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item ``i`` is the whole training batch of iteration ``i``."""

    def __init__(self, *, batch: int, patch: int, seed: int, rank: int = 0, augmentation: bool = True,
                 length: int = 10**9, stream: str = "data") -> None:
        self.batch = batch
        self.stream = stream  # another stream draws other crops from the same seed (export's BN batches)
        self.patch = patch
        self.seed = seed
        self.rank = rank
        self.augmentation = augmentation
        self.length = length

    def __len__(self) -> int:
        return self.length


class PairedBatches(IterationBatches):
    """HR crops with LR made on the fly by ``degrader`` (MATLAB bicubic by default)."""

    def __init__(self, images: Sequence[torch.Tensor], *, scales: Sequence[int],
                 degrader: Degrader = bicubic_degrader, **common: Any) -> None:
        super().__init__(**common)
        self.images = images
        self.scales = list(scales)
        self.degrader = degrader

    def __getitem__(self, iteration: int) -> dict[str, torch.Tensor | int]:
        generator = batch_generator(self.seed, iteration, self.rank, self.stream)
        scale = self.scales[int(torch.randint(len(self.scales), (1,), generator=generator))]
        hr = random_crops(self.images, self.batch, self.patch * scale, generator, self.augmentation)
        with torch.no_grad():
            lr = self.degrader(hr, scale, generator)
        return {"lr": lr, "hr": hr, "scale": scale, "iteration": iteration}


class UnpairedBatches(IterationBatches):
    """DSGAN batches: bicubic-downscaled clean crops and unpaired crops of the source domain."""

    def __init__(self, clean: Sequence[torch.Tensor], source: Sequence[torch.Tensor], *, scale: int,
                 source_align: int = 1, **common: Any) -> None:
        super().__init__(**common)
        self.clean = clean
        self.source = source
        self.scale = scale
        self.source_align = source_align

    def __getitem__(self, iteration: int) -> dict[str, torch.Tensor | int]:
        generator = batch_generator(self.seed, iteration, self.rank, self.stream)
        hr = random_crops(self.clean, self.batch, self.patch * self.scale, generator, self.augmentation)
        source = random_crops(self.source, self.batch, self.patch, generator, self.augmentation, self.source_align)
        with torch.no_grad():
            clean_lr = bicubic_degrader(hr, self.scale)
        return {"lr": clean_lr, "source": source, "scale": self.scale, "iteration": iteration}


class PairedFolderBatches(IterationBatches):
    """Batches cropped from aligned LR/HR image pairs (``--degradation paired:LR_DIR``)."""

    def __init__(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], *, scale: int, **common: Any) -> None:
        super().__init__(**common)
        self.pairs = pairs
        self.scale = scale

    def __getitem__(self, iteration: int) -> dict[str, torch.Tensor | int]:
        generator = batch_generator(self.seed, iteration, self.rank, self.stream)
        lrs, hrs = [], []
        for _ in range(self.batch):
            lr_image, hr_image = self.pairs[int(torch.randint(len(self.pairs), (1,), generator=generator))]
            height, width = lr_image.shape[-2:]
            top = int(torch.randint(height - self.patch + 1, (1,), generator=generator))
            left = int(torch.randint(width - self.patch + 1, (1,), generator=generator))
            code = int(torch.randint(8, (1,), generator=generator)) if self.augmentation else 0
            s = self.scale
            lrs.append(augment(lr_image[:, top:top + self.patch, left:left + self.patch], code))
            hrs.append(augment(hr_image[:, top * s:(top + self.patch) * s, left * s:(left + self.patch) * s], code))
        return {"lr": torch.stack(lrs).float() / 255, "hr": torch.stack(hrs).float() / 255,
                "scale": self.scale, "iteration": iteration}


def load_pairs(hr_folders: Iterable[str], lr_folder: str, scale: int, patch: int,
               warn: Callable[[str], None] = log.warning) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Match LR files to HR files by stem; the HR must be ``scale`` times the LR."""
    lr_by_stem = {p.stem: p for p in list_images([lr_folder])}
    pairs = []
    for hr_path in list_images(hr_folders):
        lr_path = lr_by_stem.get(hr_path.stem)
        if lr_path is None:
            continue
        lr_image, hr_image = load_rgb_uint8(lr_path), load_rgb_uint8(hr_path)
        hr_image = hr_image[:, : lr_image.shape[1] * scale, : lr_image.shape[2] * scale]
        if hr_image.shape[1] != lr_image.shape[1] * scale or hr_image.shape[2] != lr_image.shape[2] * scale:
            warn(f"skipping {hr_path.name}: HR is not x{scale} of its LR")
            continue
        if min(lr_image.shape[-2:]) < patch:
            warn(f"skipping {lr_path.name}: smaller than the LR patch")
            continue
        pairs.append((lr_image, hr_image))
    if not pairs:
        raise DataError(f"no LR/HR pairs found between {lr_folder} and {', '.join(hr_folders)}")
    return pairs
