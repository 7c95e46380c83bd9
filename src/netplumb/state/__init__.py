"""netplumb's own records: what it created, per network namespace.

Where records live
------------------
The state directory is scoped by the network namespace netplumb runs in, so that netplumb run
under ``ip netns exec X`` acts on X alone (tests simulate whole hosts that way). Under the root
``/run/netplumb`` (``NETPLUMB_STATE_ROOT`` moves it, for tests):

- ``host`` for the machine's own namespace: a stable name, so its records are found again after
  a reboot. The machine's namespace is the one PID 1 is in, or the one whose inode is the
  kernel's fixed number for it (``0xEFFFFFF9``, Linux 6.x: dynamic inodes start at
  ``0xF0000000``), which also works where ``/proc/1/ns/net`` cannot be read.
- ``netns-<inode>-<cookie>`` for any other: the namespace's inode and its *cookie*
  (``getsockopt(SO_NETNS_COOKIE)`` on any socket, a 64-bit number the kernel never gives twice
  while it runs; Linux 5.14+, and on an older kernel netplumb refuses to run in a non-initial
  namespace without ``NETPLUMB_STATE_DIR``). The inode alone is not an identity: the kernel
  gives a dead namespace's inode to the next one, which would inherit its records (hosts it
  never started, a LAN bridge it never made).

``NETPLUMB_STATE_DIR`` names the state directory itself instead (no scoping, no identity).

Dead namespaces' records
------------------------
Two namespaces alive at once never share an inode, so a directory ``netns-<inode>-<other
cookie>`` with the current namespace's inode belongs to a namespace that is gone. netplumb
notices once per namespace, when its own directory does not exist yet (the only time the
root is listed, under the lock ``<root>/.lock``): such directories are moved aside to
``<root>/stale/<their name>-<unix time>`` (keeping the identity they had) before the new one
is created, and ``netplumb gc`` (from any namespace) removes what is in ``stale``, first
stopping the processes of any host those records name that still runs. Directories of a dead
namespace whose inode is never reused stay until the machine reboots (``/run`` is a tmpfs):
nothing else can tell they are dead.

Migration of the layout before cookies (``netns-<inode>``, no cookie): such a directory with
the current namespace's inode is either ours from before the upgrade or a dead predecessor's.
It is adopted (renamed to this namespace's name) if it shows signs of life here: an interface
of this namespace carries a netplumb mark (an ``ifalias`` ``netplumb:...``: a bridge, a host
end of a veth, a LAN bridge), or a host it records still has its holder process (same PID and
start time). Otherwise it is moved aside as above. For the machine's own namespace, a
``netns-<inode>`` of its inode (written where ``/proc/1/ns/net`` could not be read) is always
adopted as ``host``: that namespace never dies while the machine runs.

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
import os

from netplumb.errors import StateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Record = dict[str, "Any"]

DEFAULT_ROOT = "/run/netplumb"
DIR_MODE = 0o700
FILE_MODE = 0o600
GUEST_FILE_MODE = 0o644  # files bind-mounted into a host: its processes read them
STALE = "stale"
INIT_NETNS_INODE = 0xEFFFFFF9  # PROC_NET_INIT_INO: init_net's fixed inode on Linux 6.x
_SO_NETNS_COOKIE = 71  # <asm-generic/socket.h>, Linux 5.14+
_ENOPROTOOPT = 92

_root: str | None = None


def root() -> str:
    """The directory that holds every namespace's state directory."""
    return os.environ.get("NETPLUMB_STATE_ROOT") or DEFAULT_ROOT


def netns_cookie() -> int:
    """The current network namespace's cookie (never reused while the machine runs).

    ``_socket``, not ``socket``: the one-shot path must not pay for ``socket``'s ``enum``."""
    import _socket
    import sys

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        raw = sock.getsockopt(_socket.SOL_SOCKET, _SO_NETNS_COOKIE, 8)
    except OSError as exc:
        if exc.errno in (_ENOPROTOOPT, 22):  # 22: EINVAL, a kernel with another option 71
            raise StateError(
                "netplumb: this kernel cannot tell network namespaces apart (SO_NETNS_COOKIE, "
                "Linux 5.14+): run netplumb in the machine's own namespace, or set "
                "NETPLUMB_STATE_DIR"
            ) from None
        raise
    finally:
        sock.close()
    return int.from_bytes(raw, sys.byteorder)


def _is_initial(mine: os.stat_result) -> bool:
    if mine.st_ino == INIT_NETNS_INODE:
        return True
    try:
        init = os.stat("/proc/1/ns/net")
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (init.st_dev, init.st_ino)


def scope_name() -> str:
    """This namespace's directory name under ``root()``: ``host`` or ``netns-<inode>-<cookie>``."""
    mine = os.stat("/proc/self/ns/net")
    if _is_initial(mine):
        return "host"
    return f"netns-{mine.st_ino}-{netns_cookie()}"


