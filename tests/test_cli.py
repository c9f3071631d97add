"""The command line as a user meets it: version, help on every command, error handling."""

from __future__ import annotations

import argparse

import pytest

from hepavol import __version__
from hepavol.cli import build_parser, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"hepavol {__version__}"


def _all_commands() -> list[list[str]]:
    """Every command and sub-command path registered on the parser, e.g. ['segment', 'lesion']."""
    paths: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    paths.append([*prefix, name])
                    walk(sub, [*prefix, name])

    walk(build_parser(), [])
    return paths


def test_the_study_commands_are_registered() -> None:
    names = {p[0] for p in _all_commands()}
    assert {"measure", "recist", "demo"} <= names


@pytest.mark.parametrize("command", _all_commands(), ids=" ".join)
def test_help_on_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert "usage: hepavol" in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: hepavol" in capsys.readouterr().out
