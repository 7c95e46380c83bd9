"""``netplumb``: dispatch to the subcommands.

``netplumb pipework ...`` is dispatched before argparse is imported (~12 ms here): the
one-shot path pays only for what it uses.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "pipework":
        from netplumb.cli.pipework import main as pipework_main

        return pipework_main(args[1:], prog="netplumb pipework")
    from netplumb.cli.commands import main as commands_main

    return commands_main(args)


def entry() -> None:
    sys.exit(main())


def pipework_entry() -> None:
    from netplumb.cli.pipework import main as pipework_main

    sys.exit(pipework_main())


def launch() -> None:
    """Entry from the bin/ launchers: argv[1] is the name the launcher was called by."""
    name = sys.argv[1] if len(sys.argv) > 1 else "netplumb"
    args = sys.argv[2:]
    if name == "pipework":
        from netplumb.cli.pipework import main as pipework_main

        rc = pipework_main(args)
        # A one-shot command has nothing left to clean up: every file it wrote is closed, and
        # the kernel closes its sockets. Skipping the interpreter's teardown saves ~2 ms here.
        sys.stdout.flush()
        sys.stderr.flush()
        import posix

        posix._exit(rc)
    sys.exit(main(args))
