"""Published ports under a sustained connection-per-request load: what the client's TIME_WAIT
sockets do to each path.

wrk with `Connection: close` at 10 connections for 1 s slices in a row, one path after the
other (the lab of bench/ports.py): netplumb -p (the connection made straight to the guest by
the cgroup programs), floor -p (the kernel's DNAT: the client's socket stays on 127.0.0.1) and
loopback.
A client that closes as the server does ends some connections in TIME_WAIT on its side. The
kernel reuses such a port for a new connection only where the socket is on a loopback address
(net.ipv4.tcp_tw_reuse=2, the default); otherwise connect() walks the ephemeral range past
them, and slows to milliseconds once half the range (the ports connect() prefers) is held.
A path's slice is its requests/s; the client's TIME_WAIT sockets toward the path's
destination are counted after each.

Usage: .venv/bin/python bench/ports_timewait.py [--quick] [--slices N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from ports_lab import BenchPath, Lab

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "results")
PATHS = ("netplumb -p", "floor -p", "loopback")
PORT_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"


def slice_rps(path: BenchPath, seconds: int) -> float:
    url = f"http://{path.host}:{path.http_port}/index.html"
    argv = [*path.client.prefix(), "wrk", "-t2", "-c10", f"-d{seconds}s"]
    done = subprocess.run(
        [*argv, "-H", "Connection: close", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if done.returncode != 0 or not found:
        raise SystemExit(f"wrk over {path.name}: {done.stderr.strip() or done.stdout.strip()}")
    return float(found.group(1))


def timewait_by_peer(path: BenchPath) -> Counter[str]:
    """The client namespace's TIME_WAIT sockets, counted by the address they were connected to."""
    out = subprocess.run(
        [*path.client.prefix(), "ss", "-Htn", "state", "time-wait"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return Counter(line.split()[-1] for line in out.splitlines() if line.strip())


def collapse_after(rps: list[float]) -> int | None:
    """Seconds of the path's own load before a slice fell under half its first five's median."""
    start = statistics.median(rps[:5])
    return next((i for i, r in enumerate(rps) if r < start / 2), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=40, help="1 s slices per path (40)")
    parser.add_argument("--quick", action="store_true", help="10 slices")
    args = parser.parse_args()
    if args.quick:
        args.slices = 10
    lab = Lab(secrets.token_hex(2), Path(tempfile.mkdtemp(prefix="npbtw-")))
    started = time.monotonic()
    rps: dict[str, list[float]] = {name: [] for name in PATHS}
    timewait: dict[str, list[int]] = {name: [] for name in PATHS}
    try:
        lab.setup()
        paths = {p.name: p for p in lab.paths}
        guest = f"{paths['direct'].host}:{paths['direct'].http_port}"
        # where each path's client socket is connected: the guest itself for netplumb -p
        peer = {
            "netplumb -p": guest if lab.cgroup else "127.0.0.1:18080",
            "floor -p": "127.0.0.1:17080",
            "loopback": "127.0.0.1:38080",
        }
        for name in PATHS:  # one after the other: their clients' sockets share no port space
            for i in range(args.slices):
                rps[name].append(slice_rps(paths[name], 1))
                timewait[name].append(timewait_by_peer(paths[name])[peer[name]])
                print(f"{name} {i + 1:3} s: {rps[name][-1]:,.0f} req/s, "
                      f"{timewait[name][-1]} in TIME_WAIT", flush=True)  # fmt: skip
    finally:
        left = lab.close()
        if left:
            print(f"ports_timewait.py: left behind: {'; '.join(left)}", file=sys.stderr)
    if left:
        return 1
    summary = {
        name: {
            "first5_rps": statistics.median(rps[name][:5]),
            "last5_rps": statistics.median(rps[name][-5:]),
            "collapse_after_s": collapse_after(rps[name]),
            "timewait_max": max(timewait[name]),
        }
        for name in PATHS
    }
    for name, s in summary.items():
        print(f"{name:12} first 5 s {s['first5_rps']:9,.0f} req/s, "
              f"last 5 s {s['last5_rps']:9,.0f}, fell under half after {s['collapse_after_s']} s, "
              f"TIME_WAIT up to {s['timewait_max']}")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ports_timewait.json").write_text(
        json.dumps(
            {
                "benchmark": "ports_timewait",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
                "elapsed_s": time.monotonic() - started,
                "socket_redirect": lab.cgroup is not None,
                "ephemeral_ports": Path(PORT_RANGE).read_text().split(),
                "slices": args.slices,
                "rps": rps,
                "timewait": timewait,
                "summary": summary,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
