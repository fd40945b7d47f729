"""Reading and writing images as people actually have them.

An upscaler sees phone JPEGs with EXIF rotation, palette PNGs with transparency, CMYK
scans, greyscale and 16-bit PNG/TIFF files. ``read_image`` turns all of them into float
tensors in [0, 1] plus the metadata worth keeping (bit depth, ICC profile, DPI), and
``write_image`` writes the result back atomically without losing precision or colour
management. Pillow loses the low byte of 16-bit RGB(A) PNG/TIFF and cannot write such
files at all, so both directions are handled here (see ``_read_16bit_rgb``, which works
for every PNG filter, interlacing and TIFF compression Pillow decodes, and
``_write_png16`` / ``_write_tiff16``).

Known limits: only the first frame of multi-frame files is read; 16-bit CMYK and
premultiplied-alpha 16-bit TIFFs are read at 8 bits (with a warning); float TIFFs are
assumed to hold values in [0, 1]; 16-bit grey+alpha TIFFs are written as 16-bit RGBA,
because Pillow cannot read 16-bit grey+alpha TIFFs back.
"""
from __future__ import annotations

import contextlib
import io
import os
import struct
import sys
import warnings
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError, features

from ..files import atomic_write

#: The files srcli treats as images when it lists a folder (batch inputs, datasets, training data).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

DEFAULT_MAX_PIXELS = 64_000_000
READ_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "DIB", "TIFF", "GIF")
_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tiff", "BMP": ".bmp"}
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "MPO": "JPEG", "DIB": "BMP"}
# Pillow rawmodes that keep only the high byte of each 16-bit sample, and the rawmode
# that picks the other byte of the same sample (same bits per pixel, so unfiltering and
# deinterlacing are identical and only the unpacking differs).
_OTHER_BYTE = {
    "RGB;16B": "RGB;16L", "RGB;16L": "RGB;16B",
    "RGBA;16B": "RGBA;16L", "RGBA;16L": "RGBA;16B",
    "RGBX;16B": "RGBX;16L", "RGBX;16L": "RGBX;16B",
}
# libtiff hands Pillow native-order samples ("N"); the other byte is the other endianness.
_NOT_NATIVE = "B" if sys.byteorder == "little" else "L"
_OTHER_BYTE.update({f"{m};16N": f"{m};16{_NOT_NATIVE}" for m in ("RGB", "RGBA", "RGBX")})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageReadError(ValueError):
    """An input file cannot be used; the message is one line meant for the user."""


@dataclass
class LoadedImage:
    """Decoded pixels plus the metadata an output should carry over.

    ``rgb`` is float32 (C, H, W) in [0, 1] with C = 3 (colour) or 1 (greyscale);
    ``alpha`` is float32 (1, H, W) or None. ``bit_depth`` (8 or 16) is the source
    precision; ``mode`` is the original Pillow mode, ``format`` Pillow's format name.
    EXIF orientation is already applied, so the EXIF block is deliberately not kept.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    bit_depth: int
    format: str
    icc_profile: bytes | None
    dpi: tuple[float, float] | None
    mode: str
    path: Path


# ----------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode ``path`` fully (so truncation is detected) into a :class:`LoadedImage`.

    ``max_pixels`` is checked against the header size before any pixel is decoded, so a
    tiny file that claims to be gigapixels cannot exhaust memory; None disables it.
    Every failure a user can cause becomes an :class:`ImageReadError`.
    """
    path = Path(path)
    Image.init()  # register all plugins: Image.open(formats=...) fails on unregistered ones
    try:
        with _pil_pixel_limit(), Image.open(path, formats=READ_FORMATS) as im:
            width, height = im.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageReadError(_too_big(path, width, height, max_pixels))
            fmt, mode = im.format or "", im.mode
            pixels, bit_depth = _decode(im, path)
            icc = im.info.get("icc_profile") or None
            if mode == "CMYK":
                icc = None  # a CMYK profile does not describe the RGB we return
            dpi = _read_dpi(im.info.get("dpi"))
            orientation = _orientation(im)
    except ImageReadError:
        raise
    except Image.DecompressionBombError:
        raise ImageReadError(f"{path}: too many pixels; raise the limit with --max-pixels") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise ImageReadError(f"{path}: {e.strerror or e}") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image in a supported format (PNG, JPEG, WebP, BMP, TIFF)") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, KeyError) as e:
        raise ImageReadError(f"{path}: damaged or truncated image ({_one_line(e)})") from None

    pixels = _apply_orientation(pixels, orientation)
    if dpi is not None and orientation in (5, 6, 7, 8):
        dpi = (dpi[1], dpi[0])
    colour = 3 if pixels.shape[2] >= 3 else 1
    tensor = to_float(pixels, bit_depth)
    alpha = tensor[colour:] if pixels.shape[2] in (2, 4) else None
    return LoadedImage(tensor[:colour], alpha, bit_depth, fmt, icc, dpi, mode, path)


