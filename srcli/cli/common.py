"""Shared CLI plumbing: one-line errors, exit codes, consoles."""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is meant for the user (shown as one line, no traceback)."""
    from ..checkpoints.interpolate import InterpolationError
    from ..checkpoints.io import CheckpointError
    from ..checkpoints.resolve import ModelChoiceError
    from ..checkpoints.shipped import WeightsError
    from ..errors import DataError
    from ..evaluation.metrics import MetricError
    from ..images.io import ImageReadError
    from ..inference.device import DeviceError
    from ..train.config import ConfigError
    from ..train.losses import MissingVGGWeights
    from ..train.trainer import TrainError

    return (CheckpointError, DeviceError, ImageReadError, InterpolationError, MetricError, ModelChoiceError,
            ConfigError, DataError, MissingVGGWeights, TrainError, WeightsError, FileExistsError)


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
            fail(f"{error.filename or ''}: {error.strerror or one_line(error)}".lstrip(": "))
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


def console(stderr: bool = True, quiet: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, quiet=quiet)


def collect_jobs(inputs: tuple[str, ...], recursive: bool, overwrite: bool, skip_existing: bool) -> list[Any]:
    """Expand INPUT arguments into jobs; contradictions and empty inputs are usage errors (exit 2)."""
    from ..images.batch import InputError, expand_inputs

    if overwrite and skip_existing:
        raise click.UsageError("--overwrite and --skip-existing contradict each other")
    try:
        return expand_inputs(list(inputs), recursive)
    except InputError as error:
        fail(str(error), EXIT_USAGE)
        raise  # unreachable: fail() exits
