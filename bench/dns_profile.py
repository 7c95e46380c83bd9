"""Where netplumb's name server spends its time under load: py-spy on ``netplumb-dns``.

Usage: .venv/bin/python bench/dns_profile.py [--seconds S]      (root)

The netplumb side of bench/dns.py (a lab namespace, a netplumb network with a member and an
asker, the fake upstream), then for a member's name and a forwarded name: the load generator
(64 UDP queries in flight) runs while ``py-spy record`` samples the server process (found by
the state directory on its command line) for S seconds. Prints the queries/s and the lines
with the most samples of their own (a system call counts on the line that makes it).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dnslab
import dnssides

PY_SPY = str(dnslab.ROOT / ".venv" / "bin" / "py-spy")


def server_pid(state: Path) -> int:
    out = subprocess.run(
        ["pgrep", "-f", f"netplumb-dns {state}"], check=False, capture_output=True, text=True
    ).stdout.split()
    if not out:
        raise RuntimeError(f"no netplumb-dns for {state}")
    return int(out[0])


def profile(side: dnssides.NetplumbSide, query: str, seconds: float) -> None:
    pid = server_pid(side.dir / "state")
    argv = [
        *side.enter,
        dnslab.PYTHON,
        dnslab.LOAD,
        "load",
        "--server",
        side.server,
        "--query",
        query,
        "--duration",
        str(seconds + 2),
    ]
    load = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as raw:
        time.sleep(1)
        subprocess.run(
            [
                PY_SPY,
                "record",
                "-p",
                str(pid),
                "-d",
                str(int(seconds)),
                "-r",
                "200",
                "--format",
                "raw",
                "-o",
                raw.name,
                "--nonblocking",
            ],
            capture_output=True,
            check=True,
        )
        got = json.loads(load.communicate(timeout=60)[0])
        own: collections.Counter[str] = collections.Counter()
        for line in raw:
            stack, _, n = line.rstrip().rpartition(" ")
            own[stack.split(";")[-1]] += int(n)
    total = sum(own.values()) or 1
    print(f"{query}: {got['qps']:,.0f} q/s, p99 {got['p99_ms']} ms, {total} samples")
    for where, count in own.most_common(12):
        print(f"  {100 * count / total:5.1f}%  {where}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/dns_profile.py: needs root", file=sys.stderr)
        return 1
    tag = dnssides.new_tag()
    nss = dnslab.Namespaces()
    side: dnssides.NetplumbSide | None = None
    try:
        side = dnssides.NetplumbSide(nss, tag, dnslab.Upstream(nss, tag))
        for query in side.queries["member"], side.queries["forwarded"]:
            profile(side, query, args.seconds)
    finally:
        if side is not None:
            side.close()
        nss.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
