"""Published ports: netplumb's -p vs the direct path, Docker's -p and loopback.

Side by side in one run on this machine, each path with wrk (nginx serving a small file:
connection per request and keep-alive, 1, 10, 50 and 200 connections; requests/s, p50, p99,
and the SYN retransmits of the client and SYNs dropped by PAWS at the server during the figure)
and iperf3 (TCP Gbit/s):
  direct            machine ns -> guest address (no translation), netplumb's network
  netplumb -p       machine ns -> 127.0.0.1:PORT: connected to the guest by netplumb's cgroup
                    programs where the machine has cgroup v2 (kernel/socklb.py), else DNAT
  docker -p         the machine's own namespace -> 127.0.0.1:PORT of `docker run -p`
  loopback          machine ns -> a server on its own 127.0.0.1 (the ceiling)
  lan direct / -p   a LAN neighbour -> a server routed behind the machine ns / a port
                    netplumb published on the machine's LAN address (translated by netplumb's
                    tc programs, kernel/lanlb.py, past the machine's netfilter and bridge)
  hairpin direct/-p a second guest -> the server guest's address / its port published on the
                    machine's LAN address; hairpin self: the server guest to its own port
                    (both connected to the guest by the same cgroup programs, else DNAT)
  floor ...         the same direct, 127.0.0.1, LAN and hairpin paths to a plain namespace on
                    a plain bridge, translated by the fewest nftables rules written by hand:
                    the kernel's own cost, what netplumb's figures are held against
At least 5 rounds, the order of the paths shuffled in each (the seed is printed and stored),
a round going figure by figure with every path in its order; medians over the rounds with min
and max. "direct again" is the direct path measured a second time in each round: its ratios to
direct are what a path differs from itself here, the resolution of every other ratio. The
topology: bench/ports_lab.py.

Also the time to publish and unpublish many ports: in process one call (one kernel
transaction) each, the first and the last 100 apart, and all in one call; and one `netplumb
publish` command (one process) each.

Usage: .venv/bin/python bench/ports.py [--quick] [--rounds N] [--seed S]
(on a machine shared with other benchmarks, run each under one `flock`)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ports_lab import Lab
from ports_measure import MODES, iperf, wrk
from ports_stats import PEERS, figure_order, ratios, summarise, targets

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv" / "bin"
RESULTS = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "results")
CONNS = (1, 10, 50, 200)


def run(
    *argv: str,
    ns: str | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
) -> str:
    cmd = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, check=check, timeout=timeout
    ).stdout


def publish_timing(ns: str, env: dict[str, str], count: int) -> dict[str, float]:
    """Publish and unpublish ``count`` ports of one host, in-process: one call (one kernel
    transaction) each, then all in one call. The first and the last 100 one-call publishes are
    timed apart: a publication must cost the same whatever already exists."""
    code = f"""
import time, json
from netplumb.ops import ports
specs = [f"{{p}}:80" for p in range(20000, 20000 + {count})]
each = []
for s in specs:
    t = time.perf_counter()
    ports.publish("host:srv", "srv", [s])
    each.append(time.perf_counter() - t)
t = time.perf_counter()
for s in specs:
    ports.unpublish("host:srv", [s])
each_unpub = time.perf_counter() - t
t = time.perf_counter()
ports.publish("host:srv", "srv", specs)
batch_pub = time.perf_counter() - t
t = time.perf_counter()
ports.unpublish("host:srv", specs)
batch_unpub = time.perf_counter() - t
print(json.dumps(dict(each_publish_s=sum(each), each_unpublish_s=each_unpub,
                      first100_publish_s=sum(each[:100]), last100_publish_s=sum(each[-100:]),
                      publishes_per_s=len(each) / sum(each),
                      batched_publish_s=batch_pub, batched_unpublish_s=batch_unpub)))
"""
    timing: dict[str, float] = json.loads(
        run(str(VENV / "python"), "-c", code, ns=ns, env=env, timeout=1800)
    )
    return timing


def command_timing(ns: str, env: dict[str, str], count: int) -> dict[str, float]:
    """``netplumb publish srv PORT:80``, one command (one process) per port, ``count`` of them,
    then ``netplumb unpublish`` the same way: what a script publishing ports one by one pays,
    process start included. A driver in the namespace starts the commands (``ip netns exec``
    per command would be timed too)."""
    code = f"""
