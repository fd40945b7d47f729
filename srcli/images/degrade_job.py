"""The ``degrade`` job: HR files -> LR files with the same safety rules as ``upscale``."""
from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any, Callable, Mapping

import torch

from ..degradation.classical import ClassicalDegradation, bicubic_lr, crop_for_scale
from ..degradation.dsgan import load_dsgan
from ..degradation.realworld import RealWorldDegradation, settings_from
from ..inference.device import pick_device
from ..inference.upscaler import Upscaler
from .batch import Job, OutputOptions, Record, Summary, report_failures, run_jobs, summarise


def make_degrader(method: str, scale: int, weights: str | None, blur: float, noise: float, jpeg: int | None,
                  seed: int, device: str, realworld: Mapping[str, Any] | None = None
                  ) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """(function HR (C,H,W) -> LR, name used in output files)."""
    if method == "bicubic":
        return (lambda hr: bicubic_lr(crop_for_scale(hr, scale), scale)), "bicubic"
    if method == "realworld":
        return RealWorldFileDegrader(scale, seed, realworld), "realworld"
    if method == "classical":
        degradation = ClassicalDegradation(blur=blur, noise=noise, jpeg=jpeg, seed=seed)
        return (lambda hr: degradation(crop_for_scale(hr, scale), scale)), "classical"
    if weights:
        generator = load_dsgan(weights)
    else:
        from ..checkpoints.shipped import load_shipped

        generator, _ = load_shipped("dsgan")
    # Large images are tiled exactly like upscaling (DSGAN is a scale-1 network).
    upscaler = Upscaler(generator, scale=1, device=pick_device(device), precision="fp32", tile="auto")
    rng_devices = [upscaler.device.index or 0] if upscaler.device.type == "cuda" else []

    def dsgan(hr: torch.Tensor) -> torch.Tensor:
        from ..imresize import imresize, quantize

        lr = imresize(crop_for_scale(hr, scale), 1.0 / scale).clamp(0, 1)
        # A noise-input DSGAN: the same file and --seed give the same LR; the seeded RNG state is
        # confined to this call, so nothing else in the process inherits it.
        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(seed)
            return quantize(upscaler.upscale(lr))

    return dsgan, "dsgan"


class RealWorldFileDegrader:
    """The training pipeline on whole images. Each image's chain is drawn from (seed, its pixels),
    so an image gets the same LR whatever else is in the batch or in which order it comes.

    ``chain`` holds the stages drawn for the last image (``srcli degrade --json`` prints them),
    so users can see which blur, noise and quality made each LR."""

    def __init__(self, scale: int, seed: int, settings: Mapping[str, Any] | None = None) -> None:
        self.degradation = RealWorldDegradation(settings_from(settings))
        self.scale = scale
        self.seed = seed
        self.chain: list[dict[str, Any]] = []

    def __call__(self, hr: torch.Tensor) -> torch.Tensor:
        rgb = hr[:3] if hr.shape[0] >= 3 else hr.expand(3, -1, -1)
        digest = hashlib.sha256(f"{self.seed}:".encode() + (rgb * 255).round().to(torch.uint8).numpy().tobytes())
        generator = torch.Generator().manual_seed(int.from_bytes(digest.digest()[:8], "little") >> 1)
        self.chain = []
        return self.degradation.one(crop_for_scale(rgb, self.scale), self.scale, generator, note=self._note)

    def _note(self, stage: str, values: dict[str, Any]) -> None:
        self.chain.append({"stage": stage, **{key: _plain(value) for key, value in values.items()}})


def _plain(value: Any) -> Any:
    """JSON-friendly: floats rounded to what matters, tuples as lists."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def run_degrade(jobs: list[Job], options: OutputOptions, *, method: str, scale: int, weights: str | None,
                blur: float, noise: float, jpeg: int | None, seed: int, device: str, quiet: bool = False,
                as_json: bool = False, echo: Callable[[str], None] = print,
                realworld: Mapping[str, Any] | None = None) -> Summary:
    degrade, name = make_degrader(method, scale, weights, blur, noise, jpeg, seed, device, realworld)

    def done(record: Record) -> None:
        if as_json:
            fields = record.to_dict()
            if isinstance(degrade, RealWorldFileDegrader) and record.status == "ok":
                fields["chain"] = degrade.chain
            echo(json.dumps(fields))

    started = time.monotonic()
    records = run_jobs(jobs, degrade, name, 1.0 / scale, options, on_done=done)
    summary = summarise(records, time.monotonic() - started)
    report_failures(records)
    if not quiet:
        print(f"{summary.succeeded} degraded, {summary.skipped} skipped, {summary.failed} failed "
              f"({name} x{scale}) in {summary.seconds:.1f} s", file=sys.stderr)
    return summary
