"""Defaults shared by the CLI and the library, kept free of torch so ``--help`` stays fast."""
from __future__ import annotations

#: The model ``upscale``, ``eval`` and ``compare`` use when none is named.
DEFAULT_MODEL = "edsr"