import json, statistics, subprocess, time
np = {str(VENV / "netplumb")!r}
py = {str(VENV / "python3")!r}
each = []
floor = []
for i, p in enumerate(range(21000, 21000 + {count})):
    t = time.perf_counter()
    subprocess.run([np, "publish", "srv", f"{{p}}:80"], check=True, stdout=subprocess.DEVNULL)
    each.append(time.perf_counter() - t)
    if i % 10 == 0:  # the floor, measured alongside: an interpreter that does nothing
        t = time.perf_counter()
        subprocess.run([py, "-S", "-c", "pass"], check=True)
        floor.append(time.perf_counter() - t)
t = time.perf_counter()
for p in range(21000, 21000 + {count}):
    subprocess.run([np, "unpublish", "srv", f"{{p}}:80"], check=True)
unpub = time.perf_counter() - t
print(json.dumps(dict(command_publish_s=sum(each), command_unpublish_s=unpub,
                      command_first100_s=sum(each[:100]), command_last100_s=sum(each[-100:]),
                      command_median_ms=1000 * statistics.median(each),
                      python_floor_median_ms=1000 * statistics.median(floor))))
"""
    timing: dict[str, float] = json.loads(
        run(str(VENV / "python"), "-c", code, ns=ns, env=env, timeout=3600)
    )
    return timing


def publish_targets(timing: dict[str, float], count: int) -> dict[str, dict[str, float]]:
    """Issue 13's targets: 1,000 commands <= 20 s (scaled to ``count``), the last 100 no slower
    than 1.2x the first 100, >= 1,000 publishes/s in-process."""
    total = timing["command_publish_s"]
    ratio = timing["command_last100_s"] / timing["command_first100_s"]
    rate = timing["publishes_per_s"]
    limit_s = 20.0 * count / 1000
    return {
        f"command_total_s ({count})": {"value": total, "limit": limit_s, "met": total <= limit_s},
        "command_last100_over_first100": {"value": ratio, "limit": 1.2, "met": ratio <= 1.2},
        "in_process_publishes_per_s": {"value": rate, "limit": 1000, "met": rate >= 1000},
    }


def rounds_of(lab: Lab, args: argparse.Namespace, seed: int) -> list[dict[str, object]]:
    """The figures of every round, the paths in a shuffled order each time. A round goes figure
    by figure, every path in the round's order for each, so a path and its peer are measured
    seconds apart rather than minutes: what the machine does meanwhile (its other tenants, its
    clock) weighs on both alike."""
    seconds, iperf_s = (1, 1) if args.quick else (2, 3)
    rng = random.Random(seed)
    rounds: list[dict[str, object]] = []
    keys = ["iperf_gbps", *(f"{mode} c{c}" for mode in MODES for c in CONNS)]
    for i in range(args.rounds):
        order = rng.sample([p.name for p in lab.paths], len(lab.paths))
        figures: dict[str, dict[str, object]] = {name: {} for name in order}
        t0 = time.monotonic()
        for key in keys:
            for name in order:
                path = next(p for p in lab.paths if p.name == name)
                if key == "iperf_gbps":
                    figures[name][key] = iperf(path, iperf_s)
                    continue
                # --quick: the LAN and hairpin paths at 50 connections only
                if args.quick and path.group != "127.0.0.1" and key.split()[1] != "c50":
                    continue
                mode, conns = key.split()
                figures[name][key] = wrk(path, mode, int(conns[1:]), seconds)
        rounds.append({"order": order, "figures": figures})
        print(
            f"round {i + 1}/{args.rounds} ({time.monotonic() - t0:.0f} s): " + ", ".join(order),
            flush=True,
        )
    return rounds


def show(summary: dict[str, dict[str, dict[str, object]]], rounds: list[dict[str, object]]) -> None:
    print(f"{'path':20} {'figure':13} {'req/s median':>12} {'min-max':>15} {'p50 ms':>7} "
          f"{'p99 ms':>8} {'vs direct':>9}  SYN retransmits / PAWS drops per round")  # fmt: skip
    keys = sorted({k for s in summary.values() for k in s if k != "iperf_gbps"}, key=figure_order)
    for key in keys:
        for path, figs in summary.items():
            if key not in figs:
                continue
            f: dict[str, dict[str, float]] = figs[key]  # type: ignore[assignment]
            peer = PEERS.get(path, path)
            base = summary[peer][key]["rps"]["median"]  # type: ignore[index]
            per = [r["figures"][path][key] for r in rounds]  # type: ignore[index]
            syn = "/".join(f"{g['syn_retrans']:.0f}" for g in per)
            paws = "/".join(f"{g['paws']:.0f}" for g in per)
            print(
                f"{path:20} {key:13} {f['rps']['median']:12,.0f} "
                f"{f['rps']['min']:7,.0f}-{f['rps']['max']:<7,.0f} {f['p50_ms']['median']:7.2f} "
                f"{f['p99_ms']['median']:8.2f} {f['rps']['median'] / base:9.2f}  {syn}  {paws}"
            )
    for path, figs in summary.items():
        g: dict[str, float] = figs["iperf_gbps"]  # type: ignore[assignment]
        print(f"{path:20} iperf3 {g['median']:.2f} Gbit/s ({g['min']:.2f}-{g['max']:.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s figures, 100 ports")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--seed", type=int, help="the shuffle's seed (default: a random one)")
    args = parser.parse_args()
    count = 100 if args.quick else 1000
    for tool in ("iperf3", "wrk", "docker", "busybox", "nginx", "nc", "nsenter"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run `make setup` (and `make services`)")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    print(f"seed {seed}", flush=True)
    lab = Lab(secrets.token_hex(2), Path(tempfile.mkdtemp(prefix="npbports-")))
    started = time.monotonic()
    try:
        lab.setup()
        rounds = rounds_of(lab, args, seed)
        timing = publish_timing(lab.machine, lab.env, count)
        timing.update(command_timing(lab.machine, lab.env, count))
    finally:
        left = lab.close()
        if left:  # a benchmark cleans up as a test does: what it started must be gone
            print(f"ports.py: left behind: {'; '.join(left)}", file=sys.stderr)
    if left:
        return 1
    elapsed = time.monotonic() - started
    summary = summarise(rounds)
    ratio = ratios(summary, rounds)
    goals = targets(ratio, lab.unreachable)
    print(
        f"published ports, {args.rounds} rounds (seed {seed}), {os.cpu_count()} CPUs, "
        f"kernel {platform.release()}, {elapsed:.0f} s"
    )
    show(summary, rounds)
    for name, why in lab.unreachable.items():
        print(f"{name:15} UNREACHABLE: {why}")
    print(
        f"publish {count} ports one transaction each: {timing['each_publish_s']:.2f} s "
        f"({timing['publishes_per_s']:.0f}/s; first 100 {timing['first100_publish_s']:.3f} s, "
        f"last 100 {timing['last100_publish_s']:.3f} s), "
        f"unpublish: {timing['each_unpublish_s']:.2f} s; batched: publish "
        f"{timing['batched_publish_s']:.3f} s, unpublish {timing['batched_unpublish_s']:.3f} s"
    )
    print(
        f"publish {count} ports one `netplumb publish` command each: "
        f"{timing['command_publish_s']:.2f} s (first 100 {timing['command_first100_s']:.2f} s, "
        f"last 100 {timing['command_last100_s']:.2f} s; median "
        f"{timing['command_median_ms']:.1f} ms a command, `python -S -c pass` "
        f"{timing['python_floor_median_ms']:.1f} ms), "
        f"unpublish: {timing['command_unpublish_s']:.2f} s"
    )
    publish_goals = publish_targets(timing, count)
    print("targets (issue 16):")
    for name, t in goals.items():
        print(f"  {name}: {t['value']:.2f} ({t['cmp']} {t['limit']}: "
              f"{'met' if t['met'] else 'MISSED'})")  # fmt: skip
    print(
        "targets (issue 13): "
        + ", ".join(
            f"{k} {t['value']:.2f} (limit {t['limit']}: {'met' if t['met'] else 'MISSED'})"
            for k, t in publish_goals.items()
        )
    )
    paths = {
        p.name: {
            "group": p.group,
            "client": p.client.label,
            "server": p.server.label,
            "target": f"{p.host}:{p.http_port}",
            "peer": p.peer,
            "note": p.note,
        }
        for p in lab.paths
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ports.json").write_text(
        json.dumps(
            {
                "benchmark": "ports",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
                "quick": args.quick,
                "seconds": 1 if args.quick else 2,
                "elapsed_s": elapsed,
                "seed": seed,
                "server": "nginx (Debian nginx-light), one worker, backlog 4096",
                # netplumb -p's connections made to the guest by the cgroup programs
                # (kernel/socklb.py), or translated by the DNAT (no cgroup v2 here)
                "socket_redirect": lab.cgroup is not None,
                "paths": paths,
                "unreachable": lab.unreachable,
                "rounds": rounds,
                "summary": summary,
                "ratios": ratio,
                "targets": goals,
                "publish_timing": {**timing, "ports": count},
                "publish_targets": publish_goals,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
