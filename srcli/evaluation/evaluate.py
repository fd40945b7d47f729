"""Benchmark evaluation: PSNR/SSIM/NIQE of models (or the bicubic baseline) on SR datasets.

Usable without the CLI: ``evaluate(["Set5"], ["bicubic"], [2, 4])`` returns one
:class:`Result` per (model, scale, dataset) with per-image records. Conventions follow the SR
literature (see ``metrics`` and ``niqe``): Y channel, ``scale`` border pixels cropped, SR
quantised to 8 bits. Every dataset and model is resolved before any image is processed, so a
typo fails in a second rather than after an hour of inference.

``metrics`` picks what is measured (PSNR and SSIM by default). NIQE needs no reference: asked
for alone, the images of a dataset are the inputs (a paired layout's LR images, otherwise the
folder's images as they are), each is upscaled and the output scored, so folders of real LR
photos can be evaluated; the model ``none`` (alias ``input``) scores the images themselves.
Asked for beside PSNR/SSIM, NIQE scores the same SR images they measure.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..errors import DataError
from ..files import atomic_write
from ..images.io import ImageReadError
from ..imresize import imresize, quantize
from .datasets import Dataset, ImagePair, distinct_names, load_pair, open_dataset, read_rgb
from .metrics import psnr, ssim
from .niqe import NiqeTooSmall, niqe

BICUBIC = "bicubic"
#: The model that leaves images as they are (NIQE of the inputs themselves); ``input`` is an alias.
AS_GIVEN = "none"
AS_GIVEN_ALIASES = ("none", "input")
METRICS = ("psnr", "ssim", "niqe")
DEFAULT_METRICS = ("psnr", "ssim")
REFERENCE_METRICS = ("psnr", "ssim")  # these compare with an HR image; NIQE does not
#: Metrics asked for that srcli cannot compute offline, and why (docs/metrics.md).
UNAVAILABLE_METRICS = {
    "pi": "the Perceptual Index needs Ma's score, whose trained regression forests srcli cannot ship",
    "ma": "Ma's score needs trained regression forests that srcli cannot ship",
    "lpips": "LPIPS needs ImageNet-trained AlexNet/VGG weights that srcli cannot ship",
}
Runner = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int, str], None]


class EvalError(DataError):
    """Bad evaluation request (no models, bad option); a DataError so the CLI shows one line."""


@dataclass(frozen=True)
class ModelSpec:
    """What to evaluate: ``bicubic``, a shipped model name, or a checkpoint file labelled ``name``."""

    name: str
    weights: str | None = None


@dataclass(frozen=True)
class InferenceOptions:
    """Passed to :class:`srcli.upscaler.Upscaler`; fp32 by default so numbers are reproducible."""

    device: str = "auto"
    precision: str = "fp32"
    tile: str | int | None = "auto"
    tile_pad: str | int = "auto"
    ensemble: bool = False


@dataclass
class ImageResult:
    """One image's scores; metrics that were not asked for are NaN (and left out of reports)."""

    name: str
    psnr: float
    ssim: float
    seconds: float
    output_megapixels: float = 0.0
    niqe: float = math.nan  # NaN also for an image too small for NIQE (fewer than two 96x96 blocks)


