"""netplumb's own records: what it created, per network namespace.

The state directory is scoped by the network namespace netplumb runs in, so that netplumb run
under ``ip netns exec X`` acts on X alone (tests simulate whole hosts that way):
``/run/netplumb/host`` for the machine's own namespace, ``/run/netplumb/netns-<inode>`` for any
other; ``NETPLUMB_STATE_DIR`` overrides it. Records are ``marshal`` dicts written atomically
(write to a temporary file, then rename): reading and writing them must not cost the one-shot
path a ``json`` import (~14 ms here, it pulls in ``re``).

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
import os

from netplumb.errors import StateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Record = dict[str, "Any"]

_root: str | None = None


def state_dir() -> str:
    global _root  # noqa: PLW0603 -- computed once per process
    if _root is None:
        env = os.environ.get("NETPLUMB_STATE_DIR")
        if env:
            _root = env
        else:
            mine = os.stat("/proc/self/ns/net")
            try:
                init = os.stat("/proc/1/ns/net")
                same = (mine.st_dev, mine.st_ino) == (init.st_dev, init.st_ino)
            except OSError:
                same = False
            _root = "/run/netplumb/" + ("host" if same else f"netns-{mine.st_ino}")
    return _root


def path(*parts: str) -> str:
    return os.path.join(state_dir(), *parts)


def ensure_dir(*parts: str) -> str:
    p = path(*parts)
    os.makedirs(p, mode=0o755, exist_ok=True)
    return p


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
    if entry is None or os.path.exists(path(*parts)):
        return
    listing, name = entry
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        try:
            fd = os.open(listing, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(listing), mode=0o755, exist_ok=True)
            fd = os.open(listing, flags, 0o644)
        try:
            os.write(fd, f"{name}\n".encode())
        finally:
            os.close(fd)
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
    if not any(os.path.exists(path(parts[0], n)) for n in _read_group(listing)):
        try:
            os.unlink(listing)
        except FileNotFoundError:
            pass


def group_names(directory: str, group: str) -> list[str]:
    """The names of the records of ``directory`` whose group is ``group``, sorted (may name a
    record that is gone: read it and skip a None)."""
    return _read_group(path(f"{directory}.by-owner", group))


def write(record: Record, *parts: str) -> None:
    ensure_dir(*parts[:-1])
    _add_group_entry(parts)
    p = path(*parts)
    tmp = f"{p}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            marshal.dump(record, f)
        os.replace(tmp, p)
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {p}: {exc.strerror}") from None


def remove(*parts: str) -> None:
    try:
        os.unlink(path(*parts))
    except FileNotFoundError:
        pass
    _drop_group_entry(parts)


def link(value: str, *parts: str) -> bool:
    """Create the entry ``parts`` holding ``value`` unless it exists; whether it was created.
    Callers create their directory first (``ensure_dir``)."""
    p = path(*parts)
    try:
        os.symlink(value, p)
    except FileExistsError:
        return False
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {p}: {exc.strerror}") from None
    return True


def readlink(*parts: str) -> str | None:
    """The value of an entry made by ``link`` (None if there is none)."""
    try:
        return os.readlink(path(*parts))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read netplumb record {path(*parts)}: {exc.strerror}") from None


def set_link(value: str, *parts: str) -> None:
    """Create or replace the entry ``parts`` with ``value`` atomically."""
    p = path(*parts)
    tmp = f"{p}.{os.getpid()}.tmp"
    try:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(value, tmp)
        os.replace(tmp, p)
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {p}: {exc.strerror}") from None


def names(*parts: str) -> list[str]:
    """The record names in a state subdirectory (temporary files left out), sorted."""
    try:
        entries = os.listdir(path(*parts))
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if not e.endswith(".tmp") and not e.startswith("."))


def sweep_stale_tmp() -> list[str]:
    """Remove the temporary files of writes whose process died before the rename (``kill -9``
    at the wrong moment): ``NAME.PID.tmp`` whose PID no longer runs. Returns what went."""
    gone = []
    root = state_dir()
    for folder, _dirs, files in os.walk(root):
        for f in files:
            if not f.endswith(".tmp"):
                continue
            pid = f[:-4].rpartition(".")[2]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                try:
                    os.unlink(os.path.join(folder, f))
                except FileNotFoundError:
                    continue
                gone.append(os.path.relpath(os.path.join(folder, f), root))
    return gone
