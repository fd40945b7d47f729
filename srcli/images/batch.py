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

from ..files import make_folder
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
    problem: str | None = None  # an input that names no file: reported as a failed record, the batch goes on


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
    """Files, folders (``recursive`` descends) and glob patterns -> jobs, in a stable order.

    A path or pattern that names nothing becomes a job with a ``problem``: one typo among many
    inputs is reported and the rest of the batch still runs. Only when nothing at all is left
    to do is it an :class:`InputError` (a usage error).
    """
    jobs: list[Job] = []
    for text in inputs:
        jobs.extend(_expand_one(text, recursive))
    if not any(job.problem is None for job in jobs):
        problems = [job.problem for job in jobs if job.problem]
        raise InputError("; ".join(problems) if problems else "no input images found (PNG, JPEG, WebP, BMP or TIFF)")
    return jobs


def _expand_one(text: str, recursive: bool) -> list[Job]:
    path = Path(text)
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        return [Job(p, p.relative_to(path)) for p in files]
    if path.exists():
        return [Job(path, Path(path.name))]
    if glob.has_magic(text):
        matches = sorted(Path(p) for p in glob.glob(text, recursive=recursive) if Path(p).is_file())
        if matches:
            return [Job(p, Path(p.name)) for p in matches]
        return [Job(path, Path(path.name), problem=f"no file matches {text!r}")]
    return [Job(path, Path(path.name), problem=f"{text}: no such file or folder")]


def runnable(jobs: list[Job]) -> int:
    """How many jobs name a real file (what decides whether ``-o`` is one file or a folder)."""
    return sum(job.problem is None for job in jobs)


FileIdentity = tuple[int, int]


def file_identity(path: Path) -> FileIdentity | None:
    """(device, inode): the same file under any spelling of its path, hard links included."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def input_identities(jobs: list[Job]) -> set[FileIdentity]:
    """Every input file of the batch, so that no output replaces one, even with --overwrite."""
    return {identity for job in jobs if job.problem is None and (identity := file_identity(job.source))}


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
    """``4``, or ``2_s3.5`` for ``-x 2 --outscale 3.5``: both factors, so ``-x 2 -s 3.5`` and
    ``-x 4 -s 3.5`` (different pictures of the same size) never share a file name."""
    if outscale is None or outscale == scale:
        return f"{scale:g}"
    return f"{scale:g}_s{outscale:g}"


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
    make_folder(target.parent)
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
             on_done: Callable[[Record], None] = lambda record: None, job_count: int | None = None,
             protected: set[FileIdentity] | None = None) -> list[Record]:
    """Process jobs one by one; failures become records and the batch goes on.

    ``job_count``: runnable jobs in the whole batch (all ranks); ``protected``: identities of
    every input file of the batch (default: these jobs'), which no output may replace.
    """
    records = []
    total = job_count if job_count is not None else runnable(jobs)
    inputs = protected if protected is not None else input_identities(jobs)
    for job in jobs:
        try:
            record = _run_one(job, upscale, model_name, scale, options, total, inputs)
        except (ImageReadError, FileExistsError, ValueError, OSError) as error:
            record = Record(str(job.source), None, "failed", " ".join(str(error).split()))
        records.append(record)
        on_done(record)
    return records


def _run_one(job: Job, upscale: UpscaleFunction, model_name: str, scale: float, options: OutputOptions,
             total: int, inputs: set[FileIdentity]) -> Record:
    """One job's record: a missing input, a refused or skipped target, or the written file."""
    if job.problem is not None:
        return Record(str(job.source), None, "failed", job.problem)
    target, fmt = plan_target(job, model_name, scale, options, total)
    if not target.exists():
        return process_job(job, target, upscale, scale, options, fmt)
    if file_identity(target) in inputs:
        return Record(str(job.source), None, "failed",
                      f"{target} is an input file; not replacing it (choose another -o or --suffix)")
    if options.overwrite:
        return process_job(job, target, upscale, scale, options, fmt)
    if options.skip_existing:
        return Record(str(job.source), str(target), "skipped")
    return Record(str(job.source), None, "failed",
                  f"{target} exists; pass --overwrite to replace or --skip-existing to keep it")


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
    """One ``error: FILE: reason`` line per failed file on stderr (the batch itself went on).

    A message that names its input, or says what could not be done to which file (``cannot
    write upscaled/a_edsr_x4.png: ...``), is shown as it is; others get the input's name first.
    """
    for record in records:
        if record.status == "failed":
            message = record.error or "failed"
            named = record.input in message or message.startswith("cannot ")
            print(f"error: {message if named else f'{record.input}: {message}'}", file=sys.stderr)


def report_outputs(records: list[Record]) -> None:
    """Where each file went: ``in/a.png -> upscaled/a_edsr_x4.png`` (stderr, beside the summary)."""
    for record in records:
        if record.status == "ok":
            print(f"{record.input} -> {record.output}", file=sys.stderr)
        elif record.status == "skipped":
            print(f"{record.input} -> {record.output} (exists, skipped)", file=sys.stderr)


def shard(jobs: list[Job], rank: int, world: int) -> list[Job]:
    """This process's share of the inputs under torchrun (round robin keeps sizes balanced)."""
    return jobs[rank::world]


def world_info() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0"))
