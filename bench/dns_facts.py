"""What aardvark-dns 1.4 and dnsmasq do of issue 14's list, asked from real namespaces.

Usage: .venv/bin/python bench/dns_facts.py      (root; writes dns_facts.json to $BENCH_RESULTS)

One lab namespace per server with three bridges, each a network: a (br0, 10.98.0.1/24),
b (br1, 10.98.1.1/24) and c (br2, 10.98.2.1/24, whose upstream is a black hole: an address
routed to the fake upstream's namespace, which drops it). Guests: g0 on a only (10.98.0.10),
g1 on a and b (10.98.0.11, 10.98.1.11), g2 an outsider on br0 with 10.98.5.2/24 (a route to
the gateway, and one back), g3 on c (10.98.2.10). Members: web1 (a, 10.98.0.3), rep1 and rep2
(a, both also named ``rep``), six (a, 10.98.0.6 and fd00::6), db1 (b, 10.98.1.3).

aardvark-dns: one process, a network file per network (its DNS-server column: the fake
upstream, c's the black hole). dnsmasq: one process per network (it has one view of its hosts
for every asker, so the only way to keep networks apart), --bind-interfaces on the gateway,
--server the upstream; plus one with --local=/#/ and no server (a network that does not
forward). Each question is asked with dnspython from the guest's namespace; the answers are
recorded as they come (rcode, records in order, TTL, ms).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dnslab
import dnssides
from dnslab import FWD_NAME, LOAD, PYTHON, Lab, sh

RESULTS = Path(os.environ.get("BENCH_RESULTS") or dnslab.ROOT / "bench" / "results")
BLACKHOLE = "10.97.0.53"
GW = {"a": "10.98.0.1", "b": "10.98.1.1", "c": "10.98.2.1"}

# (what, guest, server network, question, repeat)
QUESTIONS: list[tuple[str, str, str, str, int]] = [
    ("a member, asked on its network", "g0", "a", "web1", 1),
    ("a name on a network the asker is not on", "g0", "a", "db1", 1),
    ("guest on a and b asks a's server for b's member", "g1", "a", "db1", 1),
    ("guest on a and b asks b's server for a's member", "g1", "b", "web1", 1),
    ("replicas: one name, two members (order over 6 asks)", "g0", "a", "rep", 6),
    ("AAAA of a member with an IPv6 address", "g0", "a", "six:AAAA", 1),
    ("PTR of a member's address", "g0", "a", "3.0.98.10.in-addr.arpa:PTR", 1),
    ("forwarded name", "g0", "a", FWD_NAME, 1),
    ("outsider (10.98.5.2, not in any subnet) asks a member", "g2", "a", "web1", 1),
    ("outsider asks a forwarded name (open resolver?)", "g2", "a", FWD_NAME, 1),
    ("upstream a black hole: a missing one-label name", "g3", "c", "nosuch", 1),
    ("upstream a black hole: forwarded name", "g3", "c", FWD_NAME, 1),
]


def ask(guest: str, server: str, question: str, repeat: int = 1, *extra: str) -> Any:
    argv = [
        "ip",
        "netns",
        "exec",
        guest,
        PYTHON,
        LOAD,
        "ask",
        "--server",
        server,
        "--query",
        question,
        "--repeat",
        str(repeat),
        "--timeout",
        "15",
        *extra,
    ]
    return json.loads(sh(*argv).stdout)["asks"]


def build_lab(nss: dnslab.Namespaces, tag: str, side: str, upstream: dnslab.Upstream) -> Lab:
    lab = Lab(nss, tag, side, upstream)
    lab.bridge("br0", "10.98.0.1/24")
    lab.bridge("br1", "10.98.1.1/24")
    lab.bridge("br2", "10.98.2.1/24")
    lab.guest("br0@10.98.0.10/24")
    lab.guest("br0@10.98.0.11/24", "br1@10.98.1.11/24")
    g2 = lab.guest("br0@10.98.5.2/24")
    sh("ip", "-n", g2, "route", "add", "10.98.0.0/24", "dev", "eth0")
    sh("ip", "-n", lab.ns, "route", "add", "10.98.5.0/24", "dev", "br0")
    lab.guest("br2@10.98.2.10/24")
    # the black hole: routed to the upstream's namespace, which does not forward it
    sh("ip", "-n", lab.ns, "route", "add", BLACKHOLE, "via", lab.upstream)
    return lab


def aardvark(nss: dnslab.Namespaces, tag: str, upstream: dnslab.Upstream) -> dict[str, Any]:
    lab = build_lab(nss, tag, "fa", upstream)
    conf = Path(tempfile.mkdtemp(prefix="npb-dnsfacts-"))
    line = dnslab.aardvark_line
    try:
        (conf / "a").write_text(
            f"{GW['a']} {lab.upstream}\n"
            + line("g0", "10.98.0.10", "g0")
            + line("g1", "10.98.0.11", "g1")
            + line("web1", "10.98.0.3", "web1")
            + line("rep1", "10.98.0.4", "rep1,rep")
            + line("rep2", "10.98.0.5", "rep2,rep")
            + line("six", "10.98.0.6", "six", ipv6="fd00::6")
        )
        (conf / "b").write_text(
            f"{GW['b']} {lab.upstream}\n"
            + line("g1", "10.98.1.11", "g1")
            + line("db1", "10.98.1.3", "db1")
        )
        (conf / "c").write_text(f"{GW['c']} {BLACKHOLE}\n" + line("g3", "10.98.2.10", "g3"))
        pid = dnslab.aardvark_start(lab, conf)
        dnslab.wait_answers(["ip", "netns", "exec", lab.guests[0]], GW["a"], "web1")
        out = run_questions(lab)
        # reloads: web1's line gone from a, network b's file gone; SIGHUP; ask again
        text = (conf / "a").read_text().replace(line("web1", "10.98.0.3", "web1"), "")
        (conf / "a").write_text(text)
        (conf / "b").unlink()
        os.kill(pid, signal.SIGHUP)
        time.sleep(0.2)
        out.update(after_reload(lab, "web1's line removed, SIGHUP", "network b's file removed"))
        listening = sh("ip", "netns", "exec", lab.ns, "ss", "-Hlnu").stdout.split("\n")
        key = "UDP sockets after b's file removed and SIGHUP"
        out[key] = [ln.split()[3] for ln in listening if ln.strip()]
        print(f"  {key}: {out[key]}")
        return out
    finally:
        shutil.rmtree(conf, ignore_errors=True)


def dnsmasq(nss: dnslab.Namespaces, tag: str, upstream: dnslab.Upstream) -> dict[str, Any]:
    lab = build_lab(nss, tag, "fd", upstream)
    conf = Path(tempfile.mkdtemp(prefix="npb-dnsfacts-"))
    hosts = {
        "a": "10.98.0.10 g0\n10.98.0.11 g1\n10.98.0.3 web1\n10.98.0.4 rep1 rep\n"
        "10.98.0.5 rep2 rep\n10.98.0.6 six\nfd00::6 six\n",
        "b": "10.98.1.11 g1\n10.98.1.3 db1\n",
        "c": "10.98.2.10 g3\n",
    }
    servers = {"a": lab.upstream, "b": lab.upstream, "c": BLACKHOLE}
    try:
        instances: dict[str, subprocess.Popen[str]] = {}
        for net, text in hosts.items():
            (conf / net).write_text(text)
            instances[net] = lab.spawn(
                dnslab.dnsmasq_argv(
                    "-p",
                    "53",
                    f"--listen-address={GW[net]}",
                    "--bind-interfaces",
                    f"--server={servers[net]}",
                    "--cache-size=0",
                    f"--addn-hosts={conf / net}",
                )
            )
        enter = ["ip", "netns", "exec", lab.guests[0]]
        dnslab.wait_answers(enter, GW["a"], "web1")
        out = run_questions(lab)
        (conf / "a").write_text(hosts["a"].replace("10.98.0.3 web1\n", ""))
        os.kill(instances["a"].pid, signal.SIGHUP)
        time.sleep(0.2)
        out.update(after_reload(lab, "web1's line removed, SIGHUP", ""))
        # a network that does not forward: a fourth instance on 10.98.0.1 port 5353 would
        # need its own address; instead b's instance is replaced by one with --local=/#/
        local = lab.spawn(
            dnslab.dnsmasq_argv(
                "-p",
                "5300",
                f"--listen-address={GW['a']}",
                "--bind-interfaces",
                "--local=/#/",
                f"--addn-hosts={conf / 'a'}",
            )
        )
        argv = [
            "ip",
            "netns",
            "exec",
            lab.guests[0],
            PYTHON,
            LOAD,
            "ask",
            "--server",
            GW["a"],
            "--port",
            "5300",
            "--query",
            FWD_NAME,
            "--timeout",
            "5",
        ]
        dnslab.wait_answers(enter, GW["a"], "g0", port=5300)
        out["internal network (--local=/#/, no server): forwarded name"] = {
            "asks": json.loads(sh(*argv).stdout)["asks"]
        }
        dnslab.stop(local)
        return out
    finally:
        shutil.rmtree(conf, ignore_errors=True)


def after_reload(lab: Lab, removed_name: str, removed_net: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    g0, g1 = lab.guests[0], lab.guests[1]
    asks = {f"after {removed_name}: web1": (g0, GW["a"], "web1")}
    if removed_net:
        asks[f"after {removed_net}: b's server asked for db1"] = (g1, GW["b"], "db1")
    for what, (guest, server, question) in asks.items():
        got = ask(guest, server, question)
        out[what] = {"question": question, "server": server, "asks": got}
        print(f"  {what:55s} {got[0]['rcode']:9s} {got[0].get('answers', '')} {got[0]['ms']} ms")
    return out


def run_questions(lab: Lab) -> dict[str, Any]:
    guests = {f"g{i}": ns for i, ns in enumerate(lab.guests)}
    out: dict[str, Any] = {}
    for what, guest, net, question, repeat in QUESTIONS:
        asks = ask(guests[guest], GW[net], question, repeat)
        out[what] = {"guest": guest, "server": GW[net], "question": question, "asks": asks}
        first = asks[0]
        print(f"  {what:55s} {first['rcode']:9s} {first.get('answers', '')} {first['ms']} ms")
    what = "a member over TCP"
    asks = ask(guests["g0"], GW["a"], "web1", 1, "--tcp")
    out[what] = {"guest": "g0", "server": GW["a"], "question": "web1", "asks": asks}
    print(f"  {what:55s} {asks[0]['rcode']:9s} {asks[0].get('answers', '')} {asks[0]['ms']} ms")
    return out


def main() -> int:
    if os.geteuid() != 0:
        print("bench/dns_facts.py: needs root", file=sys.stderr)
        return 1
    tag = dnssides.new_tag()
    nss = dnslab.Namespaces()
    result: dict[str, Any] = {
        "benchmark": "dns_facts",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"kernel": platform.release(), "aardvark-dns": "1.4.0"},
    }
    try:
        upstream = dnslab.Upstream(nss, tag)
        print("aardvark-dns 1.4:")
        result["aardvark"] = aardvark(nss, tag, upstream)
        print("dnsmasq (one process per network):")
        result["dnsmasq"] = dnsmasq(nss, tag, upstream)
    finally:
        nss.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dns_facts.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'dns_facts.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
