"""Tests for srcli.imageio: every image is built in tmp_path, nothing is shared."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps, features

from srcli.images import io as imageio
from srcli.images.io import (
    ImageReadError,
    bleed_colors,
    output_format_for,
    premultiply,
    read_image,
    to_float,
    to_uint,
    unpremultiply,
    write_image,
)

RNG = np.random.default_rng(0)


def noise(height: int, width: int, channels: int, dtype=np.uint8) -> np.ndarray:
    top = 256 if dtype == np.uint8 else 65536
    return RNG.integers(0, top, (height, width, channels), dtype=dtype)


def pixels_of(loaded: imageio.LoadedImage) -> np.ndarray:
    parts = [loaded.rgb] + ([loaded.alpha] if loaded.alpha is not None else [])
    return to_uint(torch.cat(parts), loaded.bit_depth)


def icc_bytes(space: bytes = b"RGB ") -> bytes:
    if space == b"RGB " and features.check("littlecms2"):
        from PIL import ImageCms

        return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    header = struct.pack(">I", 132) + b"none" + b"\x02\x10\0\0" + b"mntr" + space + b"XYZ " + bytes(12) + b"acsp"
    return header.ljust(132, b"\0")


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "suffix, options, exact",
    [(".png", {}, True), (".webp", {"quality": 100}, True), (".bmp", {}, True), (".tiff", {}, True), (".jpg", {}, False)],
)
def test_rgb_round_trip(tmp_path: Path, suffix: str, options: dict, exact: bool) -> None:
    array = noise(9, 13, 3)
    path = write_image(tmp_path / f"out{suffix}", to_float(array, 8), None, **options)
    loaded = read_image(path)
    assert loaded.rgb.shape == (3, 9, 13) and loaded.rgb.dtype == torch.float32
    assert loaded.alpha is None and loaded.bit_depth == 8
    assert loaded.format == Image.open(path).format
    if exact:
        np.testing.assert_array_equal(pixels_of(loaded), array)
    else:
        smooth = np.repeat(np.linspace(0, 255, 13, dtype=np.uint8)[None, :, None], 9, 0).repeat(3, 2)
        path = write_image(tmp_path / "smooth.jpg", to_float(smooth, 8), None)
        assert np.abs(pixels_of(read_image(path)).astype(int) - smooth).mean() < 3


def test_greyscale_stays_one_channel(tmp_path: Path) -> None:
    array = noise(6, 7, 1)
    Image.fromarray(array[..., 0]).save(tmp_path / "grey.png")
    loaded = read_image(tmp_path / "grey.png")
    assert loaded.rgb.shape == (1, 6, 7) and loaded.mode == "L"
    np.testing.assert_array_equal(pixels_of(loaded), array)
    for suffix in (".png", ".jpg", ".tiff"):
        out = write_image(tmp_path / f"out{suffix}", loaded.rgb, None)
        assert Image.open(out).mode == "L"
    webp = write_image(tmp_path / "out.webp", loaded.rgb, None, icc_profile=icc_bytes(b"GRAY"))
    assert read_image(webp).icc_profile is None  # grey profile must not tag RGB data


def test_palette_with_transparency_gives_alpha(tmp_path: Path) -> None:
    image = Image.new("P", (4, 3))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.save(tmp_path / "p.png", transparency=0)
    loaded = read_image(tmp_path / "p.png")
    assert loaded.mode == "P" and loaded.rgb.shape == (3, 3, 4)
    assert loaded.alpha is not None
    assert loaded.alpha[0, 1, 1] == 1 and loaded.alpha[0, 0, 0] == 0
    assert loaded.rgb[:, 1, 1].tolist() == [0, 0, 1]

    Image.new("P", (2, 2)).save(tmp_path / "opaque.gif")
    assert read_image(tmp_path / "opaque.gif").alpha is None


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    Image.new("CMYK", (5, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    loaded = read_image(tmp_path / "cmyk.jpg")
    assert loaded.mode == "CMYK" and loaded.rgb.shape == (3, 4, 5) and loaded.icc_profile is None
    red = loaded.rgb.mean(dim=(1, 2))
    assert red[0] > 0.9 and red[1] < 0.1 and red[2] < 0.1


@pytest.mark.parametrize("channels, mode", [(4, "RGBA"), (2, "LA")])
def test_alpha_round_trip(tmp_path: Path, channels: int, mode: str) -> None:
    array = noise(5, 6, channels)
    Image.fromarray(array).save(tmp_path / "in.png")
    loaded = read_image(tmp_path / "in.png")
    assert loaded.mode == mode and loaded.alpha is not None and loaded.alpha.shape == (1, 5, 6)
    np.testing.assert_array_equal(pixels_of(loaded), array)
    out = write_image(tmp_path / "out.png", loaded.rgb, loaded.alpha)
    assert Image.open(out).mode == mode
    np.testing.assert_array_equal(pixels_of(read_image(out)), array)


def test_jpeg_refuses_alpha(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="JPEG cannot store transparency"):
        write_image(tmp_path / "a.jpg", torch.zeros(3, 2, 2), torch.ones(1, 2, 2))
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- 16 bit


def test_16bit_greyscale_png(tmp_path: Path) -> None:
    array = noise(7, 9, 1, np.uint16)
    Image.fromarray(array[..., 0]).save(tmp_path / "pillow16.png")  # Pillow's own I;16 writer
    loaded = read_image(tmp_path / "pillow16.png")
    assert loaded.bit_depth == 16 and loaded.rgb.shape == (1, 7, 9)
    np.testing.assert_array_equal(pixels_of(loaded), array)
    out = write_image(tmp_path / "ours16.png", loaded.rgb, None, bit_depth=16)
    with Image.open(out) as image:
        assert image.mode == "I;16" and image.size == (9, 7)
        np.testing.assert_array_equal(np.asarray(image), array[..., 0])


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_rgb_is_exact(tmp_path: Path, suffix: str, channels: int) -> None:
    array = noise(23, 31, channels, np.uint16)
    array[0, 0] = 1000  # not a multiple of 257: lost if only the high byte is kept
    assert (array % 257 != 0).any()
    tensor = to_float(array, 16)
    path = write_image(tmp_path / f"rgb16{suffix}", tensor[:3], tensor[3:] if channels == 4 else None, bit_depth=16)
    loaded = read_image(path)
    assert loaded.bit_depth == 16 and loaded.rgb.shape == (3, 23, 31)
    np.testing.assert_array_equal(pixels_of(loaded), array)
    with Image.open(path) as image:  # a valid file for other software too
        assert image.size == (31, 23) and image.mode == ("RGB" if channels == 3 else "RGBA")
        np.testing.assert_array_equal(np.asarray(image), (array >> 8).astype(np.uint8))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_16bit_interlaced_png_from_another_writer(tmp_path: Path) -> None:
    array = noise(11, 13, 4, np.uint16)
    raw = b""
    for y0, x0, dy, dx in [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]:
        for row in array[y0::dy, x0::dx]:  # Adam7 passes, filter type 0
            raw += b"\0" + row.astype(">u2").tobytes()
    header = struct.pack(">IIBBBBB", 13, 11, 16, 6, 0, 0, 1)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw))
    (tmp_path / "adam7.png").write_bytes(data + png_chunk(b"IEND", b""))
    np.testing.assert_array_equal(pixels_of(read_image(tmp_path / "adam7.png")), array)


def test_16bit_grey_alpha_png(tmp_path: Path) -> None:
    array = noise(4, 5, 2, np.uint16)
    tensor = to_float(array, 16)
    path = write_image(tmp_path / "la16.png", tensor[:1], tensor[1:], bit_depth=16)
    loaded = read_image(path)
    assert loaded.bit_depth == 16 and loaded.rgb.shape == (1, 4, 5)
    np.testing.assert_array_equal(pixels_of(loaded), array)


def test_16bit_written_as_8bit_where_format_cannot(tmp_path: Path) -> None:
    path = write_image(tmp_path / "x.webp", torch.full((3, 2, 2), 0.5), None, bit_depth=16, quality=100)
    assert read_image(path).bit_depth == 8


# ----------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    image = Image.fromarray(noise(2, 3, 3))
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.png", exif=exif.tobytes())
    loaded = read_image(tmp_path / "o.png")
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    np.testing.assert_array_equal(pixels_of(loaded), expected)
    if orientation == 6:  # rotated 90 degrees clockwise: 3 wide x 2 high becomes 2 wide x 3 high
        assert loaded.rgb.shape == (3, 3, 2)
        np.testing.assert_array_equal(pixels_of(loaded)[0, -1], np.asarray(image)[0, 0])


@pytest.mark.parametrize("suffix, bit_depth", [(".png", 8), (".jpg", 8), (".tiff", 8), (".png", 16), (".tiff", 16)])
def test_icc_and_dpi_are_carried(tmp_path: Path, suffix: str, bit_depth: int) -> None:
    profile = icc_bytes()
    Image.fromarray(noise(4, 4, 3)).save(tmp_path / "in.png", icc_profile=profile, dpi=(72, 72))
    loaded = read_image(tmp_path / "in.png")
    assert loaded.icc_profile == profile
    assert loaded.dpi == pytest.approx((72, 72), abs=0.01)
    dpi = (loaded.dpi[0] * 4, loaded.dpi[1] * 2)
    out = write_image(
        tmp_path / f"out{suffix}", loaded.rgb, None, bit_depth=bit_depth, icc_profile=loaded.icc_profile, dpi=dpi
    )
    again = read_image(out)
    assert again.icc_profile == profile
    assert again.dpi == pytest.approx((288, 144), abs=0.05)


# ----------------------------------------------------------------------------- bad input


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    Image.fromarray(noise(64, 64, 3)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as error:
        read_image(tmp_path / "cut.png")
    assert "\n" not in str(error.value) and "cut.png" in str(error.value)


@pytest.mark.parametrize("name", ["notes.txt", "fake.png"])
def test_non_image_is_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("hello, I am not an image\n")
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(tmp_path / name)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_max_pixels(tmp_path: Path) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "small.png")
    with pytest.raises(ImageReadError, match="--max-pixels"):
        read_image(tmp_path / "small.png", max_pixels=99)
    assert read_image(tmp_path / "small.png", max_pixels=100).rgb.shape == (3, 10, 10)
    assert read_image(tmp_path / "small.png", max_pixels=None).rgb.shape == (3, 10, 10)


def test_bomb_refused_from_header_alone(tmp_path: Path) -> None:
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(bytes(100)))
    (tmp_path / "bomb.png").write_bytes(data)
    with pytest.raises(ImageReadError, match="10000.0 megapixels.*--max-pixels"):
        read_image(tmp_path / "bomb.png")
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own limit is restored


# ----------------------------------------------------------------------------- writing safely


def test_no_overwrite_without_permission(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_image(target, torch.zeros(3, 2, 2), None)
    assert target.read_bytes() == b"precious"
    write_image(target, torch.zeros(3, 2, 2), None, overwrite=True)
    assert read_image(target).rgb.shape == (3, 2, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_atomic_write_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image(tmp_path / "a.png", torch.rand(3, 4, 4), None)
    write_image(tmp_path / "b.png", torch.rand(3, 4, 4), None, bit_depth=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(imageio, "_save_with_pillow", broken)
    with pytest.raises(OSError, match="disk full"):
        write_image(tmp_path / "c.png", torch.rand(3, 4, 4), None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


# ----------------------------------------------------------------------------- formats and alpha helpers


def test_output_format_for() -> None:
    assert output_format_for("PNG", "auto", False) == ("PNG", ".png")
    assert output_format_for("JPEG", "auto", False) == ("JPEG", ".jpg")
    assert output_format_for("MPO", "auto", False) == ("JPEG", ".jpg")
    assert output_format_for("JPEG", "auto", True) == ("PNG", ".png")
    assert output_format_for("WEBP", "auto", True) == ("WEBP", ".webp")
    assert output_format_for("TIFF", "auto", True) == ("TIFF", ".tiff")
    assert output_format_for("BMP", "auto", False) == ("BMP", ".bmp")
    assert output_format_for("BMP", "auto", True) == ("PNG", ".png")
    assert output_format_for("GIF", "auto", False) == ("PNG", ".png")
    assert output_format_for("PNG", "jpg", False) == ("JPEG", ".jpg")
    assert output_format_for("JPEG", "webp", True) == ("WEBP", ".webp")
    assert output_format_for("PNG", "tiff", False) == ("TIFF", ".tiff")
    with pytest.raises(ValueError, match="transparency"):
        output_format_for("PNG", "jpg", True)
    with pytest.raises(ValueError, match="unknown output format"):
        output_format_for("PNG", "gif", False)


def test_bleed_colors_fills_transparent_pixels() -> None:
    orange = torch.tensor([1.0, 0.5, 0.0])[:, None, None]
    rgb = torch.zeros(3, 8, 10)  # transparent pixels hold black, as they usually do
    rgb[:, :, :5] = orange
    rgb[:, 0, 0] = torch.tensor([0.2, 0.3, 0.4])
    alpha = torch.zeros(1, 8, 10)
    alpha[:, :, :4] = 1
    alpha[:, :, 4] = 0.5  # anti-aliased edge
    out = bleed_colors(rgb, alpha)
    assert torch.equal(out[:, :, :5], rgb[:, :, :5])  # visible pixels untouched
    filled = out[:, :, 5:]
    assert filled.sum(0).min() > 1.2  # no black left
    assert torch.allclose(filled, orange.expand_as(filled), atol=0.05)
    assert torch.equal(bleed_colors(rgb, torch.ones(1, 8, 10)), rgb)
    assert torch.equal(bleed_colors(rgb[None], alpha[None])[0], out)

    spot = torch.zeros(1, 9, 9)  # a single visible pixel colours a whole transparent image
    spot[0, 4, 4] = 1
    single = bleed_colors(torch.rand(3, 9, 9), spot)
    assert torch.allclose(single, single[:, 4:5, 4:5].expand_as(single))


def test_premultiply_round_trip() -> None:
    rgb, alpha = torch.rand(3, 5, 5), torch.rand(1, 5, 5) * 0.9 + 0.1
    assert torch.allclose(unpremultiply(premultiply(rgb, alpha), alpha), rgb, atol=1e-5)
    assert unpremultiply(rgb, torch.zeros(1, 5, 5)).abs().sum() == 0


def test_to_uint_rounds_and_clamps() -> None:
    x = torch.tensor([[[-0.5, 0.0, 0.5 / 255, 1.49 / 255, 1.0, 2.0, float("nan")]]])
    assert to_uint(x, 8)[0, :, 0].tolist() == [0, 0, 0, 1, 255, 255, 0]
    assert to_uint(torch.full((1, 1, 1), 1000 / 65535), 16).item() == 1000
    assert to_uint(x, 16).dtype == np.uint16


def test_files_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    """Every writer (weights, manifests, reports, checkpoints, images) goes through files.atomic_write."""
    import os
    import stat

    from srcli.files import atomic_write

    target = tmp_path / "manifest.json"
    atomic_write(target, lambda temp: temp.write_text("old"))

    def failing(temp: Path) -> None:
        temp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, failing)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    with pytest.raises(FileExistsError, match="keep it"):
        atomic_write(target, lambda temp: temp.write_text("new"), overwrite=False, exists_message="keep it")
    atomic_write(target, lambda temp: temp.write_text("new"))
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
