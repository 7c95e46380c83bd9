"""Network namespaces: entering, holding and pinning them.

Python 3.11 has no ``posix.setns``/``posix.unshare`` (3.12 does); the two calls go through libc.
A namespace is always handled as an open file descriptor: resolving a guest opens its
namespace once and every later step uses that descriptor, so a PID that dies and is reused
cannot redirect the work into another container (a pipework bug).
"""

from __future__ import annotations

import errno as _errno
import posix

from netplumb.errors import KernelError
from netplumb.kernel.netlink import Netlink

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    """libc through ctypes, loaded on first use (~4 ms; only commands that need it pay)."""
    global _libc  # noqa: PLW0603 -- loaded once per process
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _errno_now() -> int:
    import ctypes

    return ctypes.get_errno()


def _check(ret: int, what: str) -> None:
    if ret != 0:
        raise KernelError(what, _errno_now())


_setns_addr: int | None = None


def setns(fd: int, nstype: int, what: str = "enter namespace") -> None:
    """setns(2) through ``_ctypes`` directly: ``import ctypes`` costs ~6 ms here, ``_ctypes``
    under 1 ms, and the one-shot path calls nothing else of libc. Only on failure is the full
    ``ctypes`` loaded, to call again and read errno."""
    global _setns_addr  # noqa: PLW0603 -- resolved once per process
    import _ctypes

    if _setns_addr is None:
        _setns_addr = _ctypes.dlsym(_ctypes.dlopen(None, 0), "setns")  # type: ignore[arg-type]
    if _ctypes.call_function(_setns_addr, (fd, nstype)) != 0:
        _check(_lib().setns(fd, nstype), what)


def sethostname(name: str) -> None:
    """Name the current UTS namespace (unchecked: a host whose name cannot be set keeps the
    one it inherited, and runs anyway)."""
    raw = name.encode()
    _lib().sethostname(raw, len(raw))


def unshare(flags: int) -> None:
    _check(_lib().unshare(flags), "unshare namespaces")


def mount(source: str, target: str, fstype: str | None, flags: int, what: str) -> None:
    ret = _lib().mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None
    )
    _check(ret, what)


def umount(target: str, what: str) -> None:
    ret = _lib().umount2(target.encode(), MNT_DETACH)
    if ret != 0 and _errno_now() not in (_errno.EINVAL, _errno.ENOENT):
        raise KernelError(what, _errno_now())


def open_netns(path: str) -> int:
    """An O_RDONLY descriptor on a namespace file; OSError when it is not one."""
    return posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)


def netns_id(fd_or_path: int | str) -> str:
    """``dev:ino`` of a namespace: equal ids are the same namespace."""
    st = posix.stat(fd_or_path)
    return f"{st.st_dev}:{st.st_ino}"


_self_fd: int | None = None


def self_netns_fd() -> int:
    """A descriptor of the namespace this process started in (kept for the process)."""
    global _self_fd  # noqa: PLW0603 -- one per process, opened on first use
    if _self_fd is None:
        _self_fd = open_netns("/proc/self/ns/net")
    return _self_fd


class entered:
    """Run the body with this thread inside the namespace ``fd``, then switch back.

    (A class rather than ``contextlib.contextmanager``: contextlib costs ~3 ms to import.)
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        self_netns_fd()
        setns(self.fd, CLONE_NEWNET, "enter the guest's network namespace")

    def __exit__(self, *exc: object) -> None:
        setns(self_netns_fd(), CLONE_NEWNET, "return to the host's network namespace")


def socket_in(fd: int) -> Netlink:
    """A netlink socket bound to the namespace ``fd`` (it stays there after we switch back)."""
    home = self_netns_fd()  # before leaving: opened inside the guest, "home" would be the guest
    try:
        setns(fd, CLONE_NEWNET, "enter the guest's network namespace")
    except KernelError as exc:
        if exc.errno == _errno.EINVAL:
            raise KernelError("the guest is not a network namespace", exc.errno) from None
        raise
    try:
        return Netlink()
    finally:
        setns(home, CLONE_NEWNET, "return to the host's network namespace")


def pin(fd_path: str, target: str) -> None:
    """Keep a namespace alive by bind-mounting it on ``target`` (as ``ip netns add`` does).

    When netplumb itself runs in a private mount namespace (under ``ip netns exec``, which
    tests use to simulate whole hosts), a mount made there vanishes with that namespace; the
    bind is then made from a child that joined PID 1's mount namespace, so the pin outlives
    the command.
    """
    with open(target, "a"):
        pass
    if netns_id("/proc/self/ns/mnt") == netns_id("/proc/1/ns/mnt"):
        mount(fd_path, target, None, MS_BIND, f"pin namespace on {target}")
        return
    src_fd = posix.open(fd_path, posix.O_RDONLY)
    pid = posix.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            mnt = posix.open("/proc/1/ns/mnt", posix.O_RDONLY)
            setns(mnt, CLONE_NEWNS)
            mount(f"/proc/{posix.getppid()}/fd/{src_fd}", target, None, MS_BIND, "pin")
            code = 0
        except BaseException:
            code = 1
        posix._exit(code)
    posix.close(src_fd)
    _pid, status = posix.waitpid(pid, 0)
    if posix.waitstatus_to_exitcode(status) != 0:
        raise KernelError(f"pin namespace on {target}", _errno.EPERM)


def unpin(target: str) -> None:
    """Undo ``pin``: detach the bind mount (in PID 1's mount namespace too) and remove the file."""
    umount(target, f"unpin namespace {target}")
    if netns_id("/proc/self/ns/mnt") != netns_id("/proc/1/ns/mnt"):
        pid = posix.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                setns(posix.open("/proc/1/ns/mnt", posix.O_RDONLY), CLONE_NEWNS)
                umount(target, "unpin")
            finally:
                posix._exit(0)
        posix.waitpid(pid, 0)
    try:
        posix.unlink(target)
    except FileNotFoundError:
        pass
    except OSError as exc:  # still mounted somewhere: leave the file, report
        raise KernelError(f"remove namespace pin {target}", exc.errno or _errno.EBUSY) from None
