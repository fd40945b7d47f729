"""``srcli train``, ``srcli export`` and ``srcli plot``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..train.config import ESRGAN_GAN_STAGE, FAMILIES, FAMILY_DEFAULTS, TrainConfig
from .common import OneLineUsageError, handle_errors
from .realworld_options import parse_realworld, realworld_option


def _number_list(text: str | None, convert: type[int] | type[float], flag: str) -> list[Any] | None:
    """Parse '1,2,3' style options once for every list flag; errors name the flag."""
    if text is None:
        return None
    try:
        return [convert(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        kind = "integers" if convert is int else "numbers"
        raise click.BadParameter(f"expected comma-separated {kind}, got {text!r}", param_hint=flag) from None


def _value_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_value_text(item) for item in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def default_text(key: str) -> str:
    """``default 16``, or ``family default: edsr 2, mdsr 2, srresnet 4, ...`` read from FAMILY_DEFAULTS.

    Why generated: help text with hand-copied numbers goes stale when a family's defaults change.
    """
    base = getattr(TrainConfig(), key)
    values = {family: FAMILY_DEFAULTS[family].get(key, base) for family in FAMILIES}
    gan_stage = f"; esrgan --stage gan {_value_text(ESRGAN_GAN_STAGE[key])}" if key in ESRGAN_GAN_STAGE else ""
    if len({_value_text(value) for value in values.values()}) == 1:
        return f"default {_value_text(base)}{gan_stage}"
    listed = ", ".join(f"{family} {_value_text(value)}" for family, value in values.items())
    return f"family default: {listed}{gan_stage}"


@click.command("train")
@click.argument("family", type=click.Choice(FAMILIES))
@click.option("--data", "--target", "data", multiple=True, type=click.Path(), help="HR training images (folder or file); repeatable. For dsgan: the clean HR domain.")
@click.option("--source", multiple=True, type=click.Path(), help="dsgan: unpaired photos with the real-world degradation.")
@click.option("--val", type=click.Path(),
              help="Validation folder in any eval layout: HR images (LR made by bicubic) or LR/HR pairs such "
                   "as hr/ + lr/ (PSNR/SSIM on Y; the best weights are kept).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of options (command line wins).")
@click.option("--out", type=click.Path(), help="Run directory (default runs/FAMILY).")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue the run in this directory exactly where it stopped.")
@click.option("--overwrite", is_flag=True,
              help="Start afresh in a --out folder that holds a run: deletes its checkpoint, log and best weights "
                   "(without it, or --resume, such a folder is refused).")
@click.option("-x", "--scale", type=int, help=f"Upscaling factor the network learns ({default_text('scale')}).")
@click.option("--scales", help="mdsr: comma-separated scales (default 2,3,4).")
@click.option("--stage", type=click.Choice(["psnr", "gan"]), help="esrgan: psnr pre-training or gan stage.")
@click.option("--iters", type=int,
              help=f"Total training iterations ({default_text('iters')}); --time-budget may stop the run sooner.")
@click.option("--time-budget", help="Stop cleanly with a checkpoint after this wall-clock time (e.g. 2h, 90m).")
@click.option("--batch", type=int, help=f"Patches per iteration ({default_text('batch')}).")
@click.option("--patch", type=int, help=f"LR patch side in pixels; the HR patch is this times the scale "
                                        f"({default_text('patch')}).")
@click.option("--lr", type=float, help=f"Adam learning rate ({default_text('lr')}).")
@click.option("--milestones", help="Comma-separated iterations where the learning rate is multiplied by --gamma "
                                   f"(with --resume: only steps still ahead may move; {default_text('milestones')}).")
@click.option("--gamma", type=float, help=f"Learning-rate factor at each milestone ({default_text('gamma')}).")
@click.option("--seed", type=int, help=f"Seed of initialisation, patch sampling and augmentation "
                                       f"({default_text('seed')}).")
@click.option("--blocks", type=int, help="Residual / RRDB block count.")
@click.option("--features", type=int, help="Feature channels.")
@click.option("--init", type=click.Path(dir_okay=False), help="Initialise from weights (edsr x3/x4 from x2: all but the tail).")
@click.option("--pixel-loss", type=click.Choice(["l1", "mse"]), help=f"Pixel loss ({default_text('pixel_loss')}).")
@click.option("--perceptual", type=click.Choice(["vgg", "dfeat", "none"]), help="GAN stages: VGG19 features, discriminator features, or none.")
@click.option("--vgg-weights", type=click.Path(dir_okay=False), help="torchvision vgg19 state dict for the perceptual loss.")
@click.option("--pixel-weight", type=float, help="Weight of the pixel loss (GAN stages: ESRGAN 1e-2, SRGAN 0).")
@click.option("--perceptual-weight", type=float, help="Weight of the perceptual loss.")
@click.option("--gan-weight", type=float, help="Weight of the adversarial loss (ESRGAN 5e-3, SRGAN 1e-3).")
@click.option("--gan-type", type=click.Choice(["ragan", "standard"]))
@click.option("--degradation", help="LR maker: bicubic, realworld (randomized blur/resize/noise/JPEG, two orders, "
                                    "for photos), dsgan:WEIGHTS, classical:noise=S,jpeg=Q,blur=S or paired:LR_DIR.")
@realworld_option
@click.option("--lowpass", type=click.Choice(["box", "gaussian"]),
              help="dsgan / --freq-sep: low-pass filter (5x5 box as in DSGAN, or Gaussian sigma 1: no negative "
                   "side lobes, so the GAN's high-pass does not favour mid frequencies).")
@click.option("--block-grid", type=int,
              help="dsgan: tell the generator each pixel's place in an N-pixel grid (8: JPEG blocks), so it "
                   "can learn compression artifacts; 0 (default) is the paper's network.")
@click.option("--noise-channels", type=click.IntRange(0, 16),
              help="dsgan: random N(0,1) input planes, so the generator can make content-independent noise.")
@click.option("--noise-free-color", is_flag=True, default=None,
              help="dsgan with --noise-channels: colour loss on the output made with zero noise planes, so it "
                   "does not penalise the low frequencies of the noise and the GAN alone sets its level.")
@click.option("--noise-free-identity", type=float,
              help="dsgan with --noise-channels: weight of an L1 loss between the output for zero noise planes "
                   "and the (JPEG-compressed) input, so G cannot sharpen or blur and learns only random noise.")
@click.option("--jpeg-quality", help="dsgan: end the generator with a JPEG round trip at this quality "
                                     "(1-100), or 'auto' to estimate it from the --source photos.")
@click.option("--freq-sep", is_flag=True, default=None, help="Pixel loss on low frequencies, GAN on high frequencies (ESRGAN-FS).")
@click.option("--highpass-pixel-weight", type=float,
              help="--freq-sep: also a pixel loss on the high-pass, at this weight relative to the low-pass one "
                   "(0: GAN alone shapes high frequencies, as in ESRGAN-FS with its perceptual loss).")
@click.option("--hr-rescale", help="Comma-separated size factors in (0, 1]: train on each HR image at these sizes "
                                   "(e.g. 1,0.8,0.6; scale augmentation as in VDSR, and shrinking fades JPEG "
                                   "artefacts of the photos). Default 1.")
@click.option("--amp", type=click.Choice(["auto", "bf16", "fp16", "off"]),
              help="Mixed precision: auto = fp16 on CUDA, bf16 on CPUs with native bf16, else off (default auto).")
@click.option("--workers", type=int, help="DataLoader worker processes (default: 4 on CUDA, else 1; 0 = none).")
@click.option("--val-every", type=int, help=f"Validate on --val every N iterations ({default_text('val_every')}).")
@click.option("--checkpoint-every", type=int,
              help=f"Write the resumable checkpoint every N iterations ({default_text('checkpoint_every')}).")
@click.option("--device", help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--progress-every", default="60s", show_default=True, metavar="60s|5m|500it",
              help="When output is not a terminal (nohup, CI): a progress line this often (time or iterations).")
@click.option("--quiet", is_flag=True, help="No progress bar and no progress lines.")
@handle_errors
def train_command(family: str, config_file: str | None, resume: str | None, overwrite: bool, quiet: bool,
                  progress_every: str, scales: str | None, milestones: str | None, hr_rescale: str | None,
                  data: tuple[str, ...], source: tuple[str, ...], realworld_settings: tuple[str, ...],
                  **options: Any) -> None:
    """Train a network family (paper defaults; every option can be overridden).

    A terminal shows a progress bar; elsewhere a plain line every --progress-every says the
    iteration, it/s, loss, last validation PSNR and the ETA (--iters or --time-budget, whichever
    ends first).
    """
    from ..train.config import load_toml, resolve_config
    from ..train.trainer import load_run_config, train

    if resume and overwrite:
        raise OneLineUsageError("--resume continues a run and --overwrite deletes it; give one")
    every = _progress_every(progress_every)

    overrides: dict[str, Any] = dict(options)
    overrides["scales"] = _number_list(scales, int, "--scales")
    overrides["milestones"] = _number_list(milestones, int, "--milestones")
    overrides["hr_rescale"] = _number_list(hr_rescale, float, "--hr-rescale")
    overrides["data"] = list(data) or None
    overrides["source"] = list(source) or None
    overrides["jpeg_quality"] = _jpeg_quality(overrides.get("jpeg_quality"))
    overrides["realworld"] = parse_realworld(realworld_settings)
    lowpass = overrides.pop("lowpass", None)
    overrides["lowpass_gaussian"] = None if lowpass is None else lowpass == "gaussian"
    if resume:
        config = load_run_config(resume)
        if config.family != family:
            raise click.UsageError(f"{resume} is a {config.family} run, not {family}")
        allowed = {"iters", "milestones", "time_budget", "val", "val_every", "checkpoint_every", "workers", "device", "amp"}
        run_values = {k: getattr(config, k, None) for k in overrides}
        changed = sorted(k for k, v in overrides.items() if v is not None and k not in allowed and run_values[k] != v)
        if changed:
            details = ", ".join(f"{k} (run has {run_values[k]!r})" for k in changed)
            raise click.UsageError(f"--resume keeps the run's settings; cannot change {details}")
        values = {**config.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
        values["out"] = resume
        config = resolve_config(family, overrides=values)
    else:
        file_values = load_toml(config_file) if config_file else {}
        config = resolve_config(family, file_values, overrides)
    result = train(config, resume=bool(resume), progress=not quiet, echo=click.echo, overwrite=overwrite,
                   progress_every=every)
    best = f", best val PSNR {result.best_psnr:.3f} dB" if result.best_psnr is not None else ""
    click.echo(f"{result.stopped_by} at iteration {result.iteration} after {result.seconds:.0f} s{best}; "
               f"checkpoint in {Path(result.run_dir) / 'checkpoints'}")


def _progress_every(text: str) -> Any:
    from ..train.progress import ProgressSettingError, parse_progress_every

    try:
        return parse_progress_every(text)
    except ProgressSettingError as error:
        raise click.BadParameter(str(error), param_hint="--progress-every") from None


def _jpeg_quality(text: str | None) -> int | str | None:
    if text is None or text == "auto":
        return text
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise click.BadParameter(f"{text!r} is not 'auto' or a quality 1-100", param_hint="--jpeg-quality")
    return int(text)


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output file: .safetensors (weights with srcli metadata) or .pth/.pt (a plain torch state dict).")
@click.option("--name", help="Model name in the manifest (default: file stem before _x).")
@click.option("--which", type=click.Choice(["ema", "raw", "best"]), default="ema", show_default=True,
              help="EMA or raw generator of the last checkpoint, or the best-validation weights.")
@click.option("--license", "license_name", default="MIT", show_default=True)
@click.option("--no-manifest", is_flag=True, help="Do not add an entry to manifest.json beside the output.")
@click.option("--notes", help="Free text for the recipe in the manifest (what the command line does not say).")
@click.option("--snapshot", type=click.Path(dir_okay=False, exists=True),
              help="Ship this earlier export of the run (made with --no-manifest) instead of its last checkpoint.")
@click.option("-x", "--scale", type=click.IntRange(2, 4),
              help="dsgan only: the SR factor of the pairs it is shipped for (default: the one it was trained at).")
@click.option("--recalibrate-bn", type=click.IntRange(0), default=0, show_default=True, metavar="BATCHES",
              help="Recompute BatchNorm statistics (srresnet, srgan) over this many batches of the run's training "
                   "data: the EMA weights otherwise run with the live network's statistics.")
@click.option("--overwrite", is_flag=True)
@handle_errors
def export_command(run_dir: str, output: str, name: str | None, which: str, license_name: str, no_manifest: bool,
                   notes: str | None, snapshot: str | None, scale: int | None, recalibrate_bn: int,
                   overwrite: bool) -> None:
    """Write a run's generator and add it to the manifest.json beside the output file.

    The output's suffix picks the format: .safetensors keeps srcli's metadata, .pth/.pt is a
    plain state dict that srcli (and other SR code) loads back.
    """
    from ..train.export import export_run, weights_format
    from ..train.trainer import TrainError

    try:
        weights_format(output)
    except TrainError as error:
        raise OneLineUsageError(str(error)) from None
    if Path(output).exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    entry = export_run(run_dir, output, name=name, which=which, license_name=license_name, manifest=not no_manifest,
                       notes=notes, scale=scale, snapshot=snapshot, recalibrate_bn=recalibrate_bn)
    total = entry["recipe"].get("iterations_total")
    since = f", {total} in all since training began" if total is not None else ""
    click.echo(f"exported {entry['name']} ({entry['architecture']}, x{'/x'.join(map(str, entry['scales']))}, "
               f"{entry['recipe']['iterations']} iterations{since}) to {output}")


@click.command("plot")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="PNG file (default RUN_DIR/curves.png).")
@handle_errors
def plot_command(run_dir: str, output: str | None) -> None:
    """Draw loss and validation PSNR curves of a run to a PNG."""
    from ..train.plot import plot_run

    path = plot_run(run_dir, output)
    click.echo(f"wrote {path}")


COMMANDS = [train_command, export_command, plot_command]
