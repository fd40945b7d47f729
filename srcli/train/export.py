"""Export a training run's (EMA) generator as safetensors or a torch state dict, plus a manifest entry."""
from __future__ import annotations

import json
import platform
import statistics
from pathlib import Path
from typing import Any

import torch

from ..checkpoints.io import load_model, read_state_dict, save_model
from ..checkpoints.shipped import read_manifest, same_network, same_slot, sha256_of, upsert_entry
from ..files import atomic_write
from ..nets.common import count_parameters
from .batchnorm import batchnorm_layers, recalibrate_batchnorm
from .config import TrainConfig, resolve_config
from .lineage import lineage_recipe, read_lineage
from .trainer import CHECKPOINT_NAME, TrainError, build_generator, load_run_config, paired_dataset, read_log


def training_seconds(log: list[dict[str, Any]], iterations: int | None = None) -> float:
    """Steady-state estimate of training time: iterations (default: the last logged) / median logged rate.

    Summing logged windows would also count time the process was paused or starved by other
    work on the machine; the median rate of the logged windows ignores such outliers.
    """
    rates, last_iteration = [], 0
    for record in log:
        if record.get("it_per_s", 0) > 0:
            rates.append(float(record["it_per_s"]))
            last_iteration = max(last_iteration, int(record["iteration"]))
    if not rates:
        return 0.0
    return (last_iteration if iterations is None else iterations) / statistics.median(rates)


def resume_points(log: list[dict[str, Any]], iterations: int) -> list[int]:
    """Iterations where the run was resumed before reaching ``iterations``.

    Resuming is bit-exact, so the recipe's command reproduces the weights in one go; the
    points only say how the run was actually carried out across sessions.
    """
    return sorted({int(r["iteration"]) for r in log if r.get("resumed") and int(r["iteration"]) < iterations})


def _changed_losses(config: TrainConfig) -> list[str]:
    """Loss flags where the run differs from its family's defaults, so the command reproduces it."""
    defaults = resolve_config(config.family, overrides={"stage": config.stage})
    flags = [f"--pixel-loss {config.pixel_loss}"] if config.pixel_loss != defaults.pixel_loss else []
    return flags + [f"--{name.replace('_', '-')} {getattr(config, name):g}"
                    for name in ("pixel_weight", "perceptual_weight", "gan_weight")
                    if getattr(config, name) != getattr(defaults, name)]


def recipe(config: TrainConfig, iteration: int, run_dir: Path) -> dict[str, Any]:
    log = read_log(run_dir)
    hours = training_seconds(log, iteration) / 3600
    lineage = read_lineage(run_dir)
    flags = [f"srcli train {config.family}", *[f"--data {d}" for d in config.data],
             *[f"--source {d}" for d in config.source], f"-x {config.scale}", f"--iters {config.iters}",
             f"--batch {config.batch}", f"--patch {config.patch}", f"--lr {config.lr:g}",
             f"--milestones {','.join(map(str, config.milestones))}", f"--seed {config.seed}"]
    if config.stage == "gan":
        flags.append(f"--perceptual {config.perceptual}")
    if config.stage != "psnr" and config.family not in ("srgan", "dsgan"):
        flags.append(f"--stage {config.stage}")
    if config.blocks is not None:
        flags.append(f"--blocks {config.blocks}")
    if config.init:
        flags.append(f"--init {config.init}")
    if config.degradation != "bicubic":
        flags.append(f"--degradation {config.degradation}")
    for key, value in sorted(config.realworld.items()):
        flags.append(f"--realworld {key}={_setting_text(value)}")
    if config.hr_rescale != [1.0]:
        flags.append(f"--hr-rescale {','.join(f'{factor:g}' for factor in config.hr_rescale)}")
    if config.freq_sep:
        flags.append("--freq-sep")
        if config.highpass_pixel_weight:
            flags.append(f"--highpass-pixel-weight {config.highpass_pixel_weight:g}")
    if config.lowpass_gaussian and (config.family == "dsgan" or config.freq_sep):
        flags.append("--lowpass gaussian")
    if config.family == "dsgan":
        for name in ("block_grid", "noise_channels", "jpeg_quality"):
            if getattr(config, name):
                flags.append(f"--{name.replace('_', '-')} {getattr(config, name)}")
        if config.noise_free_color:
            flags.append("--noise-free-color")
        if config.noise_free_identity:
            flags.append(f"--noise-free-identity {config.noise_free_identity:g}")
    flags += _changed_losses(config)
    resumed_at = resume_points(log, iteration)
    return {
        "command": " ".join(flags),
        **({"resumed_at": resumed_at, "resume_command": f"srcli train {config.family} --resume {run_dir}"}
           if resumed_at else {}),
        "family": config.family,
        "stage": config.stage,
        "iterations": iteration,
        "batch": config.batch,
        "lr_patch": config.patch,
        "lr": config.lr,
        "milestones": config.milestones,
        "pixel_loss": config.pixel_loss,
        "perceptual": config.perceptual if config.stage == "gan" else "none (PSNR stage)",
        "gan": f"{config.gan_type} x{config.gan_weight:g}" if config.stage == "gan" else None,
        "pixel_weight": config.pixel_weight,
        "perceptual_weight": config.perceptual_weight if config.stage == "gan" else 0.0,
        "freq_sep": config.freq_sep,
        "highpass_pixel_weight": config.highpass_pixel_weight,
        "degradation": config.degradation,
        **({"degradation_settings": _realworld_settings(config.realworld)} if config.degradation == "realworld" else {}),
        "hr_rescale": config.hr_rescale,
        "amp": config.amp,
        "train_hours_estimate": round(hours, 3),
        "machine": f"{platform.machine()} CPU, 2 cores" if not torch.cuda.is_available() else "CUDA",
        "data": [Path(d).name for d in config.data],
        **(lineage_recipe(lineage, iteration, hours) if lineage else {}),
    }


