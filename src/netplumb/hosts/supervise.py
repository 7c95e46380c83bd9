"""The holder: the process that keeps a host's namespaces and supervises its command.

The host's forked child (``hosts/child.py``), once its namespaces, mounts, hostname and
loopback are made, becomes the *holder* (named ``netplumb-hold``): it starts the command (in
a session of its own, output to the host's log) and, as its parent, learns how it exits. What
happens then is the host's restart policy (``model/restart.py``, Docker's semantics): the
command is started again in the same namespaces, so with the same name, addresses, MACs,
routes, ``/etc/hosts`` and published ports (they belong to the namespaces, which the holder
keeps), after Docker's back-off; or the host shows as exited and keeps its network.

The holder writes what it knows (``holderfile``'s text format, which its C twin
``holder.c`` writes too) to ``status`` in the host's files directory (absolute paths:
the holder lives in the host's network namespace, where netplumb's state directory would
resolve to another scope): ``state`` (running, restarting, exited), the command's ``pid`` and
start time, ``restart_count``, ``exit_code``. ``netplumb stop``/``start``/``rm`` write an order
to ``control`` (``stop TOKEN GRACE`` or ``start TOKEN``) and send SIGUSR1; the holder carries
it out (SIGTERM to the command's process group, SIGKILL after GRACE seconds; or a start, which
resets the restart count as ``docker start`` does) and writes ``ack TOKEN`` into its status
once done. A host whose last order is ``stop`` is never restarted by its policy. The holder
waits for signals with ``sigtimedwait`` (SIGCHLD, SIGUSR1 blocked), so no order or exit is
lost between two waits and there is no polling.
"""

from __future__ import annotations

import os
import time

from netplumb.hosts import holderfile
from netplumb.kernel.proc import pid_start_time  # a module without imports
from netplumb.model import restart

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:  # the same functions and numbers without ``enum`` (~1.5 MB of the holder's memory)
    import _signal as signal


_SIGNALS = {signal.SIGCHLD, signal.SIGUSR1}


