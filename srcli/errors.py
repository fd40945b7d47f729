"""Errors whose message is meant for the user: one line, no traceback.

They live at ground level so that every layer can raise them without importing the layer that
happens to catch them (the CLI shows any ``SrcliError`` as ``error: <message>``)."""
from __future__ import annotations


class SrcliError(Exception):
    """Base of srcli's user-facing errors."""


class DataError(SrcliError, ValueError):
    """Training or evaluation images that cannot be found or used."""


class CheckpointError(SrcliError, ValueError):
    """A file that cannot be turned into a network."""
