"""Small file-system helpers shared by everything that writes user-visible files atomically."""
from __future__ import annotations

import os
from pathlib import Path


def default_permissions(path: Path) -> None:
    """Give a temporary file the permissions a plain ``open(..., 'w')`` would have.

    Why: ``mkstemp`` / ``NamedTemporaryFile`` create files 0600 so that nobody reads them
    half-written; once renamed into place they are the user's outputs (weights, images,
    manifests) and should follow the umask like any other file.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
