"""``netplumb rm NAME``: a plan built from the host's records, executed by the one applier.

``plan(name)`` is what ``rm --dry-run`` prints (``plan/upsteps.remove_steps``: its published
ports, its interfaces one by one, its addresses, then its process), with, when the host holds
them, its leases in the allocator's other tables (the LAN pool's are held by its attach
records, ``host:NAME@<ifname>``). ``remove(name)`` executes that same list with
``ops/apply.py``; a removal has no undo, so an action that fails leaves the ones before it done
(the host's record stays until its process is stopped: ``rm`` again finishes the job).

Many hosts at once (``down``, the benchmark) go through ``hosts.runtime.remove_many``, which
lets the kernel delete the interfaces with the namespaces in one batch rather than one by one.
"""

from __future__ import annotations

import signal

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.hosts import files as hostfiles
from netplumb.plan.actions import Action
from netplumb.plan.removal import ReleaseLeases
from netplumb.plan.steps import DetachInterface, ReleaseAddress, StopGuest, UnpublishPorts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.kernel.netlink import Netlink
    from netplumb.runtimes.guest import Guest
    from netplumb.state import Record


def _attachments(owner: str, actions: list[Action]) -> list[str]:
    """The attach records the plan detaches (``<owner>@<ifname>``)."""
    return [f"{owner}@{a.ifname}" for a in actions if isinstance(a, DetachInterface)]


def _other_leases(holders: list[str]) -> list[Action]:
    """The leases of the host and of its attachments outside the network tables
    (``ReleaseAddress`` covers those): the LAN pool, a CNI pool."""
    from netplumb.state import leases

    out: list[Action] = []
    for holder in holders:
        pairs = leases.leases_of(holder, lambda t: t.startswith("%") and t != "%ports")
        if pairs:
            out.append(ReleaseLeases(holder, tuple(pairs)))
    return out


def plan(name: str) -> list[Action]:
    """The actions of ``rm NAME`` in order; ``No such host: NAME`` when there is none."""
    from netplumb.ops import dryrun

    actions = dryrun.rm(name)
    owner = f"host:{name}"
    extra = _other_leases([owner, *_attachments(owner, actions)])
    if extra:
        at = next(i for i, a in enumerate(actions) if isinstance(a, StopGuest))
        actions[at:at] = extra
    return actions


class _Removal:
    """The state one ``rm`` carries between its actions: the host's record, its guest (opened
    once, while it lives, to undo attachments inside it) and a netlink socket."""

    def __init__(self, name: str, force: bool, actions: list[Action]) -> None:
        from netplumb.hosts import runtime

        self.name = name
        self.owner = f"host:{name}"
        self.force = force
        self.record: Record = runtime.get(name)
        self.attachments = _attachments(self.owner, actions)  # their lease lists go at the end
        self.guest: Guest | None = None
        self.guest_opened = False
        self.host: Netlink | None = None

    def close(self) -> None:
        if self.guest is not None:
            self.guest.close()
        if self.host is not None:
            self.host.close()

    def living_guest(self) -> Guest | None:
        from netplumb.runtimes.guests import alive, resolve

        if not self.guest_opened:
            self.guest_opened = True
            if alive(self.owner):
                try:
                    self.guest = resolve(self.name)
                except NetplumbError:
                    self.guest = None
        return self.guest

    def netlink(self) -> Netlink:
        from netplumb.kernel.netlink import Netlink

        if self.host is None:
            self.host = Netlink()
        return self.host

    def execute(self, action: Action) -> None:
        from netplumb.ops import cleanup, networks, ports
        from netplumb.state import leases

        if isinstance(action, UnpublishPorts):
            ports.release(action.owner)
        elif isinstance(action, DetachInterface):
            key = f"{self.owner}@{action.ifname}"
            record = state.read("attach", key)
            if record is None:
                return  # gone meanwhile
            guest = self.living_guest()
            if guest is None:
                cleanup.release_dead(key, record, self.netlink())
            else:
                cleanup.undo_in(guest, self.owner, key, record)
        elif isinstance(action, ReleaseAddress):
            networks.release_address(action.network, action.ip, self.owner)
        elif isinstance(action, ReleaseLeases):
            for table, key in action.leases:
                leases.release(table, key, action.owner)
        elif isinstance(action, StopGuest):
            self.stop()
        else:
            raise NetplumbError(f"rm cannot carry out: {action}")

    def stop(self) -> None:
        from netplumb.hosts import runtime

        if self.guest is not None:
            self.guest.close()  # holds the namespace open
            self.guest = None
        runtime.stop(self.record, self.force)
        holder, holder_start = self.record.get("holder"), self.record.get("holder_start")
        if isinstance(holder, int) and runtime.alive(holder, holder_start):
            runtime.kill(holder, signal.SIGKILL)
        state.remove("hosts", self.name)
        hostfiles.remove_files(self.name)

    def commit(self) -> None:
        """What follows the plan: the owners' lease lists dropped (every key in them is free
        now), the isolated networks' port sets without the host's ports."""
        from netplumb.ops import ports
        from netplumb.state import leases

        leases.release_owners([self.owner, *self.attachments])
        ports.guests_went([self.record])
        if ports.isolation_in_use():
            ports.isolation_changed()


def remove(name: str, force: bool = False) -> None:
    """Remove host ``name`` by executing ``plan(name)`` (the plan ``rm --dry-run`` prints)."""
    from netplumb.ops.apply import apply

    actions = plan(name)
    removal = _Removal(name, force, actions)
    try:
        apply(actions, removal.execute, commit=removal.commit)
    finally:
        removal.close()
    from netplumb.ops import dns

    dns.settle()
