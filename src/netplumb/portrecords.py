"""The records of published ports: one file per owner under ``ports/``, holding its bindings.

A binding is one DNAT: ``owner``, ``guest``, ``family``, ``host_ip`` (None for every address),
``host_port``, ``container_ip``, ``container_port``, ``proto``. ``portindex.py`` indexes them by
host port; ``portrules.py`` turns them into nftables elements.

The file is a record (``{"owner", "guest", "bindings"}``, as ``state.write`` makes it and as
older netplumb versions wrote it) followed by changes appended to it, each one marshalled
``{"add": [...]}`` or ``{"drop": [...]}``. Publishing one more port appends its bindings (one
write(2), O_APPEND) instead of rewriting every binding of the owner: a guest with 1,000 ports
used to cost ~1.3 ms more per publication than one with none (reading and rewriting 2,000
bindings). Reading replays the changes; ``drop`` (unpublish, which reads them anyway) writes the
file compact again once changes pile up. ``state.read("ports", owner)`` still tells whether an
owner has any binding (the file exists only then).
"""

from __future__ import annotations

import io
import marshal
import os

from netplumb import state
from netplumb.errors import StateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record

COMPACT_AFTER = 64  # appended changes tolerated before ``drop`` rewrites the file


def _load(owner: str) -> tuple[list[Record], int]:
    """(the owner's bindings, how many changes follow the record); ([], 0) when it has none."""
    p = state.path("ports", owner)
    try:
        with open(p, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        raise StateError(f"cannot read netplumb record {p}: {exc.strerror}") from None
    f = io.BytesIO(data)  # marshal.load reads exactly one value's bytes from it
    try:
        rec = marshal.load(f)
    except (EOFError, ValueError, TypeError) as exc:
        raise StateError(f"cannot read netplumb record {p}: {exc}") from None
    if not isinstance(rec, dict):
        raise StateError(f"cannot read netplumb record {p}: not a record")
    out = list(rec.get("bindings", []))
    changes = 0
    while f.tell() < len(data):
        try:
            change = marshal.load(f)
        except (EOFError, ValueError, TypeError):
            break  # a change cut short by a crash was never acknowledged: not there
        changes += 1
        if isinstance(change, dict):
            out += change.get("add", [])
            for b in change.get("drop", []):
                if b in out:
                    out.remove(b)
    return out, changes


def bindings(owner: str) -> list[Record]:
    return _load(owner)[0]


def owners() -> list[str]:
    return state.names("ports")


def exists(owner: str) -> bool:
    return os.path.exists(state.path("ports", owner))


def add(owner: str, guest: str, new: list[Record]) -> int:
    """Record ``new`` bindings of ``owner`` (the caller holds the ports lock); returns what
    ``undo_add`` needs: the file's size before, or -1 when it did not exist."""
    p = state.path("ports", owner)
    try:
        size = os.stat(p).st_size
    except FileNotFoundError:
        state.write({"owner": owner, "guest": guest, "bindings": new}, "ports", owner)
        return -1
    try:
        fd = state.open_file(p, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, marshal.dumps({"add": new}))
        finally:
            os.close(fd)
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {p}: {exc.strerror}") from None
    return size


def undo_add(owner: str, before: int) -> None:
    if before < 0:
        state.remove("ports", owner)
    else:
        os.truncate(state.path("ports", owner), before)


def drop(owner: str, gone: list[Record]) -> list[Record]:
    """Remove ``gone`` from the owner's bindings (the caller holds the ports lock); returns the
    bindings kept. The file goes with the last binding."""
    current, changes = _load(owner)
    kept = list(current)
    for b in gone:
        if b in kept:
            kept.remove(b)
    if not kept:
        state.remove("ports", owner)
    elif changes >= COMPACT_AFTER:
        rec = state.read("ports", owner) or {"owner": owner}
        rec["bindings"] = kept
        state.write(rec, "ports", owner)
    else:
        p = state.path("ports", owner)
        try:
            fd = state.open_file(p, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, marshal.dumps({"drop": gone}))
            finally:
                os.close(fd)
        except OSError as exc:
            raise StateError(f"cannot write netplumb record {p}: {exc.strerror}") from None
    return kept


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
