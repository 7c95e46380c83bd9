"""bench/ports.py's rounds summed up: medians with their spread, ratios, issue 16's targets.

Pure: no processes, no files (tests/unit/test_ports_stats.py runs it on made-up rounds).

A round is ``{"order": [path, ...], "figures": {path: {"iperf_gbps": x, "close c50": {...}}}}``
where a wrk figure holds rps, p50_ms, p99_ms, errors, syn_retrans and paws.
"""

from __future__ import annotations

import statistics
from typing import Any

Json = dict[str, Any]
METRICS = ("rps", "p50_ms", "p99_ms", "errors", "syn_retrans", "paws")
# what each path is held against: (path, peer, group); the peer runs without translation
PAIRS = (
    ("netplumb -p", "direct", "127.0.0.1"),
    # the direct path against itself: the resolution of every ratio here (no target)
    ("direct again", "direct", "127.0.0.1"),
    ("docker -p", "direct", "127.0.0.1"),
    ("loopback", "direct", "127.0.0.1"),
    ("lan -p", "lan direct", "lan"),
    ("hairpin -p", "hairpin direct", "hairpin"),
    ("hairpin self", "hairpin direct", "hairpin"),
    # the kernel's floor (no target: what any DNAT in the namespace gives, to hold netplumb's
    # figures against)
    ("floor -p", "floor direct", "floor"),
    ("floor lan -p", "lan direct", "floor"),
    ("floor hairpin -p", "floor hairpin direct", "floor"),
)
PEERS = {path: peer for path, peer, _group in PAIRS}


def figure_order(key: str) -> tuple[int, int]:
    """ "close c1" < "close c10" < ... < "keepalive c200" < "iperf_gbps"."""
    if key == "iperf_gbps":
        return (2, 0)
    mode, conns = key.split()
    return (0 if mode == "close" else 1, int(conns[1:]))


def spread(values: list[float]) -> Json:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(rounds: list[Json]) -> Json:
    """Per path and figure: median, min and max over the rounds of every metric."""
    out: Json = {}
    keys = {(p, k) for r in rounds for p, figs in r["figures"].items() for k in figs}
    for path, key in sorted(keys, key=lambda pk: (pk[0], figure_order(pk[1]))):
        got = [r["figures"][path][key] for r in rounds if key in r["figures"].get(path, {})]
        if key == "iperf_gbps":
            out.setdefault(path, {})[key] = spread(got)
        else:
            out.setdefault(path, {})[key] = {m: spread([g[m] for g in got]) for m in METRICS}
    return out


def ratios(summary: Json, rounds: list[Json]) -> Json:
    """Per pair and figure: ratios of medians (req/s, p99; Gbit/s), and in how many rounds the
    path had more SYN retransmits than its peer in the same round."""
    out: Json = {}
    for path, peer, _group in PAIRS:
        if path not in summary or peer not in summary:
            continue
        mine, theirs = summary[path], summary[peer]
        row: Json = {}
        for key in sorted(set(mine) & set(theirs), key=figure_order):
            if key == "iperf_gbps":
                row[key] = {"gbps_vs_peer": mine[key]["median"] / theirs[key]["median"]}
                continue
            over = sum(
                1
                for r in rounds
                if key in r["figures"].get(path, {})
                and key in r["figures"].get(peer, {})
                and r["figures"][path][key]["syn_retrans"] > r["figures"][peer][key]["syn_retrans"]
            )
            row[key] = {
                "rps_vs_peer": mine[key]["rps"]["median"] / theirs[key]["rps"]["median"],
                "p99_vs_peer": mine[key]["p99_ms"]["median"] / theirs[key]["p99_ms"]["median"],
                "syn_rounds_over_peer": over,
            }
            if path == "netplumb -p" and key in summary.get("docker -p", {}):
                docker = summary["docker -p"][key]["rps"]["median"]
                row[key]["rps_vs_docker"] = mine[key]["rps"]["median"] / docker
        out[f"{path} / {peer}"] = row
    return out


def targets(ratio: Json, unreachable: dict[str, str] | None = None) -> Json:
    """Issue 16's targets, one row each: value, limit, comparison, met. A path that could not
    be measured (``unreachable``) misses its targets."""
    out: Json = {}
    for path in unreachable or {}:
        out[f"{path} answers at all"] = {"value": 0, "limit": 1, "cmp": ">=", "met": False}

    def add(name: str, value: float, limit: float, at_least: bool) -> None:
        met = value >= limit if at_least else value <= limit
        out[name] = {"value": value, "limit": limit, "cmp": ">=" if at_least else "<=", "met": met}

    for key, r in ratio.get("netplumb -p / direct", {}).items():
        if key == "iperf_gbps":
            add("127.0.0.1 Gbit/s vs direct", r["gbps_vs_peer"], 0.95, True)
            continue
        add(f"127.0.0.1 {key} req/s vs direct", r["rps_vs_peer"], 0.9, True)
        if "rps_vs_docker" in r:
            add(f"127.0.0.1 {key} req/s vs Docker", r["rps_vs_docker"], 1.2, True)
        add(f"127.0.0.1 {key} p99 vs direct", r["p99_vs_peer"], 1.2, False)
        add(f"127.0.0.1 {key} rounds with more SYN retransmits than direct",
            r["syn_rounds_over_peer"], 0, False)  # fmt: skip
    for pair, label in (
        ("lan -p / lan direct", "LAN"),
        ("hairpin -p / hairpin direct", "hairpin (other guest)"),
        ("hairpin self / hairpin direct", "hairpin (own port)"),
    ):
        for key, r in ratio.get(pair, {}).items():
            if key == "iperf_gbps":
                add(f"{label} Gbit/s vs direct", r["gbps_vs_peer"], 0.9, True)
            else:
                add(f"{label} {key} req/s vs direct", r["rps_vs_peer"], 0.9, True)
    return out
