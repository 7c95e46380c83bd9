"""The forked child that becomes a host, and a spare one made ahead of time.

The child unshares its network, UTS and mount namespaces, forks the *holder* (``sleep
infinity`` named ``netplumb-hold``, which keeps the namespaces alive when the command exits)
and reports its PID; the parent can then set up the network while the child, told the host's
name, files and command, makes its mounts, sets its hostname and brings loopback up; finally
it execs the command with the environment the parent sends. Reports are lines on one pipe
(``holder PID``, ``error TEXT``; end of file = exec succeeded, the pipe being close-on-exec),
orders length-prefixed ``marshal`` values on another; end of file on the orders = the parent
gave up or died, and the child kills its holder and exits.

Within ``ports.batch()`` (a caller starting many hosts), each start forks the next host's
child at once, a *spare*: its namespaces and holder are made (unshare(2) costs 1-4 ms here,
the fork of the holder ~0.5 ms) while this host's network is set up, on the other CPU. The
spare is dropped at the end of the batch.
"""

from __future__ import annotations

import os
import signal

from netplumb.kernel import netns

HOLDER_NAME = "netplumb-hold"


class Child:
    """The parent's handle: the child's PID, its report pipe and its order pipe."""

    __slots__ = ("go", "pid", "rfd")

    def __init__(self, pid: int, rfd: int, go: int) -> None:
        self.pid = pid
        self.rfd = rfd
        self.go = go

    def send(self, value: tuple[str, str, str, list[str]] | dict[str, str]) -> bool:
        """Send an order; False if the child is gone (its report says why)."""
        import marshal

        data = marshal.dumps(value)
        data = len(data).to_bytes(4, "big") + data
        try:
            while data:
                data = data[os.write(self.go, data) :]
        except BrokenPipeError:
            return False
        return True

    def report(self) -> tuple[int, str]:
        """(holder PID, error) from the report lines, up to the next blocking point."""
        holder, error, buf = 0, "", b""
        while True:
            chunk = os.read(self.rfd, 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                word, _, rest = line.partition(" ")
                if word == "holder":
                    holder = int(rest)
                elif word == "error":
                    error = rest
            if holder or error:
                break
        return holder, error

    def close_orders(self) -> None:
        if self.go >= 0:
            os.close(self.go)
            self.go = -1

    def close(self) -> None:
        self.close_orders()
        if self.rfd >= 0:
            os.close(self.rfd)
            self.rfd = -1


def fork() -> Child:
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        # Nothing the parent holds may live on here (a spare lives across the parent's next
        # steps): a lock's descriptor would keep the lock held, a pipe's keep it open.
        low, high = sorted((wfd, go_r))
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 20)
        _main(wfd, go_r)
    os.close(wfd)
    os.close(go_r)
    return Child(pid, rfd, go_w)


def _recv(fd: int) -> object | None:
    """One order, or None at end of file."""
    import marshal

    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = os.read(fd, n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    head = exactly(4)
    body = exactly(int.from_bytes(head, "big")) if head else None
    return None if body is None else marshal.loads(body)


def _main(wfd: int, go: int) -> None:
    """In the forked child: namespaces, holder, report; then mounts, hostname, loopback;
    then exec the command with the environment the parent sends."""
    holder = 0
    try:
        os.setsid()
        netns.unshare(netns.CLONE_NEWNET | netns.CLONE_NEWUTS | netns.CLONE_NEWNS)
        holder = os.fork()
        if holder == 0:
            os.setpgid(0, 0)
            devnull = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.closerange(3, 65536)
            os.execv("/bin/sleep", [HOLDER_NAME, "infinity"])
        os.write(wfd, f"holder {holder}\n".encode())
        setup = _recv(go)
        if not isinstance(setup, tuple):  # the parent gave up (or died): take the namespaces
            os.kill(holder, signal.SIGKILL)
            os._exit(1)
        hostname, files, log, argv = setup
        netns.mount("none", "/", None, netns.MS_REC | netns.MS_PRIVATE, "make / private")
        for fname in ("hosts", "hostname", "resolv.conf"):
            target = f"/etc/{fname}"
            if os.path.exists(target):
                netns.mount(f"{files}/{fname}", target, None, netns.MS_BIND, f"bind {target}")
        netns.sethostname(hostname)
        from netplumb.kernel.netlink import Netlink

        with Netlink() as nl:
            lo = nl.get_link("lo")
            if lo is not None:
                nl.set_link(lo.index, up=True, what="cannot set lo up")
        env = _recv(go)
        if not isinstance(env, dict):
            os.kill(holder, signal.SIGKILL)
            os._exit(1)
        devnull = os.open("/dev/null", os.O_RDONLY)
        # 0600: a log holds what the command printed, secrets among it (see state.py); the
        # command writes through this descriptor whatever user it becomes
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.chdir("/")
        os.execvpe(argv[0], argv, env)
    except BaseException as exc:  # report to the parent through the pipe, then die
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if holder:  # the parent is gone or failed (EPIPE): no holder may outlive this
            os.kill(holder, signal.SIGKILL)
        try:
            os.write(wfd, f"error {message}\n".encode())
        finally:
            os._exit(127)


_spare: Child | None = None


def take() -> Child:
    """A child for the next host: the spare if there is one, else a new one."""
    global _spare
    child, _spare = _spare, None
    if child is not None:
        try:
            done = os.waitpid(child.pid, os.WNOHANG)[0] != 0
        except ChildProcessError:
            done = True
        if not done:
            return child
        child.close()  # it died waiting (killed from outside): start afresh
    return fork()


def make_spare() -> None:
    """Within ``ports.batch()``, fork the next host's child now (dropped at the batch's end)."""
    global _spare  # noqa: PLW0603
    from netplumb import ports

    if _spare is None and ports.in_batch():
        try:
            _spare = fork()
        except OSError:  # no process or pipe to spare: the next host forks its own
            return
        ports.at_batch_end(drop_spare)


def drop_spare() -> None:
    """End the spare: without orders it kills its holder and exits."""
    global _spare
    child, _spare = _spare, None
    if child is not None:
        child.close()
        try:
            os.waitpid(child.pid, 0)
        except ChildProcessError:
            pass
