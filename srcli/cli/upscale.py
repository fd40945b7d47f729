"""``srcli upscale``: many images, any format, tiled, self-ensembled, on one or many devices."""
from __future__ import annotations

import sys
from typing import Any

import click

from ..defaults import DEFAULT_MODEL
from .common import EXIT_FAILED, EXIT_OK, collect_jobs, handle_errors


def tile_option(value: str) -> str | int | None:
    if value in ("auto", "none", "0"):
        return None if value in ("none", "0") else "auto"
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(f"expected auto, none or a tile size in pixels, got {value!r}") from None
    if number < 8:
        raise click.BadParameter("tiles must be at least 8 pixels")
    return number


def tile_pad_option(value: str) -> str | int:
    if value in ("auto", "full"):
        return value
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(f"expected auto, full or a number of pixels, got {value!r}") from None
    if number < 0:
        raise click.BadParameter("--tile-pad cannot be negative")
    return number


def model_options(function: Any) -> Any:
    """Options shared by commands that run a network."""
    options = [
        click.option("--model", "-m", "model", help=f"Shipped model name (see 'srcli models') or a checkpoint file; default {DEFAULT_MODEL}."),
        click.option("-x", "--scale", type=click.IntRange(1, 8), help="Network scale (default: 4, or the file's)."),
        click.option("--weights", type=click.Path(dir_okay=False), help="Any checkpoint srcli can load."),
        click.option("--alpha", type=float, help="Blend the shipped PSNR/GAN pair on the fly (0 = PSNR, 1 = GAN)."),
        click.option("--tile", default="auto", show_default=True, help="Tile size in input pixels, auto, or none."),
        click.option("--tile-pad", default="auto", show_default=True, help="Overlap per tile side: auto (calibrated), full, or pixels."),
        click.option("--ensemble", is_flag=True, help="Geometric self-ensemble (8 flips/rotations averaged; 8x slower)."),
        click.option("--device", default="auto", show_default=True, help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:N, mps."),
        click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto", show_default=True,
                     help="auto: fp16 on CUDA; on CPUs with native bf16, bf16 with exact full-pad tiles for "
                          "shallow networks (EDSR, MDSR, SRResNet) and fp32 for RRDBNet; else fp32."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.command("upscale")
@click.argument("inputs", nargs=-1, required=True)
@model_options
@click.option("-o", "--output", help="Output file (one input) or folder (default ./upscaled/).")
@click.option("--suffix", help="Name outputs {stem}_{suffix}{ext} instead of {stem}_{model}_x{scale}{ext}.")
@click.option("--ext", type=click.Choice(["auto", "png", "jpg", "webp", "tiff"]), default="auto", show_default=True)
@click.option("--outscale", type=float, help="Final scale factor (any positive real): Lanczos after the network.")
@click.option("--alpha-mode", type=click.Choice(["model", "bicubic"]), default="model", show_default=True, help="How to upscale transparency.")
@click.option("--recursive", "-r", is_flag=True, help="Descend into folders; keep the sub-folder structure.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--skip-existing", is_flag=True, help="Leave existing outputs alone (continue an interrupted batch).")
@click.option("--max-pixels", type=int, default=64_000_000, show_default=True, help="Refuse larger inputs.")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per image on stdout.")
@handle_errors
def upscale_command(inputs: tuple[str, ...], model: str | None, scale: int | None, weights: str | None,
                    alpha: float | None, tile: str, tile_pad: str, ensemble: bool, device: str, precision: str,
                    output: str | None, suffix: str | None, ext: str, outscale: float | None, alpha_mode: str,
                    recursive: bool, overwrite: bool, skip_existing: bool, max_pixels: int, quality: int,
                    quiet: bool, as_json: bool) -> None:
    """Upscale images (files, folders or globs) with a super-resolution network."""
    from ..images.batch import OutputOptions
    from ..images.upscale_job import run_upscale

    if outscale is not None and outscale <= 0:
        raise click.BadParameter("--outscale must be positive", param_hint="--outscale")
    jobs = collect_jobs(inputs, recursive, overwrite, skip_existing)
    options = OutputOptions(output=output, suffix=suffix, ext=ext, overwrite=overwrite, skip_existing=skip_existing,
                            recursive=recursive, outscale=outscale, alpha_mode=alpha_mode, max_pixels=max_pixels,
                            quality=quality)
    summary = run_upscale(jobs, options, model=model, scale=scale, weights=weights, alpha=alpha,
                          tile=tile_option(tile), tile_pad=tile_pad_option(tile_pad), ensemble=ensemble,
                          device=device, precision=precision, quiet=quiet, as_json=as_json)
    sys.exit(EXIT_FAILED if summary.failed else EXIT_OK)


COMMANDS = [upscale_command]
