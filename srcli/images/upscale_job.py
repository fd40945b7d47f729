"""The ``upscale`` job: model resolution, progress, per-rank sharding under torchrun, summary."""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoints.resolve import names_a_checkpoint, require_super_resolution, resolve_model
from ..inference.device import pick_device
from ..inference.upscaler import Upscaler
from .batch import (
    Job,
    OutputOptions,
    Record,
    Summary,
    input_identities,
    report_failures,
    report_outputs,
    run_jobs,
    runnable,
    shard,
    summarise,
    world_info,
)


def model_label(model: str | None, weights: str | None, resolved_name: str) -> str:
    """The model part of output names: a weights file's stem, else the shipped name (or blend label).

    Why the stem: ``--weights comic.pth`` is not the shipped esrgan, and naming its outputs
    ``_esrgan_`` would collide with it. A trailing ``_x2`` in the stem is dropped because the
    name gets the scale anyway (``mine_x2.pth`` -> ``a_mine_x2.png``, not ``a_mine_x2_x2.png``).
    """
    source = weights or (model if names_a_checkpoint(model) else None)
    if source is None:
        return resolved_name
    stem = Path(source).stem
    return re.sub(r"[_-]x\d+$", "", stem) or stem


def gather_records(records: list[Record], world: int) -> list[Record]:
    """Combine every rank's records on all ranks (gloo works for CPU and GPU jobs alike)."""
    if world == 1:
        return records
    import torch.distributed as dist

    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, [r.to_dict() for r in records])
    return [Record(**item) for part in gathered for item in part]


def _init_distributed(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")


def run_upscale(jobs: list[Job], options: OutputOptions, *, model: str | None, scale: int | None,
                weights: str | None, alpha: float | None, tile: str | int | None, tile_pad: str | int,
                ensemble: bool, device: str, precision: str, quiet: bool = False, as_json: bool = False,
                echo: Callable[[str], None] = print) -> Summary:
    """Upscale ``jobs``; under torchrun each rank takes its share on its own device."""
    rank, world, local_rank = world_info()
    _init_distributed(world)
    resolved = require_super_resolution(resolve_model(model, scale, weights, alpha))
    label = model_label(model, weights, resolved.name)
    upscaler = Upscaler(resolved.network, scale=resolved.scale, device=pick_device(device, local_rank),
                        precision=precision, tile=tile, tile_pad=tile_pad, ensemble=ensemble,
                        on_notice=lambda text: print(f"note: {text}", file=sys.stderr))
    mine = shard(jobs, rank, world)
    started = time.monotonic()
    show = not quiet and rank == 0
    progress = _ProgressBars(show, len(mine))

    def upscale(image: torch.Tensor) -> torch.Tensor:
        return upscaler.upscale(image, on_tile=progress.tile)

    def done(record: Record) -> None:
        progress.image_done(record)
        if as_json and world == 1:
            tiling = {"tile": upscaler.last_tile_size, "tile_pad": upscaler.last_tile_pad} if record.status == "ok" else {}
            echo(json.dumps({**record.to_dict(), **tiling}))

    with progress:
        records = run_jobs(mine, upscale, label, resolved.scale, options, on_done=done, job_count=runnable(jobs),
                           protected=input_identities(jobs))
    records = gather_records(records, world)
    summary = summarise(records, time.monotonic() - started)
    if rank == 0:
        if as_json and world > 1:
            for record in records:
                echo(json.dumps(record.to_dict()))
        if not quiet:
            report_outputs(records)
        report_failures(records)
        if not quiet:
            print(f"{summary.succeeded} upscaled, {summary.skipped} skipped, {summary.failed} failed; "
                  f"{summary.megapixels:.2f} MP in {summary.seconds:.1f} s with {label} x{resolved.scale} "
                  f"on {upscaler.device} ({upscaler.precision})", file=sys.stderr)
    return summary


class _ProgressBars:
    """Images bar, plus a tiles bar for images split into several tiles (stderr; hidden if quiet)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self.tile_task: Any = None

    def __enter__(self) -> "_ProgressBars":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=False)
            self.bar.start()
            self.images = self.bar.add_task("images", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()

    def tile(self, done: int, total: int) -> None:
        if not self.enabled or total <= 1:
            return
        if self.tile_task is None:
            self.tile_task = self.bar.add_task("tiles", total=total)
        self.bar.update(self.tile_task, completed=done, total=total)
        if done == total:
            self.bar.remove_task(self.tile_task)
            self.tile_task = None

    def image_done(self, record: Record) -> None:
        if self.enabled:
            self.bar.advance(self.images)
