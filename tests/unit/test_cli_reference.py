"""docs/cli.md is generated from the parser and must be current; every command's help shows an
example (issue 8)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netplumb.cli.commands import build_parser
from netplumb.cli.parser import walk
from netplumb.cli.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_docs_cli_md_is_current() -> None:
    text = render(build_parser())
    if os.environ.get("NETPLUMB_UPDATE_GOLDEN"):
        DOC.write_text(text)
    assert DOC.read_text() == text, (
        "docs/cli.md is stale: python -m netplumb.cli.reference > docs/cli.md"
    )


PARSERS = [(" ".join(path) or "netplumb", parser) for path, parser in walk(build_parser())]


@pytest.mark.parametrize(("name", "parser"), PARSERS, ids=[n for n, _ in PARSERS])
def test_every_help_shows_an_example(name: str, parser: object) -> None:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    text = parser.format_help()
    assert "example" in text, f"netplumb {name} --help shows no example"
    assert "netplumb" in text.split("example", 1)[1] or "pipework" in text.split("example", 1)[1]


def test_the_reference_names_every_command_and_option() -> None:
    text = render(build_parser())
    for name, parser in PARSERS:
        assert f"`netplumb {name}`" in text or name == "netplumb"
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}`" in text, (name, option)
