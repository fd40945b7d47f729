"""NIQE, the no-reference "Natural Image Quality Evaluator", computed as MATLAB computes it.

Mittal, Soundararajan and Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE
Signal Processing Letters 20(3), 2013. Lower is better. The score is the distance between a
multivariate Gaussian fitted to the image's natural-scene statistics and the same model fitted
to a set of pristine photographs (the MATLAB release's parameters, shipped here).

The conventions are those of the MATLAB release as BasicSR reproduces it (``calculate_niqe``),
which is how SR papers report NIQE:

* the image is quantised to 8 bits and reduced to the Y of MATLAB's ``rgb2ycbcr``, rounded
  to integers (``metrics.rgb_to_y``; greyscale images count as RGB with equal channels);
  ``crop_border`` pixels are then cut from every side;
* the image is cut to whole 96x96 blocks (extra rows and columns at the bottom and right go);
* MSCN coefficients: ``(I - mu) / (sigma + 1)`` with mu and sigma from the 7x7 Gaussian
  window of the release, borders replicated;
* per block, 18 features: a generalised Gaussian fit of the coefficients (shape, mean of the
  two one-sided scales) and asymmetric generalised Gaussian fits of their products with the
  horizontal, vertical and two diagonal neighbours (shape, mean, left and right scale), the
  neighbours taken with a circular shift inside the block; shapes are chosen on MATLAB's grid
  0.2:0.001:10 by moment matching;
* the same again on the image halved with MATLAB's antialiased bicubic (``srcli.imresize``),
  in 48x48 blocks, giving 36 features per block; the coefficients and the halving are computed
  in single precision, like the reference (see :func:`mscn`), the fits and the rest in double;
* the blocks' mean (NaN-aware) and covariance (over blocks without a NaN feature) are compared
  with the pristine ones: ``sqrt((mu_p - mu) pinv((cov_p + cov) / 2) (mu_p - mu)^T)``.

On the 19 Set5/Set14 HR images this gives BasicSR's MATLAB-matching figures to within 3.5e-4
(10 of 19 within 1e-5; MATLAB R2021a gives 5.72957338 for Set14 baboon, this 5.7295725); the
rest is float32 rounding in near-flat areas, where the score is that sensitive. Written with numpy
(single-threaded, so a busy machine does not slow it down) and ``srcli.imresize``; the gamma
functions come from ``math``.

An image with fewer than two whole blocks (after the crop) has no covariance to fit: ``niqe``
raises :class:`NiqeTooSmall` (BasicSR fails there too). An image with fewer than two blocks
whose 36 features are all defined (a flat one, say) gives NaN.

Provenance: ``niqe_pris_params.npz`` (``mu_pris_param`` 1x36, ``cov_pris_param`` 36x36,
``gaussian_window`` 7x7) is the pristine model of the NIQE MATLAB release
(http://live.ece.utexas.edu/research/quality/niqe_release.zip, Mittal et al.), as shipped by
BasicSR (https://github.com/XPixelGroup/BasicSR, Apache-2.0); see ``NIQE_NOTICE.txt``.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..imresize import imresize
from .metrics import MetricError, rgb_to_y

PARAMS_FILE = Path(__file__).with_name("niqe_pris_params.npz")
BLOCK_SIZE = 96
FEATURES = 36
#: Shifts (rows, columns) of the four neighbour products: horizontal, vertical, two diagonals.
NEIGHBOUR_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


class NiqeTooSmall(MetricError):
    """An image with fewer than two whole 96x96 blocks: NIQE has no covariance to fit."""


class PristineModel(NamedTuple):
    mean: np.ndarray  # (36,)
    covariance: np.ndarray  # (36, 36)
    window: np.ndarray  # (7, 7) float64
    taps: np.ndarray | None  # (7,): the window is outer(taps, taps); None if it were not separable


@lru_cache(maxsize=1)
def pristine_model() -> PristineModel:
    """The MATLAB release's pristine mean, covariance and 7x7 Gaussian window (loaded once)."""
    with np.load(PARAMS_FILE) as data:
        mean = np.asarray(data["mu_pris_param"], dtype=np.float64).reshape(FEATURES)
        covariance = np.asarray(data["cov_pris_param"], dtype=np.float64).reshape(FEATURES, FEATURES)
        window = np.asarray(data["gaussian_window"], dtype=np.float64).copy()
    taps = window.sum(axis=1)
    separable = np.allclose(np.outer(taps, taps), window, rtol=0, atol=1e-12)
    return PristineModel(mean, covariance, window, taps if separable else None)


