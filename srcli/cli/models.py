"""``srcli models`` and ``srcli interpolate``."""
from __future__ import annotations

from pathlib import Path

import click

from .common import console, handle_errors


@click.command("models")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON record per line on stdout, as in every command: shipped weights (kind 'weights', "
                   "with 'default'), then aliases ('alias'), then architectures ('architecture').")
@handle_errors
def models_command(as_json: bool) -> None:
    """List shipped weights (what each is for) and the architectures srcli can load."""
    import json

    from ..checkpoints.catalog import alias_rows, architecture_rows, shipped_rows
    from ..defaults import DEFAULT_MODEL

    archs, shipped, aliases = architecture_rows(), shipped_rows(), alias_rows()
    if as_json:
        for kind, rows in (("weights", shipped), ("alias", aliases), ("architecture", archs)):
            for row in rows:
                extra = {"default": row["name"] == DEFAULT_MODEL} if kind == "weights" else {}
                click.echo(json.dumps({"kind": kind, **row, **extra}))
        return
    from rich.table import Table

    out = console(stderr=False)
    if not out.is_terminal:
        out.width = 200  # piped or redirected: whole rows, not 80 columns of wrapped cells
    table = Table(title="Shipped weights")
    for column in ("name", "for", "architecture", "blocks x features", "scale(s)", "parameters", "Set5 PSNR (Y)"):
        table.add_column(column)
    for row in shipped:
        name = f"{row['name']} (default)" if row["name"] == DEFAULT_MODEL else row["name"]
        table.add_row(name, row["for"], row["architecture"], row["blocks_x_features"], row["scales"],
                      f"{row['parameters']:,}", row["set5_psnr"])
    table.caption = ("no shipped weights are installed" if not shipped else
                     "also: " + "; ".join(f"{a['name']} = {a['means']}" for a in aliases))
    out.print(table)
    table = Table(title="Architectures (parameters at the paper's default size)")
    for column in ("name", "description", "scales", "parameters", "checkpoint layouts"):
        table.add_column(column)
    for row in archs:
        table.add_row(row["name"], row["description"], row["scales"], f"{row['parameters']:,}", row["layouts"])
    out.print(table)


@click.command("interpolate")
@click.option("--alpha", type=float, required=True, help="0 = weights A (PSNR), 1 = weights B (GAN).")
@click.option("--model", "-m", "model", help="Shipped PSNR/GAN pair to blend, by either name (esrgan-photo, "
                                             "esrgan-bicubic, srgan); default: the photo ESRGAN pair once its GAN "
                                             "stage is shipped, else esrgan-bicubic.")
@click.option("--a", "weights_a", type=click.Path(dir_okay=False), help="PSNR-oriented weights file (default: the pair's).")
@click.option("--b", "weights_b", type=click.Path(dir_okay=False), help="GAN weights file (default: the pair's).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output .safetensors (default {gan}_interp_a{alpha}.safetensors).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@handle_errors
def interpolate_command(alpha: float, model: str | None, weights_a: str | None, weights_b: str | None,
                        output: str | None, overwrite: bool) -> None:
    """Blend two networks: theta = (1-alpha)*theta_A + alpha*theta_B (ESRGAN network interpolation)."""
    from ..checkpoints.interpolate import check_alpha
    from ..checkpoints.interpolation_files import interpolate_files
    from ..checkpoints.resolve import default_interpolation_pair, interpolation_pair

    check_alpha(alpha)
    gan_name = (interpolation_pair(model) if model else default_interpolation_pair())[1]
    target = Path(output or f"{gan_name}_interp_a{alpha:g}.safetensors")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    written, source_a, source_b = interpolate_files(alpha, weights_a, weights_b, target, model)
    click.echo(f"wrote {written} (alpha {alpha:g}: {source_a} -> {source_b})")


COMMANDS = [models_command, interpolate_command]
