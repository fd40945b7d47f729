"""A randomized, high-order blind degradation for training networks on everyday photos.

Why: networks trained on MATLAB-bicubic LR treat JPEG blocks and sensor noise as detail and
sharpen them. Real-ESRGAN (Wang et al. 2021) and BSRGAN (Zhang et al. 2021) showed that
training on a wide random family of degradations, applied twice ("second order", like a photo
that was resized and re-compressed after it was shot), gives networks that remove them instead.

Each sample draws its own chain from ``generator``:

    clean (with ``clean_prob``): MATLAB bicubic only, nothing else
    compressed (with ``compressed_prob``): filtered resize, then JPEG/WebP once or twice
    first order:  blur -> resize (up, down or keep) -> noise -> sharpen? -> JPEG/WebP
    second order (with ``second_order_prob``): blur -> resize -> noise -> JPEG/WebP
    final:        [resize to HR/scale -> sinc?] and JPEG, in random order

Everything is drawn from the caller's ``torch.Generator``, so the trainer's batches stay a pure
function of (seed, iteration) and a resumed run is bit-identical to an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..imresize import imresize

Range = tuple[float, float]
Note = Callable[[str, dict[str, Any]], None]  # (stage, drawn parameters): what a trace records


def _silent(stage: str, values: dict[str, Any]) -> None:
    pass

KERNEL_SHAPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc")
RESIZE_MODES = ("area", "bilinear", "bicubic")
CODECS = ("jpeg", "webp")


class DegradationSettingsError(ValueError):
    """A realworld setting that is out of range or unknown; one-line message."""


@dataclass(frozen=True)
class OrderSettings:
    """Ranges and probabilities of one degradation order (first or second)."""

    blur_prob: float = 1.0
    kernel_size: Range = (7, 21)  # odd sizes drawn within
    blur_sigma: Range = (0.2, 3.0)  # pixels of the image the blur is applied to
    # iso, aniso, generalized_iso, generalized_aniso, plateau_iso, plateau_aniso, sinc
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03, 0.0)
    generalized_beta: Range = (0.5, 4.0)
    plateau_beta: Range = (1.0, 2.0)
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: Range = (0.3, 1.5)
    antialias_prob: float = 0.5  # bilinear/bicubic downscales filtered first, as PIL, MATLAB and browsers do
    noise_prob: float = 0.8  # web and re-shared photos often carry compression alone
    gaussian_noise_prob: float = 0.5  # else Poisson (signal-dependent)
    noise_sigma: Range = (1.0, 30.0)  # 8-bit levels
    poisson_scale: Range = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    sharpen_prob: float = 0.0  # unsharp masking before compression: camera/phone halos
    sharpen_amount: Range = (0.3, 1.5)
    sharpen_sigma: Range = (0.5, 2.0)
    compression_prob: float = 1.0
    jpeg_quality: Range = (30, 95)
    webp_prob: float = 0.1  # other codecs' blocking: WebP instead of JPEG
    chroma_subsampling_probs: tuple[float, float, float] = (0.15, 0.15, 0.7)  # 4:4:4, 4:2:2, 4:2:0


def _default_second_order() -> OrderSettings:
    return OrderSettings(blur_prob=0.8, blur_sigma=(0.2, 1.5), resize_probs=(0.3, 0.4, 0.3),
                         resize_range=(0.5, 1.2), noise_sigma=(1.0, 25.0), poisson_scale=(0.05, 2.5))


@dataclass(frozen=True)
class RealWorldSettings:
    """The whole pipeline. Defaults cover web JPEG, camera blur + noise + JPEG, phone downscale +
    signal-dependent noise + JPEG, re-shared double compression, WebP blocking, sharpening halos
    and chroma subsampling; they are milder than Real-ESRGAN's (first-order resize 0.3-1.5, not
    0.15-1.5; second order half the time) because PSNR-oriented photo models pay for every
    degradation they must expect but never see."""

    #: MATLAB-bicubic LR and nothing else: a default model meets clean images too (PNG renders,
    #: screenshots, good cameras) and must not smooth them away.
    clean_prob: float = 0.2
    #: Resized and compressed, nothing else: the web photo (downscaled by software, which filters
    #: first, then JPEG/WebP), re-shared (compressed again) with ``recompress_prob``. The full
    #: chain below almost always blurs and usually adds noise, so without this share it hardly
    #: ever shows a network a compression-only LR, the most common kind on the web.
    compressed_prob: float = 0.35
    recompress_prob: float = 0.5
    first: OrderSettings = field(default_factory=lambda: OrderSettings(sharpen_prob=0.2))
    second: OrderSettings = field(default_factory=_default_second_order)
    second_order_prob: float = 0.5
    final_sinc_prob: float = 0.5
    final_sinc_kernel_size: Range = (7, 21)
    final_resize_probs: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # area, bilinear, bicubic
    final_antialias_prob: float = 0.5
    final_compression_prob: float = 1.0
    final_jpeg_quality: Range = (30, 95)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- settings I/O


def _coerce(current: Any, value: Any, name: str) -> Any:
    """``value`` (from TOML or ``a:b`` text) in the type of the default ``current``."""
    if isinstance(value, str) and isinstance(current, tuple):
        value = [part for part in value.replace(":", " ").replace("/", " ").split() if part]
    try:
        if isinstance(current, tuple):
            if len(value) != len(current):
                raise DegradationSettingsError(f"realworld setting {name} takes {len(current)} numbers, got {len(value)}")
            return tuple(float(item) for item in value)
        return float(value)
    except (TypeError, ValueError):
        raise DegradationSettingsError(f"realworld setting {name}: {value!r} is not a number") from None


def _apply(settings: Any, values: Mapping[str, Any], prefix: str) -> Any:
    known = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    changes = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in known:
            raise DegradationSettingsError(f"unknown realworld setting {name!r}; see 'srcli degrade --help'")
        if dataclasses.is_dataclass(known[key]):
            if not isinstance(value, Mapping):
                raise DegradationSettingsError(f"realworld setting {name} is a table of settings")
            changes[key] = _apply(known[key], value, f"{name}.")
        else:
            changes[key] = _coerce(known[key], value, name)
    return dataclasses.replace(settings, **changes)


#: The second order's compression is the final stage's (as in Real-ESRGAN): these say so.
FINAL_INSTEAD = {"second.jpeg_quality": "final_jpeg_quality", "second.compression_prob": "final_compression_prob"}


def settings_from(values: Mapping[str, Any] | None = None) -> RealWorldSettings:
    """Defaults updated by a (possibly nested) mapping: ``{"second_order_prob": 0.3,
    "first": {"noise_sigma": [1, 20]}}`` or flat dotted keys ``{"first.noise_sigma": "1:20"}``."""
    nested: dict[str, Any] = {}
    for key, value in (values or {}).items():
        head, dot, tail = key.partition(".")
        if dot:
            nested.setdefault(head, {})
            if not isinstance(nested[head], dict):
                raise DegradationSettingsError(f"realworld setting {head} is a table of settings")
            nested[head][tail] = value
        elif isinstance(value, Mapping):
            nested.setdefault(key, {}).update(value)
        else:
            nested[key] = value
    for key, instead in FINAL_INSTEAD.items():
        head, _, tail = key.partition(".")
        if tail in nested.get(head, {}):
            raise DegradationSettingsError(f"{key} is not used: the second order ends in the final stage's "
                                           f"compression; set {instead}")
    settings = _apply(RealWorldSettings(), nested, "")
    check_settings(settings)
    return settings


def parse_settings_text(text: str) -> dict[str, str]:
    """``first.noise_sigma=1:20,second_order_prob=0.3`` -> flat mapping (values as text)."""
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = item.partition("=")
        if not equals or not value:
            raise DegradationSettingsError(f"bad realworld setting {item!r}; use NAME=VALUE or NAME=LOW:HIGH")
        values[key.strip()] = value.strip()
    return values


def _check_probability(value: float, name: str) -> None:
    if not 0 <= value <= 1:
        raise DegradationSettingsError(f"realworld setting {name} must be within 0-1, got {value}")


def _check_range(value: Range, name: str, low: float, high: float) -> None:
    if not low <= value[0] <= value[1] <= high:
        raise DegradationSettingsError(f"realworld setting {name} must be LOW:HIGH within {low:g}-{high:g}, got "
                                       f"{value[0]:g}:{value[1]:g}")


def _check_weights(value: tuple[float, ...], name: str) -> None:
    if any(weight < 0 for weight in value) or sum(value) <= 0:
        raise DegradationSettingsError(f"realworld setting {name} needs non-negative weights with a positive sum")


def _check_order(order: OrderSettings, prefix: str) -> None:
    for name in ("blur_prob", "antialias_prob", "noise_prob", "gaussian_noise_prob", "gray_noise_prob",
                 "sharpen_prob", "compression_prob", "webp_prob"):
        _check_probability(getattr(order, name), prefix + name)
    _check_range(order.kernel_size, prefix + "kernel_size", 3, 41)
    _check_range(order.blur_sigma, prefix + "blur_sigma", 0.05, 20)
    _check_range(order.generalized_beta, prefix + "generalized_beta", 0.1, 10)
    _check_range(order.plateau_beta, prefix + "plateau_beta", 0.1, 10)
    _check_range(order.resize_range, prefix + "resize_range", 0.05, 4)
    _check_range(order.noise_sigma, prefix + "noise_sigma", 0, 255)
    _check_range(order.poisson_scale, prefix + "poisson_scale", 0, 20)
    _check_range(order.sharpen_amount, prefix + "sharpen_amount", 0, 5)
    _check_range(order.sharpen_sigma, prefix + "sharpen_sigma", 0.1, 10)
    _check_range(order.jpeg_quality, prefix + "jpeg_quality", 1, 100)
    for name, size in (("kernel_probs", len(KERNEL_SHAPES)), ("resize_probs", 3), ("chroma_subsampling_probs", 3)):
        value = getattr(order, name)
        if len(value) != size:
            raise DegradationSettingsError(f"realworld setting {prefix}{name} takes {size} weights")
        _check_weights(value, prefix + name)


def check_settings(settings: RealWorldSettings) -> None:
    _check_order(settings.first, "first.")
    _check_order(settings.second, "second.")
    for name in ("clean_prob", "compressed_prob", "recompress_prob", "second_order_prob", "final_sinc_prob", "final_compression_prob",
                 "final_antialias_prob"):
        _check_probability(getattr(settings, name), name)
    _check_range(settings.final_sinc_kernel_size, "final_sinc_kernel_size", 3, 41)
    _check_range(settings.final_jpeg_quality, "final_jpeg_quality", 1, 100)
    _check_weights(settings.final_resize_probs, "final_resize_probs")


# ----------------------------------------------------------------------------- random draws


def _uniform(generator: torch.Generator, bounds: Range) -> float:
    return float(bounds[0] + (bounds[1] - bounds[0]) * torch.rand((), generator=generator, dtype=torch.float64))


def _chance(generator: torch.Generator, probability: float) -> bool:
    return bool(torch.rand((), generator=generator, dtype=torch.float64) < probability)


def _choice(generator: torch.Generator, weights: tuple[float, ...]) -> int:
    """Index drawn with probability proportional to ``weights`` (one uniform draw, no multinomial:
    the pipeline makes a dozen of these per sample)."""
    threshold = float(torch.rand((), generator=generator, dtype=torch.float64)) * sum(weights)
    total = 0.0
    for index, weight in enumerate(weights):
        total += weight
        if threshold < total and weight > 0:
            return index
    return max(index for index, weight in enumerate(weights) if weight > 0)


def _odd_size(generator: torch.Generator, bounds: Range) -> int:
    low, high = int(bounds[0]) // 2, int(bounds[1]) // 2
    return 2 * int(torch.randint(low, high + 1, (), generator=generator)) + 1


# ----------------------------------------------------------------------------- kernels


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    return torch.meshgrid(coords, coords, indexing="ij")


def anisotropic_kernel(size: int, sigma_x: float, sigma_y: float, angle: float, shape: str = "gaussian",
                       beta: float = 1.0) -> torch.Tensor:
    """Gaussian (beta 1), generalized Gaussian exp(-0.5 q^beta) or plateau 1/(1 + q^beta) kernel,
    where q is the squared Mahalanobis distance under the rotated covariance; sums to 1."""
    rows, cols = _grid(size)
    cos, sin = math.cos(angle), math.sin(angle)
    along = cols * cos + rows * sin
    across = -cols * sin + rows * cos
    quadratic = (along / sigma_x) ** 2 + (across / sigma_y) ** 2
    if shape == "gaussian":
        kernel = torch.exp(-0.5 * quadratic)
    elif shape == "generalized":
        kernel = torch.exp(-0.5 * quadratic.pow(beta))
    elif shape == "plateau":
        kernel = 1.0 / (1.0 + quadratic.pow(beta))
    else:
        raise ValueError(f"unknown kernel shape {shape!r}")
    return (kernel / kernel.sum()).float()


def sinc_kernel(size: int, cutoff: float) -> torch.Tensor:
    """Circular low-pass (2-D sinc, a Bessel J1 profile) with ``cutoff`` in radians/pixel: the
    ringing and overshoot that sharp resamplers and over-sharpened camera output show."""
    rows, cols = _grid(size)
    radius = torch.sqrt(rows**2 + cols**2)
    safe = torch.where(radius == 0, torch.ones_like(radius), radius)
    kernel = cutoff * torch.special.bessel_j1(cutoff * safe) / (2 * math.pi * safe)
    kernel = torch.where(radius == 0, torch.full_like(radius, cutoff**2 / (4 * math.pi)), kernel)
    return (kernel / kernel.sum()).float()


def draw_blur_kernel(generator: torch.Generator, order: OrderSettings, note: Note = _silent) -> torch.Tensor:
    size = _odd_size(generator, order.kernel_size)
    shape = KERNEL_SHAPES[_choice(generator, order.kernel_probs)]
    if shape == "sinc":
        low = math.pi / 3 if size < 13 else math.pi / 5
        cutoff = _uniform(generator, (low, math.pi))
        note("blur", {"shape": shape, "kernel_size": size, "cutoff": cutoff})
        return sinc_kernel(size, cutoff)
    sigma_x = _uniform(generator, order.blur_sigma)
    if shape.endswith("iso") and not shape.endswith("aniso"):
        sigma_y, angle = sigma_x, 0.0
    else:
        sigma_y = _uniform(generator, order.blur_sigma)
        angle = _uniform(generator, (-math.pi, math.pi))
    family, beta = "gaussian", 1.0
    if shape.startswith("generalized"):
        family, beta = "generalized", _uniform(generator, order.generalized_beta)
    elif shape.startswith("plateau"):
        family, beta = "plateau", _uniform(generator, order.plateau_beta)
    note("blur", {"shape": shape, "kernel_size": size, "sigma_x": sigma_x, "sigma_y": sigma_y, "angle": angle,
                  "beta": beta})
    return anisotropic_kernel(size, sigma_x, sigma_y, angle, family, beta)


#: From this kernel side on, an FFT product beats a direct depthwise convolution on CPU (measured
#: on 96-288 px images, one thread: 5x5 on 192 px 1.9 vs 4.9 ms, 11x11 on 288 px 4.1 vs 9.1 ms).
FFT_MIN_KERNEL = 5


def fast_fft_length(length: int) -> int:
    """The smallest length >= ``length`` with no prime factor above 5, where FFTs are fastest."""
    candidate = length
    while True:
        rest = candidate
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return candidate
        candidate += 1


def _correlate_fft(padded: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """'Valid' cross-correlation of (N, C, H, W) with one 2-D kernel, as a product of spectra."""
    height, width = padded.shape[-2:]
    size = kernel.shape[-1]
    shape = (fast_fft_length(height), fast_fft_length(width))
    spectrum = torch.fft.rfft2(padded, s=shape) * torch.fft.rfft2(kernel.flip(-1, -2).to(padded.dtype), s=shape)
    full = torch.fft.irfft2(spectrum, s=shape)
    return full[..., size - 1:height, size - 1:width]


def filter2d(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve (1, C, H, W) with one 2-D kernel per channel, reflect-padded (replicate when tiny).

    Kernels from 5 pixels wide go through the FFT (equal to the direct convolution within float rounding):
    the blur is most of the pipeline's cost, and the pipeline runs beside every training step."""
    pad = kernel.shape[-1] // 2
    mode = "reflect" if min(image.shape[-2:]) > pad else "replicate"
    padded = F.pad(image, (pad, pad, pad, pad), mode=mode)
    if kernel.shape[-1] >= FFT_MIN_KERNEL:
        return _correlate_fft(padded, kernel)
    channels = image.shape[1]
    weight = kernel.to(image.dtype).expand(channels, 1, *kernel.shape).contiguous()
    return F.conv2d(padded, weight, groups=channels)


