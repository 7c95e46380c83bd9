"""Attach latency: netplumb vs pipework's ip commands vs the reference CNI bridge plugin.

Everything runs inside a throwaway "machine" namespace (the machine's own interfaces are never
touched): per side, N guest namespaces are attached to a bridge with a static address and a
gateway, and each attach is timed. Sides, measured in one run:

  netplumb (in-process)  engine.attach() in one Python process, per attach
  netplumb (one-shot)    `pipework BR GUEST IP/PREFIX@GW`, process start to exit
  ip commands            the `ip` commands pipework runs, as one shell script per guest
  CNI bridge+host-local  /usr/lib/cni/bridge ADD with host-local IPAM (containernetworking-plugins)

Usage: .venv/bin/python bench/attach.py [--guests N] [--quick]
Prints a table and writes bench/results/attach.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv" / "bin"
RESULTS = ROOT / "bench" / "results"

# The worker runs inside the machine namespace: N in-process attaches, timings out as JSON.
WORKER = """
import json, sys, time
from netplumb import engine
from netplumb.pipework.grammar import parse
out = []
for i, guest in enumerate(sys.argv[2:]):
    req = parse([sys.argv[1], guest, f"10.71.{i // 250}.{i % 250 + 2}/16@10.71.255.254"])
    t = time.perf_counter_ns()
    engine.attach(req)
    out.append((time.perf_counter_ns() - t) / 1e6)
print(json.dumps(out))
"""

IP_SCRIPT = """set -e
ip link add {local} type veth peer name {peer}
ip link set {local} master {br}
ip link set {local} up
ip link set {peer} netns {guest}
ip netns exec {guest} ip link set {peer} name eth1
ip netns exec {guest} ip addr add {addr} dev eth1
ip netns exec {guest} ip route delete default >/dev/null 2>&1 || true
ip netns exec {guest} ip link set eth1 up
ip netns exec {guest} ip route get {gw} >/dev/null 2>&1 || \
    ip netns exec {guest} ip route add {gw}/32 dev eth1
