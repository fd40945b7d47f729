"""srcli: super-resolution networks (SRGAN, ESRGAN, EDSR/MDSR, DSGAN) for the command line and Python."""
from __future__ import annotations

from .checkpoints.io import CheckpointError, load_model, save_model  # noqa: E402
from .version import __version__

__all__ = ["load_model", "save_model", "CheckpointError", "__version__"]
