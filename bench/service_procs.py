"""Processes, CPU and memory from /proc, wrk runs and py-spy profiles for bench/service.py.

wrk drives each instance with its own process; requests/s add up and the latency percentiles
are merged from the three distributions (bench/service.lua prints them every 0.1 %).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv" / "bin"
PYTHON = str(VENV / "python") if (VENV / "python").exists() else sys.executable
LUA = ROOT / "bench" / "service.lua"
TICK = os.sysconf("SC_CLK_TCK")

Json = dict[str, Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


@contextmanager
def processes(
    argvs: Sequence[Sequence[str]], ports: Sequence[int], *, quiet: bool = False
) -> Iterator[list[int]]:
    """Start one process per argv, wait for its port, stop them all (SIGTERM) at the end.
    ``quiet``: drop its stderr too (the baseline prints a traceback per client that leaves)."""
    procs: list[subprocess.Popen[bytes]] = []
    stderr = subprocess.DEVNULL if quiet else None
    try:
        for argv, port in zip(argvs, ports, strict=True):
            procs.append(subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=stderr))
            wait_port(port, procs[-1])
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def settle(pids: Sequence[int], timeout: float = 60.0) -> None:
    """Wait until ``pids`` are idle: the last run's queued requests and queries are done (a
    single-threaded baseline keeps serving connections wrk has left)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(0.3)
        if sum(cpu_seconds(pid) for pid in pids) - before < 0.3 * 0.05 * len(pids):
            return


# -- wrk ---------------------------------------------------------------------------------------


def merged_percentile(runs: Sequence[Json], q: float) -> float:
    """Latency (ms) at quantile ``q`` of the union of several wrk distributions."""
    total: int = sum(r["requests"] for r in runs)
    if total == 0:
        return float("nan")
    values: list[float] = sorted({v for r in runs for _p, v in r["percentiles"]})

    def cdf(x: float) -> float:
        acc = 0.0
        for r in runs:
            below: list[float] = [p for p, v in r["percentiles"] if v <= x]
            acc += int(r["requests"]) * (max(below) / 100 if below else 0.0)
        return acc / total

    lo, hi = 0, len(values) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cdf(values[mid]) >= q:
            hi = mid
        else:
            lo = mid + 1
    return values[lo] / 1000


class WrkFailed(RuntimeError):
    """wrk gave no result: it could not connect (a single-threaded baseline whose listen backlog
    of 5 is full drops the SYN of a new connection under load)."""


def wrk(
    ports: Sequence[int],
    connections: int,
    duration: float,
    method: str,
    path: str = "/",
    watch: Sequence[int] = (),
) -> Json:
    """One wrk process per port at once; totals, merged p50/p99, CPU % of ``watch`` pids."""
    env = dict(os.environ, BENCH_METHOD=method)
    procs = []
    cpu0 = {pid: cpu_seconds(pid) for pid in watch}
    t0 = time.monotonic()
    for i, port in enumerate(ports):
        conns = connections // len(ports) + (1 if i < connections % len(ports) else 0)
        argv = [
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{duration:g}s",
            "--timeout",
            "30s",
            "-s",
            str(LUA),
            f"http://127.0.0.1:{port}{path}",
        ]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, text=True))
    runs = []
    for p in procs:
        out, _ = p.communicate()
        line = next((x for x in out.splitlines() if x.startswith("BENCH-JSON ")), None)
        if line is None:
            raise WrkFailed(f"wrk printed no result: {out[-500:]}")
        runs.append(json.loads(line.removeprefix("BENCH-JSON ")))
    wall = time.monotonic() - t0
    cpu = {str(pid): round((cpu_seconds(pid) - cpu0[pid]) / wall * 100, 1) for pid in watch}
    settle(watch)
    seconds = max(r["duration_us"] for r in runs) / 1e6
    requests = sum(r["requests"] for r in runs)
    errors = sum(sum(r["errors"].values()) for r in runs)
    return {
        "rps": round(requests / seconds, 1),
        "p50_ms": round(merged_percentile(runs, 0.50), 2),
        "p99_ms": round(merged_percentile(runs, 0.99), 2),
        "requests": requests,
        "errors": errors,
        "cpu_percent": cpu,
    }


def profile(pid: int, seconds: float) -> list[str] | None:
    """The hottest frames of ``pid`` by py-spy: share of the samples in which a thread held the
    GIL with the function on its stack. None if py-spy is not installed."""
    spy = shutil.which("py-spy") or (str(VENV / "py-spy") if (VENV / "py-spy").exists() else None)
    if spy is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".txt") as out:
        r = subprocess.run(
            [
                spy,
                "record",
                "--gil",  # samples of the thread holding the GIL: where the CPU goes
                "-p",
                str(pid),
                "-d",
                str(int(seconds)),
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                out.name,
            ],
            capture_output=True,
            check=False,
        )
        if r.returncode != 0:
            return [f"py-spy failed: {r.stderr.decode()[-200:]}"]
        own: dict[str, int] = {}
        total = 0
        for line in Path(out.name).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            total += int(count)
            for frame in {_function(f) for f in frames}:
                own[frame] = own.get(frame, 0) + int(count)
    top = sorted(own.items(), key=lambda kv: -kv[1])[:25]
    return [f"{n / total * 100:5.1f}% {frame}" for frame, n in top]


def _function(frame: str) -> str:
    """``App._route (birthdays/app.py:127)`` -> ``App._route (birthdays/app.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.split(':')[0].rstrip(')')})" if where else name


def stream_rate(ports: Sequence[int], connections: int, duration: float) -> float:
    """Documents/s arriving at ``connections`` clients that GET / (text, one line per document)
    over and over, spread over ``ports``: progress inside long responses counts too, which
    wrk's completed requests/s cannot show at a few responses per second."""
    import threading

    lines = [0] * connections
    end = time.monotonic() + duration

    def client(i: int) -> None:
        while time.monotonic() < end:
            with socket.create_connection(("127.0.0.1", ports[i % len(ports)])) as s:
                s.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
                head = b""
                while b"\r\n\r\n" not in head and (data := s.recv(4096)):
                    head += data
                lines[i] += head.partition(b"\r\n\r\n")[2].count(b"\n")
                while time.monotonic() < end and (data := s.recv(1 << 16)):
                    lines[i] += data.count(b"\n")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return float(round(sum(lines) / (time.monotonic() - t0)))