ip netns exec {guest} ip route replace default via {gw}
"""


def sh(
    *argv: str, ns: str | None = None, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, check=True)


def summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "n": len(s),
        "median_ms": statistics.median(s),
        "p95_ms": s[min(len(s) - 1, round(0.95 * (len(s) - 1)))],
        "mean_ms": statistics.fmean(s),
        "min_ms": s[0],
    }


class Lab:
    def __init__(self) -> None:
        self.tag = secrets.token_hex(2)
        self.machine = f"npb-{self.tag}-m"
        self.namespaces = [self.machine]
        self.tmp = Path(tempfile.mkdtemp(prefix="npbench-"))
        sh("ip", "netns", "add", self.machine)
        sh("ip", "link", "set", "lo", "up", ns=self.machine)

    def guests(self, side: str, n: int) -> list[str]:
        names = [f"npb-{self.tag}-{side}{i}" for i in range(n)]
        for name in names:
            sh("ip", "netns", "add", name)
            self.namespaces.append(name)
        return names

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def side_inprocess(lab: Lab, n: int) -> list[float]:
    guests = lab.guests("p", n)
    env = {**os.environ, "NETPLUMB_STATE_DIR": str(lab.tmp / "state-p")}
    out = sh(str(VENV / "python"), "-c", WORKER, "brinproc", *guests, ns=lab.machine, env=env)
    return [float(x) for x in json.loads(out.stdout)]


def side_oneshot(lab: Lab, n: int) -> list[float]:
    guests = lab.guests("o", n)
    env = {**os.environ, "NETPLUMB_STATE_DIR": str(lab.tmp / "state-o")}
    times = []
    for i, guest in enumerate(guests):
        argv = [
            "ip",
            "netns",
            "exec",
            lab.machine,
            str(VENV / "pipework"),
            "broneshot",
            guest,
            f"10.72.{i // 250}.{i % 250 + 2}/16@10.72.255.254",
        ]
        # time the pipework process alone: `ip netns exec` is started outside the timing by
        # entering the namespace first through a tiny shell that execs pipework
        t = time.perf_counter_ns()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append((time.perf_counter_ns() - t) / 1e6)
    return times


def baseline_ip_netns_exec(lab: Lab, n: int) -> float:
    """The cost of `ip netns exec M true`, to subtract from the one-shot figures."""
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        subprocess.run(["ip", "netns", "exec", lab.machine, "true"], check=True)
        samples.append((time.perf_counter_ns() - t) / 1e6)
    return statistics.median(samples)


def side_ip(lab: Lab, n: int) -> list[float]:
    guests = lab.guests("i", n)
    sh("ip", "link", "add", "brip", "type", "bridge", ns=lab.machine)
    sh("ip", "link", "set", "brip", "up", ns=lab.machine)
    times = []
    for i, guest in enumerate(guests):
        script = IP_SCRIPT.format(
            local=f"vi{i}pl",
            peer=f"vi{i}pg",
            br="brip",
            guest=guest,
            addr=f"10.73.{i // 250}.{i % 250 + 2}/16",
            gw="10.73.255.254",
        )
        t = time.perf_counter_ns()
        sh("sh", "-c", script, ns=lab.machine)
        times.append((time.perf_counter_ns() - t) / 1e6)
    return times


def side_cni(lab: Lab, n: int) -> list[float]:
    plugin = Path("/usr/lib/cni/bridge")
    if not plugin.exists():
        raise SystemExit("containernetworking-plugins is not installed (make setup installs it)")
    guests = lab.guests("c", n)
    conf = json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": f"npbench{lab.tag}",
            "type": "bridge",
            "bridge": "brcni",
            "isGateway": False,
            "ipam": {
                "type": "host-local",
                "dataDir": str(lab.tmp / "cni"),
                "ranges": [[{"subnet": "10.74.0.0/16", "gateway": "10.74.255.254"}]],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.74.255.254"}],
            },
        }
    )
    times = []
    for guest in guests:
        env = {
            **os.environ,
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": guest,
            "CNI_NETNS": f"/run/netns/{guest}",
            "CNI_IFNAME": "eth1",
            "CNI_PATH": "/usr/lib/cni",
        }
        t = time.perf_counter_ns()
        sh(str(plugin), ns=lab.machine, env=env, stdin=conf)
        times.append((time.perf_counter_ns() - t) / 1e6)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="20 guests per side")
    args = parser.parse_args()
    n = 20 if args.quick else args.guests
    if os.geteuid() != 0:
        raise SystemExit("bench/attach.py needs root (it makes network namespaces)")
    # Precompiled modules: the environment may forbid writing .pyc, and recompiling on every
    # one-shot command would measure the compiler, not netplumb.
    subprocess.run(
        [str(VENV / "python"), "-m", "compileall", "-q", str(ROOT / "src")],
        check=True,
        capture_output=True,
    )
    lab = Lab()
    try:
        netns_exec = baseline_ip_netns_exec(lab, 20)
        sides = {
            "netplumb in-process": side_inprocess(lab, n),
            "netplumb one-shot (pipework cmd)": [t - netns_exec for t in side_oneshot(lab, n)],
            "pipework's ip commands": [t - netns_exec for t in side_ip(lab, n)],
            "CNI bridge + host-local": [t - netns_exec for t in side_cni(lab, n)],
        }
    finally:
        lab.close()
    stats = {name: summary(s) for name, s in sides.items()}
    ref_in = stats["netplumb in-process"]["median_ms"]
    ref_one = stats["netplumb one-shot (pipework cmd)"]["median_ms"]
    targets = {"netplumb in-process": 1.5, "netplumb one-shot (pipework cmd)": 25.0}
    print(
        f"attach latency, {n} guests per side, {os.cpu_count()} CPUs, kernel {platform.release()}"
    )
    print(
        f"(`ip netns exec` start-up, {netns_exec:.1f} ms, subtracted from the process-based sides)"
    )
    header = f"{'side':34} {'median ms':>10} {'p95 ms':>8} {'target':>8}"
    print(f"{header} {'x one-shot':>11} {'x in-proc':>10}")
    for name, st in stats.items():
        target = f"<= {targets[name]:g}" if name in targets else ""
        print(
            f"{name:34} {st['median_ms']:10.2f} {st['p95_ms']:8.2f} {target:>8} "
            f"{st['median_ms'] / ref_one:11.2f} {st['median_ms'] / ref_in:10.1f}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "attach",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": sys.version.split()[0],
        },
        "guests_per_side": n,
        "ip_netns_exec_ms": netns_exec,
        "sides": stats,
        "targets_ms": targets,
    }
    (RESULTS / "attach.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
