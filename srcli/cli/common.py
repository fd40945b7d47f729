"""Shared CLI plumbing: one-line errors, exit codes, consoles, option values every command reads alike."""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class OneLineUsageError(click.UsageError):
    """A usage error shown as one ``error: ...`` line (exit 2), without click's usage banner.

    Why: contradictory options are plain mistakes; the one line says what to change, and the
    banner plus "Try --help" would bury it among output that scripts parse.
    """

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is meant for the user (shown as one line, no traceback)."""
    from ..checkpoints.interpolate import InterpolationError
    from ..checkpoints.io import CheckpointError
    from ..checkpoints.resolve import ModelChoiceError
    from ..checkpoints.shipped import WeightsError
    from ..errors import DataError, SrcliError
    from ..evaluation.metrics import MetricError
    from ..images.io import ImageReadError
    from ..inference.device import DeviceError
    from ..train.config import ConfigError
    from ..train.losses import MissingVGGWeights
    from ..train.trainer import TrainError

    return (CheckpointError, DeviceError, ImageReadError, InterpolationError, MetricError, ModelChoiceError,
            ConfigError, DataError, MissingVGGWeights, TrainError, WeightsError, SrcliError, FileExistsError)


def fail(message: str, code: int = EXIT_FAILED) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.splitlines())


def handle_errors(function: F) -> F:
    """Turn user-facing exceptions into ``error: ...`` on stderr and exit code 1 (2 for usage)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except click.exceptions.ClickException:
            raise
        except user_errors() as error:
            from ..train.config import ConfigError

            fail(one_line(error), EXIT_USAGE if isinstance(error, ConfigError) else EXIT_FAILED)
        except OSError as error:
            fail(os_error_message(error))
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


def os_error_message(error: OSError) -> str:
    """``out/a.png: permission denied``: the file's name and a short reason, never ``[Errno 13] ...``."""
    from ..files import os_error_text

    return f"{error.filename}: {os_error_text(error)}" if error.filename else os_error_text(error)


def split_names(values: tuple[str, ...]) -> list[str]:
    """``-m a,b -m c`` -> ``[a, b, c]``: every command takes repeated or comma-separated names."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def parse_tile(value: str, flag: str = "--tile") -> str | int | None:
    """``--tile`` as every command reads it: ``auto``, ``none`` or ``0`` (no tiling, as in Real-ESRGAN's
    ``-t 0``), or a tile side in input pixels (at least 8). Returns "auto", None or the side."""
    text = value.strip().lower()
    if text == "auto":
        return "auto"
    if text in ("none", "0"):
        return None
    try:
        number = int(text)
    except ValueError:
        raise click.BadParameter(f"expected auto, none (or 0) or a tile side in pixels, got {value!r}",
                                 param_hint=flag) from None
    if number < 8:
        raise click.BadParameter(f"tiles must be at least 8 pixels, got {number}", param_hint=flag)
    return number


def parse_tile_pad(value: str, flag: str = "--tile-pad") -> str | int:
    """``--tile-pad``: ``auto`` (calibrated), ``full`` (the network's whole reach) or pixels >= 0."""
    text = value.strip().lower()
    if text in ("auto", "full"):
        return text
    try:
        number = int(text)
    except ValueError:
        raise click.BadParameter(f"expected auto, full or a number of pixels, got {value!r}", param_hint=flag) from None
    if number < 0:
        raise click.BadParameter(f"cannot be negative, got {number}", param_hint=flag)
    return number


def console(stderr: bool = True, quiet: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, quiet=quiet)


def collect_jobs(inputs: tuple[str, ...], recursive: bool, overwrite: bool, skip_existing: bool) -> list[Any]:
    """Expand INPUT arguments into jobs; contradictions and empty inputs are usage errors (exit 2).

    A path that names nothing among others that do becomes a failed job: it is reported and the
    batch goes on (exit 1 at the end)."""
    from ..images.batch import InputError, expand_inputs

    if overwrite and skip_existing:
        raise OneLineUsageError("--overwrite and --skip-existing contradict each other")
    if not inputs:
        raise OneLineUsageError("no input given: name image files, folders or glob patterns")
    try:
        return expand_inputs(list(inputs), recursive)
    except InputError as error:
        fail(str(error), EXIT_USAGE)
        raise  # unreachable: fail() exits
