"""``netplumb cni agent``: a resident process that serves netplumb-cni calls.

The compiled client (client.c) hands each call to it over a Unix socket in netplumb's state
directory: the call then costs no Python start-up and no imports (the modules, the netlink
socket and the records' caches stay warm), which is what brings an ADD below the reference Go
plugins'. Calls are served one at a time, in order; netplumb's file locks still order them
against plugin processes started without the agent. A call's CNI_* and NETPLUMB_* variables
are the client's; everything else (the state directory among them) is the agent's own, which
is why the socket lives in that state directory.
"""

from __future__ import annotations

import os
import socket

from netplumb import state
from netplumb.cni.plugin import handle

SOCKET = "cni-agent.sock"
TIMEOUT = 30.0  # a client that stops sending is dropped
_OWN = ("NETPLUMB_STATE_DIR", "NETPLUMB_STATE_ROOT")  # where the state is: the agent's own


def socket_path() -> str:
    return state.path(SOCKET)


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


def serve(ready: object = None) -> None:
    """Serve until killed. ``ready``: a callable run once the socket listens (tests)."""
    from netplumb.cni import add, ipam, teardown  # noqa: F401
    from netplumb.kernel.session import host_socket
    from netplumb.ops import engine, networks  # noqa: F401 -- loaded once, before any call

    host_socket()
    state.ensure_dir()
    path = socket_path()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # bind(2) creates the socket file with the umask's mode: 0600 from its creation (nothing
    # else runs in this process yet, so the process-wide umask is ours to change for a moment)
    old_umask = os.umask(0o177)
    try:
        srv.bind(path + ".tmp")
    finally:
        os.umask(old_umask)
    os.replace(path + ".tmp", path)
    srv.listen(64)
    if callable(ready):
        ready()
    try:
        while True:
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                try:
                    environ, stdin = _read_request(conn)
                    engine.fail_after_for_tests(environ.get("NETPLUMB_FAIL_AFTER", ""))
                    rc, out = handle(environ, stdin)
                    conn.sendall(bytes([rc]) + (out + "\n" if out else "").encode())
                except OSError:
                    continue  # the client went away; the next call is unaffected
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        srv.close()