@dataclass
class Result:
    """One (model, scale, dataset) cell: the mean and the per-image records behind it."""

    dataset: str
    path: str
    layout: str
    model: str
    scale: int
    border: int
    channel: str
    parameters: int | None = None  # None for bicubic
    images: list[ImageResult] = field(default_factory=list)
    metrics: tuple[str, ...] = DEFAULT_METRICS

    @property
    def reference(self) -> bool:
        """Whether images were compared with HR ground truth (False: NIQE alone, no HR read)."""
        return any(metric in REFERENCE_METRICS for metric in self.metrics)

    @property
    def psnr(self) -> float:
        return _mean([image.psnr for image in self.images])

    @property
    def ssim(self) -> float:
        return _mean([image.ssim for image in self.images])

    @property
    def niqe(self) -> float:
        """Mean NIQE over the images it is defined for (see :attr:`niqe_unscored`); lower is better."""
        return _mean([image.niqe for image in self.images if math.isfinite(image.niqe)])

    @property
    def niqe_unscored(self) -> int:
        """Images NIQE could not score: smaller than two 96x96 blocks after the border crop, or featureless."""
        return sum(not math.isfinite(image.niqe) for image in self.images) if "niqe" in self.metrics else 0

    @property
    def seconds_per_image(self) -> float:
        return _mean([image.seconds for image in self.images])

    @property
    def ms_per_output_megapixel(self) -> float:
        """Wall time per output megapixel: comparable across image sizes, unlike seconds per image."""
        megapixels = sum(image.output_megapixels for image in self.images)
        return 1000 * sum(image.seconds for image in self.images) / megapixels if megapixels else math.nan

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data; only the metrics asked for appear (per result and per image)."""
        data = asdict(self)
        data["metrics"] = list(self.metrics)
        skipped = [metric for metric in METRICS if metric not in self.metrics]
        for image in data["images"]:
            for metric in skipped:
                del image[metric]
        data.update({metric: getattr(self, metric) for metric in self.metrics})
        if "niqe" in self.metrics:
            data["niqe_unscored"] = self.niqe_unscored
        data.update(seconds_per_image=self.seconds_per_image, ms_per_output_megapixel=self.ms_per_output_megapixel)
        return data


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


# ----------------------------------------------------------------------------- models


def as_spec(model: str | ModelSpec) -> ModelSpec:
    """A ModelSpec; ``none``/``input`` (any case, without weights) become :data:`AS_GIVEN`."""
    spec = model if isinstance(model, ModelSpec) else ModelSpec(model)
    if spec.weights is None and spec.name.lower() in AS_GIVEN_ALIASES:
        return ModelSpec(AS_GIVEN)
    return spec


def is_as_given(spec: ModelSpec) -> bool:
    return spec.weights is None and spec.name == AS_GIVEN


def parse_metrics(metrics: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """``"psnr,ssim,niqe"`` or ``["psnr", "niqe"]`` -> metric names in canonical order (default PSNR, SSIM)."""
    if metrics is None:
        return DEFAULT_METRICS
    texts = [metrics] if isinstance(metrics, str) else list(metrics)
    names = [name.strip().lower() for text in texts for name in text.split(",") if name.strip()]
    if not names:
        raise EvalError(f"no metric given; choose from {', '.join(METRICS)}")
    for name in names:
        if name in UNAVAILABLE_METRICS:
            raise EvalError(f"metric {name!r} is not available: {UNAVAILABLE_METRICS[name]} "
                            f"(see docs/metrics.md); choose from {', '.join(METRICS)}")
        if name not in METRICS:
            raise EvalError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return tuple(metric for metric in METRICS if metric in names)


def parameter_count(runner: Runner) -> int | None:
    """Parameters of the network behind a runner (None for bicubic), read off the loaded model.

    Model runners are ``Upscaler.upscale`` bound methods, so nothing is loaded a second time.
    """
    upscaler = getattr(runner, "__self__", None)
    return None if upscaler is None else sum(parameter.numel() for parameter in upscaler.model.parameters())


def bicubic_runner(scale: int) -> Runner:
    """The baseline every SR paper reports: MATLAB bicubic upscaling of the LR, saved as 8 bits."""

    def run(lr: torch.Tensor) -> torch.Tensor:
        height, width = lr.shape[-2:]
        return quantize(imresize(lr.double(), size=(height * scale, width * scale))).float()

    return run


def model_runner(spec: ModelSpec, scale: int, options: InferenceOptions) -> Runner:
    """Shipped weights by name, or ``spec.weights``, wrapped in an Upscaler at ``scale``."""
    from ..checkpoints.resolve import require_super_resolution, resolve_model
    from ..inference.upscaler import Upscaler

    resolved = require_super_resolution(resolve_model(None if spec.weights else spec.name, scale, spec.weights))
    try:
        upscaler = Upscaler(resolved.network, scale=resolved.scale, device=options.device,
                            precision=options.precision, tile=options.tile, tile_pad=options.tile_pad,
                            ensemble=options.ensemble)
    except ValueError as error:  # bad --precision/--tile/--device: one line for the user
        raise EvalError(str(error)) from None
    return upscaler.upscale


def as_given_runner(image: torch.Tensor) -> torch.Tensor:
    """The model ``none``: the image as it is (for NIQE of the inputs themselves)."""
    return image


def make_runner(spec: ModelSpec, scale: int, options: InferenceOptions) -> Runner:
    if is_as_given(spec):
        return as_given_runner
    if spec.name == BICUBIC and spec.weights is None:
        return bicubic_runner(scale)
    return model_runner(spec, scale, options)


def _unique(items: Sequence[Any]) -> list[Any]:
    """Order-preserving dedupe: ``-x 4 -x 4`` should not evaluate twice."""
    return list(dict.fromkeys(items))


# ----------------------------------------------------------------------------- running


def _timed(runner: Runner, lr: torch.Tensor) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    sr = runner(lr)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return sr, time.perf_counter() - start


def _safe(text: str) -> str:
    """A label usable as one path component."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._") or "model"


