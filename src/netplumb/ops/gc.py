"""``netplumb gc``: remove what belongs to dead guests, and nothing else; a plan.

Dead means: a host whose holder process is gone, a PID whose start time changed, an ``ip
netns`` name that names another namespace now, a Docker container that Docker no longer knows
(removed: a stopped one keeps its records, to be attached again when it starts); and
the records of network namespaces that are gone (``state.stale_dirs``). Only what netplumb's
records name or what carries its mark is removed (``cleanup``).

``plan()`` observes (records, every allocator table, the kernel's links) and returns the typed
actions of ``plan/removal.py`` in the order ``gc`` takes them; ``--dry-run`` prints them and
``gc()`` hands them to the one applier (``ops/apply.py``). A removal has no undo: what one
action removed stays removed if a later one fails. The plan is computed before anything goes,
so it leaves out what an earlier action of it removes (a lost host's ports, leases and
attachments; a dead guest's veth; a bridge whose only ports were those veths is unused).
"""

from __future__ import annotations

from netplumb import state
from netplumb.hosts import files as hostfiles
from netplumb.kernel.netlink import Netlink
from netplumb.kernel.session import BRIDGE_MARK
from netplumb.model.names import mark_owner
from netplumb.ops import cleanup
from netplumb.plan.actions import Action
from netplumb.plan.removal import (
    DeleteMarkedLink,
    ForgetAttachment,
    ReleaseLeases,
    ReleasePorts,
    RemoveLostHost,
    RemoveStaleRecords,
    SweepTemporary,
    Tidy,
)
from netplumb.runtimes.guests import alive
from netplumb.state import leases

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record


def _listdir(folder: str) -> list[str]:
    import os

    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def remove_stale_dir(folder: str) -> None:
    """Remove the records of a namespace that is gone, first stopping the hosts they name
    that still run: a host outlives the namespace it was started from, and nothing could reach
    it once its records are gone. Their PIDs are checked with their start times, as for any
    host."""
    import marshal
    import os
    import shutil
    import signal

    from netplumb.hosts import runtime
    from netplumb.kernel.session import kill_pidfile

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


def _stale_temporaries() -> list[str]:
    """``NAME.PID.tmp`` files of the state directory whose PID no longer runs (relative)."""
    import os

    root = state.state_dir()
    out = []
    for folder, _dirs, files in os.walk(root):
        for f in files:
            pid = f[:-4].rpartition(".")[2]
            if f.endswith(".tmp") and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                out.append(os.path.relpath(os.path.join(folder, f), root))
    return sorted(out)


def guest_of(owner: str) -> str:
    """The guest a lease holder stands for: an attach record's name (``<guest>@<ifname>``, the
    LAN pool's holders) stands for its guest; any other holder is a guest key itself."""
    guest, at, ifname = owner.rpartition("@")
    return guest if at and ifname and ":" in guest else owner