def spawn(argv: list[str], env: dict[str, str], log: str) -> tuple[int, str]:
    """Start the command in a session of its own; (pid, "") or (0, why it could not)."""
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(rfd)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGUSR1):
                signal.signal(sig, signal.SIG_DFL)
            os.setsid()
            devnull = os.open("/dev/null", os.O_RDONLY)
            # 0600: a log holds what the command printed, secrets among it (see state.py); the
            # command writes through this descriptor whatever user it becomes
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            os.dup2(devnull, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.chdir("/")
            os.closerange(3, wfd)  # nothing else of ours leaks into the command
            os.closerange(wfd + 1, 1 << 20)  # (the pipe closes on exec)
            os.execvpe(argv[0], argv, env)
        except BaseException as exc:
            message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            try:
                os.write(wfd, message.encode())
            finally:
                os._exit(127)
    os.close(wfd)
    error = b""
    while chunk := os.read(rfd, 4096):  # end of file: exec succeeded (close-on-exec)
        error += chunk
    os.close(rfd)
    if error:
        os.waitpid(pid, 0)
        return 0, error.decode(errors="replace")
    return pid, ""


class Holder:
    """The supervision loop's state (one per holder process)."""

    def __init__(
        self,
        files: str,
        log: str,
        argv: list[str],
        env: dict[str, str],
        policy: restart.RestartPolicy,
    ) -> None:
        self.files, self.log, self.argv, self.env, self.policy = files, log, argv, env, policy
        self.pid = 0
        self.started = 0.0  # monotonic time of the last start
        self.delay = 0.0  # the last back-off delay
        self.next_start: float | None = None  # during back-off: when to start again
        self.kill_at: float | None = None  # during a stop: when SIGTERM turns to SIGKILL
        self.status: dict[str, object] = {
            "state": "exited",
            "pid": 0,
            "start": None,
            "restart_count": 0,
            "exit_code": 0,
            "error": "",
            "ack": "",
            "started_at": 0.0,
            "finished_at": 0.0,
        }

    def save(self) -> None:
        try:
            holderfile.write_status(self.files, self.status)
        except OSError:
            pass  # the files are gone: the host is being removed, and this holder with it

    def start(self) -> str:
        """Start the command now; the error if it could not be (exit code 127, as a shell)."""
        self.next_start = None
        pid, error = spawn(self.argv, self.env, self.log)
        self.pid = pid
        self.started = time.monotonic()
        if pid:
            self.status.update(
                state="running",
                pid=pid,
                start=pid_start_time(pid),
                error="",
                started_at=time.time(),
            )
        else:
            self.status.update(
                state="exited", pid=0, exit_code=127, error=error, finished_at=time.time()
            )
        return error

    def stopped(self) -> bool:
        return holderfile.read_control(self.files)[:1] == ["stop"]

    def exited(self, code: int) -> None:
        """The command exited with ``code``: record it; per the policy, schedule a restart."""
        ran = time.monotonic() - self.started
        self.pid = 0
        self.kill_at = None
        self.status.update(pid=0, exit_code=code, finished_at=time.time(), state="exited")
        order = holderfile.read_control(self.files)
        if order[:1] == ["stop"]:
            self.status["ack"] = order[1] if len(order) > 1 else ""
            return
        count = int(self.status["restart_count"])  # type: ignore[call-overload]
        if restart.should_restart(self.policy, code, count):
            self.delay = restart.next_delay(self.delay, ran)
            self.next_start = time.monotonic() + self.delay
            self.status.update(state="restarting", restart_count=count + 1)

    def order(self) -> None:
        """Carry out the order in ``control`` (SIGUSR1 says there is one)."""
        words = holderfile.read_control(self.files)
        token = words[1] if len(words) > 1 else ""
        if words[:1] == ["stop"]:
            self.next_start = None
            if self.pid:
                grace = float(words[2]) if len(words) > 2 else 10.0
                sig = signal.SIGTERM if grace > 0 else signal.SIGKILL
                _kill(-self.pid, sig)
                self.kill_at = time.monotonic() + grace
                return  # acknowledged once it has exited
            self.status["state"] = "exited"
        elif words[:1] == ["start"] and not self.pid:
            self.status["restart_count"] = 0
            self.delay = 0.0
            self.start()
        self.status["ack"] = token

    def tick(self) -> None:
        now = time.monotonic()
        if self.kill_at is not None and now >= self.kill_at:
            self.kill_at = None
            if self.pid:
                _kill(-self.pid, signal.SIGKILL)
        if self.next_start is not None and now >= self.next_start:
            if self.stopped():
                self.next_start = None
                self.status["state"] = "exited"
            elif self.start():  # it could not be started again: an exit as a shell's, 127
                self.exited(127)
            self.save()

    def reap(self) -> bool:
        changed = False
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return changed
            if pid == 0:
                return changed
            if pid == self.pid:
                self.exited(restart.exit_code(wait_status))
                changed = True

    def loop(self) -> None:
        while True:
            deadlines = [t for t in (self.next_start, self.kill_at) if t is not None]
            if deadlines:
                info = signal.sigtimedwait(_SIGNALS, max(0.0, min(deadlines) - time.monotonic()))
            else:
                info = signal.sigwaitinfo(_SIGNALS)
            if info is None:
                self.tick()
            elif info.si_signo == signal.SIGCHLD:
                if self.reap():
                    self.save()
            else:
                self.order()
                self.save()


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def become_holder() -> None:
    """In the forked child, before anything is started: name the process ``netplumb-hold``
    (what ``ps`` shows) and block the signals the loop waits for, so none is lost."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    set_title(HOLDER_NAME)


HOLDER_NAME = "netplumb-hold"


def set_title(title: str) -> None:
    """Show ``title`` as the process's command line (``ps``, ``pgrep -f``): the holder is a
    fork of netplumb, whose command line it would show otherwise. As setproctitle(3) does,
    the argument area is overwritten in place (through ``/proc/self/mem``), the title cut to
    its size and the rest filled with NULs. The short name (``comm``) stays netplumb's: the
    holder's zombie, until PID 1 reaps it, is no ``netplumb-hold`` left running."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48, 49)
        data = title.encode()[: end - start - 1]
        fd = os.open("/proc/self/mem", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, data + b"\0" * (end - start - len(data)), start)
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError):
        pass  # only a name: the holder works without it


