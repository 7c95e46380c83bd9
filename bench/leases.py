"""Lease and release cost of every table of the allocator, in-process, on a temporary state
directory (no root, no kernel objects): a network's addresses, the LAN pool (without its ARP
probe, which is the network's time, not the table's) and a CNI macvlan pool.

Usage: .venv/bin/python bench/leases.py [--n N] [--src DIR]

``--src`` runs the same calls against another checkout's ``src`` (the release before the
allocator, say: ``git archive <commit> src | tar -x -C /tmp/old``), so before and after are
measured side by side on one machine. Each table: N owners lease one address each (lowest
free), then each releases (by owner); the figures are microseconds per call, median of 3 runs.
Prints one line per table and operation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable


def _run(n: int) -> dict[str, tuple[float, float]]:
    from netplumb import state
    from netplumb.cni import ipam
    from netplumb.lan.pool import LanPool
    from netplumb.model.ip import IP, Interface
    from netplumb.model.network import make_network
    from netplumb.ops import lanpool, networks

    out: dict[str, tuple[float, float]] = {}
    # on a tmpfs, as /run/netplumb is: a disk's file creations vary with other work's writes
    where = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        state._root = tmp  # a fresh state directory per run (state_dir() caches it)
        state.write(make_network("b", "npb-l", "10.70.0.0/16").to_record(), "networks", "b")
        pool = LanPool(
            Interface.parse("10.71.0.0/16"),
            IP.parse("10.71.0.10"),
            IP.parse("10.71.255.250"),
            IP.parse("10.71.0.1"),
            None,
            None,
        )
        gw = Interface.parse("10.72.0.1/16")
        owners = [f"pid:{i}:1@eth1" for i in range(n)]
        calls: dict[str, tuple[Callable[[str], object], Callable[[str], object]]] = {
            "network": (
                lambda o: networks.lease("b", o),
                lambda o: networks.release_many([o]),
            ),
            "lan pool": (
                lambda o: lanpool.lease(pool, o, None, set()),
                lanpool.release_holder,
            ),
            "cni pool": (
                lambda o: ipam.pool_lease("mv", gw, o, None),
                lambda o: ipam.pool_release("mv", o),
            ),
        }
        for name, (lease, release) in calls.items():
            t0 = time.perf_counter_ns()
            for o in owners:
                lease(o)
            t1 = time.perf_counter_ns()
            for o in owners:
                release(o)
            t2 = time.perf_counter_ns()
            out[name] = ((t1 - t0) / n / 1000, (t2 - t1) / n / 1000)
        state._root = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--src", default=os.path.join(os.path.dirname(__file__), "..", "src"))
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.src))
    runs = [_run(args.n) for _ in range(3)]
    print(f"{args.n} owners, µs per call (median of 3), src={os.path.abspath(args.src)}")
    for name in runs[0]:
        lease = statistics.median(r[name][0] for r in runs)
        release = statistics.median(r[name][1] for r in runs)
        print(f"  {name:<10} lease {lease:8.1f}   release {release:8.1f}")


if __name__ == "__main__":
    main()