def plan() -> list[Action]:
    """What ``gc`` would remove, in order (reads only: records, leases, a netlink dump)."""
    import os

    from netplumb.hosts import runtime
    from netplumb.state import addresses, portrecords

    actions: list[Action] = [SweepTemporary(p) for p in _stale_temporaries()]
    actions += [RemoveStaleRecords(f, os.path.basename(f)) for f in state.stale_dirs()]
    lost: set[str] = set()  # owners whose removal takes their ports, leases and attachments
    for name in runtime.names():
        record = state.read("hosts", name)
        if record is not None and runtime.status(record) == "lost":
            actions.append(RemoveLostHost(name))
            lost.add(f"host:{name}")
    verdict: dict[str, bool] = {}

    def dead(owner: str) -> bool:
        if owner not in verdict:
            verdict[owner] = not alive(owner)
        return verdict[owner]

    for owner in state.names("ports"):
        if owner not in lost and dead(owner):
            count = len(portrecords.bindings(owner)) if portrecords.exists(owner) else 0
            actions.append(ReleasePorts(owner, count))
    # every allocator table: each owner's list, and each network's entries (an entry whose
    # line in the list was lost is found there)
    held: dict[str, dict[tuple[str, str], None]] = {}
    for owner in leases.owners():
        guest = guest_of(owner)
        if guest not in lost and dead(guest):
            mine = held.setdefault(owner, {})
            mine.update(dict.fromkeys(leases.leases_of(owner)))
    for net in state.names("networks"):
        for ip, owner in addresses.leases(net).items():
            guest = guest_of(owner)
            if guest not in lost and dead(guest):
                held.setdefault(owner, {})[(net, ip)] = None
    actions += [ReleaseLeases(o, tuple(pairs)) for o, pairs in held.items()]
    with Netlink() as host:
        links = host.links()
    present = {ln.name: mark_owner(ln.alias) for ln in links}
    going: set[str] = set()  # links an earlier action deletes
    attachments: list[Action] = []
    for name in state.names("attach"):
        record = state.read("attach", name)
        if record is None:
            continue
        owner = str(record.get("owner"))
        host_name = record.get("host_name")
        # a veth's host end still there with the owner's mark (it dies with the guest's
        # namespace, unless a process still holds that namespace)
        veth = record.get("kind") == "veth" and present.get(str(host_name)) == owner
        if veth and (owner in lost or dead(owner)):
            going.add(str(host_name))
        if owner not in lost and dead(owner):
            attachments.append(ForgetAttachment(name, str(host_name) if veth else None))
    actions += attachments
    for link in links:
        marked = mark_owner(link.alias)
        if marked is None or link.alias == BRIDGE_MARK or link.name in going:
            continue
        if dead(marked):
            actions.append(DeleteMarkedLink(link.name, str(link.alias), False))
            going.add(link.name)
    masters = {ln.master for ln in links if ln.master and ln.name not in going}
    for link in links:
        if link.alias == BRIDGE_MARK and link.index not in masters:
            actions.append(DeleteMarkedLink(link.name, BRIDGE_MARK, True))
    actions.append(Tidy())
    return actions


def gc() -> list[str]:
    """Remove what belongs to dead guests, and nothing else; returns what was removed."""
    from netplumb.ops.apply import apply

    removed: list[str] = []
    with Netlink() as host:

        def execute(action: Action) -> None:
            _execute(action, host)
            if isinstance(action, ReleaseLeases):
                removed.extend(action.removed_lines)
            elif not isinstance(action, Tidy):
                removed.append(str(getattr(action, "removed", action)))

        apply(plan(), execute)
    from netplumb.ops import dns

    dns.settle()
    return removed


def _execute(action: Action, host: Netlink) -> None:
    """Carry out one action of ``gc``'s plan (none has an undo: a removal is not put back)."""
    from netplumb.hosts import runtime
    from netplumb.ops import ports

    if isinstance(action, SweepTemporary):
        _unlink(state.path(action.path))
    elif isinstance(action, RemoveStaleRecords):
        remove_stale_dir(action.folder)
    elif isinstance(action, RemoveLostHost):
        record = state.read("hosts", action.name)
        if record is not None and runtime.status(record) == "lost":
            cleanup.release_owner(f"host:{action.name}")
            state.remove("hosts", action.name)
            hostfiles.remove_files(action.name)
    elif isinstance(action, ReleasePorts):
        ports.release(action.owner)
    elif isinstance(action, ReleaseLeases):
        for table, key in action.leases:
            leases.release(table, key, action.owner)
        leases.release_owners([action.owner])  # and its list
    elif isinstance(action, ForgetAttachment):
        record = state.read("attach", action.name)
        if record is not None:
            cleanup.release_dead(action.name, record, host)
    elif isinstance(action, DeleteMarkedLink):
        link = host.get_link(action.name)
        if link is None or link.alias != action.mark:
            return  # gone, or another object by that name now
        if action.bridge:
            if any(ln.master == link.index for ln in host.links()):
                return  # a port joined it meanwhile
            host.delete_link(link.index, f'cannot delete bridge "{link.name}"')
        else:
            host.delete_link(link.index, f'cannot delete "{link.name}"')
    elif isinstance(action, Tidy):
        from netplumb.kernel import dockeruser

        ports.drop_stale_index()
        dockeruser.sync(host)  # rules of the bridges that went, and of those left


def _unlink(path: str) -> None:
    import os

    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