# ----------------------------------------------------------------------------- stages


def _resize(image: torch.Tensor, size: tuple[int, int], mode: str, antialias: bool = False) -> torch.Tensor:
    """``antialias`` low-passes a bilinear/bicubic downscale (area always averages); without it
    the resampler skips pixels, the aliasing of cheap scalers."""
    if tuple(image.shape[-2:]) == size:
        return image
    if mode == "area":
        return F.interpolate(image, size=size, mode="area")
    shrinking = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    return F.interpolate(image, size=size, mode=mode, align_corners=False, antialias=antialias and shrinking)


def random_resize(generator: torch.Generator, image: torch.Tensor, order: OrderSettings,
                  note: Note = _silent) -> torch.Tensor:
    direction = _choice(generator, order.resize_probs)
    if direction == 0:
        factor = _uniform(generator, (1.0, max(1.0, order.resize_range[1])))
    elif direction == 1:
        factor = _uniform(generator, (order.resize_range[0], min(1.0, order.resize_range[1])))
    else:
        factor = 1.0
    mode = RESIZE_MODES[_choice(generator, (1.0, 1.0, 1.0))]
    antialias = _chance(generator, order.antialias_prob)
    height, width = image.shape[-2:]
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    note("resize", {"factor": factor, "mode": mode, "antialias": antialias, "size": size})
    return _resize(image, size, mode, antialias)