def _decode(im: Image.Image, path: Path) -> tuple[np.ndarray, int]:
    """Load ``im`` and return (H, W, C) uint8/uint16 pixels with C in 1..4, and the bit depth."""
    rawmode = _rawmode(im)
    if rawmode in _OTHER_BYTE and im.format in ("PNG", "TIFF"):
        return _read_16bit_rgb(im, path, rawmode), 16
    if rawmode == "LA;16B" and im.format == "PNG":
        # 16-bit grey+alpha is 4 bytes a pixel, like 8-bit RGBA, so that unpacker keeps every byte.
        _set_rawmode(im, "RGBA")
        im.load()
        raw = np.asarray(im)
        return (raw[..., 0::2].astype(np.uint16) << 8) | raw[..., 1::2], 16
    if ";16" in rawmode and not im.mode.startswith("I"):
        warnings.warn(f"{path}: 16-bit {im.mode} image is read with 8-bit precision", stacklevel=3)
    im.load()
    mode = im.mode
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)[..., None], 16
    if mode == "I":
        return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)[..., None], 16
    if mode == "F":
        values = np.nan_to_num(np.asarray(im, dtype=np.float32))
        return np.round(np.clip(values, 0, 1) * 65535).astype(np.uint16)[..., None], 16
    if mode == "CMYK":
        im = _cmyk_to_rgb(im)
    alpha = im.has_transparency_data
    if mode in ("1", "L", "LA", "La"):
        target = "LA" if alpha else "L"
    else:
        target = "RGBA" if alpha else "RGB"
    if im.mode != target:
        im = im.convert(target)
    pixels = np.asarray(im)
    return (pixels[..., None] if pixels.ndim == 2 else pixels), 8


def _read_16bit_rgb(im: Image.Image, path: Path, rawmode: str) -> np.ndarray:
    """Decode 16-bit RGB(A) PNG/TIFF exactly: Pillow's decoder twice, once per byte.

    Pillow unfilters/deinterlaces/decompresses correctly but its unpacker keeps only the
    high byte. Decoding again with the opposite-endian rawmode yields the low bytes.
    """
    im.load()
    high = np.asarray(im)
    with Image.open(path, formats=READ_FORMATS) as again:
        _set_rawmode(again, _OTHER_BYTE[rawmode])
        again.load()
        low = np.asarray(again)
    if high.shape != low.shape:
        raise ImageReadError(f"{path}: file changed while it was being read")
    channels = 4 if rawmode.startswith("RGBA") else 3
    return ((high.astype(np.uint16) << 8) | low)[..., :channels]


def _rawmode(im: Image.Image) -> str:
    if not im.tile:
        return ""
    args = im.tile[0].args
    return args if isinstance(args, str) else (args[0] if args and isinstance(args[0], str) else "")


