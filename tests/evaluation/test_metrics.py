"""MATLAB bicubic resize, PSNR and SSIM checked against independent, deliberately naive code."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from srcli.evaluation.metrics import MetricError, psnr, rgb_to_y, ssim
from srcli.imresize import bicubic_downscale, imresize, quantize

# --------------------------------------------------------------------------------------------
# independent reference implementations (plain Python / numpy loops)
# --------------------------------------------------------------------------------------------


def keys_cubic(x: float) -> float:
    """Keys (1981) cubic convolution kernel with a = -0.5, written out from the formula."""
    a, t = -0.5, abs(x)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t <= 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def mirror(j: int, n: int) -> int:
    """MATLAB's border rule for 1-based index j: ... x2 x1 | x1 x2 ... xn | xn x(n-1) ..."""
    period = 2 * n
    j = (j - 1) % period
    return j if j < n else period - 1 - j  # 0-based


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Rows of weights for each output sample, following MATLAB's ``contributions`` by hand."""
    s = n_out / n_in
    shrink = s < 1
    width = 4 / s if shrink else 4
    matrix = np.zeros((n_out, n_in))
    for i in range(1, n_out + 1):
        u = i / s + 0.5 * (1 - 1 / s)  # output sample i in input coordinates
        first = math.floor(u - width / 2)
        taps = [(j, (s * keys_cubic(s * (u - j))) if shrink else keys_cubic(u - j))
                for j in range(first, first + math.ceil(width) + 2)]
        total = sum(w for _, w in taps)
        for j, w in taps:
            matrix[i - 1, mirror(j, n_in)] += w / total
    return matrix


