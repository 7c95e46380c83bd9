"""The README's speed figures, rendered from ``bench/results/*.json`` with the date of each run.

The README quotes no figure of its own: its Speed section is the block between the markers
below, written by ``bench/report.py`` after a full ``make bench`` (``python bench/summary.py``
rewrites it alone). ``tests/unit/test_readme_figures.py`` fails when the block differs from what
the committed results give, or when a speed figure appears in the README outside it.

No matplotlib here (report.py needs it for plots): the test imports this module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE.parent / "README.md"
BEGIN = "<!-- speed: rendered by bench/summary.py from bench/results/*.json; do not edit -->"
END = "<!-- end of speed -->"
Json = dict[str, Any]


def _load(results: Path, name: str) -> Json | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    data: Json = json.loads(path.read_text())
    return data


def _n(value: float) -> str:
    """A figure as the README prints it: three significant digits, thousands separated."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _day(stamp: str) -> str:
    return stamp[:10]


def _attach(d: Json) -> str:
    s = d["sides"]
    one, ip = s["oneshot"]["median_ms"], s["ipcmds"]["median_ms"]
    return (
        f"- attach of a guest to a bridge ({_day(d['date'])}, medians of "
        f"{d['guests_per_side']} per side): {_n(s['inproc']['median_ms'])} ms in-process; "
        f"the one-shot `pipework` command {_n(one)} ms, {_n(ip / one)}x faster than the `ip` "
        f"commands pipework runs ({_n(ip)} ms); the CNI bridge plugin with host-local "
        f"{_n(s['cni']['median_ms'])} ms."
    )


def _ports(d: Json) -> str:
    if "summary" not in d:  # a run from before issue 16: one round, busybox httpd
        r = d["results"]
        np_, dk, di = r["netplumb -p c50"], r["docker -p c50"], r["direct c50"]
        return (
            f"- a published port ({_day(d['date'])}, 50 connections): "
            f"{_n(np_['iperf_gbps'])} Gbit/s and {_n(np_['rps'])} requests/s through netplumb's "
            f"kernel DNAT, against {_n(dk['iperf_gbps'])} Gbit/s and {_n(dk['rps'])} requests/s "
            f"through Docker's `-p`, and {_n(di['iperf_gbps'])} Gbit/s and {_n(di['rps'])} "
            "requests/s straight to the guest."
        )
    s = d["summary"]
    np_, dk, di = s["netplumb -p"], s["docker -p"], s["direct"]

    def rps(side: Json, mode: str) -> float:
        value: float = side[f"{mode} c50"]["rps"]["median"]
        return value

    def part(mode: str) -> str:
        mine = rps(np_, mode)
        return (
            f"{_n(mine)} requests/s ({_n(mine / rps(di, mode))}x straight to the guest's "
            f"{_n(rps(di, mode))}, {_n(mine / rps(dk, mode))}x Docker's `-p` {_n(rps(dk, mode))})"
        )

    gbps = [side["iperf_gbps"]["median"] for side in (np_, di, dk)]
    floor = ""
    if "floor -p" in s and "floor direct" in s:  # the kernel's own DNAT, the fewest rules
        fp, fd = s["floor -p"], s["floor direct"]
        floor = (
            "; the same DNAT by the fewest nftables rules, to a plain namespace: "
            f"{_n(rps(fp, 'close') / rps(fd, 'close'))}x and "
            f"{_n(rps(fp, 'keepalive') / rps(fd, 'keepalive'))}x its direct path"
        )
    how = (
        "connected to the guest by netplumb's cgroup programs (no translation)"
        if d.get("socket_redirect")
        else "through netplumb's kernel DNAT"
    )
    return (
        f"- a port published on 127.0.0.1 ({_day(d['date'])}, nginx, medians of "
        f"{len(d['rounds'])} shuffled rounds, 50 connections), {how}: "
        f"connection per request {part('close')}; keep-alive {part('keepalive')}; "
        f"{_n(gbps[0])} Gbit/s (direct {_n(gbps[1])}, Docker {_n(gbps[2])}){floor}."
    )