def _set_rawmode(im: Image.Image, rawmode: str) -> None:
    im.tile = [
        t._replace(args=rawmode if isinstance(t.args, str) else (rawmode, *t.args[1:])) for t in im.tile
    ]


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    """Use the embedded CMYK profile when LittleCMS is there; else Pillow's naive formula."""
    icc = im.info.get("icc_profile")
    if icc and features.check("littlecms2"):
        from PIL import ImageCms

        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass
    return im.convert("RGB")


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not make a good image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Same result as ``PIL.ImageOps.exif_transpose``, on (H, W, C) arrays of any depth."""
    ops: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](pixels)) if orientation in ops else pixels


def _read_dpi(value: object) -> tuple[float, float] | None:
    try:
        x, y = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return (x, y) if x > 0 and y > 0 and np.isfinite([x, y]).all() else None


@contextlib.contextmanager
def _pil_pixel_limit() -> Iterator[None]:
    """Switch off Pillow's global decompression-bomb limit while ``read_image`` applies its own.

    Pillow warns above ``MAX_IMAGE_PIXELS`` and refuses above twice that, which would
    override a user who raised ``--max-pixels``; our check runs right after the header is
    read and gives a better message. Not thread-safe (global state).
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _too_big(path: Path, width: int, height: int, max_pixels: int) -> str:
    return (
        f"{path}: {width}x{height} is {width * height / 1e6:.1f} megapixels, above the limit of "
        f"{max_pixels / 1e6:g} megapixels; raise it with --max-pixels if you trust this file"
    )


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# ----------------------------------------------------------------------------- pixels


def to_float(pixels: np.ndarray, bit_depth: int) -> torch.Tensor:
    """(H, W, C) unsigned integers -> float32 (C, H, W) in [0, 1]."""
    tensor = torch.from_numpy(np.require(pixels.transpose(2, 0, 1), requirements=("C", "W")))
    return tensor.to(torch.float32).div_((1 << bit_depth) - 1)


def to_uint(x: torch.Tensor, bit_depth: int = 8, rows_per_chunk: int = 256) -> np.ndarray:
    """Float (C, H, W) in [0, 1] -> (H, W, C) uint8/uint16, clamped and rounded (NaN -> 0).

    Works in row chunks so that a large output (e.g. 8192^2 RGB, 805 MB as float) needs no
    full-size float temporaries on top of the image itself.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth}")
    channels, height, width = x.shape
    out = np.empty((height, width, channels), dtype=np.uint8 if bit_depth == 8 else np.uint16)
    for top in range(0, height, rows_per_chunk):
        chunk = x[:, top:top + rows_per_chunk].detach().to("cpu", torch.float32)
        chunk = torch.nan_to_num(chunk, nan=0.0).clamp_(0, 1).mul_((1 << bit_depth) - 1).round_()
        values = chunk.to(torch.uint8 if bit_depth == 8 else torch.int32).permute(1, 2, 0).numpy()
        out[top:top + rows_per_chunk] = values
    return out


def premultiply(rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Colour times alpha: resampling premultiplied colour keeps hidden RGB out of edges."""
    return rgb * alpha


