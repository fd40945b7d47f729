"""Shared fixtures: tiny synthetic images so no test needs ../shared or the network."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from synthetic import synthetic_image

torch.set_num_threads(1)  # tiny models: threads only add overhead (and CI shares the CPU)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "hr"
    folder.mkdir()
    for index in range(4):
        Image.fromarray(synthetic_image(index)).save(folder / f"img{index}.png")
    return folder