def add_noise(generator: torch.Generator, image: torch.Tensor, order: OrderSettings,
              note: Note = _silent) -> torch.Tensor:
    if not _chance(generator, order.noise_prob):
        return image
    gray = _chance(generator, order.gray_noise_prob)
    planes = (1, 1, *image.shape[-2:]) if gray else tuple(image.shape)
    if _chance(generator, order.gaussian_noise_prob):
        sigma = _uniform(generator, order.noise_sigma) / 255
        note("noise", {"kind": "gaussian", "sigma": sigma * 255, "gray": gray})
        noise = torch.randn(planes, generator=generator) * sigma
    else:
        scale = _uniform(generator, order.poisson_scale)
        note("noise", {"kind": "poisson", "scale": scale, "gray": gray})
        clean = image.clamp(0, 1)
        if gray:
            clean = (clean * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        # shot noise: Poisson counts of clean * 255 photons, drawn as a normal with the Poisson
        # spread (sqrt of the count), which torch draws ~5x faster than torch.poisson
        noise = torch.randn(clean.shape, generator=generator) * (clean * 255).sqrt() / 255 * scale
    return image + noise.expand_as(image)


def unsharp_mask(generator: torch.Generator, image: torch.Tensor, order: OrderSettings,
                 note: Note = _silent) -> torch.Tensor:
    amount = _uniform(generator, order.sharpen_amount)
    sigma = _uniform(generator, order.sharpen_sigma)
    note("sharpen", {"amount": amount, "sigma": sigma})
    size = 2 * math.ceil(3 * sigma) + 1
    blurred = filter2d(image, anisotropic_kernel(size, sigma, sigma, 0.0))
    return image + amount * (image - blurred)


def encode_round_trip(image: torch.Tensor, codec: str, quality: int, subsampling: int) -> torch.Tensor:
    """(1, 3, H, W) through an 8-bit encode/decode with PIL (JPEG with 4:4:4/4:2:2/4:2:0, or WebP).

    WebP uses the encoder's fastest effort (method 0): the same quality scale and block artefacts
    at a third of the time of the default effort, which matters beside every training step."""
    array = image[0].mul(255).clamp_(0, 255).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    buffer = io.BytesIO()
    picture = Image.fromarray(array)
    if codec == "jpeg":
        picture.save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    else:
        picture.save(buffer, format="WEBP", quality=quality, method=0)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = np.array(decoded if decoded.mode == "RGB" else decoded.convert("RGB"))
    return torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0).float().div_(255)


