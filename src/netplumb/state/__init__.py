"""netplumb's own records: what it created, per network namespace.

The state directory, and which namespace it belongs to, is ``scope.py``'s (where records live,
dead namespaces' records); the leases of every table are ``leases.py``'s (the one allocator),
over the one lock API of ``lock.py``. This module reads and writes the records.

Permissions
-----------
Records hold secrets (a host's ``-e PASSWORD=...``, its log), so only root may read them, as
with Docker's ``/var/lib/docker``: every directory netplumb creates is 0700 and every file 0600
(records, indexes, logs, leases, locks, the agent's socket), given at creation (``os.open``,
``os.mkdir`` modes; a umask can only make them stricter). Symbolic links (address leases, the
port index) have no mode of their own: the 0700 directories guard them. The exception is the
three files bind-mounted over a host's ``/etc/hosts``, ``/etc/hostname`` and
``/etc/resolv.conf``: 0644, so that an unprivileged process in the host reads them (a bind
mount needs no search permission on its source's directories). The first resolution in a
process tightens the root and the scope directory (or ``NETPLUMB_STATE_DIR``) to 0700 if an
older netplumb left them open (one ``stat`` each); a sticky or world-writable one (``/tmp``)
is left alone, it is not netplumb's.

Records
-------
Records are ``marshal`` dicts written atomically (write to a temporary file, then rename):
reading and writing them must not cost the one-shot path a ``json`` import (~14 ms here, it
pulls in ``re``); neither may finding the state directory (a ``stat`` or two, a socket and a
``getsockopt``: microseconds).

Records of a *grouped* directory (``attach``: ``<owner>@<ifname>``) are also listed by their
group, the part of the name before the last ``@``, in ``attach.by-owner/<owner>``: a name is
appended before the record is first written, and the list goes once none of the records it
names is left, so listing one owner's records costs one small read, not a pass over every
owner's (``group_names``). It may name records that are gone (readers skip them); a record
written while its owner's last other one is removed may miss from it (``gc`` goes through
every record). Small values that must be created exclusively (address leases)
are symbolic links: one ``symlink(2)`` creates one or fails with EEXIST, one ``readlink(2)``
reads it (``link``, ``readlink``).
"""

from __future__ import annotations

import marshal
import posix

from netplumb.errors import StateError
from netplumb.lightos import dirname, exists, getenv, join
from netplumb.state.scope import (
    DEFAULT_ROOT,
    DIR_MODE,
    FILE_MODE,
    GUEST_FILE_MODE,
    INIT_NETNS_INODE,
    STALE,
    makedirs,
    move_aside,
    netns_cookie,
    root,
    scope_name,
    settle,
    stale_dirs,
    tighten,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Record = dict[str, "Any"]

# Re-exported from scope.py: callers say ``state.stale_dirs()``, ``state.root()``.
__all__ = [
    "DEFAULT_ROOT",
    "DIR_MODE",
    "FILE_MODE",
    "GUEST_FILE_MODE",
    "INIT_NETNS_INODE",
    "STALE",
    "Record",
    "move_aside",
    "netns_cookie",
    "root",
    "scope_name",
    "stale_dirs",
]

_root: str | None = None


def state_dir() -> str:
    global _root  # noqa: PLW0603 -- computed once per process
    if _root is None:
        env = getenv("NETPLUMB_STATE_DIR")
        if env:
            tighten(env)
            _root = env
        else:
            top = root()
            name = scope_name()
            scope = join(top, name)
            tighten(top)
            if not tighten(scope):
                settle(top, name)
            _root = scope
    return _root


def path(*parts: str) -> str:
    return join(state_dir(), *parts)


def ensure_dir(*parts: str) -> str:
    p = path(*parts)
    makedirs(p)
    return p


def open_file(p: str, flags: int, mode: int = FILE_MODE) -> int:
    """``os.open`` of a file of the state directory, created with ``mode`` (0600)."""
    return posix.open(p, flags | posix.O_CLOEXEC, mode)


def write_file(p: str, data: bytes, mode: int = FILE_MODE) -> None:
    """Write a whole file, created (or truncated) with ``mode``. A guest's file is widened to
    ``mode`` even under a stricter umask: its processes must read it through the bind mount."""
    fd = open_file(p, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC, mode)
    try:
        if mode & 0o044:
            posix.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[posix.write(fd, view) :]
    finally:
        posix.close(fd)


SCOPE_ID = "scope-id"
_scope_id: list[str] = []


def scope_id() -> str:
    """This state directory's identity, carried by every ownership mark it makes
    (``model.names.owner_mark``): 16 random hex digits made the first time they are asked for
    and kept in the directory (``scope-id``). Two netplumbs with two state directories (two
    namespaces, or ``NETPLUMB_STATE_DIR``) that both see the same guest (a Docker container)
    tell their objects apart by it, so ``reconcile`` removes only its own. Created by an
    exclusive ``link(2)`` of a written file: two first commands at once agree on one."""
    if _scope_id:
        return _scope_id[0]
    p = path(SCOPE_ID)
    try:
        with open(p) as f:
            value = f.read().strip()
    except FileNotFoundError:
        value = ""
    if not value:
        value = posix.urandom(8).hex()
        tmp = f"{p}.{posix.getpid()}.tmp"
        makedirs(state_dir())
        write_file(tmp, value.encode())
        try:
            posix.link(tmp, p)
        except FileExistsError:
            with open(p) as f:
                value = f.read().strip()
        finally:
            posix.unlink(tmp)
    _scope_id.append(value)
    return value


def read(*parts: str) -> Record | None:
    p = path(*parts)
    try:
        with open(p, "rb") as f:
            data = marshal.load(f)
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, TypeError) as exc:
        raise StateError(f"cannot read netplumb record {p}: {exc}") from None
    if not isinstance(data, dict):
        raise StateError(f"cannot read netplumb record {p}: not a record")
    return data


