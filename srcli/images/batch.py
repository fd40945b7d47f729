"""Upscaling many files: input expansion, output naming, no-overwrite rules, per-image pipeline.

Every output is written atomically (temporary file + rename), an existing file is never
replaced unless asked, and one bad input is reported and skipped without stopping the batch.
"""
from __future__ import annotations

import glob
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..imresize import imresize
from .io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    ImageReadError,
    LoadedImage,
    bleed_colors,
    output_format_for,
    read_image,
    write_image,
)


class InputError(ValueError):
    """The command line names no usable input (usage error, exit code 2)."""


@dataclass
class OutputOptions:
    output: str | None = None
    suffix: str | None = None
    ext: str = "auto"
    overwrite: bool = False
    skip_existing: bool = False
    recursive: bool = False
    outscale: float | None = None
    alpha_mode: str = "model"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    quality: int = 95


@dataclass
class Job:
    source: Path
    relative: Path  # path below the input folder, kept in the output with --recursive


@dataclass
class Record:
    input: str
    output: str | None
    status: str  # ok | skipped | failed
    error: str | None = None
    seconds: float = 0.0
    megapixels: float = 0.0
    width: int = 0
    height: int = 0
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def expand_inputs(inputs: list[str], recursive: bool = False) -> list[Job]:
    """Files, folders (``recursive`` descends) and glob patterns -> jobs, in a stable order."""
    jobs: list[Job] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            jobs.extend(Job(p, p.relative_to(path)) for p in files)
        elif path.exists():
            jobs.append(Job(path, Path(path.name)))
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=recursive) if Path(p).is_file())
            if not matches:
                raise InputError(f"no file matches {text!r}")
            jobs.extend(Job(p, Path(p.name)) for p in matches)
        else:
            raise InputError(f"{text}: no such file or folder")
    if not jobs:
        raise InputError("no input images found (PNG, JPEG, WebP, BMP or TIFF)")
    return jobs


def output_is_file(output: str | None, job_count: int) -> bool:
    if output is None or job_count != 1:
        return False
    target = Path(output)
    return not target.is_dir() and target.suffix.lower() in IMAGE_SUFFIXES


def output_name(job: Job, model_name: str, scale_label: str, extension: str, suffix: str | None) -> Path:
    stem = job.source.stem
    name = f"{stem}_{model_name}_x{scale_label}" if suffix is None else (f"{stem}_{suffix}" if suffix else stem)
    return job.relative.parent / f"{name}{extension}"


def scale_label(scale: float, outscale: float | None) -> str:
    return f"{outscale:g}" if outscale is not None else f"{scale:g}"