def compress(generator: torch.Generator, image: torch.Tensor, quality_range: Range, webp_prob: float,
             subsampling_probs: tuple[float, float, float], note: Note = _silent) -> torch.Tensor:
    quality = int(round(_uniform(generator, quality_range)))
    codec = "webp" if _chance(generator, webp_prob) else "jpeg"
    subsampling = _choice(generator, subsampling_probs)
    note("compress", {"codec": codec, "quality": quality, "subsampling": ("4:4:4", "4:2:2", "4:2:0")[subsampling]})
    return encode_round_trip(image, codec, quality, subsampling)


def degrade_order(generator: torch.Generator, image: torch.Tensor, order: OrderSettings,
                  compress_now: bool = True, note: Note = _silent) -> torch.Tensor:
    if _chance(generator, order.blur_prob):
        image = filter2d(image, draw_blur_kernel(generator, order, note))
    image = random_resize(generator, image, order, note)
    image = add_noise(generator, image, order, note)
    if _chance(generator, order.sharpen_prob):
        image = unsharp_mask(generator, image, order, note)
    if compress_now and _chance(generator, order.compression_prob):
        image = compress(generator, image, order.jpeg_quality, order.webp_prob, order.chroma_subsampling_probs, note)
    return image.clamp(0, 1)


def _final_steps(generator: torch.Generator, image: torch.Tensor, size: tuple[int, int],
                 settings: RealWorldSettings, note: Note = _silent) -> torch.Tensor:
    """Resize to the LR size (+ sinc) and compress, in random order, as Real-ESRGAN does."""
    mode = RESIZE_MODES[_choice(generator, settings.final_resize_probs)]
    antialias = _chance(generator, settings.final_antialias_prob)
    sinc = None
    if _chance(generator, settings.final_sinc_prob):
        kernel_size = _odd_size(generator, settings.final_sinc_kernel_size)
        cutoff = _uniform(generator, (math.pi / 3, math.pi))
        note("final_sinc", {"kernel_size": kernel_size, "cutoff": cutoff})
        sinc = sinc_kernel(kernel_size, cutoff)
    do_compress = _chance(generator, settings.final_compression_prob)
    compress_first = _chance(generator, 0.5)
    note("final", {"resize_mode": mode, "antialias": antialias, "size": size,
                   "compress_first": compress_first and do_compress})
    second = settings.second

    def resize_and_sinc(picture: torch.Tensor) -> torch.Tensor:
        picture = _resize(picture, size, mode, antialias)
        return filter2d(picture, sinc) if sinc is not None else picture

    def final_compress(picture: torch.Tensor) -> torch.Tensor:
        if not do_compress:
            return picture
        return compress(generator, picture.clamp(0, 1), settings.final_jpeg_quality, second.webp_prob,
                        second.chroma_subsampling_probs, note)

    if compress_first:
        image = resize_and_sinc(final_compress(image))
    else:
        image = final_compress(resize_and_sinc(image))
    return image.clamp(0, 1)


