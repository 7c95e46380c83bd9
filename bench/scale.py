"""Scale: bring up and take down N netplumb hosts, against `docker run -d -p` containers.

Each netplumb host is a process in its own namespaces on the default network, with an address
and a published port, started in one netplumb process with `containers.run` inside
`ports.batch()` (as `netplumb up` does: one ruleset rewrite at the end) and removed with
`runtime.remove_many` (as `netplumb down` does). Sizes 10, 100 and 1,000 show how the cost per
host grows (it must stay flat: no step may scan all hosts per host); 100 Docker containers of
the busybox image with a published port each (`docker run -d -p`, then `docker rm -f`) are the
peer. After each down the worker counts what is left (veths, holder processes, nft rules,
lease entries): all must be zero.

The same sizes (but 10) also go through the command line, `netplumb up -f` and `netplumb down -f`
of a topology file with N replicas (rows `up -f N`; `second_up_s` is an idempotent second up).

Usage: .venv/bin/python bench/scale.py [--quick]   (quick: 10 and 100 hosts, 10 containers)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sweep

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = str(ROOT / ".venv" / "bin" / "python")
RESULTS = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "results")
IMAGE = "netplumb/busybox:test"

WORKER = """
import json, os, subprocess, sys, time
from netplumb import state
from netplumb.ops import portrules, ports
from netplumb.ops import containers, networks
from netplumb.hosts import runtime
from netplumb.ops import engine
from netplumb.model.ports import parse_port_spec
n = int(sys.argv[1])
names = [f"h{i}" for i in range(n)]
attach_s = []  # per host: engine.attach, almost all of it the kernel's netlink requests
real_attach = engine.attach


def timed_attach(*args, **kwargs):
    t0 = time.perf_counter()
    try:
        return real_attach(*args, **kwargs)
    finally:
        attach_s.append(time.perf_counter() - t0)


engine.attach = timed_attach
load = os.getloadavg()[0]
per_host = []
fail_after = int(os.environ.get("NPB_SCALE_FAIL_AFTER") or -1)  # a test's injected failure
t = time.perf_counter()
try:
    with ports.batch():
        for i, name in enumerate(names):
            if i == fail_after:
                if os.environ.get("NPB_SCALE_FAIL_HOW") == "kill":  # no clean-up of its own
                    os.kill(os.getpid(), 9)
                raise RuntimeError(f"injected failure after {i} hosts")
            t1 = time.perf_counter()
            published = parse_port_spec(f"{20000 + i}:80")
            containers.run(name, ["sleep", "3600"], publish=published, refresh_links=False)
            per_host.append(time.perf_counter() - t1)
except BaseException:
    runtime.remove_many(runtime.names(), force=True)  # what this worker made, then the error
    raise
