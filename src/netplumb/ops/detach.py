"""``netplumb detach`` and ``lan detach``: a plan built from the attach record, executed by the
one applier; ``--dry-run`` prints the same plan.

The plan (``plan/removal.detach_steps``): the interface, the network addresses the guest holds
for it, the attachment's leases in the allocator's other tables (the LAN pool, a CNI pool).
What the record says is what goes; an interface with netplumb's mark of this guest but no
record (one whose record was lost) is deleted by its mark. Removals have no undo: an action
that fails leaves the ones before it done and the record in place, so ``detach`` again
finishes the job; the record goes last (``commit``).
"""

from __future__ import annotations

from netplumb import state
from netplumb.errors import Conflict, NetplumbError
from netplumb.kernel.session import Session
from netplumb.model.names import mark_owner, owner_mark
from netplumb.ops.apply import apply
from netplumb.plan.lan import ReleaseLanLeases
from netplumb.plan.removal import ReleaseLeases, detach_steps
from netplumb.plan.steps import DetachInterface, ReleaseAddress
from netplumb.runtimes.guests import resolve
from netplumb.state import pending

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.plan.actions import Action
    from netplumb.runtimes.guest import Guest
    from netplumb.state import Record


def _other_table(table: str) -> bool:
    return table.startswith("%") and table != "%ports"


def _observe(guest: Guest, guest_ref: str, ifname: str, session: Session) -> Record:
    """The attach record (a stand-in made from the interface's mark when there is none),
    or the error ``detach`` gives."""
    record = state.read("attach", f"{guest.key}@{ifname}")
    if record is not None:
        return record
    link = session.guest.get_link(ifname)
    if link is None:
        raise NetplumbError(f'guest {guest_ref} has no interface "{ifname}"')
    if mark_owner(link.alias) != guest.key:
        raise Conflict(f'interface "{ifname}" of guest {guest_ref} was not attached by netplumb')
    return {"kind": link.kind, "by_mark": True}


def _plan(guest: Guest, ifname: str, record: Record) -> list[Action]:
    from netplumb.state import leases

    holder = f"{guest.key}@{ifname}"
    if record.get("by_mark"):
        return detach_steps(ifname, None, (), holder, ())
    host = record.get("host_name") if record.get("kind") == "veth" else None
    addresses: list[tuple[str, str]] = []
    sig = record.get("signature") or {}
    if sig.get("host_if") and state.names("networks"):
        from netplumb.ops import networks

        net = networks.by_bridge(str(sig["host_if"]))
        if net is not None:
            held = networks.leases(net.name)
            for a in sig.get("addresses", []):
                ip = str(a).split("/")[0]
                if held.get(ip) == guest.key:
                    addresses.append((net.name, ip))
    pool = leases.leases_of(holder, _other_table)
    return detach_steps(ifname, str(host) if host else None, addresses, holder, pool)


def plan(guest_ref: str, ifname: str) -> list[Action]:
    """The actions ``detach GUEST IFNAME`` would take (reads only)."""
    with resolve(guest_ref) as guest:
        session = Session(guest.fd)
        try:
            return _plan(guest, ifname, _observe(guest, guest_ref, ifname, session))
        finally:
            session.close()


def detach(guest_ref: str, ifname: str) -> None:
    """Remove an interface netplumb attached, with its addresses, routes, DHCP client and
    leases, by executing ``plan``'s actions."""
    from netplumb.ops.engine import undo_from_results

    with resolve(guest_ref) as guest:
        name = f"{guest.key}@{ifname}"
        session = Session(guest.fd)
        busy = pending.mark(name)
        try:
            record = _observe(guest, guest_ref, ifname, session)
            actions = _plan(guest, ifname, record)

            def execute(action: Action) -> None:
                from netplumb.state import leases

                if isinstance(action, DetachInterface):
                    record["owner_mark"] = owner_mark(guest.key)
                    undo_from_results(session, ifname, record)
                elif isinstance(action, ReleaseAddress):
                    from netplumb.state import addresses

                    addresses.release_address(action.network, action.ip, guest.key)
                elif isinstance(action, ReleaseLanLeases):
                    from netplumb.ops import lanpool

                    lanpool.release_holder(action.holder)
                elif isinstance(action, ReleaseLeases):
                    for table, key in action.leases:
                        leases.release(table, key, action.owner)
                else:
                    raise NetplumbError(f"detach cannot carry out: {action}")

            def commit() -> None:
                state.remove("attach", name)

            apply(actions, execute, commit=commit)
        finally:
            pending.clear(busy)
            session.close()
    from netplumb.ops import dns

    dns.settle()