def run(
    report: int,
    files: str,
    log: str,
    argv: list[str],
    env: dict[str, str],
    policy: restart.RestartPolicy,
) -> None:
    """Start the command, report ``pid N`` (or ``error TEXT``) on ``report`` and close it, then
    supervise for as long as the host lives (the holder is killed by ``rm``).

    Once the command runs and the caller has its report, the holder execs the C holder
    (``hosts/holder.c``, ~0.05 MB) or, where it was not built, a fresh, small Python
    (``hosts/holder.py``: this module and the policy's, no more, ~2.9 MB) and carries on
    there: a fork of netplumb would keep netplumb's whole memory (~10 MB) for as long as
    the host lives, once its parent has exited. The PID, the children and the blocked and
    pending signals survive exec: no exit of the command is missed meanwhile."""
    holder = Holder(files, log, argv, env, policy)
    error = holder.start()
    holder.save()
    os.write(report, (f"error {error}\n" if error else f"pid {holder.pid}\n").encode())
    os.close(report)
    if error:
        os._exit(127)
    _reexec(holder)
    import gc

    gc.disable()  # the exec failed: supervise from here, as a fork
    holder.loop()


C_HOLDER = "np-holder"  # not netplumb-hold*: its zombie must not look like a live holder
HANDOVER_FD = "NETPLUMB_HOLDER_FD"


def c_holder() -> str | None:
    """The C holder (``hosts/holder.c``, ~0.1 MB a host where a Python holder takes ~2.8 MB),
    next to netplumb's Python where ``scripts/setup.sh`` compiles it; None where it was not
    built (no compiler) or ``NETPLUMB_HOLDER=python`` asks for the Python one."""
    import sys

    if os.environ.get("NETPLUMB_HOLDER") == "python":
        return None
    path = os.path.join(os.path.dirname(sys.executable), C_HOLDER)
    return path if os.access(path, os.X_OK) else None


def _reexec(holder: Holder) -> None:
    """Exec the C holder, or the small Python program, handing over the state in a memory
    file (``holderfile``'s format); returns only if neither could be exec'd."""
    import sys

    data = holderfile.dump_handover(
        holder.files,
        holder.log,
        holder.argv,
        holder.env,
        (holder.policy.name, holder.policy.maximum_retry_count),
        holder.started,  # CLOCK_MONOTONIC: the same clock after exec
        holder.status,
    )
    title = f"{HOLDER_NAME} {os.path.basename(holder.files)}"
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "holder.py")
    try:
        fd = os.memfd_create("netplumb-hold", 0)
        os.set_inheritable(fd, True)
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except (OSError, AttributeError):
        return
    program = c_holder()
    if program is not None:
        try:
            # argv is the title alone, final from the exec on; the memory file's number in
            # the environment (the command gets its own), and the Python holder, which the C
            # one execs if it cannot read the hand-over (built from an older holder.c)
            env = {
                **os.environ,
                HANDOVER_FD: str(fd),
                "NETPLUMB_HOLDER_PYTHON": sys.executable,
                "NETPLUMB_HOLDER_SCRIPT": script,
            }
            os.execve(program, [title], env)
        except OSError:
            pass
    try:
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-B", script, str(fd)])
    except (OSError, ValueError):
        os.close(fd)


def resume(fd: int) -> None:
    """In the exec'd holder (``hosts/holder.py``): take up the supervision where it was."""
    import gc

    gc.disable()
    with os.fdopen(fd, "rb") as f:
        state = holderfile.load_handover(f.read())
    holder = Holder(
        state.files,
        state.log,
        state.argv,
        state.env,
        restart.RestartPolicy(state.policy, state.retries),
    )
    holder.status = state.status
    holder.pid = int(state.status.get("pid") or 0)  # type: ignore[call-overload]
    holder.started = state.started
    set_title(f"{HOLDER_NAME} {os.path.basename(holder.files)}")
    holder.loop()
