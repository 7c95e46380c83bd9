"""Coexisting with dockerd's firewall: netplumb's rules in Docker's ``DOCKER-USER`` chain.

``sync`` is called wherever a bridge netplumb owns or uses appears or goes (a network's bridge,
pipework's and attach's bridges, the LAN bridge, an attachment onto someone else's bridge), by
``netplumb reconcile`` (so a dockerd started after netplumb's bridges exist is handled by the
next reconcile) and by ``gc``. What it wants is decided in one place, ``plan/dockeruser.py``,
from the links the kernel reports; this module only reads and writes the filter tables.

Both families: IPv4 always when the chain exists, IPv6 where Docker manages it (an
``ip6tables`` DOCKER-USER chain). Without Docker's chain nothing is done: two ``iptables -S``
runs, about 2 ms each. Changes go in one ``iptables-restore --noflush`` per family, so a
concurrent netplumb command sees all of them or none; a rule inserted twice by two commands
at once is deleted by the next sync.
"""

from __future__ import annotations

import shutil
import subprocess

from netplumb.errors import KernelError
from netplumb.kernel.netlink import Netlink
from netplumb.model.names import mark_owner
from netplumb.plan import dockeruser as plan

TOOLS = {4: ("iptables", "iptables-restore"), 6: ("ip6tables", "ip6tables-restore")}


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, check=False, timeout=30
    )


def read_filter(family: int) -> plan.FilterTable:
    exe = shutil.which(TOOLS[family][0])
    if exe is None:
        return plan.FilterTable(False, (), frozenset())
    proc = _run([exe, "-w", "5", "-S"])
    return plan.parse_filter(proc.stdout, proc.returncode == 0)


def bridges(nl: Netlink) -> list[plan.BridgeView]:
    links = nl.links()
    with_ours = {ln.master for ln in links if ln.master and mark_owner(ln.alias) is not None}
    return [
        plan.BridgeView(ln.name, ln.alias, ln.index in with_ours)
        for ln in links
        if ln.kind == "bridge"
    ]


def _restore(family: int, insert: list[plan.Rule], delete: list[plan.Rule]) -> None:
    import shlex

    exe = shutil.which(TOOLS[family][1])
    if exe is None:
        raise KernelError(f"cannot update {plan.CHAIN}: {TOOLS[family][1]} not found", 2)
    lines = ["*filter"]
    lines += [f"-D {plan.CHAIN} {shlex.join(r)}" for r in delete]
    # Each -I goes first in the chain (before Docker's RETURN): inserted last to first, they
    # read in plan order.
    lines += [f"-I {plan.CHAIN} {shlex.join(r)}" for r in reversed(insert)]
    lines.append("COMMIT\n")
    proc = _run([exe, "-w", "5", "--noflush"], "\n".join(lines))
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise KernelError(f"cannot update Docker's {plan.CHAIN} chain: {detail}", 1)


def sync(nl: Netlink | None = None) -> bool:
    """Make netplumb's part of DOCKER-USER what the bridges call for; whether Docker's firewall
    is present (in either family)."""
    present = False
    views: list[plan.BridgeView] | None = None
    for family in (4, 6):
        for attempt in (1, 2):
            table = read_filter(family)
            if not table.present:
                break
            present = True
            if views is None:
                if nl is None:
                    with Netlink() as own:
                        views = bridges(own)
                else:
                    views = bridges(nl)
            insert, delete = plan.diff(table, plan.roles(views, table.docker_bridges))
            if not insert and not delete:
                break
            try:
                _restore(family, insert, delete)
                break
            except KernelError:
                if attempt == 2:  # another command changed the chain meanwhile: read again once
                    raise
    return present