up = time.perf_counter() - t
tenth = max(1, n // 10)
phases = {
    "up_ms_first_tenth": 1000 * sum(per_host[:tenth]) / tenth,
    "up_ms_last_tenth": 1000 * sum(per_host[-tenth:]) / tenth,
    "attach_ms_first_tenth": 1000 * sum(attach_s[:tenth]) / tenth,
    "attach_ms_last_tenth": 1000 * sum(attach_s[-tenth:]) / tenth,
}
holders = [runtime.get(name)["holder"] for name in names]
time.sleep(1)  # the last holders exec their small program (hosts/holder.c or holder.py)
memory = {"Pss": 0, "Private_Dirty": 0}  # what the hosts' holders cost, kB
for h in holders:
    with open(f"/proc/{h}/smaps_rollup") as f:
        for ln in f:
            key, _, value = ln.partition(":")
            if key in memory:
                memory[key] += int(value.split()[0])
holder_kb = {
    "program": os.path.basename(os.readlink(f"/proc/{holders[0]}/exe")),
    "pss_per_host": memory["Pss"] / n,
    "private_dirty_per_host": memory["Private_Dirty"] / n,
}
drift = portrules.reconcile_if_drifted()
t = time.perf_counter()
removed = runtime.remove_many(names, force=False)
down = time.perf_counter() - t
out = subprocess.run(["ip", "-j", "-d", "link"], capture_output=True, text=True).stdout
links = json.loads(out)
nft = json.loads(
    subprocess.run(["nft", "-j", "list", "ruleset"], capture_output=True, text=True).stdout
)


def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(") ")[2][0] != "Z"
    except OSError:
        return False


left = {
    "removed": len(removed),
    "veths": sum(1 for ln in links if ln.get("linkinfo", {}).get("info_kind") == "veth"),
    "holders": sum(1 for h in holders if running(h)),
    # published ports are elements of the DNAT maps (the publish chain's four lookups stay)
    "dnat_elements": sum(
        len(item["map"].get("elem", []))
        for item in nft["nftables"]
        if "map" in item and item["map"]["name"].startswith("publish")
    ),
    "leases": sum(len(networks.leases(net)) for net in networks.names()),
    "host_records": len(runtime.names()),
}
print(json.dumps({
    "n": n, "up_s": up, "down_s": down, "drift_after_up": drift, "left": left,
    "per_host": phases, "load_at_start": load, "load_at_end": os.getloadavg()[0],
    "holder_kb": holder_kb,
}))
"""


def netplumb_side(
    n: int, state_base: str | None = None, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """N hosts up and down in one worker process, in a namespace of their own. Whatever
    happens to the worker (an error, a timeout), what it made is removed: the worker removes
    the hosts it recorded, and ``sweep`` whatever still carries this run's marks."""
    tag = secrets.token_hex(2)
    ns = f"npb-{tag}-scale"
    tmp = Path(tempfile.mkdtemp(prefix="npbscale-", dir=state_base))
    env = sweep.marked({**os.environ, "NETPLUMB_STATE_DIR": str(tmp / "state")}, ns)
    env.update(extra_env or {})
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        out = subprocess.run(
            ["ip", "netns", "exec", ns, VENV_PY, "-c", WORKER, str(n)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        ).stdout
        result: dict[str, Any] = json.loads(out)
        return result
    finally:
        sweep.sweep(ns, tmp, ns, env)


NETPLUMB = str(ROOT / ".venv" / "bin" / "netplumb")


def project_side(n: int, state_base: str | None = None) -> dict[str, Any]:
    """The same N hosts from a topology file, through the command line: `netplumb up -f` and
    `netplumb down -f`, process start, file parsing, planning and the project's record included."""
    ns = f"npb-{secrets.token_hex(2)}-scale"
    tmp = Path(tempfile.mkdtemp(prefix="npbscale-", dir=state_base))
    env = sweep.marked({**os.environ, "NETPLUMB_STATE_DIR": str(tmp / "state")}, ns)
    topo = tmp / "scale.yaml"
    topo.write_text(
        "name: scale\nservices:\n  h:\n"
        f"    replicas: {n}\n    command: sleep 3600\n"
        f'    ports: ["20000-{20000 + n - 1}:80"]\n'
    )

    def np(*args: str) -> float:
        t = time.perf_counter()
        subprocess.run(
            ["ip", "netns", "exec", ns, NETPLUMB, *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
        return time.perf_counter() - t

    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        up = np("up", "-f", str(topo))
        again = np("up", "-f", str(topo))  # idempotent: nothing to do, what does it cost?
        down = np("down", "-f", str(topo))
        return {"n": n, "up_s": up, "down_s": down, "second_up_s": again}
    finally:
        sweep.sweep(ns, tmp, ns, env)


def docker_side(n: int) -> dict[str, Any]:
    subprocess.run(["bash", str(ROOT / "scripts" / "busybox-image.sh")], check=True)
    tag = secrets.token_hex(2)
    names = [f"npb-{tag}-{i}" for i in range(n)]
    t = time.perf_counter()
    try:
        for i, name in enumerate(names):
            subprocess.run(
                [
                    "docker",
                    "run",
                    "-d",
                    "--name",
                    name,
                    "-p",
                    f"{30000 + i}:80",
                    IMAGE,
                    "sleep",
                    "3600",
                ],
                capture_output=True,
                check=True,
            )
        up = time.perf_counter() - t
    finally:
        t = time.perf_counter()
        for name in names:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        down = time.perf_counter() - t
    return {"n": n, "up_s": up, "down_s": down}


TARGETS = {"up 100": 3.0, "down 100": 2.0, "up 1000": 30.0}


def per_host_ms(row: dict[str, Any], key: str) -> float:
    return 1000 * float(row[key]) / int(row["n"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--state-base",
        metavar="DIR",
        help="where the hosts' state directory is made (default: the temporary directory; "
        "netplumb's own default, /run, is a tmpfs on most machines, ext4 on this one)",
    )
    args = parser.parse_args()
    sizes, docker_n = ((10, 100), 10) if args.quick else ((10, 100, 1000), 100)
    rows: dict[str, dict[str, Any]] = {}
    for n in sizes:
        rows[f"netplumb {n}"] = netplumb_side(n, args.state_base)
        print(f"netplumb {n}: {rows[f'netplumb {n}']}", flush=True)
    for n in sizes[1:]:
        rows[f"up -f {n}"] = project_side(n, args.state_base)
        print(f"up -f {n}: {rows[f'up -f {n}']}", flush=True)
    rows[f"docker {docker_n}"] = docker_side(docker_n)
    print(f"scale, {os.cpu_count()} CPUs, kernel {platform.release()}")
    print(f"{'side':16} {'up s':>8} {'down s':>8} {'up ms/host':>11} {'down ms/host':>13}")
    for name, r in rows.items():
        print(
            f"{name:16} {r['up_s']:8.2f} {r['down_s']:8.2f} {per_host_ms(r, 'up_s'):11.2f} "
            f"{per_host_ms(r, 'down_s'):13.2f}"
        )
    print("per host within one up (first tenth -> last tenth of the hosts started), ms:")
    for name, r in rows.items():
        ph = r.get("per_host")
        if ph:
            rest_a = ph["up_ms_first_tenth"] - ph["attach_ms_first_tenth"]
            rest_b = ph["up_ms_last_tenth"] - ph["attach_ms_last_tenth"]
            print(
                f"  {name:14} all {ph['up_ms_first_tenth']:6.2f} -> {ph['up_ms_last_tenth']:6.2f}"
                f"   network attach (kernel netlink) {ph['attach_ms_first_tenth']:6.2f} -> "
                f"{ph['attach_ms_last_tenth']:6.2f}   the rest {rest_a:6.2f} -> {rest_b:6.2f}"
            )
    d = rows[f"docker {docker_n}"]
    ratios = {
        f"{side} {n}": per_host_ms(d, f"{side}_s") / per_host_ms(rows[f"netplumb {n}"], f"{side}_s")
        for n in sizes
        for side in ("up", "down")
    }
    pairs = list(itertools.pairwise(sizes))
    if len(sizes) > 2:
        pairs.append((sizes[0], sizes[-1]))
    growth = {
        f"{side} {a}->{b}": per_host_ms(rows[f"netplumb {b}"], f"{side}_s")
        / per_host_ms(rows[f"netplumb {a}"], f"{side}_s")
        for a, b in pairs
        for side in ("up", "down")
    }
    print(
        "per-host cost, Docker / netplumb: " + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items())
    )
    print("netplumb per-host cost growth: " + ", ".join(f"{k} {v:.2f}x" for k, v in growth.items()))
    targets = {}
    for key, limit in TARGETS.items():
        side, size = key.split()
        row = rows.get(f"netplumb {size}")
        if row is not None:
            targets[key] = {
                "limit_s": limit,
                "s": row[f"{side}_s"],
                "met": row[f"{side}_s"] < limit,
            }
    print(
        "targets: "
        + ", ".join(
            f"{k} {t['s']:.2f} s (< {t['limit_s']:.0f}: {'met' if t['met'] else 'MISSED'})"
            for k, t in targets.items()
        )
    )
    print(
        "holders' memory per host, kB: "
        + ", ".join(
            f"{k} {r['holder_kb']['program']} Pss {r['holder_kb']['pss_per_host']:.0f} "
            f"private dirty {r['holder_kb']['private_dirty_per_host']:.0f}"
            for k, r in rows.items()
            if "holder_kb" in r
        )
    )
    leftovers = {k: r["left"] for k, r in rows.items() if "left" in r}
    clean = all(v == 0 for left in leftovers.values() for k, v in left.items() if k != "removed")
    print("left after down: " + ("nothing" if clean else json.dumps(leftovers)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(
        json.dumps(
            {
                "benchmark": "scale",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
                "state_base": args.state_base or tempfile.gettempdir(),
                "rows": rows,
                "docker_over_netplumb_per_host": ratios,
                "per_host_growth": growth,
                "targets": targets,
                "nothing_left_after_down": clean,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
