"""How fast can a Python UDP DNS server be here? Three ways of serving a socket, nothing else.

Usage: .venv/bin/python bench/dns_asyncio.py [--quick]   (root: a throwaway namespace)

Each responder turns every query around (QR set, NOERROR, the question only: no lookup, no
wire-format parsing), so the figure is the ceiling of the way the socket is served, which
bounds any server written that way (netplumb's own is asyncio):

  protocol   asyncio's DatagramProtocol: one datagram_received call per datagram
  drain      asyncio, loop.add_reader on a non-blocking socket whose callback reads until
             EAGAIN (one wake-up serves every datagram waiting)
  blocking   a plain blocking recvfrom/sendto loop (as a thread of its own would run it)

Each way twice: the load generator (bench/dnsload.py, 64 queries in flight) and the responder
in one namespace, on its loopback; and the responder on a bridge's gateway (10.98.0.1) of a lab
namespace, asked by a guest on the bridge over a veth, the path bench/dns.py's servers are
asked on. Rounds alternate the order; medians. Writes dns_asyncio.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import dnslab
import dnssides

RESULTS = Path(os.environ.get("BENCH_RESULTS") or dnslab.ROOT / "bench" / "results")
PORT = 5300

RESPONDER = r"""
import asyncio, socket, sys
how, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])


def turn(data):
    return data[:2] + bytes([data[2] | 0x80, 0x80]) + data[4:]


class Proto(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(turn(data), addr)


async def serve():
    loop = asyncio.get_running_loop()
    if how == "protocol":
        await loop.create_datagram_endpoint(Proto, local_addr=(addr, port))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, port))
        s.setblocking(False)

        def drain():
            while True:
                try:
                    data, addr = s.recvfrom(4096)
                except BlockingIOError:
                    return
                s.sendto(turn(data), addr)

        loop.add_reader(s.fileno(), drain)
    print("ready", file=sys.stderr, flush=True)
    await asyncio.Event().wait()


if how == "blocking":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    print("ready", file=sys.stderr, flush=True)
    while True:
        data, addr = s.recvfrom(4096)
        s.sendto(turn(data), addr)
else:
    asyncio.run(serve())
"""
WAYS = ("protocol", "drain", "blocking")


def one(path: tuple[str, str, str], how: str, seconds: float) -> dict[str, Any]:
    """The responder in ``server_ns`` on ``addr``, the generator in ``asker_ns``."""
    server_ns, asker_ns, addr = path
    proc = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, sys.executable, "-c", RESPONDER, how, addr, str(PORT)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        if proc.stderr.readline().strip() != "ready":
            raise RuntimeError(f"responder {how} did not start")
        got: dict[str, Any] = json.loads(
            dnslab.sh(
                "ip",
                "netns",
                "exec",
                asker_ns,
                dnslab.PYTHON,
                dnslab.LOAD,
                "load",
                "--server",
                addr,
                "--port",
                str(PORT),
                "--query",
                "web1",
                "--duration",
                str(seconds),
            ).stdout
        )
        return got
    finally:
        dnslab.stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds, rounds = (1.0, 1) if args.quick else (4.0, 3)
    if os.geteuid() != 0:
        print("bench/dns_asyncio.py: needs root", file=sys.stderr)
        return 1
    nss = dnslab.Namespaces()
    runs: dict[str, list[dict[str, Any]]] = {
        f"{w}, {where}": [] for w in WAYS for where in ("loopback", "bridge")
    }
    try:
        tag = dnssides.new_tag()
        ns = nss.add(f"npb-dns-{tag}-aio")
        lab = dnslab.Lab(nss, tag, "aiob", None)
        lab.bridge()
        asker = lab.guest()
        paths = {
            "loopback": (ns, ns, "127.0.0.1"),
            "bridge": (lab.ns, asker, dnslab.GATEWAY),
        }
        for r in range(rounds):
            for how in WAYS[r % 3 :] + WAYS[: r % 3]:
                for where, path in paths.items():
                    got = one(path, how, seconds)
                    runs[f"{how}, {where}"].append(got)
                    print(
                        f"round {r + 1} {how:9s} {where:8s} {got['qps']:9,.0f} q/s "
                        f"p99 {got['p99_ms']} ms",
                        flush=True,
                    )
    finally:
        nss.close()
    ways = {
        how: {
            "qps": round(statistics.median(r["qps"] for r in rs), 1),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
        }
        for how, rs in runs.items()
    }
    result = {
        "benchmark": "dns_asyncio",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"kernel": platform.release(), "cpus": os.cpu_count()},
        "python": platform.python_version(),
        "seconds": seconds,
        "rounds": rounds,
        "ways": ways,
    }
    for how, w in ways.items():
        print(f"{how:19s} {w['qps']:9,.0f} q/s  p50 {w['p50_ms']} ms  p99 {w['p99_ms']} ms")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dns_asyncio.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'dns_asyncio.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