def save_sr(directory: Path, result: Result, name: str, sr: torch.Tensor) -> Path:
    """``DIR/<dataset>/<model>_x<scale>/<image>.png`` (8-bit, replacing an older run's file)."""
    from ..images.io import write_image

    path = directory / _safe(result.dataset) / f"{_safe(result.model)}_x{result.scale}" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image(path, sr, overwrite=True)


def evaluate(datasets: Sequence[str | os.PathLike[str]], models: Sequence[str | ModelSpec], scales: Sequence[int], *,
             data_root: str | os.PathLike[str] | None = None, border: int | None = None, rgb: bool = False,
             options: InferenceOptions = InferenceOptions(), save_images: str | os.PathLike[str] | None = None,
             progress: Progress | None = None, on_skip: Callable[[str], None] | None = None,
             metrics: str | Sequence[str] | None = None) -> list[Result]:
    """``metrics`` (default PSNR, SSIM) for every model x scale x dataset; results ordered model, scale, dataset.

    ``border`` defaults to the scale (0 for the model ``none``) and applies to every metric;
    ``rgb`` measures PSNR/SSIM on RGB instead of Y (NIQE is always on Y). With NIQE alone no HR
    is read: the inputs are the dataset's LR images, or its images as they are (see the module
    notes). ``progress`` is called as (images done, total, label) after each SR image;
    ``on_skip`` hears of model/scale pairs left out because the model lacks that scale.
    """
    chosen = parse_metrics(metrics)
    reference = any(metric in REFERENCE_METRICS for metric in chosen)
    specs, scales = _unique([as_spec(m) for m in models]), _unique([int(s) for s in scales])
    _check_request(datasets, specs, scales, border, reference)
    keys = [(index, scale) for index in range(len(datasets)) for scale in scales]
    opened = dict(zip(keys, distinct_names([open_dataset(datasets[index], scale, data_root) for index, scale in keys])))
    runners = _runners(specs, scales, options, on_skip)
    parameters = {key: parameter_count(runner) for key, runner in runners.items()}
    results = {(spec, scale, index): _empty_result(dataset, spec, scale, border, rgb, parameters[(spec, scale)],
                                                   chosen)
               for (index, scale), dataset in opened.items() for spec in specs if (spec, scale) in runners}
    total = sum(len(opened[(index, scale)].pairs) for (_, scale, index) in results)
    done = 0
    for (index, scale), dataset in opened.items():
        for pair in dataset.pairs:
            lr, hr = load_pair(pair, scale) if reference else (load_input(pair), None)
            for spec in specs:
                if (spec, scale) not in runners:
                    continue
                result = results[(spec, scale, index)]
                sr, seconds = _timed(runners[(spec, scale)], lr)
                result.images.append(_measure(pair.name, sr, hr, result, seconds))
                if save_images is not None:
                    save_sr(Path(save_images), result, pair.name, sr)
                done += 1
                if progress is not None:
                    progress(done, total, f"{dataset.name} x{scale} {result.model}")
    return [results[(spec, scale, index)] for spec in specs for scale in scales for index in range(len(datasets))
            if (spec, scale, index) in results]


