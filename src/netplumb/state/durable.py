"""Records that outlive the machine: Docker guests' attach, publish and service records.

Why
---
netplumb's state directory lives under ``/run`` (a tmpfs): a reboot wipes it, which is right
for what dies with the machine (netplumb's own hosts, their holders, leases of hosts, DHCP
clients, locks). Docker's containers do not die with it: dockerd keeps them in
``/var/lib/docker`` and a restart policy starts them again after a reboot. For ``reconcile`` and
``watch`` to give them their interfaces back, the records that say what they had must survive
too. So a copy of each such record is kept here, under ``/var/lib/netplumb/<scope>``, as Docker
keeps its own under ``/var/lib/docker``.

What is kept
------------
A copy of these files of the state directory, made each time netplumb writes one (``keep``)
and removed when netplumb removes it (``forget``), so the copy is never newer than the record:

- ``attach/docker:<id>@<ifname>``: a Docker container's pipework/attach interfaces (the
  request, the MAC it got, the host end's name);
- ``ports/docker:<id>``: its published ports;
- ``docker/<name>``: the Docker services of ``up`` projects (their links);
- ``networks/<name>``: the networks (like Docker's, a network outlives its containers), whose
  bridges ``reconcile`` makes again;
- ``scope-id``: the state directory's identity, which every mark carries.

Leases are not copied: ``restore`` leases the addresses a restored attach record names again
(same values), through the allocator. Records of hosts, and everything else, stay in ``/run``.

Where
-----
``/var/lib/netplumb/host`` for the machine's own namespace (``state.scope_name`` ``host``): the
only scope that lives through a reboot. A non-initial namespace's scope (``netns-<inode>-<cookie>``)
dies with its namespace, and its ``/run`` records live as long as it does, so by default nothing
of it is kept here. ``NETPLUMB_DURABLE_ROOT`` moves the root, and then every scope gets its
directory under it (tests simulate a reboot inside a namespace that lives on: its ``/run``
records wiped, dockerd started again); ``NETPLUMB_DURABLE_DIR`` names the directory itself (as
``NETPLUMB_STATE_DIR`` does for ``/run``). When ``NETPLUMB_STATE_ROOT`` or ``NETPLUMB_STATE_DIR``
moved the state and neither of those is set, nothing is kept: a test's records must not land in
the machine's ``/var/lib``.

Failures
--------
A copy is best effort: one that cannot be written (a read-only ``/var/lib``, a full disk) is
skipped, never an error of the command, which has written its record already (raising then
would undo the kernel changes and leave the record). The first ``reconcile``/``watch`` pass of a
state directory's life copies what has no copy yet. A copy that cannot be removed is an error:
it would bring a removed record back after a reboot.

Restoring
---------
``ops.restore`` copies back what is kept and missing from the state directory (``missing``),
once per state directory's life: it leaves ``durable.restored`` there, so it runs after a reboot
or a wipe of ``/run``, never while netplumb removes a record and a copy could outlive it
(``forget`` goes before the record's own removal, ``keep`` after its write). This module imports
nothing of netplumb but its errors: ``state`` calls it with its directory (no cycle), and the
one-shot path pays one small import.
"""

from __future__ import annotations

import os

from netplumb.errors import StateError
from netplumb.state import DOCKER_DIRS, KEPT_DIRS, KEPT_FILES, is_kept

DEFAULT_ROOT = "/var/lib/netplumb"
MARKER = "durable.restored"
_DIR_MODE = 0o700
_FILE_MODE = 0o600


def directory(state_dir: str) -> str | None:
    """Where the records of the state directory ``state_dir`` are kept, or None (not kept)."""
    env = os.environ.get("NETPLUMB_DURABLE_DIR")
    if env:
        return env
    top = os.environ.get("NETPLUMB_DURABLE_ROOT")
    if top:
        return os.path.join(top, os.path.basename(state_dir.rstrip("/")))
    if os.environ.get("NETPLUMB_STATE_ROOT") or os.environ.get("NETPLUMB_STATE_DIR"):
        return None
    if os.path.basename(state_dir.rstrip("/")) != "host":
        return None  # a namespace's scope dies with the namespace: /run is as long-lived
    return os.path.join(DEFAULT_ROOT, "host")