_GROUPED = ("attach",)


def _group_file(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """(the group's list file, the record's name) for a record of a grouped directory."""
    if len(parts) == 2 and parts[0] in _GROUPED:
        group = parts[1].rpartition("@")[0]
        if group:
            return path(f"{parts[0]}.by-owner", group), parts[1]
    return None


def _add_group_entry(parts: tuple[str, ...]) -> None:
    """Append the record's name to its group's list, before the record is first written (one
    write with O_APPEND: atomic among writers; no file is created after the group's first)."""
    entry = _group_file(parts)
    if entry is None or exists(path(*parts)):
        return
    listing, name = entry
    flags = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT
    try:
        try:
            fd = open_file(listing, flags)
        except FileNotFoundError:
            makedirs(dirname(listing))
            fd = open_file(listing, flags)
        try:
            posix.write(fd, f"{name}\n".encode())
        finally:
            posix.close(fd)
    except OSError as exc:
        raise StateError(f"cannot write netplumb index {listing}: {exc.strerror}") from None


def _read_group(listing: str) -> list[str]:
    try:
        with open(listing, "rb") as f:
            return sorted(set(f.read().decode(errors="replace").split()))
    except FileNotFoundError:
        return []


def _drop_group_entry(parts: tuple[str, ...]) -> None:
    """After a record is removed: drop its group's list once no record it names is left."""
    entry = _group_file(parts)
    if entry is None:
        return
    listing, _ = entry
    if not any(exists(path(parts[0], n)) for n in _read_group(listing)):
        try:
            posix.unlink(listing)
        except FileNotFoundError:
            pass


def group_names(directory: str, group: str) -> list[str]:
    """The names of the records of ``directory`` whose group is ``group``, sorted (may name a
    record that is gone: read it and skip a None)."""
    return _read_group(path(f"{directory}.by-owner", group))


# The records that outlive /run: ``durable.py`` keeps a copy of them. Told here, so that
# writing or removing any other record (the CNI plugin's, a guest's) imports nothing more.
KEPT_DIRS = ("networks", "docker")  # every record of these
DOCKER_DIRS = ("attach", "ports")  # only the records of Docker owners
KEPT_FILES = ("scope-id",)


def is_kept(parts: tuple[str, ...]) -> bool:
    if len(parts) == 1:
        return parts[0] in KEPT_FILES
    if len(parts) != 2:
        return False
    return parts[0] in KEPT_DIRS or (parts[0] in DOCKER_DIRS and parts[1].startswith("docker:"))


def write(record: Record, *parts: str) -> None:
    ensure_dir(*parts[:-1])
    _add_group_entry(parts)
    p = path(*parts)
    tmp = f"{p}.{posix.getpid()}.tmp"
    try:
        with open(open_file(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC), "wb") as f:
            marshal.dump(record, f)
        posix.replace(tmp, p)
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {p}: {exc.strerror}") from None
    if is_kept(parts):
        from netplumb.state import durable  # Docker guests' records outlive /run (its docstring)

        durable.keep(state_dir(), parts)


def remove(*parts: str) -> None:
    if is_kept(parts):
        from netplumb.state import durable

        durable.forget(state_dir(), parts)  # first: a copy never outlives its record
    try:
        posix.unlink(path(*parts))
    except FileNotFoundError:
        pass
    _drop_group_entry(parts)


def link(value: str, *parts: str) -> bool:
    """Create the entry ``parts`` holding ``value`` unless it exists; whether it was created.
    Callers create their directory first (``ensure_dir``)."""
    p = path(*parts)
    try:
        posix.symlink(value, p)
    except FileExistsError:
        return False
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {p}: {exc.strerror}") from None
    return True


def readlink(*parts: str) -> str | None:
    """The value of an entry made by ``link`` (None if there is none)."""
    try:
        return posix.readlink(path(*parts))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read netplumb record {path(*parts)}: {exc.strerror}") from None


def set_link(value: str, *parts: str) -> None:
    """Create or replace the entry ``parts`` with ``value`` atomically."""
    p = path(*parts)
    tmp = f"{p}.{posix.getpid()}.tmp"
    try:
        try:
            posix.unlink(tmp)
        except FileNotFoundError:
            pass
        posix.symlink(value, tmp)
        posix.replace(tmp, p)
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {p}: {exc.strerror}") from None


def names(*parts: str) -> list[str]:
    """The record names in a state subdirectory (temporary files left out), sorted."""
    try:
        entries = posix.listdir(path(*parts))
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if not e.endswith(".tmp") and not e.startswith("."))


def sweep_stale_tmp() -> list[str]:
    """Remove the temporary files of writes whose process died before the rename (``kill -9``
    at the wrong moment): ``NAME.PID.tmp`` whose PID no longer runs. Returns what went."""
    from os import walk  # not on a one-shot path (``lightos``)
    from os.path import relpath

    gone = []
    root = state_dir()
    for folder, _dirs, files in walk(root):
        for f in files:
            if not f.endswith(".tmp"):
                continue
            pid = f[:-4].rpartition(".")[2]
            if pid.isdigit() and not exists(f"/proc/{pid}"):
                try:
                    posix.unlink(join(folder, f))
                except FileNotFoundError:
                    continue
                gone.append(relpath(join(folder, f), root))
    return gone
