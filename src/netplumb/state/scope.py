"""Where netplumb's records live: the state directory of this network namespace, its identity,
and what becomes of a dead namespace's records.

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

This module imports nothing of ``netplumb.state`` (the package re-exports its names): it only
finds, creates and settles the directory; ``state`` reads and writes the records in it.
"""

from __future__ import annotations

import marshal
import posix

from netplumb.errors import StateError
from netplumb.lightos import dirname, getenv, isdir, join

DEFAULT_ROOT = "/run/netplumb"
DIR_MODE = 0o700
FILE_MODE = 0o600
GUEST_FILE_MODE = 0o644  # files bind-mounted into a host: its processes read them
STALE = "stale"
INIT_NETNS_INODE = 0xEFFFFFF9  # PROC_NET_INIT_INO: init_net's fixed inode on Linux 6.x
_SO_NETNS_COOKIE = 71  # <asm-generic/socket.h>, Linux 5.14+
_ENOPROTOOPT = 92


def root() -> str:
    """The directory that holds every namespace's state directory."""
    return getenv("NETPLUMB_STATE_ROOT") or DEFAULT_ROOT


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


def _is_initial(mine: posix.stat_result) -> bool:
    if mine.st_ino == INIT_NETNS_INODE:
        return True
    try:
        init = posix.stat("/proc/1/ns/net")
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (init.st_dev, init.st_ino)


def scope_name() -> str:
    """This namespace's directory name under ``root()``: ``host`` or ``netns-<inode>-<cookie>``."""
    mine = posix.stat("/proc/self/ns/net")
    if _is_initial(mine):
        return "host"
    return f"netns-{mine.st_ino}-{netns_cookie()}"


def tighten(p: str) -> bool:
    """Whether ``p`` exists; made 0700 if it is open to others (left by an older netplumb).
    Never a sticky or world-writable directory (``NETPLUMB_STATE_DIR=/tmp``): netplumb makes
    none, so such a one is shared, not netplumb's to close."""
    try:
        st = posix.stat(p)
    except FileNotFoundError:
        return False
    if st.st_mode & 0o077 and not st.st_mode & 0o1002:
        try:
            posix.chmod(p, DIR_MODE)
        except OSError:
            pass  # not ours to change (a NETPLUMB_STATE_DIR of another user's): leave it
    return True


def makedirs(p: str) -> None:
    """``os.makedirs`` with ``DIR_MODE`` for every level it creates (``os.makedirs`` gives its
    mode to the last level only, the others get the umask's default, 0755)."""
    try:
        posix.mkdir(p, DIR_MODE)
    except FileExistsError:
        return
    except FileNotFoundError:
        parent = dirname(p.rstrip("/"))
        if not parent or parent == p:
            raise
        makedirs(parent)
        try:
            posix.mkdir(p, DIR_MODE)
        except FileExistsError:
            pass


def settle(top: str, name: str) -> None:
    """Create this namespace's directory (the first time netplumb runs in it): move aside the
    directories of dead namespaces with our inode, adopt or move aside the directory of the
    layout before cookies. Under the root's lock: two first commands at once do it once."""
    import fcntl

    makedirs(top)
    lock = posix.open(join(top, ".lock"), posix.O_RDWR | posix.O_CREAT | posix.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        scope = join(top, name)
        if isdir(scope):
            return  # another process settled it meanwhile
        old = f"netns-{posix.stat('/proc/self/ns/net').st_ino}"
        if name != "host":
            for entry in posix.listdir(top):
                if entry.startswith(f"{old}-") and entry != name:
                    move_aside(entry)  # our inode, another cookie: that namespace is gone
        if isdir(join(top, old)):
            if name == "host" or _shows_life(join(top, old)):
                posix.chmod(join(top, old), DIR_MODE)
                posix.rename(join(top, old), scope)
                return
            move_aside(old)
        makedirs(scope)
    finally:
        posix.close(lock)


def _shows_life(old: str) -> bool:
    """Whether a directory of the layout before cookies, named by our inode, is ours: a host it
    records still runs, or an interface here carries a netplumb mark."""
    from netplumb.kernel.proc import pid_start_time

    hosts = join(old, "hosts")
    for entry in posix.listdir(hosts) if isdir(hosts) else []:
        try:
            with open(join(hosts, entry), "rb") as f:
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
    makedirs(join(top, STALE))
    base = join(top, STALE, f"{name}-{int(time.time())}")
    for n in range(100):
        dest = base if n == 0 else f"{base}.{n}"
        try:
            posix.rename(join(top, name), dest)
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
    if getenv("NETPLUMB_STATE_DIR"):
        return []
    top = join(root(), STALE)
    try:
        return sorted(join(top, e) for e in posix.listdir(top))
    except FileNotFoundError:
        return []
