"""One figure of bench/ports.py: wrk or iperf3 over one path, with the TCP counters that tell
a stall (the client's SYN retransmits, the server's SYNs dropped by PAWS in TIME_WAIT)."""

from __future__ import annotations

import json
import re
import subprocess

from ports_lab import BenchPath

MODES = ("close", "keepalive")  # connection per request (`Connection: close`), wrk's default


def wrk(path: BenchPath, mode: str, conns: int, seconds: int) -> dict[str, float]:
    """Requests/s, p50 and p99 in ms, socket errors; and the counters' deltas over the run."""
    header = ["-H", "Connection: close"] if mode == "close" else []
    url = f"http://{path.host}:{path.http_port}/index.html"
    argv = [*path.client.prefix(), "wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{seconds}s"]
    argv += ["--latency", *header, url]
    client0, server0 = path.client.netstat(), path.server.netstat()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    client1, server1 = path.client.netstat(), path.server.netstat()
    out = done.stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if done.returncode != 0 or not found:
        raise SystemExit(f"wrk over {path.name}: {done.stderr.strip() or out.strip()}")

    def pct(p: str) -> float:
        m = re.search(rf"\b{p}%\s+([\d.]+)(us|ms|s|m)\b", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(found.group(1)),
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "errors": float(sum(map(int, errors.groups()))) if errors else 0.0,
        "syn_retrans": float(client1["TCPSynRetrans"] - client0["TCPSynRetrans"]),
        "paws": float(server1["PAWSTimewait"] - server0["PAWSTimewait"]),
    }


def iperf(path: BenchPath, seconds: int) -> float:
    """TCP Gbit/s, one stream."""
    argv = [*path.client.prefix(), "iperf3", "-c", path.host, "-p", str(path.iperf_port)]
    done = subprocess.run(
        [*argv, "-t", str(seconds), "-J"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"iperf3 over {path.name}: {done.stderr.strip()}") from None
    if "error" in data:
        raise SystemExit(f"iperf3 over {path.name}: {data['error']}")
    end = data["end"]
    bps = (end.get("sum_received") or end.get("sum") or {})["bits_per_second"]
    return float(bps) / 1e9
