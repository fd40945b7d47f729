"""Synthetic test images (no test reads ../shared)."""
from __future__ import annotations

import numpy as np


def synthetic_image(seed: int, height: int = 64, width: int = 64) -> np.ndarray:
    """Smooth gradients + edges + texture: enough structure for a network to learn."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([np.sin(6 * x + rng.uniform(0, 6)), np.cos(5 * y + rng.uniform(0, 6)),
                      np.sin(4 * (x + y) + rng.uniform(0, 6))], axis=-1) * 0.35 + 0.5
    image[(x * 7 + y * 3 + rng.uniform()) % 1 < 0.3] *= 0.6
    image += rng.normal(0, 0.02, image.shape)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