def _prefixed(note: Note, prefix: str) -> Note:
    if note is _silent:
        return note
    return lambda stage, values: note(prefix + stage, values)


class RealWorldDegradation:
    """Callable (HR (C, H, W) or (N, C, H, W), scale, generator) -> 8-bit LR of HR/scale size."""

    def __init__(self, settings: RealWorldSettings | None = None) -> None:
        self.settings = settings or RealWorldSettings()

    def one(self, hr: torch.Tensor, scale: int, generator: torch.Generator, note: Note = _silent) -> torch.Tensor:
        """Degrade a single (3, H, W) image; the LR is floor(H/scale) x floor(W/scale).

        ``note`` receives each stage's drawn parameters (tests and ``srcli degrade --json`` read them)."""
        image = hr.unsqueeze(0).float()
        height, width = hr.shape[-2:]
        lr_size = (max(1, height // scale), max(1, width // scale))
        if _chance(generator, self.settings.clean_prob):
            note("clean", {"size": lr_size})
            clean = imresize(image[..., : lr_size[0] * scale, : lr_size[1] * scale], 1.0 / scale)
            return (clean[0].clamp(0, 1) * 255).round() / 255
        if self.settings.compressed_prob > 0 and _chance(generator, self.settings.compressed_prob):
            return self._compressed(generator, image, lr_size, note)
        image = degrade_order(generator, image, self.settings.first, note=_prefixed(note, "first."))
        if _chance(generator, self.settings.second_order_prob):
            image = degrade_order(generator, image, self.settings.second, compress_now=False,
                                  note=_prefixed(note, "second."))
        image = _final_steps(generator, image, lr_size, self.settings, _prefixed(note, "final."))
        return (image[0].clamp(0, 1) * 255).round() / 255

    def _compressed(self, generator: torch.Generator, image: torch.Tensor, lr_size: tuple[int, int],
                    note: Note) -> torch.Tensor:
        """A compression-only chain: filtered resize to the LR size, then one or two codec round trips."""
        settings = self.settings
        mode = RESIZE_MODES[_choice(generator, settings.final_resize_probs)]
        note("compressed.resize", {"mode": mode, "antialias": True, "size": lr_size})
        image = _resize(image, lr_size, mode, antialias=True).clamp(0, 1)
        rounds = 2 if _chance(generator, settings.recompress_prob) else 1
        for _ in range(rounds):
            image = compress(generator, image, settings.final_jpeg_quality, settings.second.webp_prob,
                             settings.second.chroma_subsampling_probs, _prefixed(note, "compressed."))
        return (image[0].clamp(0, 1) * 255).round() / 255

    def __call__(self, hr: torch.Tensor, scale: int, generator: torch.Generator | None = None) -> torch.Tensor:
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        if hr.dim() == 3:
            return self.one(hr, scale, generator)
        return torch.stack([self.one(image, scale, generator) for image in hr])
