"""Training configuration: paper defaults per family, overridable from TOML and the command line."""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAMILIES = ("edsr", "mdsr", "srresnet", "srgan", "esrgan", "dsgan")


class ConfigError(ValueError):
    pass


@dataclass
class TrainConfig:
    family: str = "edsr"
    stage: str = "psnr"  # psnr | gan (srgan and dsgan are always gan)
    data: list[str] = field(default_factory=list)
    val: str | None = None
    out: str = "runs/edsr"
    scale: int = 2
    scales: list[int] = field(default_factory=lambda: [2, 3, 4])  # mdsr only
    iters: int = 300_000
    time_budget: float | None = None  # seconds
    batch: int = 16
    patch: int = 48  # LR patch side
    lr: float = 1e-4
    lr_d: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    milestones: list[int] = field(default_factory=lambda: [200_000])
    gamma: float = 0.5
    seed: int = 0
    blocks: int | None = None
    features: int | None = None
    growth: int | None = None
    res_scale: float | None = None
    pixel_loss: str = "l1"  # l1 | mse
    pixel_weight: float = 1.0
    perceptual: str = "vgg"  # vgg | dfeat | none
    perceptual_layer: str = "conv5_4"
    perceptual_weight: float = 1.0
    vgg_weights: str | None = None
    gan_type: str = "ragan"  # ragan | standard
    gan_weight: float = 5e-3
    init: str | None = None
    init_skip_tail: bool = True
    ema: float = 0.999
    amp: str = "auto"  # auto | bf16 | fp16 | off
    workers: int | None = None
    val_every: int = 1000
    checkpoint_every: int = 500
    log_every: int = 50
    degradation: str = "bicubic"  # bicubic | realworld | dsgan:PATH | classical:noise=S,jpeg=Q,blur=S | paired:LR_DIR
    realworld: dict[str, Any] = field(default_factory=dict)  # --degradation realworld: settings that differ from its defaults
    freq_sep: bool = False
    highpass_pixel_weight: float = 0.0  # --freq-sep: pixel loss on the high-pass too, relative to the low-pass one
    # DSGAN
    source: list[str] = field(default_factory=list)
    block_grid: int = 0  # dsgan: grid-aware generator (8 = JPEG blocks); 0 = the paper's network
    noise_channels: int = 0  # dsgan: N(0, 1) input planes for content-independent noise
    jpeg_quality: int | str = 0  # dsgan: JPEG layer after the generator; "auto" = estimated from --source
    lowpass_kernel: int = 5
    lowpass_gaussian: bool = False
    color_weight: float = 1.0
    noise_free_color: bool = False  # dsgan: colour loss on G's output with zero noise planes
    noise_free_identity: float = 0.0  # dsgan: weight of L1(G(x, zero noise), JPEG(x)): no deterministic change
    augment: bool = True
    hr_rescale: list[float] = field(default_factory=lambda: [1.0])  # extra HR copies at these size factors
    device: str = "auto"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    # EDSR: L1, Adam, lr 1e-4 halved every 2e5 iterations, batch 16, LR patch 48.
    "edsr": dict(stage="psnr", scale=2, batch=16, patch=48, lr=1e-4, pixel_loss="l1", milestones=[200_000]),
    "mdsr": dict(stage="psnr", scale=2, batch=16, patch=48, lr=1e-4, pixel_loss="l1", milestones=[200_000]),
    # SRResNet: MSE pre-training on 96x96 HR crops, lr 1e-4.
    "srresnet": dict(stage="psnr", scale=4, batch=16, patch=24, lr=1e-4, pixel_loss="mse", milestones=[1_000_000]),
    # SRGAN: VGG content loss (relu5_4, MSE) + 1e-3 BCE adversarial, from SRResNet.
    "srgan": dict(stage="gan", scale=4, batch=16, patch=24, lr=1e-4, pixel_loss="mse", pixel_weight=0.0,
                  perceptual_layer="relu5_4", perceptual_weight=1.0, gan_type="standard", gan_weight=1e-3,
                  milestones=[100_000], init_skip_tail=False),
    # ESRGAN: PSNR stage L1 lr 2e-4; GAN stage L1 1e-2 + VGG conv5_4 (before activation) 1 + RaGAN 5e-3.
    "esrgan": dict(stage="psnr", scale=4, batch=16, patch=32, lr=2e-4, pixel_loss="l1",
                   milestones=[200_000, 400_000, 600_000, 800_000]),
    # DSGAN: Adam 2e-4, betas (0.5, 0.999); colour / perceptual / GAN = 1 / 0.01 / 0.005.
    "dsgan": dict(stage="gan", scale=4, batch=16, patch=64, lr=2e-4, betas=(0.5, 0.999), color_weight=1.0,
                  perceptual_weight=0.01, gan_weight=0.005, gan_type="standard", perceptual_layer="conv3_4",
                  milestones=[1_000_000], ema=0.0),
}

