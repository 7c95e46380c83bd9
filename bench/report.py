"""bench/REPORT.md from bench/results/*.json: a table per benchmark and PNG plots.

Every benchmark writes its own JSON (side by side with its peers, in one run); this script only
reads them, so the report always shows the figures of the last runs, with their dates.

Usage: .venv/bin/python bench/report.py [RESULTS_DIR]   (``make bench`` runs it after the
benchmarks; ``make bench QUICK=1`` keeps its short runs apart, in bench/results/quick/, whose
REPORT.md and plots go there too, so a quick run never replaces the figures of a full one)
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import report_md
from report_md import Json, plt, save, table
from report_ports import ports, ports_timewait

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUT = HERE  # REPORT.md and plots/ go here (a quick run: next to its results)


def load(name: str) -> Json | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    data: Json = json.loads(path.read_text())
    return data


# -- attach -------------------------------------------------------------------------------------


def attach(d: Json) -> list[str]:
    sides: Json = d["sides"]
    out = [f"## Attach a guest to a bridge (`bench/attach.py`, {d['date']})", ""]
    out.append(
        f"{d['guests_per_side']} guests per side, a static address and gateway each; targets: "
        f"in-process <= {d['targets_ms']['inproc_median']} ms, one-shot <= "
        f"{d['targets_ms']['oneshot_median']} ms (median)."
    )
    out.append("")
    rows = [
        [
            s["label"],
            s["median_ms"],
            s["p95_ms"],
            round(s["median_ms"] / sides["oneshot"]["median_ms"], 2),
        ]
        for s in sides.values()
    ]
    out += table(["side", "median ms", "p95 ms", "ratio to netplumb one-shot"], rows)
    samples: Json = d.get("samples_ms", {})
    if samples:
        fig, ax = plt.subplots(figsize=(8, 4))
        labels = [sides[k]["label"] for k in samples]
        ax.boxplot(list(samples.values()), orientation="horizontal", showfliers=False)
        ax.set_yticks(range(1, len(labels) + 1), labels, fontsize=8)
        ax.set_xlabel("ms per attach (whiskers: 1.5 IQR, outliers hidden)")
        ax.set_title("attach latency")
        out += [save(fig, "attach.png"), ""]
    return out


# -- scale --------------------------------------------------------------------------------------


def scale(d: Json) -> list[str]:
    rows: Json = d["rows"]
    out = [f"## Up and down of many hosts (`bench/scale.py`, {d['date']})", ""]
    body = []
    for name, r in rows.items():
        n = int(r["n"])
        body.append([name, r["up_s"], r["down_s"], 1000 * r["up_s"] / n, 1000 * r["down_s"] / n])
    out += table(["side", "up s", "down s", "up ms/host", "down ms/host"], body)
    targets: Json = d.get("targets", {})
    if targets:
        out += table(
            ["target", "limit s", "measured s", "met"],
            [[k, t["limit_s"], t["s"], "yes" if t["met"] else "no"] for k, t in targets.items()],
        )
    ratios: Json = d.get("docker_over_netplumb_per_host", {})
    if ratios:
        out += table(["Docker / netplumb per host", "ratio"], [[k, v] for k, v in ratios.items()])
    ns = [(int(r["n"]), r) for name, r in rows.items() if name.startswith("netplumb")]
    if ns:
        fig, ax = plt.subplots(figsize=(7, 4))
        xs = [n for n, _ in ns]
        ax.plot(xs, [1000 * r["up_s"] / n for n, r in ns], "o-", label="netplumb up")
        ax.plot(xs, [1000 * r["down_s"] / n for n, r in ns], "s-", label="netplumb down")
        for name, r in rows.items():
            if name.startswith("docker"):
                n = int(r["n"])
                ax.plot([n], [1000 * r["up_s"] / n], "^", label=f"docker run -d -p ({n})")
                ax.plot([n], [1000 * r["down_s"] / n], "v", label=f"docker rm -f ({n})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("hosts")
        ax.set_ylabel("ms per host")
        ax.set_title("cost per host as the system grows (flat = linear)")
        ax.legend(fontsize=8)
        out += [save(fig, "scale.png"), ""]
    return out


# -- ports --------------------------------------------------------------------------------------


# -- service ------------------------------------------------------------------------------------


def service(d: Json) -> list[str]:
    out = ["## The birthday service (`bench/service.py`)", ""]
    scenarios = [k for k in d if k.startswith(("POST", "GET"))]
    out += table(
        [
            "scenario",
            "baseline req/s",
            "service req/s",
            "ratio",
            "baseline p99 ms",
            "service p99 ms",
        ],
        [
            [
                k,
                d[k]["baseline"]["rps"],
                d[k]["service"]["rps"],
                d[k]["ratio_rps"],
                d[k]["baseline"]["p99_ms"],
                d[k]["service"]["p99_ms"],
            ]
            for k in scenarios
        ],
    )
    db: Json = d.get("db_find_10k", {})
    if db:
        out += table(["GET of 10,000 documents", "value"], [[k, v] for k, v in db.items()])
    mem: Json = d.get("stream_memory", {})
    if mem:
        keep = ("documents", "complete", "docs_per_s", "rss_peak_sampled_mib", "rss_hwm_mib")
        out += table(["streaming", "value"], [[k, mem[k]] for k in keep if k in mem])
    slow: Json = d.get("slow_clients", {})
    if slow:
        out += [
            f"Slow clients: {slow['idle_connections']:,} idle connections held open for "
            f"{slow['duration_s']:g} s while a client sends {slow['requests_per_s']:g} "
            "requests/s (target of issue 15: no 503, p99 < 50 ms).",
            "",
        ]
        statuses = ", ".join(f"{k}: {v:,}" for k, v in slow["statuses"].items())
        rows: list[list[object]] = [
            ["requests", f"{slow['requests']:,}"],
            ["answers", statuses],
            ["p50 ms", slow["p50_ms"]],
            ["p99 ms", slow["p99_ms"]],
            ["max ms", slow["max_ms"]],
            ["idle connections the server closed", f"{slow['idle_closed_by_server']:,}"],
        ]
        out += table(["slow clients", "value"], rows)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    ys = range(len(scenarios))
    a1.barh(
        [y - 0.2 for y in ys], [d[k]["baseline"]["rps"] for k in scenarios], 0.4, label="baseline"
    )
    a1.barh(
        [y + 0.2 for y in ys], [d[k]["service"]["rps"] for k in scenarios], 0.4, label="service"
    )
    a1.set_yticks(list(ys), scenarios, fontsize=8)
    a1.set_xscale("log")
    a1.set_xlabel("requests/s")
    a1.legend(fontsize=8)
    a2.barh([y - 0.2 for y in ys], [d[k]["baseline"]["p99_ms"] for k in scenarios], 0.4)
    a2.barh([y + 0.2 for y in ys], [d[k]["service"]["p99_ms"] for k in scenarios], 0.4)
    a2.set_yticks([])
    a2.set_xscale("log")
    a2.set_xlabel("p99 latency ms")
    fig.suptitle("birthday service vs the original design")
    out += [save(fig, "service.png"), ""]
    return out


# -- cni ----------------------------------------------------------------------------------------


def cni(d: Json) -> list[str]:
    out = [f"## CNI plugin ADD and DEL (`bench/cni.py`, {d.get('when', '')})", ""]
    if "seed" in d:
        life = d.get("lifetime_s", 0.0) * 1000
        out += [
            f"{d['iterations']} rounds, each in its own shuffled order (seed {d['seed']}); "
            + (f"each DEL {life:.0f} ms after its ADD." if life else "each DEL at once after ADD."),
            "",
        ]
    sides = list(d["add"])
    out += table(
        ["side", "ADD median ms", "ADD p95 ms", "DEL median ms", "DEL p95 ms"],
        [
            [
                s,
                d["add"][s]["median_ms"],
                d["add"][s]["p95_ms"],
                d["del"][s]["median_ms"],
                d["del"][s]["p95_ms"],
            ]
            for s in sides
        ],
    )
    if d.get("podman_run"):
        out += table(
            ["podman run -d, start to running", "median ms", "p95 ms"],
            [[k, v["median_ms"], v["p95_ms"]] for k, v in d["podman_run"].items()],
        )
    out += table(["ratio", "value"], [[k, v] for k, v in d.get("ratios", {}).items()])
    first = d.get("first_call")
    if first:  # the default install's first call starts the agent: not in the medians
        rows = [["first call (starts the agent)", first["add_ms"], first["del_ms"]]]
        members = d["first_member_add"].items()
        rows += [[f"{s}: network's first member (plain)", ms, ""] for s, ms in members]
        out += table(["alone, not in the medians", "ADD ms", "DEL ms"], rows)
        out += [f"Paths of the later calls: {d.get('paths')}", ""]
    fig, ax = plt.subplots(figsize=(8, 4))
    ys = range(len(sides))
    ax.barh([y - 0.2 for y in ys], [d["add"][s]["median_ms"] for s in sides], 0.4, label="ADD")
    ax.barh([y + 0.2 for y in ys], [d["del"][s]["median_ms"] for s in sides], 0.4, label="DEL")
    ax.set_yticks(list(ys), sides, fontsize=8)
    ax.set_xlabel("median ms")
    ax.legend(fontsize=8)
    ax.set_title("CNI: netplumb-cni vs the reference plugins")
    out += [save(fig, "cni.png"), ""]
    return out


# -- dns ----------------------------------------------------------------------------------------


def dns(d: Json) -> list[str]:
    out = [f"## DNS servers (`bench/dns.py`, {d['date']})", ""]
    f: Json = d["floor"]
    out.append(
        f"UDP, {d['window']} queries in flight, {d['seconds_per_figure']} s per figure, median "
        f"of {d['rounds']} rounds; the load generator's own ceiling here: {f['qps']:,.0f} "
        f"queries/s ({f['generator_cpu_us_per_query']} µs of CPU per query)."
    )
    out.append("")
    sides: Json = d["sides"]
    rows = []
    for s in sides.values():
        if "queries" not in s:
            rows.append([s["label"], s.get("skipped", "-"), "", "", "", ""])
            continue
        for kind, q in s["queries"].items():
            codes = ", ".join(f"{k} {v:,}" for k, v in q["rcodes"].items())
            rows.append([s["label"], kind, round(q["qps"]), q["p50_ms"], q["p99_ms"], codes])
    out += table(["side", "query", "queries/s", "p50 ms", "p99 ms", "answers"], rows)
    keys = ("median_ms", "p95_ms", "max_ms", "step_median_ms", "from_step_start_median_ms")
    new = [
        [s["label"], *(s["new_name"].get(k) for k in keys), s["new_name"]["from"]]
        for s in sides.values()
        if "new_name" in s
    ]
    head = ["new name resolvable", "median ms", "p95 ms", "max ms", "step ms", "from start ms"]
    out += table([*head, "after"], new)
    out.append(
        "Times count from the step's end (negative: the name resolved before the command "
        'returned); "step" is the command\'s own duration, "from start" the two added.'
    )
    out.append("")
    ratios: Json = d.get("ratios_to_docker", {})
    if ratios:
        out += table(
            [
                "side / Docker",
                *(f"{k} q/s" for k in next(iter(ratios.values()))),
                *(f"{k} p99" for k in next(iter(ratios.values()))),
            ],
            [
                [n, *(r["qps"] for r in v.values()), *(r["p99"] for r in v.values())]
                for n, v in ratios.items()
            ],
        )
    met = {True: "yes", False: "no"}
    targets = [[k, met.get(v, v) if isinstance(v, bool) else v] for k, v in d["targets"].items()]
    out += table(["target (issue 14)", "met"], targets)
    aio = load("dns_asyncio")  # bench/dns_asyncio.py: what bounds a Python server
    if aio:
        out += table(
            [f"a do-nothing Python UDP responder ({aio['date']})", "queries/s", "p99 ms"],
            [[k, round(w["qps"]), w["p99_ms"]] for k, w in aio["ways"].items()],
        )
    named = [(s["label"], s["queries"]) for s in sides.values() if "queries" in s]
    if named:
        kinds = list(named[0][1])
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        height = 0.8 / len(kinds)
        for i, kind in enumerate(kinds):
            ys = [y + (i - (len(kinds) - 1) / 2) * height for y in range(len(named))]
            a1.barh(ys, [q[kind]["qps"] for _, q in named], height, label=kind)
            a2.barh(ys, [q[kind]["p99_ms"] for _, q in named], height, label=kind)
        a1.set_yticks(list(range(len(named))), [n for n, _ in named], fontsize=8)
        a1.set_xlabel("queries/s")
        a1.xaxis.set_major_formatter(lambda x, _pos: f"{x / 1000:.0f}k")
        a1.legend(fontsize=8)
        a2.set_yticks([])
        a2.set_xscale("log")
        a2.set_xlabel("p99 latency ms")
        fig.suptitle("DNS servers: 64 UDP queries in flight")
        out += [save(fig, "dns.png"), ""]
    return out


def machine() -> str:
    cores = os.cpu_count()
    return f"{cores} cores, Linux {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    import sys

    global RESULTS, OUT  # noqa: PLW0603 -- one report per process
    if len(sys.argv) > 1:
        RESULTS = OUT = Path(sys.argv[1]).resolve()
        report_md.PLOTS = OUT / "plots"
    sections = [
        ("attach", attach),
        ("scale", scale),
        ("ports", ports),
        ("ports_timewait", ports_timewait),
        ("service", service),
        ("cni", cni),
        ("dns", dns),
    ]
    out = [
        "# netplumb benchmark report",
        "",
        f"Rendered {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()} by "
        "`bench/report.py` from `bench/results/*.json` (each section gives the date of its run). "
        "These machines are shared and noisy: compare the ratios within a run, not absolute "
        "times across runs. `make bench` reruns everything; `make bench QUICK=1` a short version.",
        "",
    ]
    missing = []
    for name, render in sections:
        data = load(name)
        if data is None:
            missing.append(name)
            continue
        out += render(data)
    if missing:
        out += [f"Not run yet: {', '.join(missing)}.", ""]
    text = "\n".join(out)
    (OUT / "REPORT.md").write_text(text)
    print(f"wrote {OUT / 'REPORT.md'} ({len(out)} lines, plots in {report_md.PLOTS})")
    if len(sys.argv) == 1:  # the full figures (a quick run's never reach the README)
        import summary

        if summary.update(results=RESULTS):
            print(f"rewrote the speed figures of {summary.README}")


if __name__ == "__main__":
    main()
