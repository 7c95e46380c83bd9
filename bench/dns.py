"""DNS servers side by side: Docker's embedded DNS, aardvark-dns 1.4, dnsmasq, netplumb.

Usage: .venv/bin/python bench/dns.py [--quick] [--sides docker,aardvark,...]
       (root, a running Docker Engine; ``make services`` builds the busybox image)

Per side (bench/dnssides.py): a server with a member name, a fake upstream (dnsmasq in a
namespace of its own, answering fwd.example.test, NXDOMAIN for all else) and an asker; the load
generator (bench/dnsload.py: UDP, 64 queries in flight, one process) runs in the asker's
network namespace for SECONDS per figure and query:

  member     the member's name, A          (answered by the server itself)
  missing    a name nobody has, A          (NXDOMAIN; every side here forwards it upstream)
  forwarded  fwd.example.test, A           (forwarded to the fake upstream, no cache)

Rounds alternate the sides' order; each figure is the median of the rounds (queries/s,
p50, p99 of each round's per-query latencies). Then the time until a new name resolves
(ROUNDS_NEW per side): from ``docker run -d`` returning (Docker), from SIGHUP after the
config is rewritten (aardvark-dns, dnsmasq), from a hosts file renamed into --hostsdir
(dnsmasq, inotify), from ``netplumb run`` returning (netplumb), to the first answer of a
poller asking every millisecond from the asker's namespace.

``floor``: the generator against dnsmasq answering from a host record on a namespace's
loopback, its own ceiling on this machine (and its CPU per query).

netplumb's side (dnssides.NetplumbSide) runs when its name server is in the tree
(ops/dnsserver.py).
Targets (issue 14): netplumb's queries/s >= Docker's, p99 <= Docker's, a new name resolvable
<= 100 ms after ``run`` returns. Writes dns.json to $BENCH_RESULTS (default bench/results).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import dnslab
import dnssides

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "results") / "dns.json"
KINDS = ("member", "missing", "forwarded")
ALL_SIDES = ("docker", "aardvark", "dnsmasq", "dnsmasq-hostsdir", "netplumb")
TARGET_NEW_MS = 100.0


def floor(nss: dnslab.Namespaces, tag: str, seconds: float, window: int) -> dict[str, Any]:
    """The generator against dnsmasq on a namespace's loopback: the generator's ceiling."""
    ns = nss.add(f"npb-dns-{tag}-floor")
    nss.spawn(
        ns,
        dnslab.dnsmasq_argv(
            "-p",
            "53",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--host-record=web1,10.98.0.3",
        ),
    )
    enter = ["ip", "netns", "exec", ns]
    dnslab.wait_answers(enter, "127.0.0.1", "web1")
    out: dict[str, Any] = dnslab.load_in(enter, "127.0.0.1", "web1", seconds, window)
    return out


def summary(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"median_ms": None}
    qs = statistics.quantiles(xs, n=20) if len(xs) >= 2 else xs * 19
    return {
        "median_ms": round(statistics.median(xs), 2),
        "p95_ms": round(qs[18], 2),
        "min_ms": round(min(xs), 2),
        "max_ms": round(max(xs), 2),
    }


def figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds of one side's runs for one query."""
    rcodes: dict[str, int] = {}
    for r in runs:
        for k, v in r["rcodes"].items():
            rcodes[k] = rcodes.get(k, 0) + v
    return {
        "name": runs[0]["queries"][0],
        "qps": round(statistics.median(r["qps"] for r in runs), 1),
        "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 3),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 3),
        "rcodes": rcodes,
        "generator_cpu_us_per_query": round(
            statistics.median(r["generator_cpu_us_per_query"] for r in runs), 2
        ),
        "rounds": [{k: r[k] for k in ("qps", "p50_ms", "p99_ms", "max_ms")} for r in runs],
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    tag = dnssides.new_tag()
    nss = dnslab.Namespaces()
    sides: list[dnssides.Side] = []
    names = [s for s in args.sides if s != "netplumb" or dnssides.netplumb_available()]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {n: {k: [] for k in KINDS} for n in names}
    new: dict[str, list[float | None]] = {n: [] for n in names}
    steps: dict[str, list[float]] = {n: [] for n in names}
    load = [os.getloadavg()[0]]
    try:
        upstream = dnslab.Upstream(nss, tag)
        sides = dnssides.make_sides(names, nss, upstream, tag)
        result_floor = floor(nss, tag, args.seconds, args.window)
        print(f"floor (generator ceiling): {result_floor['qps']:,.0f} q/s", flush=True)
        for r in range(args.rounds):
            order = list(zip(names, sides, strict=True))
            order = order[r % len(order) :] + order[: r % len(order)]
            for name, side in order:
                for kind in KINDS:
                    q = side.queries[kind]
                    got = dnslab.load_in(side.enter, side.server, q, args.seconds, args.window)
                    runs[name][kind].append(got)
                    print(
                        f"round {r + 1} {name:17s} {kind:9s} {got['qps']:9,.0f} q/s "
                        f"p50 {got['p50_ms']:7.3f} p99 {got['p99_ms']:7.3f} ms "
                        f"{got['rcodes']}",
                        flush=True,
                    )
        for i in range(args.new_rounds):
            for name, side in zip(names, sides, strict=True):
                ms = side.new_name(i)
                new[name].append(ms)
                steps[name].append(side.last_step_ms)
                print(
                    f"new name {i + 1:2d} {name:17s} {ms} ms after the step "
                    f"({side.last_step_ms} ms)",
                    flush=True,
                )
    finally:
        for side in sides:
            side.close()
        nss.close()
    load.append(os.getloadavg()[0])
    out_sides: dict[str, Any] = {}
    for name, side in zip(names, sides, strict=True):
        got_new = [x for x in new[name] if x is not None]
        from_start = [x + t for x, t in zip(new[name], steps[name], strict=True) if x is not None]
        out_sides[name] = {
            "label": side.label,
            "queries": {k: figures(runs[name][k]) for k in KINDS},
            "new_name": {
                "from": NEW_FROM.get(name, ""),
                **summary(got_new),
                "unresolved": sum(1 for x in new[name] if x is None),
                "samples_ms": new[name],
                "step_median_ms": round(statistics.median(steps[name]), 2) if steps[name] else None,
                "from_step_start_median_ms": (
                    round(statistics.median(from_start), 2) if from_start else None
                ),
            },
        }
    if "netplumb" in args.sides and "netplumb" not in names:
        out_sides["netplumb"] = {"label": "netplumb", "skipped": "no name server in this tree"}
    return {
        "benchmark": "dns",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"kernel": platform.release(), "cpus": os.cpu_count(), "load": load},
        "seconds_per_figure": args.seconds,
        "window": args.window,
        "rounds": args.rounds,
        "new_name_rounds": args.new_rounds,
        "floor": {
            k: result_floor[k] for k in ("qps", "p50_ms", "p99_ms", "generator_cpu_us_per_query")
        },
        "sides": out_sides,
        "ratios_to_docker": ratios(out_sides),
        "targets": targets(out_sides),
    }


