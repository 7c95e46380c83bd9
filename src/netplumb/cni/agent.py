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
        if k.startswith(("CNI_", "NETPLUMB_")) and k != "NETPLUMB_STATE_DIR":
            del environ[k]
    for item in head.split(b"\0"):
        key, eq, value = item.decode(errors="surrogateescape").partition("=")
        if eq and key != "NETPLUMB_STATE_DIR":
            environ[key] = value
    return environ, body.decode(errors="replace")


def serve(ready: object = None) -> None:
    """Serve until killed. ``ready``: a callable run once the socket listens (tests)."""
    from netplumb import engine, networks, ports  # noqa: F401 -- loaded once, before any call
    from netplumb.cni import ipam, teardown  # noqa: F401
    from netplumb.kernel.session import host_socket

    host_socket()
    state.ensure_dir()
    path = socket_path()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path + ".tmp")
    os.chmod(path + ".tmp", 0o600)
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
