"""``docs/cli.md``, written from the parser itself, so the reference cannot drift from the CLI.

``python -m netplumb.cli.reference > docs/cli.md`` regenerates it; a unit test fails when the
file in the tree differs from what this prints. Shell completion (``cli/completion.py``) walks
the same tree.
"""

from __future__ import annotations

import argparse
import sys

from netplumb.cli.parser import helps, subcommands, walk


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._SubParsersAction | argparse._HelpAction)
    ]


def _arg_text(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"`{o}`" for o in action.option_strings)
        if action.nargs == 0:
            return names
        metavar = action.metavar or action.dest.upper()
        if isinstance(metavar, tuple):
            metavar = " ".join(metavar)
        return f"{names} `{metavar}`"
    metavar = action.metavar or action.dest
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    return f"`{metavar}`"


def _arg_help(action: argparse.Action) -> str:
    text = (action.help or "").replace("|", "\\|").replace("\n", " ")
    if action.choices is not None and not isinstance(action.choices, dict):
        text += (" " if text else "") + "(one of: " + ", ".join(map(str, action.choices)) + ")"
    if action.required and action.option_strings:
        text += " (required)"
    if action.nargs in ("*", "+", argparse.REMAINDER) and not action.option_strings:
        text += " (any number)" if action.nargs != "+" else " (one or more)"
    return text


def render(root: argparse.ArgumentParser) -> str:
    out = [
        "# netplumb command reference",
        "",
        "Generated from the CLI's own definitions by `python -m netplumb.cli.reference > "
        "docs/cli.md`",
        "(a unit test fails when this file is stale). `netplumb COMMAND --help` shows the same.",
        "",
    ]
    helps_of: dict[tuple[str, ...], str] = {}
    for path, parser in walk(root):
        for name, text in helps(parser).items():
            helps_of[(*path, name)] = text
    for path, parser in walk(root):
        title = " ".join(("netplumb", *path))
        out += [f"{'#' * min(2 + len(path) - (1 if path else 0), 4)} `{title}`", ""]
        description = parser.description or helps_of.get(path, "")
        if description:
            out += [description.strip(), ""]
        usage = parser.format_usage().strip().removeprefix("usage: ")
        out += ["```text", " ".join(usage.split()), "```", ""]
        subs = subcommands(parser)
        if subs:
            lines = helps(parser)
            out += ["| command | what |", "|---|---|"]
            for name, sub in subs.items():
                what = lines.get(name) or (sub.description or "").strip().split("\n")[0]
                out.append(f"| `{name}` | {what} |")
            out.append("")
        options = _options(parser)
        if options:
            out += ["| argument | what |", "|---|---|"]
            out += [f"| {_arg_text(a)} | {_arg_help(a)} |" for a in options]
            out.append("")
        if path == ("pipework",):  # parsed by its own grammar (the one-shot fast path)
            from netplumb.pipework.grammar import USAGE

            out += ["```text", USAGE.strip(), "```", ""]
        if parser.epilog:
            out += ["```text", parser.epilog.strip(), "```", ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    from netplumb.cli.commands import build_parser

    sys.stdout.write(render(build_parser()))


if __name__ == "__main__":
    main()
