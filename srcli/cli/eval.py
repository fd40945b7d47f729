"""``srcli eval``: PSNR/SSIM/NIQE of models or the bicubic baseline on benchmark datasets or LR photos."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import click

from ..defaults import DEFAULT_MODEL
from .common import console, handle_errors, parse_tile, parse_tile_pad, split_names

if TYPE_CHECKING:
    from ..evaluation.evaluate import ModelSpec, Result

PRECISION_CHOICES = ("fp32", "auto", "fp16", "bf16")


def model_specs(models: Sequence[str], weights: Sequence[str]) -> list[ModelSpec]:
    """``--model`` names, then ``--weights [LABEL=]FILE`` entries (labelled by file stem by default)."""
    from ..evaluation.evaluate import ModelSpec

    specs = [ModelSpec(name) for name in models]
    for entry in weights:
        label, _, path = entry.partition("=") if "=" in entry and not Path(entry).exists() else ("", "", entry)
        specs.append(ModelSpec(label or Path(path).stem, path))
    return specs


def summary_table(results: Sequence[Result]) -> Any:
    """Rows model x scale: parameters, a column per metric and dataset, ms per output megapixel."""
    from rich.table import Table

    from ..evaluation.evaluate import METRIC_LABELS, format_metric, metrics_of

    metrics = metrics_of(results)
    datasets = list(dict.fromkeys(result.dataset for result in results))
    table = Table(title=_title(results, metrics))
    table.add_column("model")
    table.add_column("scale", justify="right")
    table.add_column("params", justify="right")
    for name in datasets:
        for metric in metrics:
            table.add_column(f"{name} {METRIC_LABELS[metric]}", justify="right")
    table.add_column("ms/MP out", justify="right")
    rows: dict[tuple[str, int], list[Result]] = {}
    for result in results:
        rows.setdefault((result.model, result.scale), []).append(result)
    for (model, scale), group in rows.items():
        cells = {result.dataset: result for result in group}
        parameters = group[0].parameters
        values = [f"x{scale}", "-" if parameters is None else f"{parameters:,}"]
        for name in datasets:
            values += ([format_metric(m, getattr(cells[name], m)) for m in metrics] if name in cells
                       else [""] * len(metrics))
        images = [image for result in group for image in result.images]
        megapixels = sum(image.output_megapixels for image in images)
        values.append(f"{1000 * sum(image.seconds for image in images) / megapixels:.0f}" if megapixels else "")
        table.add_row(model, *values)
    return table


def _title(results: Sequence[Result], metrics: Sequence[str]) -> str:
    channel = "RGB" if results and results[0].channel == "rgb" else "Y"
    parts = []
    if "psnr" in metrics or "ssim" in metrics:
        parts.append(" / ".join(label for metric, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"))
                                if metric in metrics) + f" on {channel}")
    if "niqe" in metrics:
        parts.append("NIQE on Y (lower is better)")
    return "Mean " + ", ".join(parts)


def notes(results: Sequence[Result]) -> list[str]:
    """Conventions and where each dataset came from, printed under the table."""
    from ..evaluation.evaluate import AS_GIVEN, metrics_of

    metrics = metrics_of(results)
    upscaled = [r for r in results if r.model != AS_GIVEN]
    borders = sorted({r.border for r in upscaled})
    border = "border = scale" if all(r.border == r.scale for r in upscaled) else f"border = {borders}"
    lines = []
    if upscaled:
        lines.append(f"SR quantised to 8 bits, {border}")
    if any(r.model == AS_GIVEN for r in results):
        given = sorted({r.border for r in results if r.model == AS_GIVEN})
        lines.append(f"{AS_GIVEN}: the images as they are (not upscaled), border = {', '.join(map(str, given))}")
    if "niqe" in metrics:
        reference = "" if results and results[0].reference else "; no HR read: the images given are the inputs"
        lines.append("NIQE: MATLAB's (Mittal et al. 2013), Y channel, 96x96 blocks, pristine model of the release"
                     + reference)
        for r in results:
            if r.niqe_unscored:
                lines.append(f"NIQE {r.dataset} x{r.scale} {r.model}: {r.niqe_unscored} of {len(r.images)} images "
                             "not scored (smaller than two 96x96 blocks after the border crop, or featureless)")
    scales: dict[tuple[str, str, str], list[str]] = {}
    for r in results:
        tags = scales.setdefault((r.dataset, r.path, r.layout), [])
        if f"x{r.scale}" not in tags:
            tags.append(f"x{r.scale}")
    places = [f"{name} ({', '.join(tags)}): {path} [{layout}]" for (name, path, layout), tags in scales.items()]
    return [*lines, *places]


def per_image_tables(results: Sequence[Result]) -> list[Any]:
    """One table per (dataset, scale): rows images (then the mean), a column per model and metric."""
    from rich.table import Table

    from ..evaluation.evaluate import METRIC_LABELS, format_metric, metrics_of

    metrics = metrics_of(results)
    groups: dict[tuple[str, int], list[Result]] = {}
    for result in results:
        groups.setdefault((result.dataset, result.scale), []).append(result)
    tables = []
    for (dataset, scale), group in groups.items():
        table = Table(title=f"{dataset} x{scale}: per image")
        table.add_column("image")
        for result in group:
            for metric in metrics:
                table.add_column(f"{result.model} {METRIC_LABELS[metric]}", justify="right")
        for index, image in enumerate(group[0].images):
            table.add_row(image.name, *[format_metric(m, getattr(r.images[index], m)) for r in group for m in metrics])
        table.add_row("mean", *[format_metric(m, getattr(r, m)) for r in group for m in metrics], style="bold")
        tables.append(table)
    return tables


def _run_with_progress(quiet: bool, **kwargs: Any) -> list[Result]:
    """``evaluate`` under a rich progress bar on stderr (hidden with --quiet or off a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..evaluation.evaluate import evaluate

    err = console(stderr=True, quiet=quiet)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=quiet) as bar:
        task = bar.add_task("evaluating", total=None)

        def advance(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        return evaluate(progress=advance, **kwargs)


@click.command("eval")
@click.argument("datasets", nargs=-1, required=True, metavar="DATASET...")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME",
              help="Shipped model name, 'bicubic' for the baseline, or 'none' (alias 'input') to score the images "
                   "as they are (--metric niqe only). Repeat or comma-separate to compare (-m bicubic,edsr). "
                   f"Default (no --model or --weights): bicubic and the default model ({DEFAULT_MODEL}).")