def _setting_text(value: Any) -> str:
    return ":".join(f"{item:g}" for item in value) if isinstance(value, (list, tuple)) else f"{value:g}" \
        if isinstance(value, (int, float)) else str(value)


def _realworld_settings(overrides: dict[str, Any]) -> dict[str, Any]:
    """Every range and probability the run's realworld pipeline used (defaults included), so the
    recipe survives a later change of the defaults."""
    from ..degradation.realworld import settings_from

    return settings_from(overrides).to_dict()


def _load_best(run_dir: Path, model: torch.nn.Module) -> int:
    """Load the run's best-validation weights into ``model``; returns the iteration they are from.

    Why: a GAN stage can get worse as it goes on (artifacts), and the best validated network
    is then the one worth shipping, not the last.
    """
    best = run_dir / "best.safetensors"
    if not best.is_file():
        raise TrainError(f"{run_dir} has no best.safetensors (the run had no --val)")
    tensors, metadata = read_state_dict(best)
    model.load_state_dict(tensors)
    return int(json.loads(metadata.get("iteration", "0")))


def _load_snapshot(path: Path, model: torch.nn.Module) -> tuple[str, int]:
    """Load an earlier export of the run into ``model``; returns (weights key, iteration)."""
    if not path.is_file():
        raise TrainError(f"{path}: no such snapshot file")
    tensors, metadata = read_state_dict(path)
    if metadata.get("architecture") != model.architecture or "iterations" not in metadata:
        raise TrainError(f"{path} is not an srcli export of this run's network ({model.architecture})")
    try:
        model.load_state_dict(tensors)
    except RuntimeError:
        raise TrainError(f"{path} does not fit this run's network") from None
    return metadata.get("weights", "generator"), int(metadata["iterations"])


#: What ``-o``'s suffix asks for: safetensors (with srcli metadata) or a plain torch state dict.
WEIGHT_FORMATS = {".safetensors": "safetensors", ".pth": "torch", ".pt": "torch"}


def weights_format(path: str | Path) -> str:
    """The format the file name asks for; anything else is refused rather than silently mislabelled."""
    suffix = Path(path).suffix.lower()
    if suffix not in WEIGHT_FORMATS:
        raise TrainError(f"{path}: name the output .safetensors (with srcli metadata) or .pth/.pt (a torch "
                         f"state dict), not {suffix or 'no suffix'}")
    return WEIGHT_FORMATS[suffix]


def write_weights(model: torch.nn.Module, output: str | Path, extra: dict[str, Any]) -> Path:
    """Write ``model`` in the format ``output``'s suffix names.

    A ``.pth``/``.pt`` file holds the bare state dict (what other SR code loads), so srcli must
    recognise the network from tensor names and shapes alone; it is read back here and refused
    if that gives another network (the metadata lives in the manifest beside it either way).
    """
    output = Path(output)
    if weights_format(output) == "safetensors":
        return save_model(model, output, extra=extra)
    state = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(output, lambda temp: torch.save(state, temp))
    if not _reads_back_as(output, model):
        output.unlink(missing_ok=True)
        raise TrainError(f"{output}: srcli cannot tell this {model.architecture} ({model.config}) from a bare "
                         "state dict; export it as .safetensors, which keeps its settings")
    return output


#: Architectures with one tensor layout: a bare state dict of either reads back as the first.
SAME_NETWORK = {"srgan": "srresnet"}


def _reads_back_as(path: Path, model: torch.nn.Module) -> bool:
    try:
        loaded = load_model(path)
    except ValueError:
        return False
    expected = SAME_NETWORK.get(model.architecture, model.architecture)
    if loaded.architecture != expected or loaded.config != model.config:
        return False
    theirs = loaded.state_dict()
    return all(key in theirs and torch.equal(theirs[key], value.cpu()) for key, value in model.state_dict().items())


