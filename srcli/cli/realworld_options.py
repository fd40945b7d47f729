"""``--realworld NAME=VALUE``: the realworld pipeline's settings, spelled the same in every command."""
from __future__ import annotations

from typing import Any, Callable

import click

REALWORLD_HELP = ("--degradation/-m realworld: change one setting, e.g. second_order_prob=0.3 or "
                  "first.noise_sigma=1:20 (ranges LOW:HIGH); repeatable or comma-separated. "
                  "See docs/degradation.md for every setting.")


def realworld_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--realworld", "realworld_settings", multiple=True, metavar="NAME=VALUE",
                        help=REALWORLD_HELP)(function)


def parse_realworld(items: tuple[str, ...]) -> dict[str, str] | None:
    """The flat NAME -> VALUE mapping the library takes; None when no setting was given.

    Checked here, so a misspelt setting fails before any image is read or any run starts."""
    from ..degradation.realworld import DegradationSettingsError, parse_settings_text, settings_from

    if not items:
        return None
    values: dict[str, str] = {}
    try:
        for item in items:
            values.update(parse_settings_text(item))
        settings_from(values)
    except DegradationSettingsError as error:
        raise click.BadParameter(str(error), param_hint="--realworld") from None
    return values
