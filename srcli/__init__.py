"""srcli: super-resolution networks (SRGAN, ESRGAN, EDSR/MDSR, DSGAN) for the command line and Python."""
from __future__ import annotations

__version__ = "0.1.0"

from .checkpoint import CheckpointError, load_model, save_model  # noqa: E402

__all__ = ["load_model", "save_model", "CheckpointError", "__version__"]
