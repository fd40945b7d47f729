"""``srcli eval``: PSNR/SSIM of models or the bicubic baseline on benchmark datasets."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import click

from ..defaults import DEFAULT_MODEL
from .common import console, handle_errors

if TYPE_CHECKING:
    from ..evaluation.evaluate import ModelSpec, Result

PRECISION_CHOICES = ("fp32", "auto", "fp16", "bf16")


def parse_tile(value: str) -> str | int | None:
    """``auto``, ``0`` (no tiling) or a tile side in pixels."""
    if value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not auto or a number of pixels", param_hint="--tile") from None
    if number < 0:
        raise click.BadParameter("must be >= 0", param_hint="--tile")
    return number or None


def model_specs(models: Sequence[str], weights: Sequence[str]) -> list[ModelSpec]:
    """``--model`` names, then ``--weights [LABEL=]FILE`` entries (labelled by file stem by default)."""
    from ..evaluation.evaluate import ModelSpec

    specs = [ModelSpec(name) for name in models]
    for entry in weights:
        label, _, path = entry.partition("=") if "=" in entry and not Path(entry).exists() else ("", "", entry)
        specs.append(ModelSpec(label or Path(path).stem, path))
    return specs


def _fmt_psnr(value: float) -> str:
    return "inf" if value == float("inf") else f"{value:.2f}"


def _fmt_ssim(value: float) -> str:
    return f"{value:.4f}"


def summary_table(results: Sequence[Result]) -> Any:
    """Rows model x scale: parameters, two columns (PSNR, SSIM) per dataset, ms per output megapixel."""
    from rich.table import Table

    datasets = list(dict.fromkeys(result.dataset for result in results))
    channel = "RGB" if results and results[0].channel == "rgb" else "Y"
    table = Table(title=f"Mean PSNR (dB) / SSIM on {channel}")
    table.add_column("model")
    table.add_column("scale", justify="right")
    table.add_column("params", justify="right")
    for name in datasets:
        table.add_column(f"{name} PSNR", justify="right")
        table.add_column(f"{name} SSIM", justify="right")
    table.add_column("ms/MP out", justify="right")
    rows: dict[tuple[str, int], list[Result]] = {}
    for result in results:
        rows.setdefault((result.model, result.scale), []).append(result)
    for (model, scale), group in rows.items():
        cells = {result.dataset: result for result in group}
        parameters = group[0].parameters
        values = [f"x{scale}", "-" if parameters is None else f"{parameters:,}"]
        for name in datasets:
            values += [_fmt_psnr(cells[name].psnr), _fmt_ssim(cells[name].ssim)] if name in cells else ["", ""]
        images = [image for result in group for image in result.images]
        megapixels = sum(image.output_megapixels for image in images)
        values.append(f"{1000 * sum(image.seconds for image in images) / megapixels:.0f}" if megapixels else "")
        table.add_row(model, *values)
    return table


def notes(results: Sequence[Result]) -> list[str]:
    """Conventions and where each dataset came from, printed under the table."""
    borders = sorted({result.border for result in results})
    border = "border = scale" if all(r.border == r.scale for r in results) else f"border = {borders}"
    scales: dict[tuple[str, str, str], list[str]] = {}
    for r in results:
        tags = scales.setdefault((r.dataset, r.path, r.layout), [])
        if f"x{r.scale}" not in tags:
            tags.append(f"x{r.scale}")
    places = [f"{name} ({', '.join(tags)}): {path} [{layout}]" for (name, path, layout), tags in scales.items()]
    return [f"SR quantised to 8 bits, {border}", *places]


def per_image_tables(results: Sequence[Result]) -> list[Any]:
    """One table per (dataset, scale): rows images (then the mean), columns PSNR/SSIM per model."""
    from rich.table import Table

    groups: dict[tuple[str, int], list[Result]] = {}
    for result in results:
        groups.setdefault((result.dataset, result.scale), []).append(result)
    tables = []
    for (dataset, scale), group in groups.items():
        table = Table(title=f"{dataset} x{scale}: per image")
        table.add_column("image")
        for result in group:
            table.add_column(f"{result.model} PSNR", justify="right")
            table.add_column(f"{result.model} SSIM", justify="right")
        for index, image in enumerate(group[0].images):
            cells = [(_fmt_psnr(r.images[index].psnr), _fmt_ssim(r.images[index].ssim)) for r in group]
            table.add_row(image.name, *[value for pair in cells for value in pair])
        means = [(_fmt_psnr(r.psnr), _fmt_ssim(r.ssim)) for r in group]
        table.add_row("mean", *[value for pair in means for value in pair], style="bold")
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
              help="Shipped model name, or 'bicubic' for the baseline. Repeat to compare. "
                   f"Default (no --model or --weights): bicubic and the default model ({DEFAULT_MODEL}).")
@click.option("--weights", multiple=True, metavar="[LABEL=]FILE",
              help="Your own checkpoint (repeatable); the row is labelled LABEL or the file name.")
@click.option("-x", "--scale", "scales", type=click.IntRange(min=1), multiple=True,
              help="Upscaling factor; repeat for several (default 4).")
@click.option("--data-root", type=click.Path(file_okay=False),
              help="Where benchmark names are looked up (then $SRCLI_DATA, ~/.cache/srcli/datasets).")
@click.option("--border", type=click.IntRange(min=0), help="Pixels cropped from each side (default: the scale).")
@click.option("--rgb", is_flag=True, help="Measure on RGB instead of the Y channel.")
@click.option("--ensemble", is_flag=True, help="Self-ensemble: average the 8 flips/rotations (x8 slower).")
@click.option("--tile", default="auto", show_default=True, metavar="auto|0|N", help="Tile side in LR pixels.")
@click.option("--tile-pad", default="auto", show_default=True, metavar="auto|full|N", help="Tile context.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="fp32", show_default=True,
              help="fp32 by default so benchmark numbers are exact.")
@click.option("--per-image", is_flag=True, help="Also print a table per dataset and scale with every image.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write all results as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write per-image rows and means as CSV.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False),
              help="Write the summary as a Markdown table (rows by scale, bicubic beside the models).")
@click.option("--save-images", type=click.Path(file_okay=False), help="Write SR results as PNG under DIR.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no 'wrote ...' messages.")
@handle_errors
def eval_command(datasets: tuple[str, ...], models: tuple[str, ...], weights: tuple[str, ...],
                 scales: tuple[int, ...], data_root: str | None, border: int | None, rgb: bool, ensemble: bool,
                 tile: str, tile_pad: str, device: str, precision: str, per_image: bool, json_path: str | None,
                 csv_path: str | None, markdown_path: str | None, save_images: str | None, quiet: bool) -> None:
    """PSNR/SSIM of SR models on benchmark DATASETs (folders or names such as Set5, Set14, B100).

    Example: srcli eval Set5 Set14 --model bicubic --model edsr -x 2 -x 4
    """
    from ..evaluation.evaluate import InferenceOptions, results_csv, results_json, results_markdown, write_report

    if not models and not weights:  # `srcli eval Set5`: the default model beside its baseline, like upscale
        models = ("bicubic", DEFAULT_MODEL)
    pad: str | int = tile_pad if tile_pad in ("auto", "full") else _int_option(tile_pad, "--tile-pad")
    options = InferenceOptions(device, precision, parse_tile(tile), pad, ensemble)
    skipped: list[str] = []
    results = _run_with_progress(quiet, datasets=datasets, models=model_specs(models, weights),
                                 scales=scales or (4,), data_root=data_root, border=border, rgb=rgb,
                                 options=options, save_images=save_images, on_skip=skipped.append)
    out = console(stderr=False)
    if not out.is_terminal:
        out.width = max(out.width, 200)  # files and pipes: never wrap numbers
    if per_image:
        for table in per_image_tables(results):
            out.print(table)
    out.print(summary_table(results))
    for line in [*notes(results), *skipped]:
        out.print(line, style="dim", highlight=False, soft_wrap=True)
    err = console(stderr=True, quiet=quiet)
    for path, render in ((json_path, results_json), (csv_path, results_csv), (markdown_path, results_markdown)):
        if path:
            err.print(f"wrote {write_report(path, render(results))}", highlight=False, soft_wrap=True)
    if save_images:
        err.print(f"wrote SR images under {save_images}", highlight=False, soft_wrap=True)


def _int_option(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not auto, full or a number of pixels", param_hint=name) from None
    if number < 0:
        raise click.BadParameter("must be >= 0", param_hint=name)
    return number


COMMANDS = [eval_command]