def _runners(specs: list[ModelSpec], scales: list[int], options: InferenceOptions,
             on_skip: Callable[[str], None] | None) -> dict[tuple[ModelSpec, int], Runner]:
    """A runner per (model, scale); a model missing some of several scales is skipped there.

    One table over x2/x3/x4 should not need every model at every scale; a model with none of
    the requested scales is still an error.
    """
    from ..checkpoints.shipped import MissingScale

    runners: dict[tuple[ModelSpec, int], Runner] = {}
    for spec in specs:
        skipped: list[MissingScale] = []
        for scale in scales:
            try:
                runners[(spec, scale)] = make_runner(spec, scale, options)
            except MissingScale as error:
                skipped.append(error)
        if len(skipped) == len(scales):
            raise skipped[0]
        for error in skipped:
            if on_skip is not None:
                on_skip(f"skipped: {error}")
    return runners


def load_input(pair: ImagePair) -> torch.Tensor:
    """The image a no-reference evaluation starts from: the pair's LR if it has one, else the image itself."""
    try:
        return read_rgb(pair.lr if pair.lr is not None else pair.hr).float()
    except ImageReadError as error:
        raise DataError(str(error)) from None


def _check_request(datasets: Sequence[Any], specs: list[ModelSpec], scales: list[int], border: int | None,
                   reference: bool = True) -> None:
    if not datasets:
        raise EvalError("no dataset given; name a folder or a benchmark (Set5, Set14, B100, Urban100, ...)")
    if not specs:
        raise EvalError("no model given; use --model NAME (e.g. bicubic) or --weights FILE")
    if not scales or any(scale < 1 for scale in scales):
        raise EvalError(f"scales must be positive integers, got {scales}")
    if border is not None and border < 0:
        raise EvalError(f"border must be >= 0, got {border}")
    if reference and any(is_as_given(spec) for spec in specs):
        raise EvalError(f"model {AS_GIVEN!r} scores the images as they are, so it needs a no-reference metric: "
                        "use --metric niqe (PSNR and SSIM compare an upscaled image with its HR)")


def _layout(dataset: Dataset, reference: bool) -> str:
    if reference:
        return dataset.layout
    if any(pair.lr is not None for pair in dataset.pairs):
        return f"{dataset.layout}: LR images only, no reference"
    return "images as inputs, no reference"


def _empty_result(dataset: Dataset, spec: ModelSpec, scale: int, border: int | None, rgb: bool,
                  parameters: int | None = None, metrics: tuple[str, ...] = DEFAULT_METRICS) -> Result:
    reference = any(metric in REFERENCE_METRICS for metric in metrics)
    default_border = 0 if is_as_given(spec) else scale
    return Result(dataset.name, str(dataset.root), _layout(dataset, reference), spec.name, scale,
                  default_border if border is None else border, "rgb" if rgb else "y", parameters,
                  metrics=metrics)


def _measure(name: str, sr: torch.Tensor, hr: torch.Tensor | None, result: Result, seconds: float) -> ImageResult:
    y_channel = result.channel == "y"
    scores = {"psnr": math.nan, "ssim": math.nan, "niqe": math.nan}
    if hr is not None and "psnr" in result.metrics:
        scores["psnr"] = psnr(sr, hr, result.border, y_channel)
    if hr is not None and "ssim" in result.metrics:
        scores["ssim"] = ssim(sr, hr, result.border, y_channel)
    if "niqe" in result.metrics:
        try:
            scores["niqe"] = niqe(sr, result.border)
        except NiqeTooSmall:
            pass  # counted in Result.niqe_unscored and reported under the table
    return ImageResult(name, scores["psnr"], scores["ssim"], seconds, sr.shape[-2] * sr.shape[-1] / 1e6,
                       scores["niqe"])


# ----------------------------------------------------------------------------- reports


def _finite_or_none(value: float) -> float | None:
    """JSON has no infinity: identical images (PSNR inf) are written as null."""
    return value if math.isfinite(value) else None