def export_run(run_dir: str | Path, output: str | Path, *, name: str | None = None, which: str = "ema",
               license_name: str = "MIT", manifest: bool = True, notes: str | None = None,
               scale: int | None = None, snapshot: str | Path | None = None,
               recalibrate_bn: int = 0) -> dict[str, Any]:
    """Write the generator of ``run_dir`` to ``output``; add/update its manifest entry beside it.

    ``notes`` is free text for the recipe (what the command line cannot say). ``scale`` (dsgan
    only) is the SR factor of the pairs the file is shipped for: the generator is size-preserving,
    so one trained on x2 LR (the source photos' content density) serves x4 LR unchanged.
    ``snapshot``: a file exported earlier from this run (say with ``manifest=False`` while it went
    on), shipped instead of the last checkpoint: the weights that were measured are the ones that ship.
    ``recalibrate_bn``: recompute BatchNorm statistics over this many fresh batches of the run's
    training distribution before writing (see :mod:`.batchnorm`); 0 ships them as trained.
    """
    run_dir = Path(run_dir)
    weights_format(output)  # before any work
    config = load_run_config(run_dir)
    model = build_generator(config)
    if scale is not None:
        if config.family != "dsgan":
            raise TrainError("--scale applies to dsgan only: other networks' scale is fixed by their tail")
        model.config["scale"] = scale
    if snapshot is not None:
        key, iteration = _load_snapshot(Path(snapshot), model)
    elif which == "best":
        key, iteration = "best_validation", _load_best(run_dir, model)
    else:
        checkpoint = run_dir / "checkpoints" / CHECKPOINT_NAME
        if not checkpoint.is_file():
            raise TrainError(f"{run_dir} has no checkpoint to export")
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        key = "generator_ema" if which == "ema" and "generator_ema" in state else "generator"
        model.load_state_dict(state[key])
        iteration = int(state["iteration"])
    name = name or Path(output).stem.split("_x")[0]
    run_recipe = recipe(config, iteration, run_dir)
    if recalibrate_bn:
        run_recipe["batchnorm_recalibration"] = recalibrate_run_batchnorm(model, config, recalibrate_bn)
    if notes:
        run_recipe["notes"] = notes
    output = write_weights(model.eval(), output, extra={"name": name, "recipe": run_recipe, "weights": key,
                                                       "iterations": iteration})
    scales = list(getattr(model, "scales", (config.scale,)))
    entry = {
        "name": name,
        "architecture": model.architecture,
        "file": output.name,
        "scales": scales,
        "config": model.config,
        "parameters": count_parameters(model),
        "sha256": sha256_of(output),
        "recipe": run_recipe,
        "license": license_name,
        "metrics": {},
    }
    if manifest:  # quality metrics are cleared: the new weights must be measured again
        current = read_manifest(output.parent)
        entry["metrics"] = kept_timings(entry, current)
        upsert_entry(entry, output.parent, current)
    return entry


BATCHNORM_STREAM = "batchnorm"


def recalibrate_run_batchnorm(model: torch.nn.Module, config: TrainConfig, batches: int) -> dict[str, Any]:
    """Recompute ``model``'s BN statistics on ``batches`` batches like the run's; returns what the recipe records.

    The batches come from the run's own data, patch, batch size, HR rescaling and degradation,
    drawn from a stream of the seed that training never used: no benchmark image is seen.
    """
    if batches < 0:
        raise TrainError(f"--recalibrate-bn must be 0 or more batches, not {batches}")
    if not batchnorm_layers(model):
        raise TrainError(f"--recalibrate-bn: {config.family} ({model.architecture}) has no BatchNorm layers")
    dataset = paired_dataset(config, batch=config.batch, say=lambda text: None, stream=BATCHNORM_STREAM)
    used = recalibrate_batchnorm(model, (dataset[index]["lr"] for index in range(batches)))
    return {"batches": used, "batch": config.batch, "lr_patch": config.patch, "seed": config.seed,
            "stream": BATCHNORM_STREAM, "data": [Path(d).name for d in config.data]}


TIMING_KEYS = ("cpu_ms_per_output_mp", "cpu_threads")


def kept_timings(entry: dict[str, Any], manifest_entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Timings of a manifest entry with the same network as ``entry`` (its own slot first).

    Speed depends on the forward pass, not on the weights' values or the model's name: a
    re-export, or a fine-tuned twin of a shipped network, keeps the measurement instead of
    being timed afresh on whatever machine exports it.
    """
    timed = [old for old in manifest_entries
             if same_network(old, entry) and any(key in old.get("metrics", {}) for key in TIMING_KEYS)]
    timed.sort(key=lambda old: not same_slot(old, entry))
    if not timed:
        return {}
    return {key: timed[0]["metrics"][key] for key in TIMING_KEYS if key in timed[0]["metrics"]}
