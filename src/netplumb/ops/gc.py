"""``netplumb gc``: remove what belongs to dead guests, and nothing else.

Dead means: a host whose holder process is gone, a PID whose start time changed, an ``ip
netns`` name that names another namespace now, a Docker container that Docker no longer knows
(removed: a stopped one keeps its records, to be attached again when it starts); and
the records of network namespaces that are gone (``state.stale_dirs``). Only what netplumb's
records name or what carries its mark is removed (``cleanup``).
"""

from __future__ import annotations

from netplumb import state
from netplumb.kernel.netlink import Netlink
from netplumb.kernel.session import BRIDGE_MARK
from netplumb.model.names import mark_owner
from netplumb.ops import cleanup
from netplumb.runtimes.guests import alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record


def _listdir(folder: str) -> list[str]:
    import os

    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def remove_stale() -> list[str]:
    """Remove the records of namespaces that are gone (``state.stale_dirs``), first stopping
    the hosts they name that still run: a host outlives the namespace it was started from, and
    nothing could reach it once its records are gone. Their PIDs are checked with their start
    times, as for any host."""
    import marshal
    import os
    import shutil
    import signal

    from netplumb.hosts import runtime
    from netplumb.kernel.session import kill_pidfile

    removed = []
    for folder in state.stale_dirs():
        hosts: list[Record] = []
        for entry in _listdir(os.path.join(folder, "hosts")):
            try:
                with open(os.path.join(folder, "hosts", entry), "rb") as f:
                    rec = marshal.load(f)
            except (OSError, EOFError, ValueError, TypeError):
                continue
            if isinstance(rec, dict):
                hosts.append(rec)
        dhcp = [  # <owner>@<ifname>.pid
            (os.path.join(folder, "dhcp", e), e[:-4].rpartition("@")[2])
            for e in _listdir(os.path.join(folder, "dhcp"))
            if e.endswith(".pid")
        ]
        for pf, ifname in dhcp:
            kill_pidfile(pf, ifname)
        runtime.stop_all(hosts, force=True)
        for rec in hosts:
            holder = rec.get("holder")
            if isinstance(holder, int) and runtime.alive(holder, rec.get("holder_start")):
                runtime.kill(holder, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(f"records of a namespace that is gone ({os.path.basename(folder)})")
    return removed


def gc() -> list[str]:
    """Remove what belongs to dead guests, and nothing else; returns what was removed."""
    from netplumb.hosts import runtime

    removed: list[str] = [f"interrupted write {f}" for f in state.sweep_stale_tmp()]
    removed += remove_stale()
    for name in runtime.names():
        record = state.read("hosts", name)
        if record is not None and runtime.status(record) == "lost":
            cleanup.release_owner(f"host:{name}")
            state.remove("hosts", name)
            runtime.remove_files(name)
            removed.append(f"host {name}")
    from netplumb.ops import networks, ports

    for owner in state.names("ports"):
        if not alive(owner):
            ports.release(owner)
            removed.append(f"published ports of {owner}")
    ports.drop_stale_index()
    for net in networks.names():
        for ip, owner in networks.leases(net).items():
            if not alive(owner):
                networks.release_address(net, ip, owner)
                removed.append(f"address {ip} of {owner}")
    networks.release_many([o for o in networks.indexed_owners() if not alive(o)])
    with Netlink() as host:
        for name in state.names("attach"):
            record = state.read("attach", name)
            if record is None:
                continue
            owner = str(record.get("owner"))
            if not alive(owner):
                cleanup.release_dead(name, record, host)
                removed.append(f"attachment {name}")
        links = host.links()
        masters = {ln.master for ln in links if ln.master}
        for link in links:
            marked = mark_owner(link.alias)
            if marked is None:
                continue
            if link.alias == BRIDGE_MARK:
                if link.index not in masters:
                    host.delete_link(link.index, f'cannot delete bridge "{link.name}"')
                    removed.append(f"bridge {link.name}")
            elif not alive(marked):
                host.delete_link(link.index, f'cannot delete "{link.name}"')
                removed.append(f"link {link.name}")
        from netplumb.kernel import dockeruser

        dockeruser.sync(host)  # rules of the bridges that went, and of those left
    return removed
