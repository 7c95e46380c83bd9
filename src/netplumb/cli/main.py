"""``netplumb``: dispatch to the subcommands.

``netplumb pipework ...`` is dispatched before argparse is imported (~12 ms here): the
one-shot path pays only for what it uses. So are the hot commands in their plain form
(``publish``, ``unpublish``, ``port``: ``lean.py``), which scripts run once per port.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

SIGPIPE_STATUS = 141  # 128 + SIGPIPE: what a shell reports for a Unix tool whose reader left


def quiet_on_closed_pipe(command: Callable[[], int]) -> int:
    """Run a command; if its reader goes away (``netplumb ... | head -2``), end quietly with
    the status of a Unix tool killed by SIGPIPE instead of printing "Broken pipe". (SIGPIPE's
    default action is not restored instead: it would kill a changing command halfway, before
    its rollback.)"""
    try:
        try:
            rc = command()
        except SystemExit as exc:  # argparse's --help (and usage errors) exit from inside
            rc = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        _notes()
        sys.stdout.flush()  # here, not at exit: a failed flush at exit says "Exception ignored"
    except BrokenPipeError:
        import os

        # Python flushes stdout again at exit: point it at /dev/null so that says nothing too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return SIGPIPE_STATUS
    return rc


def _notes() -> None:
    """What the use cases noted for the user on the way (``ops.dns.NOTES``), one line each;
    looked up only if the command loaded them."""
    dns = sys.modules.get("netplumb.ops.dns")
    for note in getattr(dns, "NOTES", ()):
        print(f"netplumb: {note}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "pipework":
        from netplumb.cli.pipework import main as pipework_main

        return quiet_on_closed_pipe(lambda: pipework_main(args[1:], prog="netplumb pipework"))
    from netplumb.cli import lean

    hot = lean.parse(args)
    if hot is not None:
        return quiet_on_closed_pipe(lambda: lean.run(hot))
    from netplumb.cli.commands import main as commands_main

    return quiet_on_closed_pipe(lambda: commands_main(args))


def entry() -> None:
    sys.exit(main())


def pipework_entry() -> None:
    from netplumb.cli.pipework import main as pipework_main

    sys.exit(quiet_on_closed_pipe(pipework_main))


def launch() -> None:
    """Entry from the bin/ launchers: argv[1] is the name the launcher was called by."""
    name = sys.argv[1] if len(sys.argv) > 1 else "netplumb"
    args = sys.argv[2:]
    if name == "pipework":
        from netplumb.cli.pipework import main as pipework_main

        _exit_now(quiet_on_closed_pipe(lambda: pipework_main(args)))
    from netplumb.cli import lean

    hot = lean.parse(args)
    if hot is not None:
        _exit_now(quiet_on_closed_pipe(lambda: lean.run(hot)))
    sys.exit(main(args))


def _exit_now(rc: int) -> NoReturn:
    """End a one-shot or hot command without the interpreter's teardown (~2 ms here): it has
    nothing left to clean up, every file it wrote is closed and the kernel closes its
    sockets."""
    sys.stdout.flush()
    sys.stderr.flush()
    import posix

    posix._exit(rc)