class _ShapeGrid(NamedTuple):
    shapes: np.ndarray  # MATLAB's 0.2:0.001:10
    ratio: np.ndarray  # Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), increasing in a
    scale_factor: np.ndarray  # sqrt(Gamma(1/a) / Gamma(3/a)): standard deviation -> scale
    mean_factor: np.ndarray  # Gamma(2/a) / Gamma(1/a)


@lru_cache(maxsize=1)
def shape_grid() -> _ShapeGrid:
    """The candidate shape parameters and the gamma-function ratios moment matching needs."""
    shapes = np.arange(0.2, 10.001, 0.001)  # 9801 values, as MATLAB's colon operator gives them
    g1 = np.array([math.gamma(1 / a) for a in shapes])
    g2 = np.array([math.gamma(2 / a) for a in shapes])
    g3 = np.array([math.gamma(3 / a) for a in shapes])
    ratio = g2**2 / (g1 * g3)
    if not bool((ratio[1:] > ratio[:-1]).all()):  # the nearest-value search below relies on it
        raise AssertionError("NIQE shape grid is not monotonic")
    return _ShapeGrid(shapes, ratio, np.sqrt(g1 / g3), g2 / g1)


def _nearest_shape(target: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Index of the grid value minimising ``(ratio - target)^2`` (first one on ties; 0 for NaN).

    ``ratio`` increases strictly, so the minimum is one of the two neighbours of ``target``:
    the same answer as an argmin over the whole grid, without the (n x 9801) table. An all-NaN
    comparison picks the first grid value, as MATLAB's ``min`` and numpy's ``argmin`` do.
    """
    safe = np.nan_to_num(target, nan=0.0)
    upper = np.clip(np.searchsorted(ratio, safe), 1, len(ratio) - 1)
    lower = upper - 1
    index = np.where((ratio[upper] - safe) ** 2 < (ratio[lower] - safe) ** 2, upper, lower)
    return np.where(np.isnan(target), 0, index)


def aggd_fit(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian fit of each row of (n, m) ``samples``.

    Returns (shape, left scale, right scale), each (n,). A row without negative (or positive)
    values has a NaN left (right) scale, as in the MATLAB release.
    """
    index, left, right = _aggd_fit(np.asarray(samples, dtype=np.float64))
    return shape_grid().shapes[index], left, right


def _aggd_fit(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grid index of the shape, left scale, right scale) of float64 rows, by moment matching."""
    grid = shape_grid()
    squares = samples * samples
    negative = samples < 0
    positive = samples > 0
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 = NaN, like MATLAB's mean([])
        left_std = np.sqrt(np.einsum("ij,ij->i", squares, negative) / negative.sum(axis=1))
        right_std = np.sqrt(np.einsum("ij,ij->i", squares, positive) / positive.sum(axis=1))
        gamma_hat = left_std / right_std
        r_hat = np.abs(samples).mean(axis=1) ** 2 / squares.mean(axis=1)
        r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    index = _nearest_shape(r_hat_norm, grid.ratio)
    factor = grid.scale_factor[index]
    return index, left_std * factor, right_std * factor


def block_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """(blocks, 18) float64 features of an (H, W) MSCN map cut into ``block`` x ``block`` tiles."""
    rows, cols = mscn.shape[0] // block, mscn.shape[1] // block
    tiles = mscn[: rows * block, : cols * block].reshape(rows, block, cols, block).transpose(2, 0, 1, 3)
    tiles = tiles.reshape(rows * cols, block, block)  # column-major block order, like the release
    count = tiles.shape[0]
    grid = shape_grid()
    index, left, right = _aggd_fit(tiles.reshape(count, -1).astype(np.float64))
    columns = [grid.shapes[index], (left + right) / 2]
    for shift in NEIGHBOUR_SHIFTS:  # products in the map's precision (float32), as the reference takes them
        products = tiles * np.roll(tiles, shift, axis=(1, 2))
        index, left, right = _aggd_fit(products.reshape(count, -1).astype(np.float64))
        columns += [grid.shapes[index], (right - left) * grid.mean_factor[index], left, right]
    return np.stack(columns, axis=1)


def _blur(values: np.ndarray, model: PristineModel) -> np.ndarray:
    """``values`` filtered with the window (borders replicated), summed in double, stored as float32.

    The release's window is a normalised 2-D Gaussian, the outer product of its row sums to
    within 1e-16, so it is applied as two 7-tap passes (the same numbers once stored as float32).
    """
    size = model.window.shape[0]
    pad = size // 2
    height, width = values.shape
    padded = np.pad(values.astype(np.float64), pad, mode="edge")
    if model.taps is None:
        out = sum(model.window[i, j] * padded[i:i + height, j:j + width] for i in range(size) for j in range(size))
        return np.asarray(out, dtype=np.float32)
    taps = model.taps
    rows = taps[0] * padded[0:height]
    for offset in range(1, size):
        rows += taps[offset] * padded[offset:offset + height]
    out = taps[0] * rows[:, 0:width]
    for offset in range(1, size):
        out += taps[offset] * rows[:, offset:offset + width]
    return out.astype(np.float32)


def mscn(image: np.ndarray, model: PristineModel | None = None) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of an (H, W) image on [0, 255], as float32.

    Single precision as in the reference implementation whose figures match MATLAB's (BasicSR:
    float32 arrays, each 7x7 filtering summed in double and stored as float32). It matters: in
    near-flat areas the coefficients are rounding noise around zero, and computing them in
    double instead moves some scores by tenths (Set5 head: 8.716 instead of 8.350).
    """
    model = model or pristine_model()
    image = np.asarray(image, dtype=np.float32)
    mu = _blur(image, model)
    sigma = np.sqrt(np.abs(_blur(image * image, model) - mu * mu))
    return (image - mu) / (sigma + 1)


def niqe_of_luma(luma: torch.Tensor | np.ndarray) -> float:
    """NIQE of an (H, W) luma image on [0, 255] (already rounded and cropped, as MATLAB gets it).

    Raises :class:`NiqeTooSmall` below two whole 96x96 blocks; NaN when no block has a full set
    of features (a flat image, say).
    """
    image = luma.detach().cpu().numpy() if isinstance(luma, torch.Tensor) else np.asarray(luma)
    if image.ndim != 2:
        raise MetricError(f"NIQE needs an (H, W) luma image, got shape {tuple(image.shape)}")
    height, width = image.shape
    rows, cols = height // BLOCK_SIZE, width // BLOCK_SIZE
    if rows * cols < 2:
        raise NiqeTooSmall(f"NIQE needs at least two whole {BLOCK_SIZE}x{BLOCK_SIZE} blocks, "
                           f"got a {width}x{height} image")
    model = pristine_model()
    image = np.ascontiguousarray(image[: rows * BLOCK_SIZE, : cols * BLOCK_SIZE], dtype=np.float32)
    fine = block_features(mscn(image, model), BLOCK_SIZE)
    half = imresize(torch.from_numpy(image / 255), scale=0.5).numpy() * 255  # float32, like the reference
    coarse = block_features(mscn(half, model), BLOCK_SIZE // 2)
    return _distance(np.concatenate([fine, coarse], axis=1), model)


def _distance(features: np.ndarray, model: PristineModel) -> float:
    """Distance of the blocks' Gaussian from the pristine one (NaN-aware mean, complete-row covariance)."""
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) < 2:
        return math.nan
    valid = ~np.isnan(features)
    mean = np.where(valid, features, 0.0).sum(axis=0) / valid.sum(axis=0)
    covariance = np.cov(complete, rowvar=False)
    difference = model.mean - mean
    inverse = np.linalg.pinv((model.covariance + covariance) / 2)
    return float(np.sqrt(difference @ inverse @ difference))


def luma(image: torch.Tensor) -> torch.Tensor:
    """(H, W) float64 Y on [0, 255] of a (3 or 1, H, W) image in [0, 1], quantised to 8 bits first.

    The Y of MATLAB's ``rgb2ycbcr``, rounded to integers (``metrics.rgb_to_y``); a greyscale
    image is read as the colour image with three equal channels, as the reference figures are
    (Set14 bridge is a greyscale PNG).
    """
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise MetricError(f"NIQE needs a (3, H, W) colour or (1, H, W) greyscale image, got {tuple(image.shape)}")
    pixels = torch.round(image.detach().to(device="cpu", dtype=torch.float64).clamp(0, 1) * 255) / 255
    return rgb_to_y(pixels.expand(3, -1, -1))[0]


def niqe(image: torch.Tensor, crop_border: int = 0) -> float:
    """NIQE of a (3, H, W) colour or (1, H, W) greyscale image in [0, 1]; lower is better.

    The image is quantised to 8 bits, reduced to Y (or grey) and ``crop_border`` pixels are
    cut from each side, then scored as MATLAB's NIQE release scores it (see the module notes).
    """
    if crop_border < 0:
        raise MetricError(f"crop border must be >= 0, got {crop_border}")
    values = luma(image)
    if crop_border:
        values = values[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_of_luma(values)
