"""The host ports netplumb publishes: a shared table of the allocator (``leases.py``),
``%ports``, by protocol and port.

The entry ``leases.d/%ports/<proto>-<port>`` lists the port's bindings, one
``<family>@<host address or *>@<owner>`` a line; it changes under the ports lock together with
the owners' records (``ops/ports.py``). Whether a port is taken is then one readlink(2), not a
pass over every owner's bindings (which made publishing for N guests O(N^2)); a binding costs
one file creation more, not two (a creation costs 0.2-0.8 ms on this machine's disk under
load). What is the ports' own is what conflicts: two bindings of one port and family conflict
when either is on every address or both are on the same one (``ops/portchoice.py``).

The releases before the allocator kept the same entries in ``ports.d/``: the directory is
moved into the table the first time a process touches the index (under the ports lock).
"""

from __future__ import annotations

import os

from netplumb import state
from netplumb.state import leases

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from netplumb.state import Record

TABLE = "%ports"
OLD_INDEX = "ports.d"  # where the releases before the allocator kept the entries
_checked: list[str] = []


def _migrate() -> None:
    """Move ``ports.d`` into the table, once per process and state directory (one ``stat``)."""
    here = state.state_dir()
    if here in _checked:
        return
    old = state.path(OLD_INDEX)
    if os.path.isdir(old):
        new = state.path(leases.LEASES, TABLE)
        state.ensure_dir(leases.LEASES)
        try:
            os.rename(old, new)
        except OSError:  # the table exists already: merge the old entries into it
            for key in state.names(OLD_INDEX):
                lines = (state.readlink(OLD_INDEX, key) or "").splitlines()
                leases.change_entries(TABLE, {key: (lines, [])})
                state.remove(OLD_INDEX, key)
            os.rmdir(old)
    _checked.append(here)


def _key(b: Record) -> tuple[str, str]:
    return f"{b['proto']}-{b['host_port']}", f"{b['family']}@{b.get('host_ip') or '*'}@{b['owner']}"


def holders(proto: str, port: int) -> list[tuple[int, str | None]]:
    """(family, host address or None for any) of every binding of the port."""
    _migrate()
    out: list[tuple[int, str | None]] = []
    for entry in leases.entries(TABLE, f"{proto}-{port}"):
        fam, _, rest = entry.partition("@")
        hip = rest.partition("@")[0]
        out.append((int(fam), None if hip == "*" else hip))
    return out


def change(add: list[Record], drop: list[Record]) -> None:
    """Add and remove the bindings' entries (the caller holds the ports lock)."""
    _migrate()
    changes: dict[str, tuple[list[str], list[str]]] = {}
    for bs, i in ((add, 0), (drop, 1)):
        for b in bs:
            key, entry = _key(b)
            changes.setdefault(key, ([], []))[i].append(entry)
    leases.change_entries(TABLE, changes)


def add(new: list[Record]) -> None:
    change(new, [])


def drop(gone: list[Record]) -> None:
    change([], gone)


def drop_stale(bindings: Callable[[str], list[Record]]) -> int:
    """Remove entries that no binding of their owner's record backs; returns how many."""
    _migrate()
    dropped = 0
    for key in leases.keys(TABLE):
        old = leases.entries(TABLE, key)
        kept = [e for e in old if any(_key(b) == (key, e) for b in bindings(e.split("@", 2)[-1]))]
        if kept != old:
            dropped += len(old) - len(kept)
            leases.store_entries(TABLE, key, old, kept)
    return dropped
