"""The records of published ports: one file per owner under ``ports/``, holding its bindings.

A binding is one DNAT: ``owner``, ``guest``, ``family``, ``host_ip`` (None for every address),
``host_port``, ``container_ip``, ``container_port``, ``proto``. ``portindex.py`` indexes them by
host port; ``portrules.py`` turns them into nftables elements.
"""

from __future__ import annotations

import os

from netplumb import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record


def bindings(owner: str) -> list[Record]:
    rec = state.read("ports", owner)
    return list(rec.get("bindings", [])) if rec else []


def owners() -> list[str]:
    return state.names("ports")


def exists(owner: str) -> bool:
    return os.path.exists(state.path("ports", owner))


_cache: dict[str, tuple[tuple[int, int, int], list[Record]]] = {}


def all_bindings() -> list[Record]:
    """Every binding of every owner. Each owner's record is re-read only when its file changed
    (inode, mtime, size): a process publishing for many guests does not re-read them all."""
    out: list[Record] = []
    for owner in owners():
        try:
            st = os.stat(state.path("ports", owner))
        except FileNotFoundError:
            continue
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        hit = _cache.get(owner)
        if hit is None or hit[0] != key:
            hit = (key, bindings(owner))
            _cache[owner] = hit
        out += hit[1]
    return out
