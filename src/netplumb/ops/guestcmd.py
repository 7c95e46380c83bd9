"""pipework's two requests that attach nothing: ``--wait`` (inside a guest, until an interface
is up with carrier) and ``ip``/``tc`` run inside a guest's namespace.

Kept on the one-shot path's budget: the standard library's cheapest modules only.
"""

from __future__ import annotations

import time

from netplumb.errors import NetplumbError
from netplumb.model.attach import GuestCommand, WaitRequest


def wait(req: WaitRequest) -> None:
    """Return once the interface exists, is up and has carrier (sysfs, polled every 50 ms)."""
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


def run_in_guest(req: GuestCommand) -> int:
    """``ip``/``tc`` with the request's arguments, in the guest's namespace; its exit status."""
    import subprocess

    from netplumb.kernel import netns
    from netplumb.runtimes.guests import resolve

    argv = ["tc", *req.args] if req.tool == "tc" else ["ip", req.tool, *req.args]
    with resolve(req.guest) as guest, netns.entered(guest.fd):
        return subprocess.run(argv, check=False).returncode