ESRGAN_GAN_STAGE = dict(lr=1e-4, pixel_weight=1e-2, perceptual_weight=1.0, perceptual_layer="conv5_4",
                        gan_type="ragan", gan_weight=5e-3, milestones=[50_000, 100_000, 200_000, 300_000],
                        init_skip_tail=False)


def parse_duration(text: str | float | int | None) -> float | None:
    """'2h', '90m', '1h30m', '45s' or a number of seconds -> seconds."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        return float(text)
    stripped = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", stripped):
        return float(stripped)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", stripped)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != stripped.replace(" ", ""):
        raise ConfigError(f"cannot read duration {text!r}; use e.g. 2h, 90m, 1h30m, 45s")
    factors = {"h": 3600.0, "m": 60.0, "s": 1.0}
    return sum(float(number) * factors[unit] for number, unit in parts)


def load_toml(path: str | Path) -> dict[str, Any]:
    try:
        import tomllib  # type: ignore[import-not-found]
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ConfigError("reading --config TOML files needs Python 3.11+ or the 'tomli' package") from None
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from None
    except Exception as error:
        raise ConfigError(f"config {path} is not valid TOML: {error}") from None


def resolve_config(family: str, file_values: dict[str, Any] | None = None,
                   overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Paper defaults, then the TOML file, then command-line values (None means 'not given')."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    values: dict[str, Any] = {"family": family, "out": f"runs/{family}"}
    values.update(FAMILY_DEFAULTS[family])
    layered = {**(file_values or {}), **{k: v for k, v in (overrides or {}).items() if v is not None}}
    if (file_values or {}).get("realworld") and (overrides or {}).get("realworld"):  # a setting at a time
        layered["realworld"] = {**file_values["realworld"], **overrides["realworld"]}  # type: ignore[index]
    if family == "esrgan" and layered.get("stage", values["stage"]) == "gan":
        values.update(ESRGAN_GAN_STAGE)
    if family in ("srgan", "dsgan") and layered.get("stage", "gan") != "gan":
        raise ConfigError(f"{family} is trained adversarially; use --stage gan or train srresnet/esrgan for PSNR")
    values.update(layered)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
    if "time_budget" in values:
        values["time_budget"] = parse_duration(values["time_budget"])
    if isinstance(values.get("data"), str):
        values["data"] = [values["data"]]
    if isinstance(values.get("source"), str):
        values["source"] = [values["source"]]
    values["betas"] = tuple(values.get("betas", (0.9, 0.999)))
    config = TrainConfig(**values)
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    if config.stage not in ("psnr", "gan"):
        raise ConfigError("--stage must be psnr or gan")
    if config.perceptual not in ("vgg", "dfeat", "none"):
        raise ConfigError("--perceptual must be vgg, dfeat or none")
    if config.amp not in ("auto", "bf16", "fp16", "off"):
        raise ConfigError("--amp must be auto, bf16, fp16 or off")
    if config.pixel_loss not in ("l1", "mse"):
        raise ConfigError("--pixel-loss must be l1 or mse")
    if config.gan_type not in ("ragan", "standard"):
        raise ConfigError("--gan-type must be ragan or standard")
    if config.iters <= 0 or config.batch <= 0 or config.patch <= 0:
        raise ConfigError("--iters, --batch and --patch must be positive")
    for flag, value in (("--noise-free-color", config.noise_free_color),
                        ("--noise-free-identity", config.noise_free_identity)):
        if value and (config.family != "dsgan" or not config.noise_channels):
            raise ConfigError(f"{flag} needs dsgan with --noise-channels")
    if config.noise_free_identity < 0:
        raise ConfigError("--noise-free-identity must be >= 0")
    if not config.hr_rescale or not all(0 < factor <= 1 for factor in config.hr_rescale):
        raise ConfigError("--hr-rescale factors must be in (0, 1], e.g. 1,0.8,0.6")
    if config.hr_rescale != [1.0] and (config.family == "dsgan" or config.degradation.startswith("paired:")):
        raise ConfigError("--hr-rescale needs LR made on the fly (not dsgan or --degradation paired:)")
    if config.realworld:
        if config.degradation != "realworld":
            raise ConfigError("--realworld settings need --degradation realworld")
        from ..degradation.realworld import DegradationSettingsError, settings_from

        try:
            settings_from(config.realworld)
        except DegradationSettingsError as error:
            raise ConfigError(str(error)) from None
    if config.family == "mdsr":
        if not set(config.scales) <= {2, 3, 4}:
            raise ConfigError("MDSR scales must be among 2, 3, 4")
    elif config.family == "esrgan":
        if config.scale not in (1, 2, 4):
            raise ConfigError("ESRGAN (RRDBNet) supports x1, x2 and x4")
    elif config.scale not in (2, 3, 4):
        raise ConfigError("scale must be 2, 3 or 4")


def config_from_json(text: str) -> TrainConfig:
    values = json.loads(text)
    values["betas"] = tuple(values.get("betas", (0.9, 0.999)))
    return TrainConfig(**values)
