"""bench/REPORT.md's section on published ports (``bench/ports.py``'s results)."""

from __future__ import annotations

from report_md import Json, plt, save, table


def _spread(s: Json, digits: str = ",.0f") -> str:
    return f"{s['median']:{digits}} ({s['min']:{digits}}-{s['max']:{digits}})"


def ports(d: Json) -> list[str]:
    out = [f"## Published ports (`bench/ports.py`, {d['date']})", ""]
    if "summary" not in d:  # a run from before issue 16
        return [*out, "An old run: rerun `bench/ports.py`.", ""]
    summ: Json = d["summary"]
    paths: Json = d["paths"]
    out.append(
        f"{len(d['rounds'])} rounds of {d['seconds']} s figures, the order of the paths shuffled "
        f"in each (seed {d['seed']}); medians over the rounds with (min-max). Server: "
        f"{d['server']}; clients: wrk, connection per request (`close`) and keep-alive. SYN "
        "retransmits are the client namespace's, PAWS drops (`TcpExtPAWSTimewait`) the server's, "
        "per round in the order of the rounds."
    )
    out.append("")
    out += table(
        ["path", "client", "server", "target", "against", "note"],
        [[n, p["client"], p["server"], p["target"], p["peer"] or "-", p["note"]]
         for n, p in paths.items()],
    )  # fmt: skip
    for name, why in d.get("unreachable", {}).items():
        out += [f"**{name}: unreachable** ({why}).", ""]
    peers = {n: p["peer"] or n for n, p in paths.items()}
    keys = sorted({k for f in summ.values() for k in f if k != "iperf_gbps"}, key=_figure_order)
    rows = []
    for key in keys:
        for name in paths:
            figs = summ.get(name, {})
            if key not in figs:
                continue
            f, base = figs[key], summ[peers[name]][key]
            per = [r["figures"][name][key] for r in d["rounds"]]
            rows.append([
                key, name, _spread(f["rps"]), f["p50_ms"]["median"], f["p99_ms"]["median"],
                round(f["rps"]["median"] / base["rps"]["median"], 2),
                round(f["p99_ms"]["median"] / base["p99_ms"]["median"], 2),
                " ".join(f"{g['syn_retrans']:.0f}" for g in per),
                " ".join(f"{g['paws']:.0f}" for g in per),
            ])  # fmt: skip
    out += table(
        ["figure", "path", "req/s", "p50 ms", "p99 ms", "req/s vs direct", "p99 vs direct",
         "SYN retransmits", "PAWS drops"],
        rows,
    )  # fmt: skip
    out += table(
        ["path", "iperf3 Gbit/s", "vs direct"],
        [[n, _spread(f["iperf_gbps"], ".2f"),
          round(f["iperf_gbps"]["median"] / summ[peers[n]]["iperf_gbps"]["median"], 2)]
         for n in paths if "iperf_gbps" in (f := summ.get(n, {}))],
    )  # fmt: skip
    goals: Json = d.get("targets", {})
    out += table(
        ["target (issue 16)", "value", "limit", "met"],
        [[k, t["value"], f"{t['cmp']} {t['limit']}", "met" if t["met"] else "MISSED"]
         for k, t in goals.items()],
    )  # fmt: skip
    out += against_floor(d.get("ratios", {}))
    out += against_itself(d.get("ratios", {}))
    pt: Json = d.get("publish_timing", {})
    if pt:
        out += table(
            [f"publishing {pt.get('ports', 1000):,} ports", "s"],
            [[k, v] for k, v in pt.items() if k != "ports"],
        )
    targets: Json = d.get("publish_targets", {})
    if targets:
        out += table(
            ["target (issue 13)", "value", "limit", "met"],
            [[k, t["value"], t["limit"], "yes" if t["met"] else "no"] for k, t in targets.items()],
        )
    out += [_ports_plot(summ), ""]
    return out


def _figure_order(key: str) -> tuple[int, int]:
    mode, conns = key.split()
    return (0 if mode == "close" else 1, int(conns[1:]))


def _ports_plot(summ: Json) -> str:
    """Medians with min-max error bars: req/s per path and connections, for each client."""
    main = [n for n in ("direct", "netplumb -p", "docker -p", "loopback") if n in summ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), gridspec_kw={"width_ratios": [2, 2, 1.3]})
    for ax, mode in zip(axes[:2], ("close", "keepalive"), strict=True):
        conns = sorted({int(k.split()[1][1:]) for k in summ["direct"] if k.startswith(mode)})
        width = 0.8 / len(main)
        for i, name in enumerate(main):
            got = [summ[name].get(f"{mode} c{c}", {}).get("rps") for c in conns]
            med = [g["median"] if g else 0 for g in got]
            err = [[g["median"] - g["min"] if g else 0 for g in got],
                   [g["max"] - g["median"] if g else 0 for g in got]]  # fmt: skip
            xs = [x + i * width for x in range(len(conns))]
            ax.bar(xs, med, width, yerr=err, capsize=2, label=name)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(conns))], [str(c) for c in conns])
        ax.set_xlabel("connections")
        ax.set_ylabel("requests/s (median, min-max)")
        ax.set_title("connection per request" if mode == "close" else "keep-alive")
    axes[0].legend(fontsize=8)
    names = [n for n in summ if "iperf_gbps" in summ[n]]
    g = [summ[n]["iperf_gbps"] for n in names]
    axes[2].barh(
        names,
        [x["median"] for x in g],
        xerr=[[x["median"] - x["min"] for x in g], [x["max"] - x["median"] for x in g]],
        capsize=2,
    )
    axes[2].set_xlabel("Gbit/s (iperf3, median, min-max)")
    fig.suptitle("through a published port: nginx, shuffled rounds")
    return save(fig, "ports.png")