NEW_FROM = {
    "docker": "docker run -d returning",
    "aardvark": "SIGHUP sent (the network file rewritten before)",
    "dnsmasq": "SIGHUP sent (the addn-hosts file rewritten before)",
    "dnsmasq-hostsdir": "a hosts file renamed into --hostsdir (inotify)",
    "netplumb": "netplumb run returning",
}


def ratios(sides: dict[str, Any]) -> dict[str, Any]:
    """Each side's queries/s and p99 over Docker's, per query."""
    docker = sides.get("docker", {}).get("queries")
    if not docker:
        return {}
    out: dict[str, Any] = {}
    for name, s in sides.items():
        if name == "docker" or "queries" not in s:
            continue
        out[name] = {
            k: {
                "qps": round(s["queries"][k]["qps"] / docker[k]["qps"], 2),
                "p99": round(s["queries"][k]["p99_ms"] / docker[k]["p99_ms"], 2),
            }
            for k in KINDS
            if docker[k]["qps"] and docker[k]["p99_ms"]
        }
    return out


def targets(sides: dict[str, Any]) -> dict[str, Any]:
    np, docker = sides.get("netplumb", {}), sides.get("docker", {})
    if "queries" not in np or "queries" not in docker:
        return {"netplumb": "not measured"}
    out: dict[str, Any] = {}
    for k in KINDS:
        a, b = np["queries"][k], docker["queries"][k]
        out[f"{k} qps >= Docker"] = a["qps"] >= b["qps"]
        out[f"{k} p99 <= Docker"] = a["p99_ms"] <= b["p99_ms"]
    med = np["new_name"]["median_ms"]
    out[f"new name <= {TARGET_NEW_MS:.0f} ms (median)"] = med is not None and med <= TARGET_NEW_MS
    return out


def show(result: dict[str, Any]) -> None:
    print()
    f = result["floor"]
    print(f"generator floor: {f['qps']:,.0f} q/s, {f['generator_cpu_us_per_query']} us CPU/query")
    print(f"{'side':34s} {'query':9s} {'q/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s}  answers")
    for s in result["sides"].values():
        if "queries" not in s:
            print(f"{s['label']:34s} {s.get('skipped', '')}")
            continue
        for k, q in s["queries"].items():
            print(
                f"{s['label']:34s} {k:9s} {q['qps']:9,.0f} {q['p50_ms']:8.3f} "
                f"{q['p99_ms']:8.3f}  {q['rcodes']}"
            )
    print()
    head = ("median", "p95", "min", "max", "step", "start->")
    print(f"{'new name visible, ms':34s} " + " ".join(f"{h:>8s}" for h in head) + "  after")
    keys = (
        "median_ms",
        "p95_ms",
        "min_ms",
        "max_ms",
        "step_median_ms",
        "from_step_start_median_ms",
    )
    for s in result["sides"].values():
        n = s.get("new_name")
        if n and n["median_ms"] is not None:
            print(f"{s['label']:34s} " + " ".join(f"{n[k]:8.1f}" for k in keys) + f"  {n['from']}")
    print(f"targets: {json.dumps(result['targets'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per figure, 1 round, 5 names")
    parser.add_argument("--seconds", type=float, default=5.0, help="per figure (default 5)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-rounds", type=int, default=20)
    parser.add_argument("--window", type=int, default=64, help="queries in flight")
    parser.add_argument("--sides", default=",".join(ALL_SIDES), help="comma-separated")
    args = parser.parse_args(argv)
    args.sides = [s for s in args.sides.split(",") if s]
    unknown = set(args.sides) - set(ALL_SIDES)
    if unknown:
        parser.error(f"unknown side(s): {', '.join(sorted(unknown))}")
    if args.quick:
        args.seconds, args.rounds, args.new_rounds = 1.0, 1, 5
    if os.geteuid() != 0:
        print("bench/dns.py: needs root", file=sys.stderr)
        return 1
    result = measure(args)
    show(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
