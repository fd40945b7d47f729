"""``srcli compare``: the same crop through bicubic and each model, side by side."""
from __future__ import annotations

import click

from ..defaults import DEFAULT_MODEL
from .common import handle_errors


@click.command("compare")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--models", "-m", "models", multiple=True, default=[DEFAULT_MODEL], show_default=True,
              help="Shipped model names or weight files, repeated or comma-separated (bicubic is always shown).")
@click.option("-x", "--scale", type=click.IntRange(2, 8), default=4, show_default=True)
@click.option("--crop", help="Region x,y,w,h in HR pixels (default: centred square of --crop-size).")
@click.option("--crop-size", type=int, default=128, show_default=True)
@click.option("--zoom", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option("-o", "--output", default="compare.png", show_default=True, type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True)
@handle_errors
def compare_command(image: str, models: tuple[str, ...], scale: int, crop: str | None, crop_size: int, zoom: int, output: str,
                    overwrite: bool) -> None:
    """Crop of an HR image as bicubic vs each model, side by side, with PSNR (Y)."""
    from pathlib import Path

    from ..evaluation.compare import draw_panels, make_panels

    if Path(output).exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    try:
        names = [name.strip() for option in models for name in option.split(",") if name.strip()]
        panels = make_panels(image, names, scale, crop, crop_size)
    except ValueError as error:
        if type(error) is ValueError:
            raise click.UsageError(str(error)) from None
        raise
    path = draw_panels(panels, output, zoom)
    click.echo(f"wrote {path}: " + ", ".join(f"{p.label} {p.psnr:.2f} dB" for p in panels if p.psnr is not None))


COMMANDS = [compare_command]