def results_json(results: Sequence[Result]) -> str:
    """All results with per-image records; non-finite numbers become null (strict JSON)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float):
            return _finite_or_none(value)
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return json.dumps({"results": [clean(r.to_dict()) for r in results]}, indent=2, allow_nan=False) + "\n"


CSV_FIELDS = ("dataset", "model", "scale", "image", "psnr", "ssim", "seconds", "border", "channel", "path")
MEAN_ROW = "(mean)"
METRIC_LABELS = {"psnr": "PSNR", "ssim": "SSIM", "niqe": "NIQE"}


def metrics_of(results: Sequence[Result]) -> tuple[str, ...]:
    """The metrics measured in ``results`` (one evaluate call measures the same ones everywhere)."""
    found = {metric for result in results for metric in result.metrics}
    return tuple(metric for metric in METRICS if metric in found) if results else DEFAULT_METRICS


def csv_fields(metrics: Sequence[str] = DEFAULT_METRICS) -> tuple[str, ...]:
    """The CSV header: a column per metric asked for (the default gives :data:`CSV_FIELDS`)."""
    return ("dataset", "model", "scale", "image", *metrics, "seconds", "border", "channel", "path")


def format_metric(metric: str, value: float) -> str:
    """Table text: PSNR to 0.01 dB (``inf`` for identical images), SSIM to 1e-4, NIQE to 1e-3 (``n/a`` if undefined)."""
    if metric == "psnr":
        return "inf" if value == math.inf else f"{value:.2f}"
    if metric == "ssim":
        return f"{value:.4f}"
    return f"{value:.3f}" if math.isfinite(value) else "n/a"


def metric_header(metrics: Sequence[str], channel: str) -> str:
    """``PSNR / SSIM (Y)``, ``PSNR / SSIM (Y) / NIQE`` or ``NIQE`` (NIQE is always on Y)."""
    compared = " / ".join(METRIC_LABELS[m] for m in metrics if m in REFERENCE_METRICS)
    parts = [f"{compared} ({channel})"] if compared else []
    return " / ".join(parts + [METRIC_LABELS[m] for m in metrics if m not in REFERENCE_METRICS])


def results_csv(results: Sequence[Result]) -> str:
    """One row per image plus a ``(mean)`` row per result; a column per metric asked for."""
    metrics = metrics_of(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_fields(metrics))
    for result in results:
        rows = [(image.name, [getattr(image, m) for m in metrics], image.seconds) for image in result.images]
        rows.append((MEAN_ROW, [getattr(result, m) for m in metrics], result.seconds_per_image))
        for name, values, seconds in rows:
            writer.writerow((result.dataset, result.model, result.scale, name, *[repr(v) for v in values],
                             f"{seconds:.6f}", result.border, result.channel, result.path))
    return buffer.getvalue()


def results_markdown(results: Sequence[Result]) -> str:
    """The summary as a Markdown table (for READMEs): rows by scale, then in the order models were given."""
    metrics = metrics_of(results)
    datasets = list(dict.fromkeys(result.dataset for result in results))
    channel = "RGB" if results and results[0].channel == "rgb" else "Y"
    header = ["model", "scale", "parameters", *[f"{name} {metric_header(metrics, channel)}" for name in datasets],
              "ms per output MP"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    groups: dict[tuple[int, str], list[Result]] = {}
    for result in results:
        groups.setdefault((result.scale, result.model), []).append(result)
    order = {model: index for index, model in enumerate(dict.fromkeys(result.model for result in results))}
    for (scale, model), group in sorted(groups.items(), key=lambda item: (item[0][0], order[item[0][1]])):
        cells = {result.dataset: result for result in group}
        scores = [" / ".join(format_metric(m, getattr(cells[name], m)) for m in metrics) if name in cells else ""
                  for name in datasets]
        parameters = group[0].parameters
        images = [image for result in group for image in result.images]
        megapixels = sum(image.output_megapixels for image in images)
        speed = 1000 * sum(image.seconds for image in images) / megapixels if megapixels else math.nan
        lines.append("| " + " | ".join([model, f"x{scale}", "-" if parameters is None else f"{parameters:,}",
                                        *scores, f"{speed:.0f}"]) + " |")
    return "\n".join(lines) + "\n"


def write_report(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` atomically (temporary file + rename): a crash never leaves half a report."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda temp: temp.write_text(text, encoding="utf-8"))
    return target
