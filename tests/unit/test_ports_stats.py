"""bench/ports_stats.py: medians and spread over rounds, ratios against the peer path, and
issue 16's targets, on made-up rounds."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "bench"))

import ports_stats  # noqa: E402


def fig(rps: float, p99: float = 1.0, syn: float = 0.0) -> dict[str, float]:
    return {"rps": rps, "p50_ms": 0.5, "p99_ms": p99, "errors": 0.0, "syn_retrans": syn,
            "paws": syn}  # fmt: skip


def rounds() -> list[dict[str, Any]]:
    """Three rounds: netplumb stalls (fewer requests, SYN retransmits) in the second only."""
    out = []
    for np_rps, np_syn in ((95.0, 0.0), (30.0, 500.0), (92.0, 0.0)):
        out.append(
            {
                "order": ["direct", "netplumb -p", "docker -p"],
                "figures": {
                    "direct": {"iperf_gbps": 10.0, "close c50": fig(100.0, p99=2.0)},
                    "netplumb -p": {"iperf_gbps": 9.8, "close c50": fig(np_rps, 2.2, np_syn)},
                    "docker -p": {"iperf_gbps": 5.0, "close c50": fig(50.0, 4.0)},
                },
            }
        )
    return out


def test_the_summary_gives_median_and_spread() -> None:
    s = ports_stats.summarise(rounds())
    assert s["netplumb -p"]["close c50"]["rps"] == {"median": 92.0, "min": 30.0, "max": 95.0}
    assert s["netplumb -p"]["close c50"]["syn_retrans"]["max"] == 500.0
    assert s["direct"]["iperf_gbps"]["median"] == 10.0


def test_ratios_are_of_medians_and_syn_retransmits_are_compared_round_by_round() -> None:
    r = rounds()
    ratio = ports_stats.ratios(ports_stats.summarise(r), r)["netplumb -p / direct"]
    assert ratio["close c50"]["rps_vs_peer"] == pytest.approx(0.92)
    assert ratio["close c50"]["rps_vs_docker"] == pytest.approx(1.84)
    assert ratio["close c50"]["p99_vs_peer"] == pytest.approx(1.1)
    assert ratio["close c50"]["syn_rounds_over_peer"] == 1
    assert ratio["iperf_gbps"]["gbps_vs_peer"] == pytest.approx(0.98)


def test_targets_say_which_are_met_and_an_unreachable_path_misses() -> None:
    r = rounds()
    goals = ports_stats.targets(
        ports_stats.ratios(ports_stats.summarise(r), r), {"hairpin self": "no answer"}
    )
    met = {name: t["met"] for name, t in goals.items()}
    assert met == {
        "hairpin self answers at all": False,
        "127.0.0.1 close c50 req/s vs direct": True,
        "127.0.0.1 close c50 req/s vs Docker": True,
        "127.0.0.1 close c50 p99 vs direct": True,
        "127.0.0.1 close c50 rounds with more SYN retransmits than direct": False,
        "127.0.0.1 Gbit/s vs direct": True,
    }


def test_figures_sort_by_client_then_connections() -> None:
    keys = ["keepalive c1", "close c200", "iperf_gbps", "close c10", "close c1"]
    assert sorted(keys, key=ports_stats.figure_order) == [
        "close c1", "close c10", "close c200", "keepalive c1", "iperf_gbps",
    ]  # fmt: skip


def floor_rounds() -> list[dict[str, Any]]:
    """The rounds above with the floor's paths: its DNAT at 0.90 of its own direct path."""
    out = rounds()
    for r in out:
        r["order"] += ["floor direct", "floor -p"]
        r["figures"]["floor direct"] = {"iperf_gbps": 8.0, "close c50": fig(200.0, p99=1.0)}
        r["figures"]["floor -p"] = {"iperf_gbps": 7.6, "close c50": fig(180.0, p99=1.5)}
    return out


def test_the_floor_is_held_against_its_own_direct_path_and_sets_no_target() -> None:
    r = floor_rounds()
    ratio = ports_stats.ratios(ports_stats.summarise(r), r)
    floor = ratio["floor -p / floor direct"]
    assert floor["close c50"]["rps_vs_peer"] == pytest.approx(0.90)
    assert floor["close c50"]["p99_vs_peer"] == pytest.approx(1.5)
    assert "rps_vs_docker" not in floor["close c50"]
    assert floor["iperf_gbps"]["gbps_vs_peer"] == pytest.approx(0.95)
    assert not any("floor" in name for name in ports_stats.targets(ratio))
    assert ports_stats.PEERS["floor hairpin -p"] == "floor hairpin direct"


def test_the_report_puts_netplumb_beside_the_floor_figure_by_figure() -> None:
    import report_ports

    r = floor_rounds()
    lines = report_ports.against_floor(ports_stats.ratios(ports_stats.summarise(r), r))
    rows = [line for line in lines if line.startswith("| 127.0.0.1")]
    assert rows == [
        "| 127.0.0.1 | close c50 | 0.92 | 0.90 | 1.10 | 1.50 |",
        "| 127.0.0.1 | iperf3 Gbit/s | 0.98 | 0.95 | - | - |",
    ]
    assert report_ports.against_floor({"netplumb -p / direct": {}}) == []


def test_direct_again_is_held_against_direct_sets_no_target_and_is_reported() -> None:
    import report_ports

    r = rounds()
    for i, g in enumerate(r):
        g["figures"]["direct again"] = {
            "iperf_gbps": 10.0,
            "close c50": fig((110.0, 90.0, 105.0)[i], p99=(2.6, 1.8, 2.2)[i]),
        }
    ratio = ports_stats.ratios(ports_stats.summarise(r), r)
    mine = ratio["direct again / direct"]
    assert mine["close c50"]["rps_vs_peer"] == pytest.approx(1.05)
    assert mine["close c50"]["p99_vs_peer"] == pytest.approx(1.1)
    assert not any("again" in name for name in ports_stats.targets(ratio))
    lines = report_ports.against_itself(ratio)
    assert "| close c50 | 1.05 | 1.10 |" in lines
    assert "| iperf_gbps | 1.00 | - |" in lines
    assert report_ports.against_itself({}) == []


def test_the_sustained_load_section_says_when_a_path_fell() -> None:
    import report_ports
    from ports_timewait import collapse_after

    assert collapse_after([100.0, 98.0, 101.0, 99.0, 100.0, 70.0, 49.0, 3.0]) == 6
    assert collapse_after([100.0] * 8) is None
    d = {
        "date": "2026-12-06T00:00:00Z", "slices": 8, "socket_redirect": True,
        "ephemeral_ports": ["32768", "60999"],
        "summary": {
            "netplumb -p": {"first5_rps": 100.0, "last5_rps": 49.0, "collapse_after_s": 6,
                            "timewait_max": 14000},
            "floor -p": {"first5_rps": 100.0, "last5_rps": 100.0, "collapse_after_s": None,
                         "timewait_max": 700},
        },
    }  # fmt: skip
    lines = report_ports.ports_timewait(d)
    assert "| netplumb -p | 100 | 49 | 6 | 14,000 |" in lines
    assert "| floor -p | 100 | 100 | never | 700 |" in lines
