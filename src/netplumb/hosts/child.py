"""The forked child that becomes a host, and a spare one made ahead of time.

The child unshares its network, UTS and mount namespaces and reports its PID: it is the
host's *holder* (named ``netplumb-hold``), which keeps the namespaces alive for as long as the
host exists. The parent can then set up the network while the child, told the host's name,
files, command and restart policy, makes its mounts, sets its hostname and brings loopback up;
finally, given the command's environment, it starts the command and supervises it
(``hosts/supervise.py``: restart policies, ``stop``/``start``). Reports are lines on one pipe
(``holder PID``, ``pid PID`` once the command runs, ``error TEXT``; end of file ends them),
orders length-prefixed ``marshal`` values on another; end of file on the orders = the parent
gave up or died, and the child exits, taking the namespaces with it.

Within ``ports.batch()`` (a caller starting many hosts), each start forks the next host's
child at once, a *spare*: its namespaces are made (unshare(2) costs 1-4 ms here) while this
host's network is set up, on the other CPU. The spare is dropped at the end of the batch.
"""

from __future__ import annotations

import os

from netplumb.kernel import netns

HOLDER_NAME = "netplumb-hold"  # its name (comm) and command line


class Child:
    """The parent's handle: the child's PID, its report pipe and its order pipe."""

    __slots__ = ("command", "go", "pid", "rfd")

    def __init__(self, pid: int, rfd: int, go: int) -> None:
        self.pid = pid
        self.rfd = rfd
        self.go = go
        self.command = 0  # the command's PID, once reported

    def send(
        self, value: tuple[str, str, str, list[str], tuple[str, int]] | dict[str, str]
    ) -> bool:
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
                elif word == "pid":
                    self.command = int(rest)
                elif word == "error":
                    error = rest
            if holder or error or self.command:
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
    """In the forked child: namespaces, report; then mounts, hostname, loopback; then start
    the command with the environment the parent sends, and supervise it."""
    from netplumb.hosts import supervise
    from netplumb.model.restart import RestartPolicy

    try:
        os.setsid()
        # the holder lives on: it must not keep the caller's terminal or pipes open (a caller
        # reading netplumb's output would wait for their end for as long as the host lives)
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        if devnull > 2:
            os.close(devnull)
        supervise.become_holder()
        netns.unshare(netns.CLONE_NEWNET | netns.CLONE_NEWUTS | netns.CLONE_NEWNS)
        os.write(wfd, f"holder {os.getpid()}\n".encode())
        setup = _recv(go)
        if not isinstance(setup, tuple):  # the parent gave up (or died): take the namespaces
            os._exit(1)
        hostname, files, log, argv, (policy, retries) = setup
        supervise.set_title(f"{supervise.HOLDER_NAME} {os.path.basename(files)}")
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
            os._exit(1)
        os.close(go)
        os.chdir("/")
        supervise.run(wfd, files, log, argv, env, RestartPolicy(policy, retries))
        os._exit(0)
    except BaseException as exc:  # report to the parent through the pipe, then die
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
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
    from netplumb.ops import ports

    if _spare is None and ports.in_batch():
        try:
            _spare = fork()
        except OSError:  # no process or pipe to spare: the next host forks its own
            return
        ports.at_batch_end(drop_spare)


def drop_spare() -> None:
    """End the spare: without orders it exits, and its namespaces go with it."""
    global _spare
    child, _spare = _spare, None
    if child is not None:
        child.close()
        try:
            os.waitpid(child.pid, 0)
        except ChildProcessError:
            pass
