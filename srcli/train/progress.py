"""Training feedback: a rich bar in a terminal, plain progress lines elsewhere (nohup, CI, pipes).

Both show the iteration, it/s, the losses, the last validation PSNR and an ETA that ends with
whichever comes first, ``--iters`` or ``--time-budget``: a one-minute budget must not show the
hundreds of hours the 300,000-iteration default would take.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from .config import ConfigError, parse_duration


class ProgressSettingError(ValueError):
    """A ``--progress-every`` value that is neither a duration nor an iteration count."""


@dataclass(frozen=True)
class ProgressEvery:
    """How often a plain progress line is printed: every ``seconds`` or every ``iterations``."""
    seconds: float | None = 60.0
    iterations: int | None = None


#: A line a minute: often enough to see a stall, rare enough for a log file.
DEFAULT_PROGRESS_EVERY = ProgressEvery()


def parse_progress_every(text: str) -> ProgressEvery:
    """``60``, ``60s``, ``5m``, ``1h30m`` (time, as ``--time-budget``) or ``500it`` (iterations)."""
    stripped = text.strip().lower()
    match = re.fullmatch(r"(\d+)\s*(it|iters?|iterations?)", stripped)
    if match:
        if int(match.group(1)) <= 0:
            raise ProgressSettingError(f"{text!r}: the iteration count must be positive")
        return ProgressEvery(seconds=None, iterations=int(match.group(1)))
    try:
        seconds = parse_duration(stripped)  # the same spellings as --time-budget
    except ConfigError:
        seconds = None
    if not seconds or seconds <= 0:
        raise ProgressSettingError(f"{text!r} is not a positive duration (60s, 5m) or iteration count (500it)")
    return ProgressEvery(seconds=seconds)


def eta(iteration: int, total: int, rate: float, elapsed: float, budget: float | None) -> tuple[float | None, str]:
    """(seconds left, what ends the run): ``iters`` at ``rate`` it/s, or the time budget if sooner."""
    candidates: list[tuple[float, str]] = []
    if rate > 0:
        candidates.append((max(0, total - iteration) / rate, "iters"))
    if budget is not None:
        candidates.append((max(0.0, budget - elapsed), "time budget"))
    if not candidates:
        return None, ""
    return min(candidates)


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``4m05s``, ``12s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_style(requested: str, terminal: bool) -> str:
    """``bar`` in a terminal, ``lines`` otherwise; ``off`` stays off."""
    if requested == "auto":
        return "bar" if terminal else "lines"
    if requested not in ("bar", "lines", "off"):
        raise ValueError(f"unknown progress style {requested!r}")
    return requested


class TrainingProgress:
    """One object for all three styles, so the loop calls the same three methods whatever is shown."""

    def __init__(self, style: str, *, total: int, start: int, budget: float | None,
                 every: ProgressEvery = DEFAULT_PROGRESS_EVERY, echo: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.style, self.total, self.start, self.budget = style, total, start, budget
        self.every, self.echo, self.clock = every, echo, clock
        self.started = self.last_time = clock()
        self.iteration = self.last_iteration = start
        self.window: dict[str, float] = {}
        self.window_count = 0
        self.latest: dict[str, float] = {}
        self.validation = ""
        self.pending = False  # something happened since the last line
        self.bar: Any = None
        self.rate_text = ""
        if style == "bar":
            self._start_bar()

    # -- what the loop calls --------------------------------------------------------------------
    def update(self, iteration: int, logs: dict[str, float]) -> None:
        """After each step: remember the losses; print a line or refresh the bar when it is time."""
        self.iteration, self.latest, self.pending = iteration, logs, True
        if self.style == "lines":
            for key, value in logs.items():  # a line shows the mean since the previous one
                self.window[key] = self.window.get(key, 0.0) + value
            self.window_count += 1
            if self._line_due(iteration):
                self._print_line()
        elif self.style == "bar" and self.clock() - self.last_time >= 0.5:
            self._refresh_bar()

    def validated(self, iteration: int, psnr: float) -> None:
        """A validation result: shown from now on, including on the final line."""
        self.validation = f"val PSNR {psnr:.3f} dB @{iteration}"
        self.pending = True
        if self.style == "bar":
            self._refresh_bar()

    def close(self) -> None:
        """The final state: the last iteration and the last validation, never a stale one."""
        if self.style == "lines" and self.pending:
            self._print_line()
        elif self.style == "bar":
            self._refresh_bar()
            self.bar.stop()

    # -- text -----------------------------------------------------------------------------------
    def _rates(self) -> tuple[float, float, float]:
        """(recent it/s, average it/s since start, seconds elapsed)."""
        now = self.clock()
        elapsed = now - self.started
        recent = (self.iteration - self.last_iteration) / max(now - self.last_time, 1e-9)
        average = (self.iteration - self.start) / max(elapsed, 1e-9)
        return recent, average, elapsed

    def _eta_text(self, average: float, elapsed: float) -> str:
        seconds, reason = eta(self.iteration, self.total, average, elapsed, self.budget)
        return f"ETA {format_duration(seconds)} ({reason})" if reason else "ETA ?"

    def _losses_text(self, values: dict[str, float], count: int = 1) -> str:
        return "  ".join(f"{key} {value / count:.4g}" for key, value in values.items())

    def line(self) -> str:
        """``iteration 1200/300000  3.21 it/s  loss 0.0234  val PSNR ... @1000  elapsed 6m14s  ETA ...``."""
        recent, average, elapsed = self._rates()
        fresh = self.window_count > 0  # else (only a validation since): the last losses, the average rate
        losses = self._losses_text(self.window, self.window_count) if fresh else self._losses_text(self.latest)
        parts = [f"iteration {self.iteration}/{self.total}", f"{recent if fresh else average:.2f} it/s",
                 losses, self.validation,
                 f"elapsed {format_duration(elapsed)}", self._eta_text(average, elapsed)]
        return "  ".join(part for part in parts if part)

    def _line_due(self, iteration: int) -> bool:
        if self.every.iterations is not None:
            return iteration % self.every.iterations == 0
        return self.every.seconds is not None and self.clock() - self.last_time >= self.every.seconds

    def _print_line(self) -> None:
        self.echo(self.line())
        self.last_time, self.last_iteration = self.clock(), self.iteration
        self.window, self.window_count, self.pending = {}, 0, False

    # -- rich bar -------------------------------------------------------------------------------
    def _start_bar(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                            TimeElapsedColumn(), TextColumn("{task.fields[eta]}"), TextColumn("{task.fields[info]}"))
        self.bar.start()
        self.task = self.bar.add_task("train", total=self.total, completed=self.start, rate="", eta="", info="")

    def _refresh_bar(self) -> None:
        recent, average, elapsed = self._rates()
        if self.iteration > self.last_iteration:  # a refresh for a validation alone keeps the last rate
            self.rate_text = f"{recent:.2f} it/s"
            self.last_time, self.last_iteration = self.clock(), self.iteration
        info = f"{self._losses_text(self.latest)} {self.validation}".strip()
        self.bar.update(self.task, completed=self.iteration, rate=self.rate_text,
                        eta=self._eta_text(average, elapsed), info=info)
