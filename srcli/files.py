"""Small file-system helpers shared by everything that writes user-visible files atomically."""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import SrcliError


class WriteError(SrcliError, OSError):
    """A file could not be written; the message names the file the user asked for, not a temporary one.

    An ``OSError`` too, so code that already catches ``OSError`` (best-effort caches) still does.
    """


def os_error_text(error: OSError) -> str:
    """``read-only file system`` for ``[Errno 30] Read-only file system: '...'``: short, lowercase, no errno.

    Why: the raw text carries an errno number and often a temporary file's name that the user
    never asked for; the caller names the real file beside this reason.
    """
    if error.errno is not None and error.errno in errno.errorcode:
        return os.strerror(error.errno).lower()
    text = (error.strerror or str(error) or type(error).__name__).strip()
    return text[:1].lower() + text[1:]


def default_permissions(path: Path) -> None:
    """Give a temporary file the permissions a plain ``open(..., 'w')`` would have.

    Why: ``mkstemp`` / ``NamedTemporaryFile`` create files 0600 so that nobody reads them
    half-written; once renamed into place they are the user's outputs (weights, images,
    manifests) and should follow the umask like any other file.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write(path: Path, write: Callable[[Path], None], *, overwrite: bool = True,
                 exists_message: str | None = None) -> None:
    """Let ``write`` fill a hidden temporary file beside ``path``, fsync it, then move it in place.

    Readers never see half a file and a failed write leaves the old one untouched. Without
    ``overwrite`` the move is a hard link, which fails if ``path`` appeared in the meantime (no
    race); file systems without hard links fall back to check-then-rename. A system error becomes
    a :class:`WriteError` naming ``path`` (``cannot write out.png: read-only file system``);
    ``FileExistsError`` (no overwrite) and non-system errors from ``write`` pass through unchanged.
    """
    try:
        _atomic_write(path, write, overwrite, exists_message)
    except FileExistsError:
        raise
    except WriteError:
        raise
    except OSError as error:
        raise WriteError(f"cannot write {path}: {os_error_text(error)}") from None


def _atomic_write(path: Path, write: Callable[[Path], None], overwrite: bool, exists_message: str | None) -> None:
    folder = path.parent
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    temp = Path(temp_name)
    try:
        write(temp)
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        default_permissions(temp)
        if overwrite:
            os.replace(temp, path)
        else:
            _link_new(temp, path, exists_message or f"{path} exists")
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX only)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _link_new(temp: Path, path: Path, exists_message: str) -> None:
    try:
        os.link(temp, path)
    except FileExistsError:
        raise FileExistsError(exists_message) from None
    except OSError:
        if path.exists():
            raise FileExistsError(exists_message) from None
        os.replace(temp, path)


def make_folder(folder: Path) -> None:
    """``mkdir -p`` whose failure reads ``cannot create folder out: permission denied`` (a :class:`WriteError`)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(f"cannot create folder {folder}: {os_error_text(error)}") from None
