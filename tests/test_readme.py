"""The README's commands work: every ``srcli`` line in its shell blocks parses (unknown options
or commands fail here), and the install-and-run command runs on the bundled example."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from srcli.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def srcli_commands(text: str) -> list[list[str]]:
    """Each ``srcli ...`` invocation (continuation lines joined, comments and ``&&`` chains split)."""
    commands = []
    for block in shell_blocks(text):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            for part in re.split(r"&&|;", line.split(" # ", 1)[0]):
                words = shlex.split(part.strip()) if part.strip() else []
                if words and words[0] == "srcli":
                    commands.append(words[1:])
    return commands


COMMANDS = srcli_commands(README.read_text(encoding="utf-8"))


def test_the_readme_has_commands_to_check() -> None:
    assert len(COMMANDS) >= 15
    assert ["upscale", "examples/lowres.png", "-o", "upscaled/"] in COMMANDS


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(words)[:60] for words in COMMANDS])
def test_every_readme_command_parses(words: list[str]) -> None:
    """``--help`` is eager, but click has parsed every option by then: a renamed flag fails."""
    result = CliRunner().invoke(main, [*words, "--help"])
    assert result.exit_code == 0, f"srcli {' '.join(words)}: {result.output}"
    assert "Usage:" in result.output


def test_the_first_run_command_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "lowres.png").write_bytes((ROOT / "examples" / "lowres.png").read_bytes())
    result = CliRunner().invoke(main, ["upscale", "examples/lowres.png", "-o", "upscaled/", "--quiet"])
    assert result.exit_code == 0, result.output
    outputs = list((tmp_path / "upscaled").iterdir())
    assert len(outputs) == 1 and outputs[0].suffix == ".png"
