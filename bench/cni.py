"""CNI ADD and DEL latency: netplumb-cni vs the reference plugins, side by side in one run.

Usage: .venv/bin/python bench/cni.py [--iterations N] [--podman N] [--quick] [--seed S]
       [--back-to-back]

Everything runs in a throwaway "host" namespace (``npb-cni-TAG``) with N guest namespaces per
side; the machine's own interfaces are never touched. One worker process inside that namespace
(this file, ``--worker``) execs the plugins as a runtime does (env + stdin, stdout read),
timing each call from spawn to reaped exit, N rounds, each in its own shuffled order (``--seed``:
a fixed rotation gave each side the same predecessor every round, and the kernel's part of a
veth's deletion, 15-30 ms here, depends on what ran just before it). A container's DEL comes
100 ms after its ADD (it runs a while); ``--back-to-back`` DELs at once, where a veth a
millisecond old costs the kernel more or less by turns. The sides:

  netplumb-cni plain      bridge mode, netplumb's own IPAM, a plain process (the Python
                          launcher: ``netplumb cni install --client no``)
  netplumb-cni default    the same through the default install (``netplumb cni install``:
                          the compiled client; no agent is started beforehand, the first
                          call starts one on demand and is reported on its own, not in the
                          median; every other call's path is counted, from the client's
                          NETPLUMB_CNI_DEBUG line)
  reference               bridge + host-local (Debian containernetworking-plugins 1.1.1)
  netplumb-cni +port      the same with one runtimeConfig.portMappings entry (nftables)
  reference +portmap      bridge + host-local, then portmap chained with prevResult; DEL in
                          reverse order, portmap given the mappings again (it needs them)
  floor                   ``python3 -S -c pass``

With ``--podman N`` (default 10, 0 to skip): ``podman run -d`` of a busybox container on a
netplumb-cni network and on a reference bridge network, start to running
(``bench/cni_podman.py``).

Each netplumb network has one resident container for the whole run (a node with pods): its
name server, started with a network's first member and ended with its last, then runs, as on
such a node; the resident's ADD (the network made, the name server started) is reported alone.

Prints a table with medians, p95 and ratios, writes bench/results/cni.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = str(ROOT / ".venv" / "bin" / "python3")
RESULTS = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "results") / "cni.json"
REF_DIR = "/usr/lib/cni"
SIDES = (
    "netplumb",
    "netplumb_default",
    "reference",
    "netplumb_port",
    "netplumb_port_default",
    "reference_portmap",
)
LABELS = {
    "netplumb": "netplumb-cni plain process (Python launcher)",
    "netplumb_default": "netplumb-cni default install (client+agent)",
    "reference": "reference bridge + host-local",
    "netplumb_port": "netplumb-cni plain process + 1 port",
    "netplumb_port_default": "netplumb-cni default install + 1 port",
    "reference_portmap": "reference bridge + host-local + portmap",
}
PAIRS = (
    ("netplumb", "reference"),
    ("netplumb_default", "reference"),
    ("netplumb_port", "reference_portmap"),
    ("netplumb_port_default", "reference_portmap"),
    ("netplumb_default", "netplumb"),
    ("netplumb_port_default", "netplumb_port"),
)
PORTS = [{"hostPort": 0, "containerPort": 80, "protocol": "tcp"}]  # hostPort set per guest


def np_conf(name: str, octet: int) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "type": "netplumb-cni",
        "bridge": f"npb-{name}"[:15],
        "subnet": f"10.{octet}.0.0/16",
    }


def ref_conf(name: str, octet: int, tmp: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "type": "bridge",
        "bridge": f"npb-{name}"[:15],
        "isGateway": True,
        "ipMasq": False,
        "ipam": {
            "type": "host-local",
            "dataDir": str(tmp / "host-local"),
            "ranges": [[{"subnet": f"10.{octet}.0.0/16"}]],
            "routes": [{"dst": "0.0.0.0/0"}],
        },
    }


# -- the worker, inside the host namespace --------------------------------------------------------


LIFETIME = 0.1  # seconds between a container's ADD and its DEL (0 with --back-to-back)
PATHS: dict[str, int] = {}  # the client's path per call (its NETPLUMB_CNI_DEBUG line) -> count


def call(
    plugin: str, command: str, conf: dict[str, Any], cid: str, netns: str, path: str, state: str
) -> tuple[float, dict[str, Any] | None, str | None]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1",
        "CNI_PATH": path,
        "NETPLUMB_STATE_DIR": state,
    }
    client = plugin.endswith("client/netplumb-cni")
    if client:
        env["NETPLUMB_CNI_DEBUG"] = "1"
    t0 = time.perf_counter_ns()
    proc = subprocess.run(
        [plugin], input=json.dumps(conf).encode(), capture_output=True, env=env, check=False
    )
    dt = (time.perf_counter_ns() - t0) / 1e6
    if client:
        for line in proc.stderr.decode().splitlines():
            how = line.removeprefix("netplumb-cni: ").split(" at ")[0]
            PATHS[how] = PATHS.get(how, 0) + 1
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    if proc.returncode != 0:
        return dt, out, f"{Path(plugin).name} {command} exit {proc.returncode}: {proc.stdout!r}"
    return dt, out, None


def worker(
    tag: str, n: int, tmp: Path, plugin_dir: Path, seed: int, lifetime: float
) -> dict[str, Any]:
    path = f"{plugin_dir}:{REF_DIR}"
    npp = str(plugin_dir / "netplumb-cni")
    client = str(tmp / "client" / "netplumb-cni")
    state = str(tmp / "state")
    confs = {
        "netplumb": np_conf("npbcnia", 131),
        "netplumb_default": np_conf("npbcnie", 137),
        "reference": ref_conf("npbcnib", 132, tmp),
        "netplumb_port": np_conf("npbcnic", 133),
        "netplumb_port_default": np_conf("npbcnif", 138),
        "reference_portmap": ref_conf("npbcnid", 134, tmp),
    }
    add: dict[str, list[float]] = {s: [] for s in SIDES}
    dele: dict[str, list[float]] = {s: [] for s in SIDES}
    errors: list[str] = []
    floor: list[float] = []
    first: dict[str, Any] = {}  # the default install's first call: it starts the agent

    def one(side: str, i: int) -> None:
        netns = f"/run/netns/npb-{tag}-{SIDES.index(side)}-{i}"
        cid = f"bench{i}"
        conf = dict(confs[side])
        ports = [{**PORTS[0], "hostPort": 20000 + 100 * SIDES.index(side) + i}]
        if "port" in side:
            conf["runtimeConfig"] = {"portMappings": ports}
        plugin = npp if side.startswith("netplumb") else f"{REF_DIR}/bridge"
        if side.endswith("default"):
            plugin = client
        t_add, result, err = call(plugin, "ADD", conf, cid, netns, path, state)
        if err is None and side == "reference_portmap":
            pm = {
                "cniVersion": "1.0.0",
                "name": conf["name"],
                "type": "portmap",
                "capabilities": {"portMappings": True},
                "prevResult": result,
                "runtimeConfig": {"portMappings": ports},
            }
            dt, _r, err = call(f"{REF_DIR}/portmap", "ADD", pm, cid, netns, path, state)
            t_add += dt
        if err:
            errors.append(err)
            return
        add[side].append(t_add)
        # The container runs a while before its DEL, as every container does: a veth deleted
        # within a millisecond or two of its creation costs the kernel a varying 15-25 ms more
        # or less than one a little older (the order of the sides then decides the ratio);
        # ``--back-to-back`` measures that case.
        time.sleep(lifetime)
        t_del = 0.0
        if side == "reference_portmap":
            pm = {
                "cniVersion": "1.0.0",
                "name": conf["name"],
                "type": "portmap",
                "capabilities": {"portMappings": True},
                "prevResult": result,
                "runtimeConfig": {"portMappings": ports},
            }
            dt, _r, err = call(f"{REF_DIR}/portmap", "DEL", pm, cid, netns, path, state)
            t_del += dt
        dt, _r, err2 = call(plugin, "DEL", conf, cid, netns, path, state)
        t_del += dt
        if err or err2:
            errors.append(str(err or err2))
            return
        dele[side].append(t_del)
        if side.endswith("default") and not first:
            first.update(side=side, add_ms=add[side].pop(), del_ms=dele[side].pop())
            first["paths"] = dict(PATHS)
            PATHS.clear()

    # A resident container on each of netplumb's networks, as on a node with pods running: the
    # network's name server (started with a network's first member, ended with its last) then
    # runs, and a container's ADD and DEL cost what they cost on such a node. Added by the
    # plain process (it starts no agent); its ADD (network, name server) is reported alone.
    first_member: dict[str, float] = {}
    residents = [s for s in SIDES if s.startswith("netplumb")]

    def resident(side: str, command: str) -> float:
        netns = f"/run/netns/npb-{tag}-{SIDES.index(side)}-res"
        dt, _r, err = call(
            npp, command, confs[side], f"resident{SIDES.index(side)}", netns, path, state
        )
        if err:
            errors.append(err)
        return dt

    for side in residents:
        first_member[side] = resident(side, "ADD")

    rng = random.Random(seed)
    for i in range(n):
        order = list(SIDES)
        rng.shuffle(order)
        for side in order:
            one(side, i)
        t0 = time.perf_counter_ns()
        subprocess.run([sys.executable, "-S", "-c", "pass"], check=False)
        floor.append((time.perf_counter_ns() - t0) / 1e6)
    for side in residents:
        resident(side, "DEL")
    return {
        "first_member_add": first_member,
        "add": add,
        "del": dele,
        "floor": floor,
        "errors": errors[:5],
        "first_call": first,
        "paths": dict(PATHS),
    }


# -- the driver --------------------------------------------------------------------------------


def summarize(samples: list[float]) -> dict[str, float | int]:
    if not samples:
        return {"n": 0}
    s = sorted(samples)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return {"n": len(s), "median_ms": statistics.median(s), "p95_ms": p95, "min_ms": s[0]}


def stop_agent(state: Path) -> None:
    """Stop the agent the default install's calls started for ``state`` (its PID is in its
    lock file), once it is gone."""
    try:
        pid = int((state / "cni-agent.lock").read_text().strip() or 0)
        if b"netplumb.cni.agent" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        os.kill(pid, 15)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def sh(*argv: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, **kw)


def drive(n: int, podman_n: int, seed: int, lifetime: float) -> int:
    tag = secrets.token_hex(3)
    host = f"npb-cni-{tag}"
    guests = [f"npb-{tag}-{s}-{i}" for s in range(len(SIDES)) for i in range(n)]
    guests += [f"npb-{tag}-{s}-res" for s in range(len(SIDES))]
    tmp = Path(tempfile.mkdtemp(prefix="npb-cni-"))
    plugin_dir = tmp / "bin"
    code = "import sys; from netplumb.cni.install import install; "
    sh(VENV_PY, "-c", code + "install(sys.argv[1], None, client=False)", str(plugin_dir))
    sh(VENV_PY, "-c", code + "install(sys.argv[1], None, client=True)", str(tmp / "client"))
    sh(VENV_PY, "-m", "compileall", "-q", str(ROOT / "src"))  # PYTHONDONTWRITEBYTECODE
    made: list[str] = []
    try:
        for ns in [host, *guests]:
            sh("ip", "netns", "add", ns)
            made.append(ns)
        sh("ip", "-n", host, "link", "set", "lo", "up")
        # no agent is started here: the default install's first call starts it
        proc = sh(
            "ip",
            "netns",
            "exec",
            host,
            VENV_PY,
            __file__,
            "--worker",
            tag,
            str(n),
            str(tmp),
            str(plugin_dir),
            str(seed),
            str(lifetime),
        )
        data = json.loads(proc.stdout)
        stop_agent(tmp / "state")
        pod: dict[str, Any] = {}
        if podman_n:
            from cni_podman import podman_bench

            pod = podman_bench(tag, host, podman_n, tmp, tmp / "client")
    finally:
        stop_agent(tmp / "state")
        if host in made:  # the podman run's netplumb state (no NETPLUMB_STATE_DIR there)
            code = "from netplumb import state; print(state.state_dir())"
            env = {k: v for k, v in os.environ.items() if k != "NETPLUMB_STATE_DIR"}
            where = sh("ip", "netns", "exec", host, VENV_PY, "-c", code, check=False, env=env)
            if where.stdout.strip():
                stop_agent(Path(where.stdout.strip()))
                shutil.rmtree(where.stdout.strip(), ignore_errors=True)
        for ns in reversed(made):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "iterations": n,
        "seed": seed,
        "lifetime_s": lifetime,
        "load": os.getloadavg(),
        "add": {s: summarize(data["add"][s]) for s in SIDES},
        "del": {s: summarize(data["del"][s]) for s in SIDES},
        "floor_python_S": summarize(data["floor"]),
        "errors": data["errors"],
        "first_call": data["first_call"],
        "first_member_add": data["first_member_add"],
        "paths": data["paths"],
        "podman_run": pod,
    }
    ratios: dict[str, Any] = {}
    for op in ("add", "del"):
        for mine, ref in PAIRS:
            a, b = result[op][mine].get("median_ms"), result[op][ref].get("median_ms")
            if a and b:
                ratios[f"{op} {mine}/{ref}"] = a / b
    if pod.get("netplumb", {}).get("median_ms") and pod.get("reference", {}).get("median_ms"):
        ratios["podman run netplumb/reference"] = (
            pod["netplumb"]["median_ms"] / pod["reference"]["median_ms"]
        )
    result["ratios"] = ratios
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"CNI latency, {n} iterations per side, order seed {seed}, DEL {lifetime * 1000:.0f} ms "
        f"after ADD (ms; load {result['load'][0]:.1f})"
    )
    print(f"{'side':46} {'ADD med':>8} {'ADD p95':>8} {'DEL med':>8} {'DEL p95':>8}")
    for s in SIDES:
        a, d = result["add"][s], result["del"][s]
        print(
            f"{LABELS[s]:46} {a.get('median_ms', 0):8.1f} {a.get('p95_ms', 0):8.1f} "
            f"{d.get('median_ms', 0):8.1f} {d.get('p95_ms', 0):8.1f}"
        )
    fl = result["floor_python_S"]
    print(
        f"{'floor: python3 -S -c pass':46} {fl.get('median_ms', 0):8.1f} {fl.get('p95_ms', 0):8.1f}"
    )
    for side in ("netplumb", "reference"):
        if side in pod:
            p = pod[side]
            print(
                f"podman run -d ({side}): median {p.get('median_ms', 0):.0f} ms, "
                f"p95 {p.get('p95_ms', 0):.0f} ms (n={p.get('n')})"
            )
    fc = result["first_call"]
    if fc:
        print(
            f"default install, first call (starts the agent; not in the medians): "
            f"ADD {fc['add_ms']:.1f} ms, DEL {fc['del_ms']:.1f} ms, paths {fc['paths']}"
        )
    print(f"default install, every later call's path: {result['paths']}")
    fm = ", ".join(f"{k} {v:.1f} ms" for k, v in result["first_member_add"].items())
    print(f"a network's first member (network + name server started), plain ADD: {fm}")
    for k, v in ratios.items():
        print(f"ratio {k}: {v:.2f}")
    for e in result["errors"]:
        print(f"error: {e}")
    return 1 if result["errors"] else 0


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["--worker"]:
        tag, n, tmp, plugin_dir, order_seed, life = args[1:7]
        out = worker(tag, int(n), Path(tmp), Path(plugin_dir), int(order_seed), float(life))
        print(json.dumps(out))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--podman", type=int, default=10, help="podman runs per side (0: skip)")
    p.add_argument("--quick", action="store_true", help="10 iterations, 3 podman runs")
    p.add_argument("--seed", type=int, default=None, help="the rounds' order (default: random)")
    p.add_argument(
        "--back-to-back",
        action="store_true",
        help=f"DEL at once after ADD (default: {LIFETIME * 1000:.0f} ms later)",
    )
    a = p.parse_args(args)
    if a.quick:
        a.iterations, a.podman = 10, 3
    seed = a.seed if a.seed is not None else secrets.randbelow(2**31)
    return drive(a.iterations, a.podman, seed, 0.0 if a.back_to_back else LIFETIME)


if __name__ == "__main__":
    sys.exit(main())
