"""The records of published ports: one file per owner under ``ports/``, holding its bindings.

A binding is one DNAT: ``owner``, ``guest``, ``family``, ``host_ip`` (None for every address),
``host_port``, ``container_ip``, ``container_port``, ``proto``. ``portindex.py`` indexes them by
host port; ``portrules.py`` turns them into nftables elements.

The file is a log: ``MAGIC``, then frames (a 4-byte length, then a marshalled value): first the
record ``{"owner", "guest", "bindings"}``, then changes appended to it, ``{"add": [...]}`` or
``{"drop": [...]}``. Publishing one more port appends its bindings (one write(2), O_APPEND)
instead of rewriting every binding of the owner: a guest with 1,000 ports used to cost ~1.3 ms
more per publication than one with none (reading and rewriting 2,000 bindings). Reading replays
the changes; ``drop`` (unpublish, which reads them anyway) writes the file compact again once
changes pile up. A frame cut short by a crash was never acknowledged and is not there. A file
without ``MAGIC`` is a record of an older netplumb (one marshalled record) and reads as one.
The file exists only while its owner has a binding.
"""

from __future__ import annotations

import marshal
import os

from netplumb import state
from netplumb.errors import StateError
from netplumb.state import durable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record

MAGIC = b"netplumb-ports-1\n"
COMPACT_AFTER = 64  # appended changes tolerated before ``drop`` rewrites the file
COMPACT_ADDED = 16384  # bytes of changes tolerated (or an eighth of the record) before ``add`` does


def _frame(value: Record) -> bytes:
    data = marshal.dumps(value)
    return len(data).to_bytes(4, "little") + data


def _key(b: Record) -> tuple[object, ...]:
    """What tells an owner's bindings apart (a conflict never lets two share it)."""
    return (b.get("family"), b.get("host_ip"), b.get("host_port"), b.get("proto"))


def _values(p: str, data: bytes) -> list[object]:
    if not data.startswith(MAGIC):
        return [marshal.loads(data)]  # an older netplumb's record
    out = []
    offset = len(MAGIC)
    while offset + 4 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "little")
        if offset + 4 + size > len(data):
            break  # cut short by a crash: never acknowledged, not there
        out.append(marshal.loads(data[offset + 4 : offset + 4 + size]))
        offset += 4 + size
    return out


def load(owner: str) -> tuple[list[Record], int]:
    """(the owner's bindings, how many changes follow the record); ([], 0) when it has none."""
    p = state.path("ports", owner)
    try:
        with open(p, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        raise StateError(f"cannot read netplumb record {p}: {exc.strerror}") from None
    try:
        values = _values(p, data)
    except (EOFError, ValueError, TypeError) as exc:
        raise StateError(f"cannot read netplumb record {p}: {exc}") from None
    if not values or not isinstance(values[0], dict):
        raise StateError(f"cannot read netplumb record {p}: not a record")
    out = {_key(b): b for b in values[0].get("bindings", [])}
    for change in values[1:]:
        if isinstance(change, dict):
            for b in change.get("add", []):
                out[_key(b)] = b
            for b in change.get("drop", []):
                if out.get(_key(b)) == b:
                    del out[_key(b)]
    return list(out.values()), len(values) - 1


def bindings(owner: str) -> list[Record]:
    return load(owner)[0]


def owners() -> list[str]:
    return state.names("ports")


def exists(owner: str) -> bool:
    return os.path.exists(state.path("ports", owner))


def _write(owner: str, record: Record) -> None:
    """The file anew, compact (atomically: a temporary file renamed over it)."""
    state.ensure_dir("ports")
    p = state.path("ports", owner)
    tmp = f"{p}.{os.getpid()}.tmp"
    try:
        fd = state.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.write(fd, MAGIC + _frame(record))
        finally:
            os.close(fd)
        os.replace(tmp, p)
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {p}: {exc.strerror}") from None
    durable.keep(state.state_dir(), ("ports", owner))  # a Docker guest's outlive /run


def _append(owner: str, change: Record) -> None:
    p = state.path("ports", owner)
    frame = _frame(change)
    try:
        fd = state.open_file(p, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, frame)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {p}: {exc.strerror}") from None
    durable.keep_append(state.state_dir(), ("ports", owner), frame)


def add(owner: str, guest: str, new: list[Record]) -> int:
    """Record ``new`` bindings of ``owner`` (the caller holds the ports lock); returns what
    ``undo_add`` needs: the file's size before, or -1 when it did not exist."""
    p = state.path("ports", owner)
    try:
        with open(p, "rb") as file:
            head = file.read(len(MAGIC) + 4)  # and the length of the record's frame
            size = os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        _write(owner, {"owner": owner, "guest": guest, "bindings": new})
        return -1
    record = int.from_bytes(head[len(MAGIC) :], "little")
    # an older netplumb's record, or changes appended that outgrew the record: the same,
    # compact, first (each publication would otherwise replay them all, to print the ports)
    if head[: len(MAGIC)] != MAGIC or size - len(head) - record > max(COMPACT_ADDED, record // 8):
        _write(owner, {"owner": owner, "guest": guest, "bindings": bindings(owner)})
        size = os.stat(p).st_size
    _append(owner, {"add": new})
    return size


def undo_add(owner: str, before: int) -> None:
    if before < 0:
        state.remove("ports", owner)
    else:
        os.truncate(state.path("ports", owner), before)
        durable.keep(state.state_dir(), ("ports", owner))


def drop(
    owner: str, gone: list[Record], loaded: tuple[list[Record], int] | None = None
) -> tuple[list[Record], int]:
    """Remove ``gone`` from the owner's bindings (the caller holds the ports lock; ``loaded``
    is what ``load`` returned under it, if the caller has it). The file goes with the last
    binding. Returns what ``load`` would return now (for the next ``drop``)."""
    current, changes = loaded if loaded is not None else load(owner)
    if len(gone) <= 4:  # one unpublish: a comparison in C per binding, not a key in Python
        kept = [b for b in current if b not in gone]
    else:
        out = {_key(b): b for b in gone}
        kept = [b for b in current if out.get(_key(b)) != b]
    if not kept:
        state.remove("ports", owner)
        return [], 0
    if changes >= COMPACT_AFTER:
        guest = kept[0].get("guest")
        _write(owner, {"owner": owner, "guest": guest, "bindings": kept})
        return kept, 0
    _append(owner, {"drop": gone})
    return kept, changes + 1


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
