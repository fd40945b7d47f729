"""``srcli`` command line: thin wrappers that parse options and call library functions."""
from __future__ import annotations

import click

from ..version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="srcli")
def main() -> None:
    """Super-resolution from the command line: upscale, train, evaluate and mix SR networks."""


def _register() -> None:
    from . import compare, degrade, models, train, upscale
    from . import eval as eval_command

    for module in (models, upscale, compare, eval_command, train, degrade):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
