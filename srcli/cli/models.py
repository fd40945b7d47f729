"""``srcli models`` and ``srcli interpolate``."""
from __future__ import annotations

from pathlib import Path

import click

from .common import console, handle_errors


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@handle_errors
def models_command(as_json: bool) -> None:
    """List registered architectures and shipped weights."""
    import json

    from ..checkpoints.catalog import architecture_rows, shipped_rows

    archs, shipped = architecture_rows(), shipped_rows()
    if as_json:
        click.echo(json.dumps({"architectures": archs, "weights": shipped}, indent=2))
        return
    from rich.table import Table

    out = console(stderr=False)
    table = Table(title="Architectures")
    for column in ("name", "description", "scales", "parameters (default)", "checkpoint layouts"):
        table.add_column(column)
    for row in archs:
        table.add_row(row["name"], row["description"], row["scales"], f"{row['parameters']:,}", row["layouts"])
    out.print(table)
    table = Table(title="Shipped weights")
    for column in ("name", "architecture", "scale(s)", "parameters", "file", "Set5 PSNR (Y)"):
        table.add_column(column)
    for row in shipped:
        table.add_row(row["name"], row["architecture"], row["scales"], f"{row['parameters']:,}", row["file"],
                      row["set5_psnr"])
    if not shipped:
        table.caption = "no shipped weights are installed"
    out.print(table)


@click.command("interpolate")
@click.option("--alpha", type=float, required=True, help="0 = weights A (PSNR), 1 = weights B (GAN).")
@click.option("--a", "weights_a", type=click.Path(dir_okay=False), help="PSNR-oriented weights (default: shipped esrgan-psnr).")
@click.option("--b", "weights_b", type=click.Path(dir_okay=False), help="GAN weights (default: shipped esrgan).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output .safetensors (default esrgan_interp_a{alpha}.safetensors).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@handle_errors
def interpolate_command(alpha: float, weights_a: str | None, weights_b: str | None, output: str | None,
                        overwrite: bool) -> None:
    """Blend two networks: theta = (1-alpha)*theta_A + alpha*theta_B (ESRGAN network interpolation)."""
    from ..checkpoints.interpolate import check_alpha
    from ..checkpoints.interpolation_files import interpolate_files

    check_alpha(alpha)
    target = Path(output or f"esrgan_interp_a{alpha:g}.safetensors")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    written, source_a, source_b = interpolate_files(alpha, weights_a, weights_b, target)
    click.echo(f"wrote {written} (alpha {alpha:g}: {source_a} -> {source_b})")


COMMANDS = [models_command, interpolate_command]