def resize_lanczos(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Lanczos resize per channel in float ('F' mode) so 16-bit precision survives."""
    channels = []
    for channel in image:
        picture = Image.fromarray(channel.numpy().astype(np.float32), mode="F")
        channels.append(torch.from_numpy(np.array(picture.resize((width, height), Image.LANCZOS))))
    return torch.stack(channels).clamp(0, 1)


UpscaleFunction = Callable[[torch.Tensor], torch.Tensor]


def upscale_loaded(image: LoadedImage, upscale: UpscaleFunction, scale: float, options: OutputOptions
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Colour through the network; alpha through the network or bicubic; optional --outscale."""
    rgb = image.rgb
    if image.alpha is not None:
        rgb = bleed_colors(rgb, image.alpha)  # no black/tinted fringes at transparency edges
    result = upscale(rgb)
    alpha = None
    if image.alpha is not None:
        if options.alpha_mode == "model":
            alpha = upscale(image.alpha).clamp(0, 1)
        else:
            alpha = imresize(image.alpha, size=tuple(result.shape[-2:])).clamp(0, 1)
    if options.outscale is not None:
        height, width = image.rgb.shape[-2:]
        target_w, target_h = max(1, round(width * options.outscale)), max(1, round(height * options.outscale))
        result = resize_lanczos(result, target_w, target_h)
        if alpha is not None:
            alpha = resize_lanczos(alpha, target_w, target_h)
    return result, alpha


def process_job(job: Job, target: Path, upscale: UpscaleFunction, scale: float, options: OutputOptions,
                extension_format: str) -> Record:
    started = time.monotonic()
    image = read_image(job.source, options.max_pixels)
    rgb, alpha = upscale_loaded(image, upscale, scale, options)
    effective = options.outscale if options.outscale is not None else scale
    dpi = (image.dpi[0] * effective, image.dpi[1] * effective) if image.dpi else None
    target.parent.mkdir(parents=True, exist_ok=True)
    write_image(target, rgb, alpha, bit_depth=image.bit_depth, format=extension_format,
                icc_profile=image.icc_profile, dpi=dpi, quality=options.quality, overwrite=options.overwrite)
    height, width = image.rgb.shape[-2:]
    return Record(str(job.source), str(target), "ok", seconds=time.monotonic() - started,
                  megapixels=width * height / 1e6, width=int(rgb.shape[-1]), height=int(rgb.shape[-2]))


def plan_target(job: Job, model_name: str, scale: float, options: OutputOptions, job_count: int
                ) -> tuple[Path, str]:
    """Output path and format for one job; raises ImageReadError for format problems found early."""
    input_format, has_alpha = _probe(job.source)
    try:
        fmt, extension = output_format_for(input_format, options.ext, has_alpha)
    except ValueError as error:
        raise ImageReadError(f"{job.source}: {error}") from None
    if output_is_file(options.output, job_count):
        return Path(options.output), fmt  # type: ignore[arg-type]
    folder = Path(options.output) if options.output else Path("upscaled")
    name = output_name(job, model_name, scale_label(scale, options.outscale), extension, options.suffix)
    return folder / (name if options.recursive else name.name), fmt


def _probe(path: Path) -> tuple[str, bool]:
    """(format, has alpha) from the header alone, in one open; unreadable files fail later, in read_image."""
    try:
        with Image.open(path) as image:
            return image.format or "PNG", image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    except Exception:
        return "PNG", False


def run_jobs(jobs: list[Job], upscale: UpscaleFunction, model_name: str, scale: float, options: OutputOptions,
             on_done: Callable[[Record], None] = lambda record: None, job_count: int | None = None) -> list[Record]:
    """Process jobs one by one; failures become records and the batch goes on."""
    records = []
    total = job_count if job_count is not None else len(jobs)
    for job in jobs:
        try:
            target, fmt = plan_target(job, model_name, scale, options, total)
            if target.exists() and not options.overwrite:
                if options.skip_existing:
                    record = Record(str(job.source), str(target), "skipped")
                else:
                    record = Record(str(job.source), str(target), "failed",
                                    f"{target} exists; pass --overwrite to replace or --skip-existing to keep it")
            else:
                record = process_job(job, target, upscale, scale, options, fmt)
        except (ImageReadError, FileExistsError, ValueError, OSError) as error:
            record = Record(str(job.source), None, "failed", " ".join(str(error).split()))
        records.append(record)
        on_done(record)
    return records


@dataclass
class Summary:
    images: int
    succeeded: int
    skipped: int
    failed: int
    megapixels: float
    seconds: float
    records: list[Record]


def summarise(records: list[Record], seconds: float) -> Summary:
    return Summary(len(records), sum(r.status == "ok" for r in records), sum(r.status == "skipped" for r in records),
                   sum(r.status == "failed" for r in records), sum(r.megapixels for r in records), seconds, records)


def report_failures(records: list[Record]) -> None:
    """One ``error: FILE: reason`` line per failed file on stderr (the batch itself went on)."""
    for record in records:
        if record.status == "failed":
            message = record.error or "failed"
            print(f"error: {message if record.input in message else f'{record.input}: {message}'}", file=sys.stderr)


def shard(jobs: list[Job], rank: int, world: int) -> list[Job]:
    """This process's share of the inputs under torchrun (round robin keeps sizes balanced)."""
    return jobs[rank::world]


def world_info() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0"))
