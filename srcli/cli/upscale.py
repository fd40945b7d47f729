"""``srcli upscale``: many images, any format, tiled, self-ensembled, on one or many devices."""
from __future__ import annotations

import sys
from typing import Any

import click

from ..defaults import DEFAULT_MODEL
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    OneLineUsageError,
    collect_jobs,
    handle_errors,
    parse_tile,
    parse_tile_pad,
)

TRANSPARENCY_CHOICES = ("model", "bicubic")


def model_options(function: Any) -> Any:
    """Options shared by commands that run a network (Real-ESRGAN's spellings accepted beside srcli's)."""
    options = [
        click.option("--model", "-m", "-n", "--model-name", "--model_name", "model",
                     help=f"Shipped model name (see 'srcli models') or a checkpoint file; default {DEFAULT_MODEL}."),
        click.option("-x", "--scale", type=click.IntRange(1, 8), help="Network scale (default: 4, or the file's)."),
        click.option("--weights", type=click.Path(dir_okay=False),
                     help="Any checkpoint srcli can load (instead of --model); outputs are named after the file."),
        click.option("--alpha", type=float, help="Blend the shipped PSNR/GAN pair on the fly (0 = PSNR, 1 = GAN)."),
        click.option("--tile", "-t", default="auto", show_default=True,
                     help="Tile side in input pixels, auto, or none (0 = none, as Real-ESRGAN's -t 0)."),
        click.option("--tile-pad", "--tile_pad", "tile_pad", default="auto", show_default=True,
                     help="Overlap per tile side: auto (calibrated), full, or pixels."),
        click.option("--ensemble", is_flag=True, help="Geometric self-ensemble (8 flips/rotations averaged; 8x slower)."),
        click.option("--device", default="auto", show_default=True, help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:N, mps."),
        click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto", show_default=True,
                     help="auto: fp16 on CUDA; on CPUs with native bf16, bf16 with exact full-pad tiles for "
                          "shallow networks (EDSR, MDSR, SRResNet) and fp32 for RRDBNet; else fp32."),
        click.option("--fp32", is_flag=True, help="Same as --precision fp32 (Real-ESRGAN's flag)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def network_precision(precision: str, fp32: bool) -> str:
    """``--fp32`` is ``--precision fp32``; with another explicit precision it is a contradiction."""
    if not fp32:
        return precision
    if precision not in ("auto", "fp32"):
        raise OneLineUsageError(f"--fp32 contradicts --precision {precision}")
    return "fp32"


def transparency_choice(transparency: str | None, alpha_mode: str | None) -> str:
    """``--transparency``, or the deprecated ``--alpha-mode`` spelling with a one-line note (default: model).

    Why renamed: ``--alpha`` is the network blend; ``--alpha-mode`` beside it read as its mode.
    """
    if alpha_mode is not None:
        click.echo("note: --alpha-mode is deprecated; use --transparency (--alpha is the network blend)", err=True)
        if transparency is not None and transparency != alpha_mode:
            raise OneLineUsageError(f"--alpha-mode {alpha_mode} contradicts --transparency {transparency}")
    return transparency or alpha_mode or "model"


def check_model_choice(model: str | None, weights: str | None, face_enhance: bool) -> None:
    """Refuse what names the network twice, and Real-ESRGAN's GFPGAN face enhancement."""
    if face_enhance:
        raise OneLineUsageError("--face_enhance (GFPGAN face restoration) is not supported by srcli; "
                                "run without it")
    if model and weights:
        raise OneLineUsageError(f"--model {model} and --weights {weights} both name the network; give one "
                                "(a checkpoint file also works as -m FILE)")


@click.command("upscale")
@click.argument("inputs", nargs=-1)
@click.option("-i", "--input", "extra_inputs", multiple=True,
              help="Input file, folder or glob, added to INPUTS (repeatable; Real-ESRGAN's -i).")
@model_options
@click.option("-o", "--output", help="Output file (one input) or folder (default ./upscaled/).")
@click.option("--suffix", help="Name outputs {stem}_{suffix}{ext} instead of {stem}_{model}_x{scale}{ext} "
                               "({stem}_{model}_x{scale}_s{outscale}{ext} with --outscale).")
@click.option("--ext", type=click.Choice(["auto", "png", "jpg", "webp", "tiff"]), default="auto", show_default=True)
@click.option("-s", "--outscale", type=click.FloatRange(min=0, min_open=True),
              help="Final scale factor (any positive real): Lanczos after the network.")
@click.option("--transparency", type=click.Choice(TRANSPARENCY_CHOICES),
              help="How to upscale an alpha channel: through the network (model) or bicubic.  [default: model]")
@click.option("--alpha-mode", type=click.Choice(TRANSPARENCY_CHOICES), hidden=True,
              help="Deprecated spelling of --transparency.")
@click.option("--face_enhance", "--face-enhance", "face_enhance", is_flag=True, hidden=True,
              help="Real-ESRGAN's GFPGAN face enhancement: not supported.")
@click.option("--recursive", "-r", is_flag=True, help="Descend into folders; keep the sub-folder structure.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files (never an input file).")
@click.option("--skip-existing", is_flag=True, help="Leave existing outputs alone (continue an interrupted batch).")
@click.option("--max-pixels", type=int, default=64_000_000, show_default=True, help="Refuse larger inputs.")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON record per image on stdout (input, output, status, ...).")
@handle_errors
def upscale_command(inputs: tuple[str, ...], extra_inputs: tuple[str, ...], model: str | None, scale: int | None,
                    weights: str | None, alpha: float | None, tile: str, tile_pad: str, ensemble: bool, device: str,
                    precision: str, fp32: bool, output: str | None, suffix: str | None, ext: str,
                    outscale: float | None, transparency: str | None, alpha_mode: str | None, face_enhance: bool,
                    recursive: bool, overwrite: bool, skip_existing: bool, max_pixels: int, quality: int,
                    quiet: bool, as_json: bool) -> None:
    """Upscale images (files, folders or globs) with a super-resolution network.

    Outputs are named {stem}_{model}_x{scale}{ext} in ./upscaled/ (the model is the weights file's
    name with --weights); each line of the summary says where a file went.
    """
    from ..images.batch import OutputOptions
    from ..images.upscale_job import run_upscale

    check_model_choice(model, weights, face_enhance)
    options = OutputOptions(output=output, suffix=suffix, ext=ext, overwrite=overwrite, skip_existing=skip_existing,
                            recursive=recursive, outscale=outscale,
                            alpha_mode=transparency_choice(transparency, alpha_mode), max_pixels=max_pixels,
                            quality=quality)
    precision = network_precision(precision, fp32)
    tiling, pad = parse_tile(tile), parse_tile_pad(tile_pad)
    jobs = collect_jobs(inputs + extra_inputs, recursive, overwrite, skip_existing)
    summary = run_upscale(jobs, options, model=model, scale=scale, weights=weights, alpha=alpha, tile=tiling,
                          tile_pad=pad, ensemble=ensemble, device=device, precision=precision, quiet=quiet,
                          as_json=as_json)
    sys.exit(EXIT_FAILED if summary.failed else EXIT_OK)


COMMANDS = [upscale_command]