def reference_resize(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    rows, cols = resize_matrix(image.shape[0], out_h), resize_matrix(image.shape[1], out_w)
    return rows @ image @ cols.T


def gaussian_window_loops(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    window = np.zeros((size, size))
    centre = (size - 1) / 2
    for r in range(size):
        for c in range(size):
            window[r, c] = math.exp(-((r - centre) ** 2 + (c - centre) ** 2) / (2 * sigma**2))
    return window / window.sum()


def ssim_loops(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. (2004) SSIM on [0, 255] single-channel images, 'valid' windows, explicit loops."""
    window = gaussian_window_loops()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for r in range(x.shape[0] - 10):
        for c in range(x.shape[1] - 10):
            px, py = x[r:r + 11, c:c + 11], y[r:r + 11, c:c + 11]
            mx, my = (window * px).sum(), (window * py).sum()
            vx = (window * (px - mx) ** 2).sum()
            vy = (window * (py - my) ** 2).sum()
            cov = (window * (px - mx) * (py - my)).sum()
            values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def eight_bit(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, shape).astype(np.float64) / 255)


# --------------------------------------------------------------------------------------------
# resize
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 2, 3, 4])
def test_resize_of_constant_image_is_constant(scale: float) -> None:
    image = torch.full((2, 3, 12, 18), 0.37, dtype=torch.float64)
    out = imresize(image, scale)
    assert out.shape == (2, 3, math.ceil(12 * scale), math.ceil(18 * scale))
    assert torch.allclose(out, torch.full_like(out, 0.37), atol=1e-12)


def test_upscale_weights_derived_by_hand() -> None:
    # 4 -> 8, first output sample: u = 0.75; taps j = -1, 0, 1, 2 at distances 1.75, 0.75, -0.25, -1.25
    # have cubic weights -3/128, 29/128, 111/128, -9/128; j = 0 -> x1 and j = -1 -> x2 (mirror).
    signal = torch.tensor([[[10.0, 20.0, 40.0, 80.0]]], dtype=torch.float64)
    out = imresize(signal, size=(1, 8))
    a, b = 10.0, 20.0
    assert out[0, 0, 0].item() == pytest.approx((29 + 111) / 128 * a + (-3 - 9) / 128 * b, abs=1e-12)
    # second sample: u = 1.25; x1 gets 111/128 - 9/128 (j = 1 and mirrored j = 0), x2 29/128, x3 -3/128
    c = 40.0
    assert out[0, 0, 1].item() == pytest.approx((102 * a + 29 * b - 3 * c) / 128, abs=1e-12)


def test_downscale_weights_derived_by_hand() -> None:
    # 8 -> 4 (antialiased): u = 1.5, kernel 0.5*cubic(x/2) over j = -2..5; after normalising
    # x1: (29 + 111)/256, x2: (111 - 9)/256, x3: (29 - 3)/256, x4: -9/256, x5: -3/256.
    signal = torch.tensor([[[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]]], dtype=torch.float64)
    out = imresize(signal, size=(1, 4))
    expected = (140 * 1 + 102 * 2 + 26 * 4 - 9 * 8 - 3 * 16) / 256
    assert out[0, 0, 0].item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("size", "out"), [((8, 8), (4, 4)), ((4, 4), (8, 8)), ((7, 5), (21, 15)),
                                           ((12, 9), (4, 3)), ((9, 12), (3, 4))])
def test_resize_matches_independent_reference(size: tuple[int, int], out: tuple[int, int]) -> None:
    image = eight_bit(0, size)
    expected = reference_resize(image.numpy(), *out)
    assert np.allclose(imresize(image, size=out).numpy(), expected, atol=1e-12)
    scale = out[0] / size[0]
    assert np.allclose(imresize(image, scale).numpy(), expected, atol=1e-12)


def test_resize_is_batched_and_keeps_float32() -> None:
    batch = eight_bit(1, (3, 2, 8, 8)).float()
    out = imresize(batch, 1 / 2)
    assert out.dtype == torch.float32 and out.shape == (3, 2, 4, 4)
    for n in range(3):
        for c in range(2):
            single = reference_resize(batch[n, c].double().numpy(), 4, 4)
            assert np.allclose(out[n, c].numpy(), single, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_resize_on_gpu_matches_cpu() -> None:
    image = eight_bit(2, (3, 16, 16)).float()
    assert torch.allclose(imresize(image.cuda(), 1 / 4).cpu(), imresize(image, 1 / 4), atol=1e-5)


def test_bicubic_downscale_crops_to_multiple_and_quantises() -> None:
    hr = eight_bit(3, (3, 14, 11))
    lr = bicubic_downscale(hr, 4)
    assert lr.shape == (3, 3, 2)
    expected = np.stack([reference_resize(channel, 3, 2) for channel in hr[:, :12, :8].numpy()])
    assert np.allclose(lr.numpy(), np.round(np.clip(expected, 0, 1) * 255) / 255, atol=1e-12)
    assert torch.equal(quantize(lr), lr)


# --------------------------------------------------------------------------------------------
# PSNR
# --------------------------------------------------------------------------------------------


def test_psnr_of_known_mse_on_rgb() -> None:
    hr = torch.full((3, 20, 20), 100 / 255, dtype=torch.float64)
    sr = hr.clone()
    sr[:, ::2] += 10 / 255  # half the pixels off by 10 levels: MSE = 50
    expected = 10 * math.log10(255**2 / 50)
    assert psnr(sr, hr, y_channel=False) == pytest.approx(expected, abs=1e-9)
    assert psnr(sr.float(), hr.float(), y_channel=False) == pytest.approx(expected, abs=1e-5)


def test_psnr_on_y_channel_uses_rounded_bt601_luma() -> None:
    black, white = torch.zeros(3, 4, 4), torch.ones(3, 4, 4)
    assert rgb_to_y(black).unique().item() == 16 and rgb_to_y(white).unique().item() == 235
    assert psnr(black, white) == pytest.approx(10 * math.log10(255**2 / 219**2), abs=1e-9)
    red = torch.zeros(3, 1, 1)
    red[0] = 1
    assert rgb_to_y(red).item() == round(16 + 65.481)  # 81.481 -> 81


def test_psnr_identical_is_inf_and_sr_is_quantised_first() -> None:
    hr = eight_bit(4, (3, 16, 16)).float()
    assert psnr(hr, hr) == math.inf
    assert psnr((hr + 0.4 / 255).clamp(0, 1), hr, y_channel=False) == math.inf


def test_psnr_border_crops_pixels() -> None:
    hr = eight_bit(5, (3, 16, 16)).float()
    sr = hr.clone()
    sr[:, :2, :] = 1 - sr[:, :2, :]
    assert psnr(sr, hr, border=2) == math.inf
    assert psnr(sr, hr, border=1) < 30


@pytest.mark.parametrize("shapes", [((3, 8, 8), (3, 8, 9)), ((3, 8, 8), (1, 8, 8))])
def test_metrics_refuse_mismatched_images(shapes: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    a, b = torch.zeros(shapes[0]), torch.zeros(shapes[1])
    with pytest.raises(MetricError, match="shape"):
        psnr(a, b)
    with pytest.raises(MetricError, match="shape"):
        ssim(a, b)


# --------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------


def test_ssim_of_identical_images_is_one() -> None:
    image = eight_bit(6, (3, 24, 24)).float()
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    assert ssim(image, image, y_channel=False) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_perturbation_matches_loop_reference_grey() -> None:
    hr = eight_bit(7, (1, 18, 20))
    sr = (hr + torch.from_numpy(np.random.default_rng(8).normal(0, 0.05, hr.shape))).clamp(0, 1)
    sr8 = np.round(sr.numpy() * 255)
    expected = ssim_loops(sr8[0], hr.numpy()[0] * 255)
    assert ssim(sr, hr, y_channel=False) == pytest.approx(expected, abs=1e-10)
    assert 0.2 < expected < 0.99


def test_ssim_rgb_averages_channels_and_y_uses_luma() -> None:
    hr = eight_bit(9, (3, 16, 17))
    sr = (hr * 0.9 + 0.05).clamp(0, 1)
    sr8, hr8 = np.round(sr.numpy() * 255), hr.numpy() * 255
    rgb_expected = np.mean([ssim_loops(sr8[c], hr8[c]) for c in range(3)])
    assert ssim(sr, hr, y_channel=False) == pytest.approx(rgb_expected, abs=1e-10)

    def luma(x: np.ndarray) -> np.ndarray:
        return np.round(16 + (65.481 * x[0] + 128.553 * x[1] + 24.966 * x[2]) / 255)

    assert ssim(sr, hr) == pytest.approx(ssim_loops(luma(sr8), luma(hr8)), abs=1e-10)
    assert ssim(sr, hr, border=2) == pytest.approx(ssim_loops(luma(sr8)[2:-2, 2:-2], luma(hr8)[2:-2, 2:-2]),
                                                   abs=1e-10)


def test_ssim_needs_a_full_window() -> None:
    with pytest.raises(MetricError, match="11x11"):
        ssim(torch.zeros(3, 12, 12), torch.zeros(3, 12, 12), border=1)
