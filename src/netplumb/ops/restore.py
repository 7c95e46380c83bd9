"""After a reboot, or ``/run`` wiped: Docker guests' records back from their kept copies.

``state.durable`` keeps a copy of the records that must outlive the machine (Docker guests'
attach and ports records, the projects' Docker services, the networks, the scope's identity).
The first ``reconcile`` or ``watch`` pass of a state directory's life (``durable.missing`` is
None afterwards) puts back those its state directory lacks, through ``state`` as any record is
written, then what the records need that is not a record: the networks' bridges (with their
gateways), the addresses the attach records name leased again to their owners (same values),
the port index. The pass that follows finds the containers again by their ID (a restart
policy starts the same container; one created again under the same name is another
container, whose records these are not) and attaches them as the records say.

Records of the kept kinds written by a netplumb from before this module, or while the copy
could not be written, get their copy then too.
"""

from __future__ import annotations

import marshal

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.state import durable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Log = Callable[[str], None]

_MARSHALLED = ("attach", "docker", "networks")
_ORDER = {"scope-id": 0, "networks": 1, "docker": 2, "attach": 3, "ports": 4}


def restore(log: Log) -> None:
    """Put back the kept records this state directory lacks (once in its life), and what they
    need; log one line per network and one for the records."""
    sd = state.state_dir()
    todo = durable.missing(sd)
    if todo is None:
        return
    back: list[tuple[str, ...]] = []
    for parts in sorted(todo, key=lambda p: (_ORDER.get(p[0], 9), p)):
        raw = durable.data(sd, parts)
        if raw is None:
            continue
        if parts[0] in _MARSHALLED:
            try:
                record = marshal.loads(raw)
            except (EOFError, ValueError, TypeError):
                log(f"cannot restore netplumb record {'/'.join(parts)}: unreadable")
                continue
            if not isinstance(record, dict):
                continue
            state.write(record, *parts)
        else:
            state.ensure_dir(*parts[:-1])
            state.write_file(state.path(*parts), raw)
        back.append(parts)
    if back:
        _networks([p[1] for p in back if p[0] == "networks"], log)
        _leases([p[1] for p in back if p[0] == "attach"], log)
        _port_index([p[1] for p in back if p[0] == "ports"])
        log(f"restored {len(back)} netplumb records kept in {durable.directory(sd)}")
    _backfill(sd)
    durable.mark_restored(sd)


def _networks(names: list[str], log: Log) -> None:
    from netplumb.ops import networks

    for name in names:
        net = networks.get(name)
        if net is None:
            continue
        try:
            networks.ensure_kernel(net)
        except NetplumbError as exc:
            log(f"cannot restore network {name}: {exc}")


def _leases(names: list[str], log: Log) -> None:
    """Lease again the addresses of attach records on a network's bridge (``up``'s networks;
    pipework's own bridges have no leases)."""
    from netplumb.model.addresses import parse_address_spec
    from netplumb.ops import networks

    for name in names:
        record = state.read("attach", name)
        sig = record.get("signature") if record else None
        if record is None or not isinstance(sig, dict) or not isinstance(sig.get("host_if"), str):
            continue
        net = networks.by_bridge(sig["host_if"])
        if net is None:
            continue
        owner = str(record.get("owner"))
        for text in sig.get("addresses") or ():
            try:
                iface = parse_address_spec(str(text)).interface
                if iface is not None:
                    networks.lease(net.name, owner, iface.ip)
            except NetplumbError as exc:
                log(f"cannot lease {text} again to {owner}: {exc}")


def _port_index(owners: list[str]) -> None:
    from netplumb.ops import portrules
    from netplumb.state import portindex, portrecords

    with portrules.PortsLock():
        for owner in owners:
            portindex.add(portrecords.bindings(owner))


def _backfill(sd: str) -> None:
    """Copies of the kept kinds' records that have none (the scope's identity always: a copy
    that differs from the marks of now would be restored after the next reboot)."""
    have = set(durable.kept(sd))
    for sub in (*state.KEPT_DIRS, *state.DOCKER_DIRS):
        for name in state.names(sub):
            if (sub, name) not in have:
                durable.keep(sd, (sub, name))
    durable.keep(sd, ("scope-id",))