@click.option("--weights", multiple=True, metavar="[LABEL=]FILE",
              help="Your own checkpoint (repeatable); the row is labelled LABEL or the file name.")
@click.option("-x", "--scale", "scales", type=click.IntRange(min=1), multiple=True,
              help="Upscaling factor; repeat for several (default 4).")
@click.option("--data-root", type=click.Path(file_okay=False),
              help="Where benchmark names are looked up (then $SRCLI_DATA, ~/.cache/srcli/datasets).")
@click.option("--metric", "metric", multiple=True, metavar="psnr,ssim,niqe",
              help="Metrics, comma-separated or repeated (default psnr,ssim). NIQE needs no HR: with niqe alone "
                   "a folder's images (a paired layout's LR) are upscaled and the output scored.")
@click.option("--border", type=click.IntRange(min=0),
              help="Pixels cropped from each side before measuring, for every metric (default: the scale; "
                   "0 for -m none).")
@click.option("--rgb", is_flag=True, help="PSNR/SSIM on RGB instead of the Y channel (NIQE is always on Y).")
@click.option("--ensemble", is_flag=True, help="Self-ensemble: average the 8 flips/rotations (x8 slower).")
@click.option("--tile", default="auto", show_default=True, metavar="auto|none|N",
              help="Tile side in LR pixels; none (or 0) runs each image whole.")
