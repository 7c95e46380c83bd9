"""The one allocator: every lease netplumb hands out, in one record store, under one lock API.

A lease is a record ``(table, key, owner)``: the key of a table (an address of a network, of the
LAN pool or of a CNI pool) is held by one owner (a guest key, a host, an attach record). Each
table uses it alike; what stays with a table is only how its candidates are enumerated and
checked (a network's range without its gateway, the LAN pool's range with an ARP probe, a CNI
pool's subnet). Host ports are a *shared* table (the last section here, used by
``portindex.py``): several bindings may hold one port when their addresses do not overlap.

On disk
-------
- ``leases.d/<table>/<key>``: one symbolic link per lease, whose target is the owner. One
  ``symlink(2)`` creates it or fails with EEXIST, so two processes never lease one key; one
  ``readlink(2)`` reads it; its ``lstat`` time is when it was leased (the LAN pool's stale
  leases and ARP holds expire by it).
- ``leases.by-owner/<owner>``: per owner, an append-only list of what it was given, one
  ``+<table>@<key>`` line per lease (checked against the entries when read): releasing every
  lease of an owner (``release_owner``), in every table, costs the same with 10 owners as with
  10,000. The line is written before the entry: a process killed between the two leaves a line
  naming a key it does not hold (skipped when read), never a lease its list does not name
  (which ``release_owner`` would miss: ``down`` after a ``kill -9`` of ``up`` left one).
- ``leases.d/<table>.lock``: the table's lock (``state.lock.Lock``). Every change of the table is
  made under it. The lock file also holds, per slot (IPv4 and IPv6 keys, or numbers), the lowest
  key that may be free and the first key of the span it was counted from (``v2 <first>:<hint>
  <first>:<hint>``), so the lowest free key is found without listing the table; a release
  lowers it *before* the entry goes, so after a crash it can only be too low, never too high.

Address tables of netplumb's networks are named after the network (the layout of the releases
before this allocator: their records read as they are). Other tables' names start with ``%``,
which no network name holds: ``%lan`` (the LAN pool), ``%cni-<name>`` (a CNI macvlan pool),
``%ports`` (host ports).
Files are created sparingly: on this kind of machine a file creation costs 0.2-0.8 ms when
other work is writing to the disk, an in-place write of the lock file a microsecond.
"""

from __future__ import annotations

import posix

from netplumb import state
from netplumb.errors import StateError
from netplumb.lightos import isdir
from netplumb.state.lock import Lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

LEASES = "leases.d"
BY_OWNER = "leases.by-owner"
_HINTS = b"v2"


def lock(table: str) -> Lock:
    """The table's lock: ``with leases.lock(t) as lk:`` before ``take``/``free``."""
    return Lock(LEASES, f"{table}.lock")


# -- reading ----------------------------------------------------------------------------------


def holder(table: str, key: str) -> str | None:
    """Who holds ``key`` of ``table`` (None: nobody)."""
    return state.readlink(LEASES, table, key)


def held(table: str) -> dict[str, str]:
    """key -> owner, every lease of ``table`` (one pass over its folder)."""
    out = {}
    for key in state.names(LEASES, table):
        owner = state.readlink(LEASES, table, key)
        if owner is not None:
            out[key] = owner
    return out


def since(table: str, key: str) -> float | None:
    """When ``key`` was leased (unix time), None if it is not."""
    try:
        return posix.lstat(state.path(LEASES, table, key)).st_mtime
    except FileNotFoundError:
        return None


def aged(table: str, seconds: float, now: float) -> list[tuple[str, str, float]]:
    """(key, owner, since) of the leases of ``table`` older than ``seconds`` (for tables whose
    leases expire: one ``lstat`` per lease, a ``readlink`` only for the old ones)."""
    out = []
    try:
        entries = posix.scandir(state.path(LEASES, table))
    except FileNotFoundError:
        return []
    with entries:
        for e in entries:
            try:
                t = e.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            if now - t > seconds and e.is_symlink():
                owner = state.readlink(LEASES, table, e.name)
                if owner is not None:
                    out.append((e.name, owner, t))
    return out