def unpremultiply(rgb: torch.Tensor, alpha: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Inverse of :func:`premultiply`; colour is 0 where alpha <= eps (it is undefined there)."""
    visible = alpha > eps
    return torch.where(visible, rgb / alpha.clamp_min(eps), torch.zeros_like(rgb)).clamp_(0, 1)


def bleed_colors(rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Give fully transparent pixels the colour of the nearest visible pixels.

    Transparent pixels usually hold black or junk RGB. A network looks at neighbours, so
    it would smear that colour into the visible side of every transparency edge (dark or
    tinted fringes once alpha is reapplied). A pull-push pyramid fills every hole with an
    alpha-weighted average of visible pixels, smoothly and in O(pixels). Pixels with
    alpha > 0 are returned unchanged. Works on (C, H, W) or batched (N, C, H, W).
    """
    batched = rgb.dim() == 4
    colour, weight = (rgb, alpha) if batched else (rgb[None], alpha[None])
    weight = weight.to(colour.dtype)
    visible = weight > 0
    if bool(visible.all()) or not bool(visible.any()):
        return rgb.clone()
    filled = torch.where(visible, colour, _pull_push(colour, weight))
    return filled if batched else filled[0]


def _pull_push(colour: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Pull: average known colours into a half-size level, where one known child is enough
    (weight clamped to 1). Push: fill what a level lacks from the upsampled coarser level."""
    height, width = weight.shape[-2:]
    if height <= 1 and width <= 1:
        return colour
    pooled_weight = F.avg_pool2d(weight, 2, ceil_mode=True)
    pooled = F.avg_pool2d(colour * weight, 2, ceil_mode=True) / pooled_weight.clamp_min(1e-12)
    coarse = _pull_push(pooled, (4 * pooled_weight).clamp_(max=1))
    up = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return weight * colour + (1 - weight) * up


# ----------------------------------------------------------------------------- formats


def output_format_for(input_format: str, ext: str, has_alpha: bool) -> tuple[str, str]:
    """Choose (Pillow format, extension with dot) for an output.

    ``ext`` is auto|png|jpg|webp|tiff. ``auto`` keeps the input's format so users get
    back what they gave, except where that would lose transparency (JPEG/BMP with alpha
    become PNG) and for formats we do not write (GIF etc. become PNG).
    """
    ext = ext.lower().lstrip(".")
    if ext != "auto":
        fmt = _normalise_format(ext)
        if fmt not in ("PNG", "JPEG", "WEBP", "TIFF"):
            raise ValueError(f"unknown output format {ext!r}; use auto, png, jpg, webp or tiff")
        if fmt == "JPEG" and has_alpha:
            raise ValueError("JPEG cannot store transparency; use png, webp or tiff for images with alpha")
        return fmt, (".tif" if ext == "tif" else _EXTENSIONS[fmt])
    fmt = _normalise_format(input_format)
    if fmt not in _EXTENSIONS or (has_alpha and fmt in ("JPEG", "BMP")):
        fmt = "PNG"
    return fmt, _EXTENSIONS[fmt]


def _normalise_format(name: str) -> str:
    upper = name.upper().lstrip(".")
    return _FORMAT_ALIASES.get(upper, upper)


# ----------------------------------------------------------------------------- writing


def write_image(
    path: str | os.PathLike,
    rgb: torch.Tensor,
    alpha: torch.Tensor | None = None,
    *,
    bit_depth: int = 8,
    format: str | None = None,
    icc_profile: bytes | None = None,
    dpi: tuple[float, float] | None = None,
    quality: int = 95,
    overwrite: bool = False,
) -> Path:
    """Write float (C, H, W) ``rgb`` (+ optional (1, H, W) ``alpha``) to ``path``.

    The file appears complete or not at all (temporary file, fsync, rename), and an
    existing file is never replaced unless ``overwrite``. ``bit_depth=16`` is honoured by
    PNG and TIFF; JPEG, WebP and BMP are 8-bit. ``format`` defaults to the extension's.
    ``quality`` drives JPEG/WebP; WebP at quality 100 is lossless. The ICC profile is
    dropped when it does not describe the written colour model (e.g. grey -> RGB WebP).
    """
    path = Path(path)
    fmt = _normalise_format(format) if format else _format_from_suffix(path)
    if fmt not in _EXTENSIONS:
        raise ValueError(f"cannot write {fmt} images; use PNG, JPEG, WebP, TIFF or BMP")
    if rgb.dim() != 3 or rgb.shape[0] not in (1, 3):
        raise ValueError(f"rgb must be (1 or 3, H, W), got {tuple(rgb.shape)}")
    if alpha is not None and (alpha.dim() != 3 or alpha.shape[0] != 1 or alpha.shape[1:] != rgb.shape[1:]):
        raise ValueError(f"alpha must be (1, H, W) matching rgb, got {tuple(alpha.shape)}")
    if alpha is not None and fmt == "JPEG":
        raise ValueError("JPEG cannot store transparency (alpha); write PNG, WebP or TIFF instead")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth}")
    if not overwrite and path.exists():
        raise FileExistsError(_exists_message(path))
    if fmt not in ("PNG", "TIFF"):
        bit_depth = 8

    channels = rgb if alpha is None else torch.cat([rgb, alpha.to(rgb.device)], 0)
    pixels = to_uint(channels, bit_depth)
    if rgb.shape[0] == 1 and (fmt == "WEBP" or (fmt == "BMP" and alpha is not None)):  # no grey there
        pixels = np.concatenate([pixels[..., :1]] * 3 + [pixels[..., 1:]], axis=2)
    if icc_profile and not _icc_fits(icc_profile, 3 if pixels.shape[2] >= 3 else 1):
        icc_profile = None

    def encode(f: BinaryIO) -> None:
        if bit_depth == 16 and fmt == "PNG":
            _write_png16(f, pixels, icc_profile, dpi)
        elif bit_depth == 16:
            _write_tiff16(f, pixels, icc_profile, dpi)
        else:
            _save_with_pillow(f, pixels, fmt, icc_profile, dpi, quality)

    _atomic_write(path, encode, overwrite)
    return path


def _format_from_suffix(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: cannot tell the image format from the extension; pass format=")
    return _normalise_format(fmt)


def _icc_fits(profile: bytes, colour_channels: int) -> bool:
    space = profile[16:20] if len(profile) >= 20 else b""
    return space == (b"GRAY" if colour_channels == 1 else b"RGB ")


def _exists_message(path: Path) -> str:
    return f"{path} already exists; not replacing it (use --overwrite / overwrite=True)"


def _save_with_pillow(
    f: BinaryIO, pixels: np.ndarray, fmt: str, icc: bytes | None, dpi: tuple[float, float] | None, quality: int
) -> None:
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    options: dict[str, object] = {}
    if icc:
        options["icc_profile"] = icc
    if dpi and fmt != "WEBP":
        options["dpi"] = tuple(float(d) for d in dpi)
    if fmt == "PNG":
        options["compress_level"] = 6
    elif fmt == "JPEG":
        options.update(quality=quality, optimize=True, subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        options.update(quality=quality, lossless=quality >= 100, exact=True)
    elif fmt == "TIFF" and features.check("libtiff"):
        options["compression"] = "tiff_adobe_deflate"
    image.save(f, format=fmt, **options)


def _atomic_write(path: Path, encode: Callable[[BinaryIO], None], overwrite: bool) -> None:
    """Encode into a temporary file beside ``path`` and move it in place (see files.atomic_write)."""
    def write(temp: Path) -> None:
        with open(temp, "wb") as f:
            encode(f)

    atomic_write(path, write, overwrite=overwrite, exists_message=_exists_message(path))


def _png_chunk(f: BinaryIO, kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))


def _write_png16(f: BinaryIO, pixels: np.ndarray, icc: bytes | None, dpi: tuple[float, float] | None) -> None:
    """16-bit PNG (grey, grey+alpha, RGB, RGBA), streamed with per-row adaptive filters."""
    height, width, channels = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    f.write(_PNG_SIGNATURE)
    _png_chunk(f, b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))
    if icc:
        _png_chunk(f, b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc))
    if dpi:
        _png_chunk(f, b"pHYs", struct.pack(">IIB", *(round(d / 0.0254) for d in dpi), 1))
    rows = pixels.astype(">u2").reshape(height, width * channels).view(np.uint8)
    bpp = 2 * channels
    block = max(1, (2 << 20) // rows.shape[1])
    compressor = zlib.compressobj(6)
    pending = bytearray()
    for start in range(0, height, block):
        raw = rows[start : start + block]
        previous = np.concatenate([rows[start - 1 : start] if start else np.zeros_like(raw[:1]), raw[:-1]])
        pending += compressor.compress(_png_filter(raw, previous, bpp).tobytes())
        while len(pending) >= 1 << 20:
            _png_chunk(f, b"IDAT", bytes(pending[: 1 << 20]))
            del pending[: 1 << 20]
    pending += compressor.flush()
    _png_chunk(f, b"IDAT", bytes(pending))
    _png_chunk(f, b"IEND", b"")


def _png_filter(raw: np.ndarray, previous: np.ndarray, bpp: int) -> np.ndarray:
    """Filter each row with whichever of the 5 PNG filters has the smallest sum |byte|."""
    left = np.zeros_like(raw)
    left[:, bpp:] = raw[:, :-bpp]
    upper_left = np.zeros_like(raw)
    upper_left[:, bpp:] = previous[:, :-bpp]
    a, b, c = (x.astype(np.int16) for x in (left, previous, upper_left))
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, previous, upper_left))
    average = ((a + b) >> 1).astype(np.uint8)
    candidates = np.stack([raw, raw - left, raw - previous, raw - average, raw - paeth])
    cost = np.abs(candidates.view(np.int8).astype(np.int16)).sum(axis=2, dtype=np.int64)
    choice = cost.argmin(axis=0)
    out = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
    out[:, 0] = choice
    out[:, 1:] = candidates[choice, np.arange(raw.shape[0])]
    return out


def _write_tiff16(f: BinaryIO, pixels: np.ndarray, icc: bytes | None, dpi: tuple[float, float] | None) -> None:
    """Baseline little-endian 16-bit TIFF: deflate strips with horizontal predictor."""
    height, width, channels = pixels.shape
    if channels == 2:  # Pillow cannot read 16-bit grey+alpha TIFF back
        pixels = np.concatenate([pixels[..., :1]] * 3 + [pixels[..., 1:]], axis=2)
        channels = 4
        icc = icc if icc and _icc_fits(icc, 3) else None
    f.write(b"II*\0\0\0\0\0")  # IFD offset patched at the end
    rows_per_strip = max(1, (1 << 20) // (width * channels * 2))
    offsets, counts = [], []
    for start in range(0, height, rows_per_strip):
        strip = pixels[start : start + rows_per_strip].astype("<u2")
        delta = strip.copy()
        delta[:, 1:] -= strip[:, :-1]  # predictor 2, wrapping modulo 2**16
        data = zlib.compress(delta.tobytes(), 6)
        offsets.append(f.tell())
        counts.append(len(data))
        f.write(data + b"\0" * (len(data) & 1))
    short, long, rational, undefined = 3, 4, 5, 7
    tags: list[tuple[int, int, list[int] | bytes]] = [
        (256, long, [width]),
        (257, long, [height]),
        (258, short, [16] * channels),
        (259, short, [8]),
        (262, short, [2 if channels >= 3 else 1]),
        (273, long, offsets),
        (277, short, [channels]),
        (278, long, [rows_per_strip]),
        (279, long, counts),
        (284, short, [1]),
        (317, short, [2]),
    ]
    if dpi:
        for tag, value in zip((282, 283), dpi):
            ratio = Fraction(float(value)).limit_denominator(10_000)
            tags.append((tag, rational, [ratio.numerator, ratio.denominator]))
        tags.append((296, short, [2]))
    if channels in (2, 4):
        tags.append((338, short, [2]))  # unassociated alpha
    if icc:
        tags.append((34675, undefined, icc))
    entries = []
    for tag, kind, values in sorted(tags, key=lambda t: t[0]):
        if isinstance(values, bytes):
            payload, count = values, len(values)
        else:
            payload = struct.pack("<" + {short: "H", long: "I", rational: "I"}[kind] * len(values), *values)
            count = len(values) // 2 if kind == rational else len(values)
        if len(payload) > 4:
            position = f.tell()
            f.write(payload + b"\0" * (len(payload) & 1))
            payload = struct.pack("<I", position)
        entries.append(struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\0"))
    ifd = f.tell()
    if ifd + 6 + 12 * len(entries) >= 1 << 32:
        raise ValueError("image too large for a classic TIFF (4 GiB); write PNG instead")
    f.write(struct.pack("<H", len(entries)) + b"".join(entries) + b"\0\0\0\0")
    f.seek(4)
    f.write(struct.pack("<I", ifd))
    f.seek(0, os.SEEK_END)
