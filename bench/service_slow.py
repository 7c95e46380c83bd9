"""The slow-client case of bench/service.py (issue 15): 1,000 idle connections held open against
one instance whose connection limit they fill (``--max-connections 1000``), half that never
sent a byte and half kept alive after a request, reopened as soon as the server closes one;
meanwhile a client sends 100 requests/s (GET /healthz, each on a new connection, as a client
arriving at a busy server does). Target: no 503, p99 < 50 ms.

Before issue 15 every such client got 503 until the idle ones timed out (60 s); now a new
connection closes the idlest one that is not in the middle of a request.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from typing import Any

IDLE = 1000
RATE = 100.0
GET = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


def _open_idle(port: int, kept: bool) -> socket.socket | None:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if kept:
            s.sendall(GET.replace(b"Connection: close", b"Connection: keep-alive"))
            s.recv(4096)  # the answer (one segment); then the connection idles
        s.setblocking(False)
        return s
    except OSError:
        return None


def _hold(port: int, stop: threading.Event, counts: dict[str, int]) -> None:
    """Keep IDLE idle connections open: reopen each one the server closes."""
    sel = selectors.DefaultSelector()
    for i in range(IDLE):
        s = _open_idle(port, kept=i % 2 == 0)
        if s is not None:
            sel.register(s, selectors.EVENT_READ, i % 2 == 0)
    counts["held"] = len(sel.get_map())
    while not stop.is_set():
        for key, _ev in sel.select(0.05):
            held = key.fileobj
            assert isinstance(held, socket.socket)
            try:
                data = held.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(held)
                held.close()
                counts["closed by the server"] = counts.get("closed by the server", 0) + 1
                again = _open_idle(port, kept=bool(key.data))
                if again is not None:
                    sel.register(again, selectors.EVENT_READ, key.data)
    for key in list(sel.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    sel.close()


def _one(port: int) -> tuple[float, int]:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(GET)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return (time.perf_counter() - started) * 1000, status


def slow_clients(port: int, duration: float) -> dict[str, Any]:
    """Run the case against an instance on ``port`` started with ``--max-connections 1000``."""
    stop = threading.Event()
    counts: dict[str, int] = {}
    holder = threading.Thread(target=_hold, args=(port, stop, counts), daemon=True)
    holder.start()
    while "held" not in counts:
        time.sleep(0.05)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    n = int(duration * RATE)
    for i in range(n):
        delay = start + i / RATE - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            ms, status = _one(port)
        except OSError:
            ms, status = 0.0, 0
        latencies.append(ms)
        statuses[status] = statuses.get(status, 0) + 1
    elapsed = time.perf_counter() - start
    stop.set()
    holder.join()
    latencies.sort()
    return {
        "duration_s": duration,
        "idle_connections": counts["held"],
        "idle_closed_by_server": counts.get("closed by the server", 0),
        "requests": n,
        "requests_per_s": round(n / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": round(latencies[n // 2], 2),
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))], 2),
        "max_ms": round(latencies[-1], 2),
    }
