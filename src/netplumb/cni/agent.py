"""``netplumb cni agent``: a resident process that serves netplumb-cni calls.

The compiled client (client.c) hands each call to it over a Unix socket in netplumb's state
directory: the call then costs no Python start-up and no imports (the modules, the netlink
socket and the records' caches stay warm), which is what brings an ADD below the reference Go
plugins'. Calls are served one at a time, in order; netplumb's file locks still order them
against plugin processes started without the agent. A call's CNI_* and NETPLUMB_* variables
are the client's; everything else (the state directory among them) is the agent's own, which
is why the socket lives in that state directory.

Started on demand
-----------------
Nobody has to start it: a client that finds no agent (no socket, or a socket nobody listens
on: an agent that was killed) starts one (``on_demand``, a grandchild in a session of its own,
its standard streams on /dev/null and no other descriptor of the runtime's, so a runtime that
reads the plugin's output to EOF is not kept waiting) and serves its own call by the plain
Python plugin. Later calls find the agent.

One agent per state directory: ``cni-agent.lock`` is the arbiter, an exclusive ``flock`` held
for the agent's whole life (the kernel drops it when the agent dies, however it dies). A client
takes it before it starts an agent and hands it over (descriptor 3): of many first calls at
once, one starts an agent, the others go the plain way. ``netplumb cni agent`` started by hand
(the Kubernetes DaemonSet) waits for the lock: it takes over when an on-demand agent exits.
The lock file holds the agent's PID.

An on-demand agent exits after ``IDLE_DEFAULT`` seconds without a call
(``NETPLUMB_CNI_AGENT_IDLE`` in the environment of the call that starts it changes that; 0:
never), removing its socket first and serving the calls already queued. It also notices a new
netplumb: before each call it compares its modules' files with what it loaded (inode, size,
mtime); if one changed (an upgrade), it removes its socket, releases the lock and closes the
connection without an answer, and the client serves the call by the plain plugin (the new code)
and starts a new agent.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys

from netplumb import state
from netplumb.cni.plugin import handle
from netplumb.errors import NetplumbError

SOCKET = "cni-agent.sock"
LOCK = "cni-agent.lock"
TAG = "netplumb-cni-agent"  # on an on-demand agent's command line (pgrep -f)
TIMEOUT = 30.0  # a client that stops sending is dropped
IDLE_DEFAULT = 300.0  # seconds without a call before an on-demand agent exits
_OWN = ("NETPLUMB_STATE_DIR", "NETPLUMB_STATE_ROOT")  # where the state is: the agent's own


def socket_path() -> str:
    return state.path(SOCKET)


def lock_path() -> str:
    return state.path(LOCK)


def take_lock(wait: bool) -> int | None:
    """The agent lock of this state directory (its descriptor), waiting for it or not; None
    when another agent holds it (``wait`` False)."""
    import fcntl

    state.ensure_dir()
    fd = state.open_file(lock_path(), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


class Fingerprint:
    """The files of the netplumb modules this process loaded: a changed one is an upgrade."""

    def __init__(self) -> None:
        paths = set()
        for name, mod in list(sys.modules.items()):
            f = getattr(mod, "__file__", None)
            if name.startswith("netplumb") and isinstance(f, str):
                while f and not os.path.exists(f):  # a module in a zip: the zip file
                    f = os.path.dirname(f)
                if f:
                    paths.add(f)
        self.paths = sorted(paths)
        self.seen = self.now()

    def now(self) -> list[tuple[int, int, int]]:
        out = []
        for p in self.paths:
            try:
                st = os.stat(p)
            except OSError:
                out.append((0, 0, 0))
                continue
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return out

    def changed(self) -> bool:
        return self.now() != self.seen


def _read_request(conn: socket.socket) -> tuple[dict[str, str], str]:
    chunks = []
    while True:
        data = conn.recv(65536)
        if not data:
            break
        chunks.append(data)
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\0\0")
    if not sep:  # no variables at all: the separator is the first byte
        head, body = b"", raw[1:] if raw.startswith(b"\0") else raw
    environ = dict(os.environ)
    for k in list(environ):
        if k.startswith(("CNI_", "NETPLUMB_")) and k not in _OWN:
            del environ[k]
    for item in head.split(b"\0"):
        key, eq, value = item.decode(errors="surrogateescape").partition("=")
        if eq and key not in _OWN:
            environ[key] = value
    return environ, body.decode(errors="replace")


def gave_up(conn: socket.socket) -> bool:
    """Whether the client closed its end (not only its writing side): it waited in the queue
    longer than its NETPLUMB_CNI_AGENT_TIMEOUT and had the Python plugin serve the call, which
    must not run a second time, late (an ADD after the runtime's DEL)."""
    p = select.poll()
    p.register(conn, select.POLLHUP)
    return any(ev & select.POLLHUP for _fd, ev in p.poll(0))


def _serve_one(conn: socket.socket) -> None:
    from netplumb.ops import engine

    with conn:
        conn.settimeout(TIMEOUT)
        try:
            environ, stdin = _read_request(conn)
            if gave_up(conn):
                return
            engine.fail_after_for_tests(environ.get("NETPLUMB_FAIL_AFTER", ""))
            rc, out = handle(environ, stdin)
            conn.sendall(bytes([rc]) + (out + "\n" if out else "").encode())
        except OSError:
            pass  # the client went away; the next call is unaffected


def _bind(path: str) -> tuple[socket.socket, int]:
    """A listening socket at ``path`` (a stale one there is replaced), and its inode."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # bind(2) creates the socket file with the umask's mode: 0600 from its creation (nothing
    # else runs in this process yet, so the process-wide umask is ours to change for a moment)
    old_umask = os.umask(0o177)
    try:
        try:
            os.unlink(path + ".tmp")
        except FileNotFoundError:
            pass
        srv.bind(path + ".tmp")
    finally:
        os.umask(old_umask)
    os.replace(path + ".tmp", path)
    srv.listen(64)
    return srv, os.stat(path).st_ino


def _unlink_if_ours(path: str, ino: int) -> None:
    try:
        if os.stat(path).st_ino == ino:
            os.unlink(path)
    except OSError:
        pass


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(
    ready: object = None, idle: float = 0.0, lock_fd: int | None = None, wait: bool = True
) -> None:
    """Serve until killed, or until ``idle`` seconds pass without a call (0: never), or until
    netplumb's files change. ``lock_fd``: the agent lock, already taken (by the client that
    started this agent); else it is taken here, waiting for it if ``wait``, else an error if
    another agent holds it. ``ready``: a callable run once the socket listens (tests)."""
    from netplumb.cni import add, ipam, teardown  # noqa: F401
    from netplumb.kernel.session import host_socket
    from netplumb.ops import engine, networks  # noqa: F401 -- loaded once, before any call

    if lock_fd is None:
        lock_fd = take_lock(wait)
        if lock_fd is None:
            raise NetplumbError(f"another netplumb cni agent serves {state.state_dir()}")
    srv = None
    path = socket_path()
    ino = -1
    try:
        signal.signal(signal.SIGTERM, _terminated)  # the finally below removes the socket
        os.set_inheritable(lock_fd, False)  # (the client's was not): no child keeps the lock
        _write_pid(lock_fd)
        host_socket()
        fingerprint = Fingerprint()
        srv, ino = _bind(path)
        if callable(ready):
            ready()
        while True:
            if not select.select([srv], [], [], idle if idle > 0 else None)[0]:
                # idle: no new client finds the socket; serve those already queued, then exit
                _unlink_if_ours(path, ino)
                srv.setblocking(False)
                while True:
                    try:
                        conn, _ = srv.accept()
                    except (BlockingIOError, InterruptedError):
                        return
                    conn.setblocking(True)
                    _serve_one(conn)
            conn, _ = srv.accept()
            if fingerprint.changed():
                # netplumb was upgraded: step aside before the client learns of it (it then
                # serves its call by the new plain plugin and starts a new agent)
                _unlink_if_ours(path, ino)
                os.close(lock_fd)
                lock_fd = -1
                conn.close()
                return
            _serve_one(conn)
    finally:
        _unlink_if_ours(path, ino)
        if srv is not None:
            srv.close()
        if lock_fd >= 0:
            os.close(lock_fd)


def on_demand() -> None:
    """The entry of an agent a client started (``python -S -c ... netplumb-cni-agent FD``):
    FD is the agent lock the client took, ``-`` if it could not (no state directory yet);
    nothing to say to anyone (its output is /dev/null), its exit status alone."""
    arg = sys.argv[2] if len(sys.argv) > 2 else "-"
    try:
        idle = float(os.environ.get("NETPLUMB_CNI_AGENT_IDLE") or IDLE_DEFAULT)
    except ValueError:
        idle = IDLE_DEFAULT
    rc = 0
    try:
        if arg == "-":
            fd = take_lock(wait=False)
            if fd is not None:
                serve(idle=idle, lock_fd=fd)
        else:
            serve(idle=idle, lock_fd=int(arg))
    except (NetplumbError, OSError, ValueError):
        rc = 1
    import posix

    posix._exit(rc)