@click.option("--tile-pad", default="auto", show_default=True, metavar="auto|full|N", help="Tile context.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="fp32", show_default=True,
              help="fp32 by default (upscale's default is auto) so benchmark numbers are exact and repeatable.")
@click.option("--per-image", is_flag=True, help="Also print a table per dataset and scale with every image.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON record per (dataset, model, scale) on stdout, as in every command; the table goes "
                   "to stderr.")
@click.option("--json-file", "json_path", type=click.Path(dir_okay=False),
              help="Write all results, with per-image records, as one JSON document.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write per-image rows and means as CSV.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False),
              help="Write the summary as a Markdown table (rows by scale, bicubic beside the models).")
@click.option("--save-images", type=click.Path(file_okay=False), help="Write SR results as PNG under DIR.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no 'wrote ...' messages.")
@handle_errors
def eval_command(datasets: tuple[str, ...], models: tuple[str, ...], weights: tuple[str, ...],
                 scales: tuple[int, ...], data_root: str | None, metric: tuple[str, ...], border: int | None,
                 rgb: bool, ensemble: bool,
                 tile: str, tile_pad: str, device: str, precision: str, per_image: bool, as_json: bool,
                 json_path: str | None,
                 csv_path: str | None, markdown_path: str | None, save_images: str | None, quiet: bool) -> None:
    """PSNR/SSIM/NIQE of SR models on benchmark DATASETs (folders or names such as Set5, Set14, B100).

    Example: srcli eval Set5 Set14 --model bicubic --model edsr -x 2 -x 4

    NIQE (no reference, lower is better) of real LR photos: srcli eval photos/ -m bicubic -m esrgan --metric niqe
    """
    from ..evaluation.evaluate import InferenceOptions, results_csv, results_json, results_markdown, write_report

    if as_json and any(name.lower().endswith(".json") for name in datasets):
        raise click.UsageError("--json prints records on stdout, as in every srcli command; "
                               "write a file with --json-file FILE")
    models = tuple(split_names(models))
    if not models and not weights:  # `srcli eval Set5`: the default model beside its baseline, like upscale
        models = ("bicubic", DEFAULT_MODEL)
    options = InferenceOptions(device, precision, parse_tile(tile), parse_tile_pad(tile_pad), ensemble)
    skipped: list[str] = []
    results = _run_with_progress(quiet, datasets=datasets, models=model_specs(models, weights),
                                 scales=scales or (4,), data_root=data_root, border=border, rgb=rgb,
                                 metrics=metric or None,
                                 options=options, save_images=save_images, on_skip=skipped.append)
    if as_json:
        for record in result_records(results):
            click.echo(json.dumps(record, allow_nan=False))
    out = console(stderr=as_json)  # with --json, stdout holds only the records
    if not out.is_terminal:
        out.width = max(out.width, 200)  # files and pipes: never wrap numbers
    if per_image:
        for table in per_image_tables(results):
            out.print(table)
    out.print(summary_table(results))
    for line in [*notes(results), *skipped]:
        out.print(line, style="dim", highlight=False, markup=False, soft_wrap=True)  # [layout] is no markup
    err = console(stderr=True, quiet=quiet)
    for path, render in ((json_path, results_json), (csv_path, results_csv), (markdown_path, results_markdown)):
        if path:
            err.print(f"wrote {write_report(path, render(results))}", highlight=False, soft_wrap=True)
    if save_images:
        err.print(f"wrote SR images under {save_images}", highlight=False, soft_wrap=True)


def result_records(results: Sequence[Result]) -> list[dict[str, Any]]:
    """One flat record per result (means; per-image records are in --json-file), strict JSON."""
    records = []
    for result in results:
        record = {key: value for key, value in result.to_dict().items() if key != "images"}
        records.append({key: (None if isinstance(value, float) and not math.isfinite(value) else value)
                        for key, value in record.items()})
    return records


COMMANDS = [eval_command]
