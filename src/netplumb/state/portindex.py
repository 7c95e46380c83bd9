"""The index of host ports netplumb publishes, by protocol and port.

``ports.d/<proto>-<port>`` is a symbolic link whose target lists the port's bindings, one
``<family>@<host address or *>@<owner>`` a line; it changes under the ports lock together with
the owners' records (``ports.py``). Whether a port is taken is then one readlink(2), not a pass
over every owner's bindings (which made publishing for N guests O(N^2)); a binding costs one
file creation more, not two (a creation costs 0.2-0.8 ms on this machine's disk under load).
"""

from __future__ import annotations

from netplumb import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from netplumb.state import Record

INDEX = "ports.d"


def _key(b: Record) -> tuple[str, str]:
    return f"{b['proto']}-{b['host_port']}", f"{b['family']}@{b.get('host_ip') or '*'}@{b['owner']}"


def _entries(key: str) -> list[str]:
    return (state.readlink(INDEX, key) or "").splitlines()


def _store(key: str, old: list[str], entries: list[str]) -> None:
    if not entries:
        state.remove(INDEX, key)
    elif old or not state.link("\n".join(entries), INDEX, key):
        state.set_link("\n".join(entries), INDEX, key)


def holders(proto: str, port: int) -> list[tuple[int, str | None]]:
    """(family, host address or None for any) of every binding of the port."""
    out: list[tuple[int, str | None]] = []
    for entry in _entries(f"{proto}-{port}"):
        fam, _, rest = entry.partition("@")
        hip = rest.partition("@")[0]
        out.append((int(fam), None if hip == "*" else hip))
    return out


def change(add: list[Record], drop: list[Record]) -> None:
    """Add and remove the bindings' entries (the caller holds the ports lock)."""
    changes: dict[str, tuple[list[str], list[str]]] = {}
    for bs, i in ((add, 0), (drop, 1)):
        for b in bs:
            key, entry = _key(b)
            changes.setdefault(key, ([], []))[i].append(entry)
    if add:
        state.ensure_dir(INDEX)
    for key, (plus, minus) in changes.items():
        old = _entries(key)
        entries = [e for e in old if e not in minus] + [e for e in plus if e not in old]
        if entries != old:
            _store(key, old, entries)


def add(new: list[Record]) -> None:
    change(new, [])


def drop(gone: list[Record]) -> None:
    change([], gone)


def drop_stale(bindings: Callable[[str], list[Record]]) -> int:
    """Remove entries that no binding of their owner's record backs; returns how many."""
    dropped = 0
    for key in state.names(INDEX):
        old = _entries(key)
        kept = [e for e in old if any(_key(b) == (key, e) for b in bindings(e.split("@", 2)[-1]))]
        if kept != old:
            dropped += len(old) - len(kept)
            _store(key, old, kept)
    return dropped
