"""The hot commands without argparse: ``publish``, ``unpublish`` and ``port``.

A script that publishes ports one by one starts one process a port. Building argparse's tree of
every command costs ~20 ms here (argparse pulls in ``re``, ``gettext``, and every command
group), more than the publication itself (under 1 ms), so ``main.py`` hands these commands here
first. ``parse`` takes only their plain form, positional arguments none of which starts with
``-``; for anything else (``--help``, an option, ``--``, a wrong count) it returns None and
argparse handles the command with its own usage and words. The command functions are
``netcmds.py``'s and the error lines are ``commands.main``'s, so what a command does and
prints does not depend on the path it took (``tests/unit/test_cli_lean.py`` compares them).
"""

from __future__ import annotations

import os
import sys

from netplumb.errors import NetplumbError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# command: (fewest, most) positional arguments, as the parser of commands.py takes them
HOT = {"publish": (2, None), "unpublish": (2, None), "port": (1, 2)}


class Args:
    """What argparse's Namespace holds for a hot command (the attributes its function reads)."""

    __slots__ = ("command", "debug", "dry_run", "guest", "port", "specs")

    def __init__(self, command: str, rest: list[str]) -> None:
        self.command = command
        self.debug = False
        self.dry_run = False  # --dry-run is an option: argparse's turn
        self.guest = rest[0]
        self.specs = rest[1:]
        self.port = rest[1] if command == "port" and len(rest) > 1 else None


def parse(argv: list[str]) -> Args | None:
    """The arguments of a hot command in its plain form, or None (argparse's turn)."""
    if not argv or argv[0] not in HOT:
        return None
    rest = argv[1:]
    fewest, most = HOT[argv[0]]
    if len(rest) < fewest or (most is not None and len(rest) > most):
        return None
    if any(a.startswith("-") for a in rest):  # an option, a negative number, --help, --
        return None
    return Args(argv[0], rest)


def privileges_error(command: str) -> NetplumbError | None:
    """The one-line error for a user who lacks netplumb's privileges, or None."""
    from netplumb.kernel import caps

    lacking = caps.missing()
    if not lacking:
        return None
    return NetplumbError(
        f"netplumb {command}: needs root (run it as root, e.g. with sudo); this process lacks "
        f"{', '.join(lacking)}"
    )


def _function(command: str) -> Callable[[Args], int]:
    from netplumb.cli import netcmds

    funcs = {
        "publish": netcmds.cmd_publish,
        "unpublish": netcmds.cmd_unpublish,
        "port": netcmds.cmd_port,
    }
    return funcs[command]  # type: ignore[return-value]  # they read only what Args holds


def run(args: Args) -> int:
    """Run a parsed hot command; errors end it as ``commands.main`` ends any command."""
    debug = os.environ.get("NETPLUMB_DEBUG") == "1"
    try:
        error = privileges_error(args.command)
        if error is not None:
            raise error
        return int(_function(args.command)(args))
    except (NetplumbError, KeyboardInterrupt, OSError) as exc:
        return ended(exc, debug)


def ended(exc: BaseException, debug: bool) -> int:
    """How any command ends on an error: one line on standard error and its exit status.
    Re-raised: everything under ``--debug`` but Ctrl-C, and a closed pipe (``cli.main`` ends
    that quietly)."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if debug or isinstance(exc, BrokenPipeError):
        raise exc
    if isinstance(exc, NetplumbError):
        text = str(exc)
        print(
            text if text.startswith(("netplumb", "Error:")) else f"netplumb: {text}",
            file=sys.stderr,
        )
        return exc.exit_code
    if isinstance(exc, OSError):  # a system call netplumb did not expect to fail: one line
        where = f": {exc.filename}" if exc.filename else ""
        print(f"netplumb: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    raise exc
