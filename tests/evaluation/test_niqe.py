"""NIQE as MATLAB computes it: pinned values, the pieces against plain definitions, edge cases.

The pinned values were checked against BasicSR's MATLAB-matching algorithm (an independent
single-precision transcription with scipy, agreeing to about 1e-6); the test at the end compares
all 19 Set5/Set14 HR images with BasicSR's figures when ../shared is present.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import synthetic_image

from srcli.evaluation import niqe as niqe_module
from srcli.evaluation.metrics import MetricError
from srcli.evaluation.niqe import (
    NiqeTooSmall,
    aggd_fit,
    block_features,
    luma,
    mscn,
    niqe,
    niqe_of_luma,
    pristine_model,
    shape_grid,
)

REPO = Path(__file__).resolve().parents[2]


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255


def pink_noise(seed: int, height: int, width: int) -> torch.Tensor:
    """(3, H, W) colour 1/f noise: the power spectrum of natural photographs, so NIQE scores it as fairly natural."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :]
    frequency = np.sqrt(fx**2 + fy**2)
    frequency[0, 0] = 1
    channels = []
    for _ in range(3):
        values = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(height, width))) / frequency))
        channels.append((values - values.mean()) / values.std())
    pixels = (np.clip(np.stack(channels) * 0.12 + 0.5, 0, 1) * 255).round()
    return torch.from_numpy(pixels).float() / 255


# ----------------------------------------------------------------------------- pinned values


@pytest.mark.parametrize("make, crop, expected", [
    (lambda: as_tensor(synthetic_image(0, 192, 288)), 0, 16.865317),
    (lambda: as_tensor(synthetic_image(1, 300, 200)), 4, 17.397476),
    (lambda: pink_noise(0, 192, 288), 0, 5.540923),
])
def test_pinned_values(make, crop: int, expected: float) -> None:
    # relative: the synthetic images score far from natural (~17), where the covariance solve
    # differs by ~5e-5 relative between CPUs' BLAS kernels (AMD Zen 4 vs Intel with AMX)
    assert niqe(make(), crop_border=crop) == pytest.approx(expected, rel=1e-4)


def test_blur_raises_niqe() -> None:
    from srcli.imresize import imresize

    image = as_tensor(synthetic_image(3, 288, 288)).double()
    blurred = imresize(imresize(image, scale=0.25), scale=4.0).clamp(0, 1)
    assert niqe(blurred) > niqe(image) + 2


# ----------------------------------------------------------------------------- shipped model


def test_pristine_model_is_shipped_with_its_provenance() -> None:
    model = pristine_model()
    assert model.mean.shape == (36,) and model.covariance.shape == (36, 36) and model.window.shape == (7, 7)
    assert np.allclose(model.covariance, model.covariance.T)
    assert float(model.window.sum()) == pytest.approx(1.0) and np.array_equal(model.window, model.window.T)
    assert model.taps is not None  # a Gaussian: applied as two 7-tap passes
    notice = niqe_module.PARAMS_FILE.with_name("NIQE_NOTICE.txt").read_text()
    assert "BasicSR" in notice and "Apache" in notice and "Mittal" in notice
    package_data = (REPO / "pyproject.toml").read_text()
    assert "niqe_pris_params.npz" in package_data and "NIQE_NOTICE.txt" in package_data


# ----------------------------------------------------------------------------- the pieces


def test_shape_search_is_the_argmin_over_matlabs_grid() -> None:
    grid = shape_grid()
    assert len(grid.shapes) == 9801 and float(grid.shapes[0]) == pytest.approx(0.2)
    assert float(grid.shapes[-1]) == pytest.approx(10.0)
    targets = np.concatenate([np.random.default_rng(0).random(500) * 0.9, grid.ratio[::997],
                              (grid.ratio[:-1:1001] + grid.ratio[1::1001]) / 2, [-1.0, 5.0, math.nan]])
    found = niqe_module._nearest_shape(targets, grid.ratio)
    with np.errstate(invalid="ignore"):
        brute = np.argmin((grid.ratio[None, :] - targets[:, None]) ** 2, axis=1)
    assert brute[-1] == 0  # numpy's argmin, like MATLAB's min, picks the first of all-NaN
    assert np.array_equal(found, brute)


@pytest.mark.parametrize("sampler, shape", [("normal", 2.0), ("laplace", 1.0)])
def test_aggd_fit_recovers_known_distributions(sampler: str, shape: float) -> None:
    rng = np.random.default_rng(0)
    samples = getattr(rng, sampler)(0.0, 0.5, size=(2, 200_000))
    alpha, left, right = aggd_fit(samples)
    assert alpha.tolist() == pytest.approx([shape, shape], abs=0.05)
    # for a symmetric generalised Gaussian the scale is std * sqrt(Gamma(1/a) / Gamma(3/a))
    std = samples.std(axis=1)
    expected = std * math.sqrt(math.gamma(1 / shape) / math.gamma(3 / shape))
    assert left.tolist() == pytest.approx(expected.tolist(), rel=0.02)
    assert right.tolist() == pytest.approx(expected.tolist(), rel=0.02)


def test_one_sided_samples_give_nan_scale() -> None:
    alpha, left, right = aggd_fit(np.array([[0.5, 1.0, 2.0, 0.0]]))
    assert math.isnan(float(left[0])) and math.isfinite(float(right[0])) and math.isfinite(float(alpha[0]))