def _listed(owner: str) -> list[tuple[str, str]]:
    """(table, key) pairs of ``owner``'s list, in order, unchecked."""
    try:
        with open(state.path(BY_OWNER, owner), "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    out: dict[tuple[str, str], None] = {}
    for line in lines:
        table, _, key = line[1:].partition("@")
        if line[:1] == "+" and key:
            out[(table, key)] = None
    return list(out)


def leases_of(owner: str, only: Callable[[str], bool] | None = None) -> list[tuple[str, str]]:
    """(table, key) pairs ``owner`` holds (from its list; each checked), in tables ``only``
    accepts."""
    return [
        (t, k)
        for t, k in _listed(owner)
        if (only is None or only(t)) and state.readlink(LEASES, t, k) == owner
    ]


def owners() -> list[str]:
    """Every owner with a lease list (for ``gc``)."""
    return state.names(BY_OWNER)


# -- the lowest-free hint ---------------------------------------------------------------------


def ordinal(key: str) -> tuple[int, int] | None:
    """(slot, number) of a key, for the lowest-free hint: slot 0 for an IPv4 address or a
    number, 1 for an IPv6 address; None for any other key (it has no order)."""
    if key.isdigit():
        return 0, int(key)
    from netplumb.model.ip import IP

    try:
        ip = IP.parse(key)
    except ValueError:
        return None
    return (ip.version == 6), ip.as_int


def hints(lk: Lock) -> list[tuple[int, int]]:
    """Per slot, (first key of the span it was counted from, hint): from the first to the hint,
    every key is taken. (0, 0) when unknown: a new table, or the relative offsets of the layout
    before ``v2``, which are ignored. A hint counts only for a span of the same first key: a
    pool whose range moves (the LAN pool set again, a CNI config's new subnet) starts over."""
    words = posix.pread(lk.fd, 160, 0).split()
    out = [(0, 0), (0, 0)]
    if len(words) == 3 and words[0] == _HINTS:
        for slot, word in enumerate(words[1:]):
            first, _, hint = word.partition(b":")
            if first.isdigit() and hint.isdigit():
                out[slot] = (int(first), int(hint))
    return out


def set_hint(lk: Lock, slot: int, first: int, value: int) -> None:
    h = hints(lk)
    h[slot] = (first, value)
    text = f"v2 {h[0][0]}:{h[0][1]} {h[1][0]}:{h[1][1]}"
    posix.pwrite(lk.fd, text.encode().ljust(111) + b"\n", 0)


def _lower_hint(lk: Lock, key: str) -> None:
    o = ordinal(key)
    if o is not None:
        first, hint = hints(lk)[o[0]]
        if o[1] < hint:
            set_hint(lk, o[0], first, max(first, o[1]))


# -- leasing (the caller holds the table's lock) ----------------------------------------------


def _index(owner: str, table: str, key: str) -> None:
    """Add the lease to the owner's list (one write with O_APPEND: atomic among writers)."""
    p = state.path(BY_OWNER, owner)
    try:
        try:
            fd = state.open_file(p, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT)
        except FileNotFoundError:
            state.ensure_dir(BY_OWNER)
            fd = state.open_file(p, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT)
        try:
            posix.write(fd, f"+{table}@{key}\n".encode())
        finally:
            posix.close(fd)
    except OSError as exc:
        raise StateError(f"cannot write netplumb lease index {p}: {exc.strerror}") from None


def _link(table: str, key: str, owner: str) -> bool:
    try:
        return state.link(owner, LEASES, table, key)
    except StateError:
        if isdir(state.path(LEASES, table)):
            raise
        state.ensure_dir(LEASES, table)
        return state.link(owner, LEASES, table, key)


def take(table: str, key: str, owner: str) -> str | None:
    """Lease ``key`` to ``owner`` (the caller holds the table's lock). None when it is
    ``owner``'s now (it was free, or ``owner``'s already); else the owner that holds it."""
    for _ in range(2):
        if holder(table, key) is None:
            _index(owner, table, key)  # first: see the module's docstring
            if _link(table, key, owner):
                return None
        theirs = state.readlink(LEASES, table, key)
        if theirs is not None:
            break
        # released between the link and the read (a caller without the lock): once more
    else:
        raise StateError(f"cannot lease {key} of netplumb table {table}: it keeps changing")
    if theirs == owner:
        _index(owner, table, key)  # the list may have lost its line (see release_owner)
        return None
    return theirs


def take_lowest(
    lk: Lock,
    table: str,
    owner: str,
    span: tuple[int, int],
    render: Callable[[int], str],
    reserved: Callable[[int], bool] | None = None,
    usable: Callable[[str], bool] | None = None,
) -> str | None:
    """Lease the lowest free key of ``span`` (first, last numbers, ``render`` makes a key of
    one) to ``owner``, the caller holding ``lk``: skipping what ``reserved`` says is never
    leased (a gateway) and, for now, what ``usable`` refuses (a port a process holds). None
    when none is free. The hint moves past taken and reserved keys only."""
    first, last = span
    key = render(first)
    slot = 1 if ":" in key else 0 if "." in key or key.isdigit() else None  # as ``ordinal``
    counted_from, hint = hints(lk)[slot] if slot is not None else (0, 0)
    candidate = max(first, hint) if counted_from == first else first
    contiguous = True
    while candidate <= last:
        if reserved is None or not reserved(candidate):
            key = render(candidate)
            if (usable is None or usable(key)) and holder(table, key) is None:
                _index(owner, table, key)  # first: see the module's docstring
                if _link(table, key, owner):
                    if contiguous and slot is not None:
                        set_hint(lk, slot, first, candidate + 1)
                    return key
            if usable is not None and contiguous and holder(table, key) is None:
                contiguous = False  # refused for now, not taken: the hint stops below it
        candidate += 1
    return None


def free(lk: Lock, table: str, key: str, owner: str) -> bool:
    """Free ``key`` if ``owner`` holds it (the caller holds ``lk``); whether it did."""
    if state.readlink(LEASES, table, key) != owner:
        return False
    _lower_hint(lk, key)
    state.remove(LEASES, table, key)
    return True


# -- releasing (each takes the table's lock) --------------------------------------------------


def release(table: str, key: str, owner: str) -> bool:
    """Release one key, if ``owner`` holds it (its line in the owner's list stays until the
    owner's last release: reading the list checks each key)."""
    with lock(table) as lk:
        return free(lk, table, key, owner)


def release_owner(owner: str, only: Callable[[str], bool] | None = None) -> int:
    """Release every lease ``owner`` holds, in every table (or those ``only`` accepts)."""
    return release_owners([owner], only)


def release_owners(owners: Iterable[str], only: Callable[[str], bool] | None = None) -> int:
    """Release every lease of every owner (in the tables ``only`` accepts), taking each table's
    lock once; returns how many were freed."""
    by_table: dict[str, list[tuple[str, str]]] = {}
    emptied = []
    for owner in owners:
        pairs = _listed(owner)
        for table, key in pairs:
            if only is None or only(table):
                by_table.setdefault(table, []).append((owner, key))
        if only is None or all(only(t) for t, _ in pairs):
            emptied.append(owner)
    freed = 0
    for table, pairs in by_table.items():
        with lock(table) as lk:
            for owner, key in pairs:
                freed += free(lk, table, key, owner)
    for owner in emptied:
        # A lease the owner takes in another table meanwhile would lose its line here; its key
        # is still found (and freed for a dead owner) by ``gc``'s pass over the tables, and
        # leasing it again (``take``) writes the line back.
        state.remove(BY_OWNER, owner)
    return freed


def drop_table(table: str) -> None:
    """Forget every lease of ``table`` (a network being removed)."""
    import shutil

    with lock(table) as lk:
        shutil.rmtree(state.path(LEASES, table), ignore_errors=True)
        set_hint(lk, 0, 0, 0)
        set_hint(lk, 1, 0, 0)


# -- shared tables: several holders of one key ------------------------------------------------
# A host port is held by several bindings at once when their addresses do not overlap
# (127.0.0.1:80 and 10.0.0.1:80, or IPv4 and IPv6): its entry lists them, one line each, and
# the table's user decides what conflicts (``state/portindex.py``). The lines are the user's
# ``<value>@<owner>``; the entry is replaced atomically (``state.set_link``), and it goes with
# its last line. The owner's list is the user's own records (``ports/<owner>``): a published
# port is given back together with its nftables elements, never by ``release_owner`` alone.


def entries(table: str, key: str) -> list[str]:
    """The lines of a shared key (none when nobody holds it): one ``readlink``."""
    return (state.readlink(LEASES, table, key) or "").splitlines()


def change_entries(table: str, changes: dict[str, tuple[list[str], list[str]]]) -> None:
    """Per key, add the first list's lines and remove the second's (the caller holds the
    table's lock)."""
    for key, (plus, minus) in changes.items():
        old = entries(table, key)
        new = [e for e in old if e not in minus] + [e for e in plus if e not in old]
        if new != old:
            store_entries(table, key, old, new)


def store_entries(table: str, key: str, old: list[str], new: list[str]) -> None:
    """Write a shared key's lines (``old``: what it held, as read under the lock)."""
    if not new:
        state.remove(LEASES, table, key)
    elif old or not _link(table, key, "\n".join(new)):
        state.set_link("\n".join(new), LEASES, table, key)


def keys(table: str) -> list[str]:
    """Every key of a table."""
    return state.names(LEASES, table)
