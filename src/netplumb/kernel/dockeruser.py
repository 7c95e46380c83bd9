"""Coexisting with dockerd's firewall: netplumb's rules in Docker's ``DOCKER-USER`` chain.

``sync`` is called wherever a bridge netplumb owns or uses appears or goes (a network's bridge,
pipework's and attach's bridges, the LAN bridge, an attachment onto someone else's bridge), by
``netplumb reconcile`` (so a dockerd started after netplumb's bridges exist is handled by the
next reconcile) and by ``gc``. What it wants is decided in one place, ``plan/dockeruser.py``,
from the links the kernel reports; this module only reads and writes the filter tables.

Both families: IPv4 always when the chain exists, IPv6 where Docker manages it (an
``ip6tables`` DOCKER-USER chain). Without Docker's chain nothing is done, and finding that out
costs one nfnetlink question per family (~0.1 ms), not an ``iptables -S`` run (~2-3 ms each):
attaching to someone else's bridge asks on every attach. Only where legacy (x_tables) filter
tables exist, which nf_tables cannot see, is ``iptables`` asked. Changes go in one
``iptables-restore --noflush`` per family, so a concurrent netplumb command sees all of them
or none; a rule inserted twice by two commands at once is deleted by the next sync.
"""

from __future__ import annotations

from netplumb.errors import KernelError
from netplumb.kernel.netlink import Netlink
from netplumb.model.names import mark_owner

# The plan (dataclasses, shlex), shutil and subprocess are imported only where Docker's
# firewall is present: a one-shot attach onto someone else's bridge, on a machine without
# dockerd, pays the nfnetlink question alone (those imports cost ~15 ms).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

    from netplumb.plan import dockeruser as plan

TOOLS = {4: ("iptables", "iptables-restore"), 6: ("ip6tables", "ip6tables-restore")}
CHAIN = "DOCKER-USER"


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    import subprocess

    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, check=False, timeout=30
    )


NFPROTO = {4: 2, 6: 10}  # NFPROTO_IPV4, NFPROTO_IPV6
NFT_MSG_GETCHAIN = 4
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME = 1, 3
LEGACY_TABLES = {4: "/proc/net/ip_tables_names", 6: "/proc/net/ip6_tables_names"}


def _nft_has_chain(family: int) -> bool | None:
    """Whether nf_tables holds ``filter DOCKER-USER`` (what iptables-nft, Debian's default,
    makes of Docker's rules); None when netlink cannot say (then ask iptables)."""
    import struct
    from _socket import AF_NETLINK, SOCK_CLOEXEC, SOCK_RAW
    from _socket import socket as _rawsocket

    def attr(kind: int, text: str) -> bytes:
        data = text.encode() + b"\0"
        return struct.pack("=HH", 4 + len(data), kind) + data + b"\0" * (-len(data) % 4)

    body = struct.pack("=BBH", NFPROTO[family], 0, 0)
    body += attr(NFTA_CHAIN_TABLE, "filter") + attr(NFTA_CHAIN_NAME, CHAIN)
    kind = (10 << 8) | NFT_MSG_GETCHAIN  # NFNL_SUBSYS_NFTABLES
    msg = struct.pack("=LHHLL", 16 + len(body), kind, 0x1 | 0x4, 1, 0) + body  # REQUEST|ACK
    try:
        sock = _rawsocket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 12)  # NETLINK_NETFILTER
    except OSError:
        return None
    try:
        sock.send(msg)
        data = sock.recv(65536)
    except OSError:
        return None
    finally:
        sock.close()
    if len(data) < 16:
        return None
    _length, msg_type, _flags, _seq, _pid = struct.unpack_from("=LHHLL", data)
    if msg_type == 2:  # NLMSG_ERROR: 0 would be a bare ack, -ENOENT: no such table or chain
        code = int(struct.unpack_from("=i", data, 16)[0])
        return None if code not in (0, -2) else code == 0
    return bool(msg_type == (10 << 8) | 3)  # NFT_MSG_NEWCHAIN: the chain, as asked


def _legacy_filter(family: int) -> bool:
    try:
        with open(LEGACY_TABLES[family]) as f:
            return "filter" in f.read().split()
    except OSError:
        return False


def firewall_families() -> list[int]:
    """The families whose filter table may hold Docker's DOCKER-USER chain."""
    return [f for f in (4, 6) if _nft_has_chain(f) is not False or _legacy_filter(f)]


def read_filter(family: int) -> plan.FilterTable:
    import shutil

    from netplumb.plan import dockeruser as plan

    exe = shutil.which(TOOLS[family][0])
    if exe is None:
        return plan.FilterTable(False, (), frozenset())
    proc = _run([exe, "-w", "5", "-S"])
    return plan.parse_filter(proc.stdout, proc.returncode == 0)


def bridges(nl: Netlink) -> list[plan.BridgeView]:
    from netplumb.plan import dockeruser as plan

    links = nl.links()
    with_ours = {ln.master for ln in links if ln.master and mark_owner(ln.alias) is not None}
    return [
        plan.BridgeView(ln.name, ln.alias, ln.index in with_ours)
        for ln in links
        if ln.kind == "bridge"
    ]


def _restore(family: int, insert: list[plan.Rule], delete: list[plan.Rule]) -> None:
    import shlex
    import shutil

    from netplumb.plan import dockeruser as plan

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
    families = firewall_families()
    if not families:
        return False
    from netplumb.plan import dockeruser as plan

    present = False
    views: list[plan.BridgeView] | None = None
    for family in families:
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