def _scale(d: Json) -> str:
    rows, ratio = d["rows"], d["docker_over_netplumb_per_host"]
    h100, h1000 = rows["netplumb 100"], rows["netplumb 1000"]
    return (
        f"- bringing hosts up and down, each in its own namespaces with an address and a "
        f"published port ({_day(d['date'])}): 100 hosts up in {_n(h100['up_s'])} s and down in "
        f"{_n(h100['down_s'])} s, 1,000 up in {_n(h1000['up_s'])} s and down in "
        f"{_n(h1000['down_s'])} s; per host {_n(ratio['up 100'])}x cheaper than "
        f"`docker run -d -p` and {_n(ratio['down 100'])}x cheaper than `docker rm -f` "
        "(100 hosts)."
    )


def _cni(d: Json) -> str:
    add, ratios = d["add"], d["ratios"]
    if "netplumb_default" in add:  # issue 16: the default install starts its agent on demand
        fast, how = "netplumb_default", "in the default install (its agent started on demand)"
    else:
        fast, how = "netplumb_agent", "through its agent"
    return (
        f"- the CNI plugin ({_day(d['when'])}): ADD {_n(add[fast]['median_ms'])} ms "
        f"{how}, {_n(ratios[f'add {fast}/reference'])}x the reference "
        f"bridge + host-local plugins' {_n(add['reference']['median_ms'])} ms; "
        f"{_n(add['netplumb']['median_ms'])} ms as a plain process "
        f"({_n(ratios['add netplumb/reference'])}x). DEL {_n(d['del'][fast]['median_ms'])} ms "
        f"({_n(ratios[f'del {fast}/reference'])}x the reference's "
        f"{_n(d['del']['reference']['median_ms'])} ms; the kernel's deletion of the veth is most "
        f"of it), {_n(d['del']['netplumb']['median_ms'])} ms as a plain process "
        f"({_n(ratios['del netplumb/reference'])}x)."
    )


def _dns(d: Json) -> str:
    ours, docker = d["sides"]["netplumb"], d["sides"]["docker"]
    q, r = ours["queries"], d["ratios_to_docker"]["netplumb"]
    new = ours["new_name"]
    return (
        f"- a network's name server ({_day(d['date'])}, {d['window']} UDP queries in flight): "
        f"{_n(q['member']['qps'])} queries/s for a member's name "
        f"({_n(r['member']['qps'])}x Docker's embedded DNS, "
        f"{_n(docker['queries']['member']['qps'])}), p99 {_n(q['member']['p99_ms'])} ms "
        f"(Docker {_n(docker['queries']['member']['p99_ms'])} ms); forwarded names "
        f"{_n(q['forwarded']['qps'])} queries/s ({_n(r['forwarded']['qps'])}x); a new host's "
        f"name resolves {_n(-new['median_ms'])} ms before `netplumb run` returns."
    )


def render(results: Path = RESULTS) -> str:
    """The block, markers included."""
    lines = [BEGIN]
    sections = (
        ("attach", _attach),
        ("ports", _ports),
        ("scale", _scale),
        ("cni", _cni),
        ("dns", _dns),
    )
    for name, line in sections:
        data = _load(results, name)
        if data is not None:
            lines.append(line(data))
    lines.append(END)
    return "\n".join(lines)


def current(readme_text: str) -> str | None:
    """The block as the README has it, or None."""
    start, end = readme_text.find(BEGIN), readme_text.find(END)
    if start < 0 or end < start:
        return None
    return readme_text[start : end + len(END)]


def update(readme: Path = README, results: Path = RESULTS) -> bool:
    """Rewrite the README's block; whether it changed."""
    text = readme.read_text()
    old = current(text)
    if old is None:
        raise SystemExit(f"{readme}: no speed block ({BEGIN})")
    new = render(results)
    if new == old:
        return False
    readme.write_text(text.replace(old, new))
    return True


if __name__ == "__main__":
    changed = update(results=Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS)
    print(f"{README}: speed figures {'rewritten' if changed else 'already current'}")
