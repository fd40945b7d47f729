"""The 8 dihedral transforms (flips and transposes) used by self-ensemble and augmentation."""
from __future__ import annotations

import torch


def transform(batch: torch.Tensor, code: int) -> torch.Tensor:
    """One of the 8 dihedral transforms: bit 4 transpose, bit 1 flip columns, bit 2 flip rows."""
    if code & 4:
        batch = batch.transpose(-2, -1)
    if code & 1:
        batch = batch.flip(-1)
    if code & 2:
        batch = batch.flip(-2)
    return batch


def inverse_transform(batch: torch.Tensor, code: int) -> torch.Tensor:
    if code & 2:
        batch = batch.flip(-2)
    if code & 1:
        batch = batch.flip(-1)
    if code & 4:
        batch = batch.transpose(-2, -1)
    return batch