FLOOR_PAIRS = (
    ("127.0.0.1", "netplumb -p / direct", "floor -p / floor direct"),
    ("LAN", "lan -p / lan direct", "floor lan -p / lan direct"),
    (
        "hairpin (other guest)",
        "hairpin -p / hairpin direct",
        "floor hairpin -p / floor hairpin direct",
    ),
)


def against_floor(ratio: Json) -> list[str]:
    """netplumb's ratios beside the floor's, figure by figure: what the kernel's DNAT costs with
    the fewest rules, on the same machine in the same rounds (a run from before the floor has
    none)."""
    rows = []
    for label, mine, floor in FLOOR_PAIRS:
        if mine not in ratio or floor not in ratio:
            continue
        for key in sorted(set(ratio[mine]) & set(ratio[floor]), key=_key_order):
            m, f = ratio[mine][key], ratio[floor][key]
            if key == "iperf_gbps":
                rows.append([label, "iperf3 Gbit/s", round(m["gbps_vs_peer"], 2),
                             round(f["gbps_vs_peer"], 2), "-", "-"])  # fmt: skip
                continue
            rows.append([
                label, key, round(m["rps_vs_peer"], 2), round(f["rps_vs_peer"], 2),
                round(m["p99_vs_peer"], 2), round(f["p99_vs_peer"], 2),
            ])  # fmt: skip
    if not rows:
        return []
    return [
        "netplumb against the floor (the same translations by the fewest nftables rules, a "
        "plain bridge and plain namespaces, measured in the same rounds): each side's ratio to "
        "its own untranslated path.",
        "",
        *table(
            ["paths", "figure", "req/s: netplumb", "req/s: floor", "p99: netplumb", "p99: floor"],
            rows,
        ),
    ]


def against_itself(ratio: Json) -> list[str]:
    """The direct path measured twice in each round, one against the other: how far a path's
    ratio strays from 1.0 with nothing changed, the resolution of every ratio above (a run from
    before the control has none)."""
    mine = ratio.get("direct again / direct", {})
    rows = [
        [key, round(r["gbps_vs_peer"], 2), "-"]
        if key == "iperf_gbps"
        else [key, round(r["rps_vs_peer"], 2), round(r["p99_vs_peer"], 2)]
        for key, r in sorted(mine.items(), key=lambda kr: _key_order(kr[0]))
    ]
    if not rows:
        return []
    return [
        "The direct path against itself (measured twice in each round, in the shuffled order): "
        "the ratios that nothing but the machine's own variation gives.",
        "",
        *table(["figure", "req/s (Gbit/s) vs direct", "p99 vs direct"], rows),
    ]


def _key_order(key: str) -> tuple[int, int]:
    return (2, 0) if key == "iperf_gbps" else _figure_order(key)


def ports_timewait(d: Json) -> list[str]:
    """bench/ports_timewait.py: each path's requests/s under a sustained connection-per-request
    load, and its client's TIME_WAIT sockets toward where it connects."""
    title = f"## Published ports under a sustained load (`bench/ports_timewait.py`, {d['date']})"
    out = [title, ""]
    low, high = d["ephemeral_ports"]
    redirect = d["socket_redirect"]
    out.append(
        f"wrk, connection per request, 10 connections, {d['slices']} slices of 1 s in a row per "
        f"path, one path after the other (socket redirection {'on' if redirect else 'off'}; "
        f"ephemeral ports {low}-{high}). The kernel reuses a client's TIME_WAIT port at once only "
        "on a loopback address (`net.ipv4.tcp_tw_reuse=2`): `netplumb -p`'s redirected sockets "
        "are connected to the guest, `floor -p`'s (the DNAT) and `loopback`'s to 127.0.0.1."
    )
    out.append("")
    out += table(
        ["path", "req/s, first 5 s", "req/s, last 5 s", "fell under half after (s)",
         "client TIME_WAIT, most"],
        [[n, round(s["first5_rps"]), round(s["last5_rps"]),
          "never" if s["collapse_after_s"] is None else s["collapse_after_s"], s["timewait_max"]]
         for n, s in d["summary"].items()],
    )  # fmt: skip
    return out