def _plain_features(block: np.ndarray) -> list[float]:
    """The 18 features of one float32 block, straight from the definitions (slow, numpy only).

    Neighbour products are taken in float32 like the reference; the fits run in double.
    """
    grid = np.arange(0.2, 10.001, 0.001)
    ratio = np.array([math.gamma(2 / a) ** 2 / (math.gamma(1 / a) * math.gamma(3 / a)) for a in grid])

    def fit(values: np.ndarray) -> tuple[float, float, float]:
        values = values.ravel().astype(np.float64)
        left = math.sqrt(np.mean(values[values < 0] ** 2))
        right = math.sqrt(np.mean(values[values > 0] ** 2))
        g = left / right
        r = np.mean(np.abs(values)) ** 2 / np.mean(values**2)
        alpha = grid[np.argmin((ratio - r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2) ** 2)]
        factor = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
        return alpha, left * factor, right * factor

    alpha, left, right = fit(block)
    features = [alpha, (left + right) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, left, right = fit(block * np.roll(block, shift, axis=(0, 1)))
        features += [alpha, (right - left) * math.gamma(2 / alpha) / math.gamma(1 / alpha), left, right]
    return features


def test_vectorised_block_features_match_the_definitions() -> None:
    coefficients = mscn(luma(pink_noise(1, 96, 192)).numpy())
    assert coefficients.dtype == np.float32 and coefficients.shape == (96, 192)
    features = block_features(coefficients, 48)  # 2 x 4 blocks
    assert features.shape == (8, 18)
    tiles = coefficients
    expected = [_plain_features(tiles[r * 48:(r + 1) * 48, c * 48:(c + 1) * 48]) for c in range(4) for r in range(2)]
    assert np.allclose(features, np.array(expected), rtol=1e-9, atol=1e-12)


def test_mscn_matches_a_direct_7x7_filter() -> None:
    image = luma(as_tensor(synthetic_image(4, 40, 50))).numpy()
    window = pristine_model().window
    padded = np.pad(image, 3, mode="edge")
    mu = sum(window[i, j] * padded[i:i + 40, j:j + 50] for i in range(7) for j in range(7))
    mean_square = sum(window[i, j] * padded[i:i + 40, j:j + 50] ** 2 for i in range(7) for j in range(7))
    expected = (image - mu) / (np.sqrt(np.abs(mean_square - mu**2)) + 1)
    assert np.allclose(mscn(image), expected, atol=1e-4)


# ----------------------------------------------------------------------------- conventions


def test_only_whole_blocks_count() -> None:
    image = as_tensor(synthetic_image(5, 200, 300))
    assert niqe(image) == niqe(image[:, :192, :288])


def test_border_crop_is_a_crop() -> None:
    image = as_tensor(synthetic_image(6, 210, 310))
    assert niqe(image, crop_border=7) == niqe(image[:, 7:-7, 7:-7])


def test_greyscale_is_rgb_with_equal_channels_and_batch_of_one_is_accepted() -> None:
    grey = pink_noise(2, 192, 192)[:1]
    assert niqe(grey) == niqe(grey.expand(3, -1, -1)) == niqe(grey.expand(3, -1, -1)[None])


def test_luma_is_matlab_y_of_the_8bit_image() -> None:
    pixels = torch.tensor([[[1.0]], [[0.0]], [[0.0]]])  # pure red: Y = 16 + 65.481 = 81.481 -> 81
    assert float(luma(pixels)[0, 0]) == 81.0
    assert float(luma(torch.zeros(1, 1, 1))[0, 0]) == 16.0 and float(luma(torch.ones(1, 1, 1))[0, 0]) == 235.0


@pytest.mark.parametrize("height, width", [(95, 400), (96, 191), (150, 150)])
def test_fewer_than_two_blocks_is_an_error(height: int, width: int) -> None:
    with pytest.raises(NiqeTooSmall, match="two whole 96x96 blocks"):
        niqe(as_tensor(synthetic_image(7, height, width)))
    assert issubclass(NiqeTooSmall, MetricError)


def test_two_blocks_are_enough_and_a_flat_image_is_undefined() -> None:
    assert math.isfinite(niqe(as_tensor(synthetic_image(8, 96, 192))))
    assert math.isnan(niqe(torch.full((3, 192, 192), 0.4)))


def test_bad_input_is_a_metric_error() -> None:
    with pytest.raises(MetricError):
        niqe(torch.rand(2, 192, 192))
    with pytest.raises(MetricError):
        niqe(torch.rand(3, 192, 192), crop_border=-1)
    with pytest.raises(MetricError):
        niqe_of_luma(torch.rand(3, 192, 192))
    assert niqe_of_luma(luma(pink_noise(3, 192, 192))) == niqe_of_luma(luma(pink_noise(3, 192, 192)).numpy())


# ----------------------------------------------------------------------------- reference figures


def _shared() -> Path | None:
    for root in (Path("/work/shared"), REPO.parent / "shared"):
        if (root / "data" / "niqe" / "reference_set5_set14.json").is_file():
            return root / "data"
    return None


@pytest.mark.skipif(_shared() is None, reason="needs ../shared/data (NIQE reference figures and Set5/Set14)")
def test_all_set5_set14_images_match_basicsr_and_matlab() -> None:
    from srcli.evaluation.datasets import read_rgb

    data = _shared()
    assert data is not None
    reference = json.loads((data / "niqe" / "reference_set5_set14.json").read_text())
    assert len(reference) == 19
    differences = {name: niqe(read_rgb(data / "benchmarks" / name)) - value for name, value in reference.items()}
    assert max(abs(d) for d in differences.values()) < 1e-3, differences
    assert differences["Set14/baboon.png"] + reference["Set14/baboon.png"] == pytest.approx(5.72957338, abs=1e-5)
