"""``srcli degrade``: make LR images from HR ones (bicubic, realworld, learned DSGAN, or classical)."""
from __future__ import annotations

import sys

import click

from .common import EXIT_FAILED, EXIT_OK, collect_jobs, handle_errors
from .realworld_options import parse_realworld, realworld_option


@click.command("degrade")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Output folder (or file for one input).")
@click.option("--model", "-m", type=click.Choice(["dsgan", "realworld", "bicubic", "classical"]), default="dsgan",
              show_default=True, help="dsgan: the learned corruption of the realworld/ photos; realworld: the randomized "
                                      "photo pipeline the photo models train on (one chain drawn per image from --seed); "
                                      "bicubic: the benchmark convention; classical: --blur/--noise/--jpeg.")
@click.option("-x", "--scale", type=click.IntRange(1, 8), default=4, show_default=True, help="Downscaling factor.")
@click.option("--weights", type=click.Path(dir_okay=False), help="DSGAN generator (default: shipped dsgan).")
@click.option("--blur", type=float, default=0.0, help="classical: Gaussian blur sigma on the HR, in HR pixels.")
@click.option("--noise", type=float, default=0.0, help="classical: Gaussian noise sigma in 8-bit levels.")
@click.option("--jpeg", type=click.IntRange(1, 100), help="classical: JPEG quality of the LR.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Randomness seed (realworld chains, classical noise, DSGANs with noise inputs).")
@realworld_option
@click.option("--suffix", default="", help="Name outputs {stem}_{suffix}{ext} (default: same name as the HR, so pairs match).")
@click.option("--ext", type=click.Choice(["auto", "png", "jpg", "webp", "tiff"]), default="png", show_default=True)
@click.option("--recursive", "-r", is_flag=True)
@click.option("--overwrite", is_flag=True)
@click.option("--skip-existing", is_flag=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--quiet", "-q", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON record per image on stdout.")
@handle_errors
def degrade_command(inputs: tuple[str, ...], output: str, model: str, scale: int, weights: str | None, blur: float,
                    noise: float, jpeg: int | None, seed: int, suffix: str, ext: str, recursive: bool,
                    overwrite: bool, skip_existing: bool, device: str, quiet: bool, as_json: bool,
                    realworld_settings: tuple[str, ...]) -> None:
    """Downscale HR images into LR images with a real-world-like (DSGAN) or synthetic degradation."""
    from ..images.batch import OutputOptions
    from ..images.degrade_job import run_degrade

    if model != "classical" and (blur or noise or jpeg):
        raise click.UsageError("--blur/--noise/--jpeg belong to --model classical")
    realworld = parse_realworld(realworld_settings)
    if realworld and model != "realworld":
        raise click.UsageError("--realworld settings belong to --model realworld")
    jobs = collect_jobs(inputs, recursive, overwrite, skip_existing)
    options = OutputOptions(output=output, suffix=suffix or None, ext=ext, overwrite=overwrite,
                            skip_existing=skip_existing, recursive=recursive, alpha_mode="bicubic")
    if not suffix:
        options.suffix = ""
    summary = run_degrade(jobs, options, method=model, scale=scale, weights=weights, blur=blur, noise=noise,
                          jpeg=jpeg, seed=seed, device=device, quiet=quiet, as_json=as_json,
                          realworld=realworld)
    sys.exit(EXIT_FAILED if summary.failed else EXIT_OK)


COMMANDS = [degrade_command]
