"""pipework's commands that act on one guest without a plan: ``--wait`` (inside a guest, until
an interface is up) and ``route``/``rule``/``tc`` (``ip``/``tc`` run in the guest's netns).

Standard library only, and cheap: the one-shot ``pipework`` path imports it.
"""

from __future__ import annotations

import time

from netplumb.errors import NetplumbError
from netplumb.model.attach import GuestCommand, WaitRequest


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
    """Run ``ip TOOL ARGS`` (or ``tc ARGS``) in the guest's netns; its exit status."""
    import subprocess

    from netplumb.kernel import netns
    from netplumb.runtimes.guests import resolve

    argv = ["tc", *req.args] if req.tool == "tc" else ["ip", req.tool, *req.args]
    with resolve(req.guest) as guest, netns.entered(guest.fd):
        return subprocess.run(argv, check=False).returncode
