"""``pipework ...`` and ``netplumb pipework ...``: the one-shot path.

This module and what it imports are kept to the standard library's cheapest modules (no
argparse, dataclasses, json, re, ipaddress): Python's own start-up is ~14-18 ms here and the
whole command has a 25 ms budget.
"""

from __future__ import annotations

import sys
import time

from netplumb.errors import NetplumbError
from netplumb.model.attach import AttachRequest, GuestCommand, WaitRequest
from netplumb.pipework.grammar import parse


def wait(req: WaitRequest) -> None:
    """Inside a guest: return once the interface exists, is up and has carrier."""
    deadline = time.monotonic() + req.timeout
    base = f"/sys/class/net/{req.ifname}"
    while True:
        try:
            with open(f"{base}/carrier") as f:
                carrier = f.read().strip() == "1"
            with open(f"{base}/operstate") as f:
                up = f.read().strip() in ("up", "unknown")
            if carrier and up:
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise NetplumbError(
                f'interface "{req.ifname}" did not come up within {req.timeout:g} s'
            )
        time.sleep(0.05)


def guest_command(req: GuestCommand) -> int:
    import subprocess

    from netplumb.kernel import netns
    from netplumb.runtimes.guests import resolve

    argv = ["tc", *req.args] if req.tool == "tc" else ["ip", req.tool, *req.args]
    with resolve(req.guest) as guest, netns.entered(guest.fd):
        return subprocess.run(argv, check=False).returncode


def run(argv: list[str]) -> int:
    request = parse(argv)
    if isinstance(request, WaitRequest):
        wait(request)
        return 0
    from netplumb.kernel import caps

    if caps.missing():  # checked once the line parses: a usage error is still told first
        raise NetplumbError(
            "needs root (run it as root, e.g. with sudo); this process lacks "
            + ", ".join(caps.missing())
        )
    if isinstance(request, GuestCommand):
        return guest_command(request)
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