def _makedirs(p: str) -> None:
    if os.path.isdir(p):
        return
    _makedirs(os.path.dirname(p.rstrip("/")))
    try:
        os.mkdir(p, _DIR_MODE)
    except FileExistsError:
        pass


def _copy(src: str, dest: str) -> bool:
    """Copy a file atomically (a temporary file renamed); False if ``src`` is gone."""
    try:
        with open(src, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False
    _makedirs(os.path.dirname(dest))
    tmp = f"{dest}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, dest)
    return True


def keep(state_dir: str, parts: tuple[str, ...]) -> None:
    """After netplumb wrote ``parts`` in ``state_dir``: copy it, if it is a kept record."""
    if not is_kept(parts):
        return
    where = directory(state_dir)
    if where is None:
        return
    try:
        _copy(os.path.join(state_dir, *parts), os.path.join(where, *parts))
        if parts != ("scope-id",) and not os.path.exists(os.path.join(where, "scope-id")):
            # the identity the record's marks carry, kept with the first record
            _copy(os.path.join(state_dir, "scope-id"), os.path.join(where, "scope-id"))
    except OSError:
        pass  # best effort (see "Failures")


def keep_append(state_dir: str, parts: tuple[str, ...], data: bytes) -> None:
    """After netplumb appended ``data`` to ``parts`` (the ports log): append it to the copy
    too (one write, as the record's own), or copy the whole file if there is no copy yet."""
    if not is_kept(parts):
        return
    where = directory(state_dir)
    if where is None:
        return
    dest = os.path.join(where, *parts)
    try:
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            keep(state_dir, parts)
            return
        try:
            if os.write(fd, data) != len(data):
                raise OSError(28, "short write")
        finally:
            os.close(fd)
    except OSError:
        try:  # a copy that may be cut short is worse than none
            os.unlink(dest)
        except OSError:
            pass


def forget(state_dir: str, parts: tuple[str, ...]) -> None:
    """Before netplumb removes ``parts`` from ``state_dir``: remove its copy."""
    if not is_kept(parts):
        return
    where = directory(state_dir)
    if where is None:
        return
    try:
        os.unlink(os.path.join(where, *parts))
    except FileNotFoundError:
        pass
    except OSError as exc:  # a copy left would come back after a reboot: say so
        msg = f"cannot forget netplumb record {'/'.join(parts)}: {exc.strerror}"
        raise StateError(msg) from None


def kept(state_dir: str) -> list[tuple[str, ...]]:
    """Every record kept for ``state_dir`` (temporary files left out), sorted."""
    where = directory(state_dir)
    if where is None or not os.path.isdir(where):
        return []
    out: list[tuple[str, ...]] = [
        (f,) for f in KEPT_FILES if os.path.isfile(os.path.join(where, f))
    ]
    for sub in (*KEPT_DIRS, *DOCKER_DIRS):
        try:
            entries = os.listdir(os.path.join(where, sub))
        except FileNotFoundError:
            continue
        out += [(sub, e) for e in entries if not e.endswith(".tmp") and is_kept((sub, e))]
    return sorted(out)


def missing(state_dir: str) -> list[tuple[str, ...]] | None:
    """The kept records that ``state_dir`` lacks, or None once they were restored in this
    state directory's life (``MARKER``, left by ``mark_restored``)."""
    if os.path.exists(os.path.join(state_dir, MARKER)):
        return None
    return [p for p in kept(state_dir) if not os.path.exists(os.path.join(state_dir, *p))]


def data(state_dir: str, parts: tuple[str, ...]) -> bytes | None:
    """The kept copy of ``parts`` (None if there is none)."""
    where = directory(state_dir)
    if where is None:
        return None
    try:
        with open(os.path.join(where, *parts), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read kept netplumb record {'/'.join(parts)}: {exc}") from None


def mark_restored(state_dir: str) -> None:
    """Note in ``state_dir`` that its kept records were restored (``missing`` says None)."""
    try:
        _makedirs(state_dir)
        os.close(
            os.open(
                os.path.join(state_dir, MARKER),
                os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
                _FILE_MODE,
            )
        )
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {MARKER}: {exc.strerror}") from None
