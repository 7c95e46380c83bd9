"""The parser every command group shares, and the walk over its tree.

``Parser`` turns argparse's exit on a bad argument into ``UsageError`` (one line, exit 2, like
every other error of netplumb). ``subcommands``/``walk`` go through the tree the way the
reference (``reference.py``), shell completion (``completion.py``) and the examples
(``examples.py``) need. Apart from ``commands.py`` so that those modules and every command
group (``lan.py``, ...) depend on this one and not on ``commands.py``, which imports them.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from netplumb.errors import UsageError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices.items())
    return {}


def helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The one-line help of each subcommand (what ``netplumb --help`` lists)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser of the tree with its command path, depth first in definition order."""
    yield path, parser
    for name, sub in subcommands(parser).items():
        if not name.startswith("_"):  # internal (netplumb __complete)
            yield from walk(sub, (*path, name))
