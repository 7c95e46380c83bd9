"""``pipework ...`` and ``netplumb pipework ...``: the one-shot path.

This module and what it imports are kept to the standard library's cheapest modules (no
argparse, dataclasses, json, re, ipaddress): Python's own start-up is ~14-18 ms here and the
whole command has a 25 ms budget.
"""

from __future__ import annotations

import sys

from netplumb.errors import NetplumbError
from netplumb.model.attach import AttachRequest, GuestCommand, WaitRequest
from netplumb.pipework.grammar import parse


def run(argv: list[str]) -> int:
    request = parse(argv)
    if isinstance(request, WaitRequest):
        from netplumb.ops import guestside

        guestside.wait(request)
        return 0
    from netplumb.kernel import caps

    if caps.missing():  # checked once the line parses: a usage error is still told first
        raise NetplumbError(
            "needs root (run it as root, e.g. with sudo); this process lacks "
            + ", ".join(caps.missing())
        )
    if isinstance(request, GuestCommand):
        from netplumb.ops import guestside

        return guestside.guest_command(request)
    assert isinstance(request, AttachRequest)
    from netplumb.ops import engine

    engine.attach(request)
    return 0


def main(argv: list[str] | None = None, prog: str = "pipework") -> int:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    if debug:
        args = [a for a in args if a != "--debug"]
    if args[:1] in (["-h"], ["--help"]):
        from netplumb.pipework.grammar import USAGE

        print(USAGE)
        return 0
    try:
        return run(args)
    except NetplumbError as exc:
        if debug:
            raise
        sys.stderr.write(f"{prog}: {exc}\n" if not str(exc).startswith("pipework:") else f"{exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise  # the reader went away: cli.main ends quietly
    except OSError as exc:
        if debug:
            raise
        sys.stderr.write(f"{prog}: {exc.strerror or exc}\n")
        return 1
