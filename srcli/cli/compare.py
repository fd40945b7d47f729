"""``srcli compare``: the same crop through bicubic and each model, side by side."""
from __future__ import annotations

from pathlib import Path

import click

from ..defaults import DEFAULT_MODEL
from .common import handle_errors, split_names
from .realworld_options import parse_realworld, realworld_option


@click.command("compare")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", "--models", "-m", "models", multiple=True, default=[DEFAULT_MODEL], show_default=True,
              help="Shipped model names or weight files, repeated or comma-separated (bicubic is always shown).")
@click.option("-x", "--scale", type=click.IntRange(2, 8), default=4, show_default=True)
@click.option("--degradation", type=click.Choice(["none", "bicubic", "realworld"]), default="none", show_default=True,
              help="none: IMAGE is the low-resolution photo; each model upscales it (no ground truth, no PSNR). "
                   "bicubic / realworld: IMAGE is the HR; the LR is made from it (realworld: one chain drawn from "
                   "--seed) and each panel shows its PSNR against the HR.")
@click.option("--seed", type=int, default=0, show_default=True, help="--degradation realworld: which chain.")
@realworld_option
@click.option("--crop", help="Region x,y,w,h in output pixels (default: centred square of --crop-size).")
@click.option("--crop-size", type=int, default=128, show_default=True, help="Side of the default crop, output pixels.")
@click.option("--zoom", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:N, mps.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="fp32", show_default=True,
              help="fp32 (unlike upscale's auto) so the PSNR in each panel is the one 'srcli eval' reports.")
@click.option("-o", "--output", default="compare.png", show_default=True, type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace an existing output file (never the input).")
@handle_errors
def compare_command(image: str, models: tuple[str, ...], scale: int, degradation: str, seed: int,
                    realworld_settings: tuple[str, ...], crop: str | None, crop_size: int, zoom: int, device: str,
                    precision: str, output: str, overwrite: bool) -> None:
    """Crops of one image upscaled by bicubic and by each model, side by side.

    \b
    srcli compare photo.jpg -m edsr,esrgan          # a photo without ground truth
    srcli compare hr.png --degradation bicubic      # benchmark-style, with PSNR
    srcli compare hr.png --degradation realworld --seed 3 -m edsr,edsr-bicubic
    """
    from ..evaluation.compare import draw_panels, make_panels
    from ..evaluation.evaluate import InferenceOptions

    if Path(output).resolve() == Path(image).resolve():
        raise click.UsageError(f"{output} is the input image; choose another --output")
    if Path(output).exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    realworld = parse_realworld(realworld_settings)
    if realworld and degradation != "realworld":
        raise click.UsageError("--realworld settings belong to --degradation realworld")
    names = split_names(models)
    options = InferenceOptions(device=device, precision=precision)
    try:
        panels = make_panels(image, names, scale, crop, crop_size, options, degradation, seed, realworld)
    except ValueError as error:
        if type(error) is ValueError:
            raise click.UsageError(str(error)) from None
        raise
    path = draw_panels(panels, output, zoom)
    scores = ", ".join(f"{p.label} {p.psnr:.2f} dB" for p in panels if p.psnr is not None)
    click.echo(f"wrote {path}: " + (scores or ", ".join(p.label for p in panels)))


COMMANDS = [compare_command]