def _tighten(p: str) -> bool:
    """Whether ``p`` exists; made 0700 if it is open to others (left by an older netplumb).
    Never a sticky or world-writable directory (``NETPLUMB_STATE_DIR=/tmp``): netplumb makes
    none, so such a one is shared, not netplumb's to close."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return False
    if st.st_mode & 0o077 and not st.st_mode & 0o1002:
        try:
            os.chmod(p, DIR_MODE)
        except OSError:
            pass  # not ours to change (a NETPLUMB_STATE_DIR of another user's): leave it
    return True


def state_dir() -> str:
    global _root  # noqa: PLW0603 -- computed once per process
    if _root is None:
        env = os.environ.get("NETPLUMB_STATE_DIR")
        if env:
            _tighten(env)
            _root = env
        else:
            top = root()
            name = scope_name()
            scope = os.path.join(top, name)
            _tighten(top)
            if not _tighten(scope):
                _settle(top, name)
            _root = scope
    return _root


def _makedirs(p: str) -> None:
    """``os.makedirs`` with ``DIR_MODE`` for every level it creates (``os.makedirs`` gives its
    mode to the last level only, the others get the umask's default, 0755)."""
    try:
        os.mkdir(p, DIR_MODE)
    except FileExistsError:
        return
    except FileNotFoundError:
        parent = os.path.dirname(p.rstrip("/"))
        if not parent or parent == p:
            raise
        _makedirs(parent)
        try:
            os.mkdir(p, DIR_MODE)
        except FileExistsError:
            pass


def _settle(top: str, name: str) -> None:
    """Create this namespace's directory (the first time netplumb runs in it): move aside the
    directories of dead namespaces with our inode, adopt or move aside the directory of the
    layout before cookies. Under the root's lock: two first commands at once do it once."""
    import fcntl

    _makedirs(top)
    lock = os.open(os.path.join(top, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        scope = os.path.join(top, name)
        if os.path.isdir(scope):
            return  # another process settled it meanwhile
        old = f"netns-{os.stat('/proc/self/ns/net').st_ino}"
        if name != "host":
            for entry in os.listdir(top):
                if entry.startswith(f"{old}-") and entry != name:
                    move_aside(entry)  # our inode, another cookie: that namespace is gone
        if os.path.isdir(os.path.join(top, old)):
            if name == "host" or _shows_life(os.path.join(top, old)):
                os.chmod(os.path.join(top, old), DIR_MODE)
                os.rename(os.path.join(top, old), scope)
                return
            move_aside(old)
        _makedirs(scope)
    finally:
        os.close(lock)


def _shows_life(old: str) -> bool:
    """Whether a directory of the layout before cookies, named by our inode, is ours: a host it
    records still runs, or an interface here carries a netplumb mark."""
    from netplumb.kernel.proc import pid_start_time

    hosts = os.path.join(old, "hosts")
    for entry in os.listdir(hosts) if os.path.isdir(hosts) else []:
        try:
            with open(os.path.join(hosts, entry), "rb") as f:
                rec = marshal.load(f)
        except (OSError, EOFError, ValueError, TypeError):
            continue
        holder = rec.get("holder") if isinstance(rec, dict) else None
        if isinstance(holder, int) and holder > 0:
            start = pid_start_time(holder)
            if start is not None and start == rec.get("holder_start"):
                return True
    from netplumb.kernel.netlink import Netlink

    with Netlink() as nl:
        return any((ln.alias or "").startswith("netplumb:") for ln in nl.links())


def move_aside(name: str) -> str | None:
    """Move the state directory ``name`` of a dead namespace to ``<root>/stale``; its new
    path (None if it was gone already: another process moved it)."""
    import time

    top = root()
    _makedirs(os.path.join(top, STALE))
    base = os.path.join(top, STALE, f"{name}-{int(time.time())}")
    for n in range(100):
        dest = base if n == 0 else f"{base}.{n}"
        try:
            os.rename(os.path.join(top, name), dest)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (17, 39):  # EEXIST, ENOTEMPTY: that name is taken, the next one
                continue
            raise StateError(f"cannot move aside netplumb records {name}: {exc.strerror}") from None
        return dest
    raise StateError(f"cannot move aside netplumb records {name}: too many of that name")


def stale_dirs() -> list[str]:
    """The directories of dead namespaces moved aside (none with ``NETPLUMB_STATE_DIR``: that
    directory is not scoped, and the root is not ours to clean)."""
    if os.environ.get("NETPLUMB_STATE_DIR"):
        return []
    top = os.path.join(root(), STALE)
    try:
        return sorted(os.path.join(top, e) for e in os.listdir(top))
    except FileNotFoundError:
        return []


def path(*parts: str) -> str:
    return os.path.join(state_dir(), *parts)


def ensure_dir(*parts: str) -> str:
    p = path(*parts)
    _makedirs(p)
    return p


def open_file(p: str, flags: int, mode: int = FILE_MODE) -> int:
    """``os.open`` of a file of the state directory, created with ``mode`` (0600)."""
    return os.open(p, flags | os.O_CLOEXEC, mode)


def write_file(p: str, data: bytes, mode: int = FILE_MODE) -> None:
    """Write a whole file, created (or truncated) with ``mode``. A guest's file is widened to
    ``mode`` even under a stricter umask: its processes must read it through the bind mount."""
    fd = open_file(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        if mode & 0o044:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


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
        value = os.urandom(8).hex()
        tmp = f"{p}.{os.getpid()}.tmp"
        _makedirs(state_dir())
        write_file(tmp, value.encode())
        try:
            os.link(tmp, p)
        except FileExistsError:
            with open(p) as f:
                value = f.read().strip()
        finally:
            os.unlink(tmp)
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
    if entry is None or os.path.exists(path(*parts)):
        return
    listing, name = entry
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    try:
        try:
            fd = open_file(listing, flags)
        except FileNotFoundError:
            _makedirs(os.path.dirname(listing))
            fd = open_file(listing, flags)
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
        with open(open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as f:
            marshal.dump(record, f)
        os.replace(tmp, p)
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {p}: {exc.strerror}") from None
    from netplumb.state import durable  # Docker guests' records outlive /run (its docstring)

    durable.keep(state_dir(), parts)


def remove(*parts: str) -> None:
    from netplumb.state import durable

    durable.forget(state_dir(), parts)  # first: a copy never outlives its record
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
