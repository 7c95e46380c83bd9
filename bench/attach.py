"""Attach latency: netplumb vs pipework's ``ip`` commands vs the reference CNI bridge plugin.

Usage: .venv/bin/python bench/attach.py [--guests N] [--quick]

Everything runs inside a throwaway "host" network namespace (``npb-host-TAG``): the machine's
own interfaces are never touched. Each side gets its own pre-created bridge, its own /16 and N
fresh guest namespaces (``npb-g-TAG-<side><i>``), and attaches every guest once with a static
address and a default gateway. Sides:

  netplumb in-process   ``engine.attach(parse([BR, GUEST, IP/16@GW]))`` in one Python process,
                        timed per call (perf_counter_ns), N calls back to back
  netplumb one-shot     ``pipework BR GUEST IP/16@GW`` (bin/pipework), process start to exit
  pipework's ip cmds    the ``ip`` commands pipework runs for a Linux bridge and a static
                        address, as one ``/bin/sh -c`` script per guest, start to exit
  CNI bridge+host-local ``/usr/lib/cni/bridge`` ADD with host-local IPAM (Debian's
                        containernetworking-plugins), start to exit

All timing happens in one worker process started with ``ip netns exec npb-host-TAG`` (this
file, ``--worker``), so no side pays for ``ip netns exec`` itself. The worker first runs the
in-process loop, then N rounds of the process-based sides in rotating order (so drift and
noise hit them alike), with two floors measured the same way: ``/bin/true`` and
``python -S -c pass``. Afterwards every guest is checked (address, default route, bridge port),
and everything is removed, on failure too.

Prints a table and writes bench/results/attach.json.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = str(ROOT / ".venv" / "bin" / "python3")  # unresolved: the launcher derives the venv
RESULTS = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "results") / "attach.json"
CNI_DIR = Path("/usr/lib/cni")
TARGETS_MS = {"inproc": 1.5, "oneshot": 25.0}


@dataclass(frozen=True)
class Side:
    key: str
    short: str  # in bridge and guest names
    label: str
    octet: int  # the side's subnet is 10.<octet>.0.0/16, gateway 10.<octet>.0.1

    @property
    def bridge(self) -> str:
        return f"br-bench-{self.short}"

    @property
    def gateway(self) -> str:
        return f"10.{self.octet}.0.1"

    def address(self, i: int) -> str:
        return f"10.{self.octet}.{1 + i // 250}.{2 + i % 250}/16"

    def guest(self, tag: str, i: int) -> str:
        return f"npb-g-{tag}-{self.short}{i}"


INPROC = Side("inproc", "p", "netplumb in-process (engine.attach)", 71)
ONESHOT = Side("oneshot", "o", "netplumb one-shot (pipework cmd)", 72)
IPCMDS = Side("ipcmds", "i", "pipework's ip commands (sh script)", 73)
CNI = Side("cni", "c", "CNI bridge + host-local ADD", 74)
SIDES = (INPROC, ONESHOT, IPCMDS, CNI)
FLOORS = {"true": "floor: spawn /bin/true", "python": "floor: python3 -S -c pass"}

# What pipework (jpetazzo/pipework) runs for an existing Linux bridge, a netns guest and
# IP/PREFIX@GW, in its order; guest lookup and the /var/run/netns/<pid> link are not needed
# for a named netns, and arping is not installed here (pipework then only prints a warning).
IP_SCRIPT = """set -e
MTU=$(ip link show {br} | awk '{{print $5}}')
ip link add name {local} mtu $MTU type veth peer name {peer} mtu $MTU
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


def cni_conf(tmp: Path) -> str:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "npbench",
            "type": "bridge",
            "bridge": CNI.bridge,
            "isGateway": False,
            "ipMasq": False,
            "ipam": {
                "type": "host-local",
                "dataDir": str(tmp / "cni-host-local"),
                "ranges": [
                    [
                        {
                            "subnet": f"10.{CNI.octet}.0.0/16",
                            "rangeStart": f"10.{CNI.octet}.1.2",
                            "gateway": CNI.gateway,
                        }
                    ]
                ],
                "routes": [{"dst": "0.0.0.0/0", "gw": CNI.gateway}],
            },
        }
    )


# -- the worker: runs inside the host namespace -------------------------------------------------


def _ms(ns: int) -> float:
    return ns / 1e6


class SideRun:
    """Samples and failures of one side, as the worker collects them."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.failures = 0
        self.errors: list[str] = []  # verbatim, the first few distinct ones
        self.extra: dict[str, Any] = {}

    def fail(self, message: str) -> None:
        self.failures += 1
        if message not in self.errors and len(self.errors) < 3:
            self.errors.append(message)

    def as_json(self) -> dict[str, Any]:
        return {
            "samples_ms": self.samples,
            "failures": self.failures,
            "errors": self.errors,
            **self.extra,
        }


def run_inproc(tag: str, n: int) -> SideRun:
    run = SideRun()
    parse_ns: list[int] = []
    try:
        from netplumb.model.attach import AttachRequest
        from netplumb.ops import engine
        from netplumb.pipework.grammar import parse
    except Exception:
        run.fail(traceback.format_exc())
        return run
    for i in range(n):
        argv = [INPROC.bridge, INPROC.guest(tag, i), f"{INPROC.address(i)}@{INPROC.gateway}"]
        try:
            t0 = time.perf_counter_ns()
            req = parse(argv)
            t1 = time.perf_counter_ns()
            assert isinstance(req, AttachRequest)
            engine.attach(req)
            t2 = time.perf_counter_ns()
        except Exception as exc:
            run.fail(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            continue
        parse_ns.append(t1 - t0)
        run.samples.append(_ms(t2 - t1))
    if parse_ns:
        run.extra["parse_median_us"] = statistics.median(parse_ns) / 1e3
    return run


def timed(
    argv: list[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> tuple[float, str | None]:
    """Run a command; its wall time from spawn to reaped exit, and its error if it failed."""
    t0 = time.perf_counter_ns()
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=env, check=False)
    dt = _ms(time.perf_counter_ns() - t0)
    if proc.returncode != 0:
        out = (proc.stderr + proc.stdout).decode(errors="replace").strip()
        return dt, f"exit {proc.returncode}: {out}"
    return dt, None


def worker(tag: str, n: int, tmp: Path) -> dict[str, Any]:
    runs: dict[str, SideRun] = {"inproc": run_inproc(tag, n)}
    launcher = str(tmp / "pipework")
    conf = cni_conf(tmp).encode()
    base_env = dict(os.environ)
    cni_env = {
        **base_env,
        "CNI_COMMAND": "ADD",
        "CNI_IFNAME": "eth1",
        "CNI_PATH": str(CNI_DIR),
    }

    def oneshot(i: int) -> tuple[float, str | None]:
        guest = ONESHOT.guest(tag, i)
        addr = f"{ONESHOT.address(i)}@{ONESHOT.gateway}"
        return timed([launcher, ONESHOT.bridge, guest, addr], env=base_env)

    def ipcmds(i: int) -> tuple[float, str | None]:
        script = IP_SCRIPT.format(
            br=IPCMDS.bridge,
            local=f"veth1pl{i}",
            peer=f"veth1pg{i}",
            guest=IPCMDS.guest(tag, i),
            addr=IPCMDS.address(i),
            gw=IPCMDS.gateway,
        )
        return timed(["/bin/sh", "-c", script], env=base_env)

    def cni(i: int) -> tuple[float, str | None]:
        guest = CNI.guest(tag, i)
        env = {**cni_env, "CNI_CONTAINERID": guest, "CNI_NETNS": f"/run/netns/{guest}"}
        return timed([str(CNI_DIR / "bridge")], stdin=conf, env=env)

    def floor_true(_: int) -> tuple[float, str | None]:
        return timed(["/bin/true"], env=base_env)

    def floor_python(_: int) -> tuple[float, str | None]:
        return timed([VENV_PY, "-S", "-c", "pass"], env=base_env)

    steps = {
        "oneshot": oneshot,
        "ipcmds": ipcmds,
        "cni": cni,
        "true": floor_true,
        "python": floor_python,
    }
    order = list(steps)
    for key in order:
        runs[key] = SideRun()
    for i in range(n):
        rot = i % len(order)
        for key in order[rot:] + order[:rot]:
            dt, err = steps[key](i)
            if err is None:
                runs[key].samples.append(dt)
            else:
                runs[key].fail(err)
    return {key: run.as_json() for key, run in runs.items()}


# -- the driver: sets up, runs the worker, checks, cleans up, reports ---------------------------


def ip(*args: str, check: bool = True, stdin: str | None = None) -> str:
    proc = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def summarize(samples: list[float]) -> dict[str, float | int]:
    if not samples:
        return {"n": 0}
    s = sorted(samples)
    p95 = s[max(0, -(-95 * len(s) // 100) - 1)]  # nearest rank
    return {
        "n": len(s),
        "median_ms": round(statistics.median(s), 4),
        "p95_ms": round(p95, 4),
        "mean_ms": round(statistics.fmean(s), 4),
        "min_ms": round(s[0], 4),
        "max_ms": round(s[-1], 4),
        "first_ms": round(samples[0], 4),
    }


def make_launcher(tmp: Path) -> str:
    """A runnable copy of the pipework command `make setup` installs in .venv/bin (a python -S
    launcher), or of the portable bin/pipework when setup has not written one."""
    installed = ROOT / ".venv" / "bin" / "pipework"
    text = (installed if installed.exists() else ROOT / "bin" / "pipework").read_text()
    first, _, rest = text.partition("\n")
    if "python" in first:  # a `#!python -S` launcher: installers rewrite the line
        text = f"#!{VENV_PY} -S\n{rest}"
        kind = "python shebang, first line rewritten"
    elif '"$here/python3"' in text:  # a shell launcher that execs the python beside it
        text = text.replace('"$here/python3"', shlex.quote(VENV_PY))
        kind = "sh launcher, $here/python3 replaced by the venv's python3"
    else:
        raise RuntimeError("bin/pipework: cannot tell how to point it at the venv")
    path = tmp / "pipework"  # the launcher dispatches on its own name
    path.write_text(text)
    path.chmod(0o755)
    return kind


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        ).stdout

    diff = git("diff", "HEAD", "--", "src", "bin").encode()
    return {
        "head": git("rev-parse", "HEAD").strip(),
        "src_dirty": bool(diff),
        "src_diff_sha256": hashlib.sha256(diff).hexdigest()[:16] if diff else None,
    }


def src_newer_than(t: float) -> list[str]:
    return sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "src" / "netplumb").rglob("*.py")
        if p.stat().st_mtime > t
    )


def verify(tag: str, host: str, n: int) -> dict[str, dict[str, Any]]:
    """Per side: guests whose eth1 has the side's address and the default route via the
    gateway, and the bridge's port count."""
    out: dict[str, dict[str, Any]] = {}
    for side in SIDES:
        ok, problems = 0, list[str]()
        for i in range(n):
            g = side.guest(tag, i)
            addrs = json.loads(
                ip("-n", g, "-j", "-4", "addr", "show", "dev", "eth1", check=False) or "[]"
            )
            routes = json.loads(ip("-n", g, "-j", "route", "show", "default", check=False) or "[]")
            have = [f"{a['local']}/{a['prefixlen']}" for x in addrs for a in x["addr_info"]]
            good_addr = (
                side.address(i) in have
                if side is not CNI
                else any(h.startswith(f"10.{side.octet}.") and h.endswith("/16") for h in have)
            )
            good_route = any(
                r.get("gateway") == side.gateway and r.get("dev") == "eth1" for r in routes
            )
            if good_addr and good_route:
                ok += 1
            elif len(problems) < 3:
                problems.append(f"{g}: addresses {have}, default routes {routes}")
        ports = json.loads(ip("-n", host, "-j", "link", "show", "master", side.bridge) or "[]")
        out[side.key] = {"guests_ok": ok, "bridge_ports": len(ports), "problems": problems}
    return out


class Lab:
    """The namespaces and files of one run; close() removes them all."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.host = f"npb-host-{tag}"
        self.namespaces: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix=f"npbench-{tag}-"))
        self.state_dir: Path | None = None
        self.state_dir_existed = False

    def add_namespaces(self, names: list[str]) -> None:
        self.namespaces.extend(names)  # before creating: close() must try every one
        ip("-batch", "-", stdin="".join(f"netns add {name}\n" for name in names))

    def setup(self, n: int) -> None:
        self.add_namespaces([self.host])
        # netplumb's state, per netns (by inode and cookie): asked of netplumb itself, which
        # creates it (a new namespace's is always new)
        code = "from netplumb import state; print(state.state_dir())"
        where = subprocess.run(
            ["ip", "netns", "exec", self.host, VENV_PY, "-c", code],
            env={k: v for k, v in os.environ.items() if k != "NETPLUMB_STATE_DIR"},
            capture_output=True,
            text=True,
            check=True,
        )
        self.state_dir = Path(where.stdout.strip())
        self.state_dir_existed = False
        batch = ["link set lo up"]
        for side in SIDES:
            batch += [f"link add {side.bridge} type bridge", f"link set {side.bridge} up"]
        ip("-n", self.host, "-batch", "-", stdin="\n".join(batch) + "\n")
        self.add_namespaces([side.guest(self.tag, i) for side in SIDES for i in range(n)])

    def close(self) -> list[str]:
        leftovers = []
        guests = [ns for ns in self.namespaces if ns != self.host]
        for batch in (guests, [self.host] if self.host in self.namespaces else []):
            if batch:
                ip(
                    "-force",
                    "-batch",
                    "-",
                    check=False,
                    stdin="".join(f"netns del {name}\n" for name in batch),
                )
        listed = ip("netns", "list", check=False)
        leftovers += [ln.split()[0] for ln in listed.splitlines() if f"-{self.tag}" in ln]
        if self.state_dir is not None and self.state_dir.exists():
            if not self.state_dir_existed:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            else:  # an older directory for a reused inode: remove only our records
                for p in self.state_dir.rglob(f"*{self.tag}*"):
                    p.unlink(missing_ok=True)
            if self.state_dir.exists() and not self.state_dir_existed:
                leftovers.append(str(self.state_dir))
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.tmp.exists():
            leftovers.append(str(self.tmp))
        return leftovers


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def report(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    stats: dict[str, dict[str, Any]] = result["sides"]
    checks: dict[str, dict[str, Any]] = result.get("verification", {})
    n = result["guests_per_side"]
    ref_in = stats["inproc"].get("median_ms")
    ref_one = stats["oneshot"].get("median_ms")
    m = result["machine"]
    table = Table(
        title=(
            f"attach latency, {n} guests per side, {m['nproc']} CPUs, Linux {m['uname_r']}, "
            f"{result['date']}"
        ),
        caption=(
            "process sides: spawn to reaped exit, from a worker inside the host netns; "
            "x in-proc / x one-shot = side median / netplumb median"
        ),
    )
    for col in (
        "side",
        "ok",
        "median ms",
        "p95 ms",
        "min ms",
        "max ms",
        "target",
        "x in-proc",
        "x one-shot",
        "verified",
    ):
        table.add_column(col, justify="left" if col in ("side", "target") else "right")
    for key, st in stats.items():
        med = st.get("median_ms")
        target = TARGETS_MS.get(key)
        tcell = ""
        if target is not None:
            passed = med is not None and med <= target
            tcell = f"<= {target:g} " + ("[green]met[/]" if passed else "[red]MISSED[/]")
        chk = checks.get(key)
        vcell = f"{chk['guests_ok']}/{n}, {chk['bridge_ports']} ports" if chk else ""
        table.add_row(
            st["label"] if key in FLOORS.keys() | {s.key for s in SIDES} else key,
            f"{st.get('n', 0)}/{n}" + (f" ({st['failures']} failed)" if st["failures"] else ""),
            fmt(med),
            fmt(st.get("p95_ms")),
            fmt(st.get("min_ms")),
            fmt(st.get("max_ms")),
            tcell,
            fmt(med / ref_in if med and ref_in else None, 1),
            fmt(med / ref_one if med and ref_one else None, 2),
            vcell,
            style="dim" if key in FLOORS else None,
        )
    console = Console(width=160)
    console.print(table)
    if "parse_median_us" in stats["inproc"]:
        console.print(
            f"in-process: parse() median {stats['inproc']['parse_median_us']:.1f} us "
            "(not in the attach time); first attach "
            f"{fmt(stats['inproc'].get('first_ms'))} ms"
        )
    for key, st in stats.items():
        for err in st["errors"]:
            console.print(f"[red]{key} error (verbatim):[/]\n{err}", markup=True, highlight=False)
    for key, chk in checks.items():
        for problem in chk["problems"]:
            console.print(f"[yellow]{key} verification:[/] {problem}", highlight=False)
    for note in result["notes"]:
        console.print(f"note: {note}", highlight=False)


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def drive(n: int) -> int:
    if os.geteuid() != 0:
        print("bench/attach.py needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    for prog in ("bridge", "host-local"):
        if not (CNI_DIR / prog).exists():
            print(
                f"{CNI_DIR / prog} missing: apt-get install containernetworking-plugins",
                file=sys.stderr,
            )
            return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    # PYTHONDONTWRITEBYTECODE=1 is set here: without .pyc files every one-shot command would
    # recompile netplumb, and that is what would be measured.
    subprocess.run([VENV_PY, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    started = time.time()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    tag = secrets.token_hex(2)
    lab = Lab(tag)
    notes: list[str] = []
    raw: dict[str, Any] = {}
    checks: dict[str, dict[str, Any]] = {}
    leftovers: list[str] = []
    try:
        launcher_kind = make_launcher(lab.tmp)
        lab.setup(n)
        proc = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                lab.host,
                VENV_PY,
                str(Path(__file__).resolve()),
                "--worker",
                tag,
                str(n),
                str(lab.tmp),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120 + 10 * n,
        )
        if proc.returncode != 0:
            print(f"worker failed (exit {proc.returncode}):\n{proc.stderr}", file=sys.stderr)
            return 1
        raw = json.loads(proc.stdout)
        checks = verify(tag, lab.host, n)
    finally:
        leftovers = lab.close()
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    notes.append(f"load average (1/5/15 min) before {load_before}, after {load_after}")
    if leftovers:
        notes.append(f"NOT cleaned up: {leftovers}")
    changed = src_newer_than(started)
    if changed:
        notes.append(f"src files changed during the run (stale .pyc for one-shot?): {changed}")
    notes.append(f"pipework launcher copied to a temp dir: {launcher_kind}")
    labels = {s.key: s.label for s in SIDES} | FLOORS
    stats = {
        key: {
            "label": labels[key],
            **summarize(run["samples_ms"]),
            "failures": run["failures"],
            "errors": run["errors"],
            **{k: v for k, v in run.items() if k not in ("samples_ms", "failures", "errors")},
        }
        for key, run in raw.items()
    }
    ref_in, ref_one = stats["inproc"].get("median_ms"), stats["oneshot"].get("median_ms")
    for st in stats.values():
        med = st.get("median_ms")
        st["ratio_to_inproc"] = round(med / ref_in, 3) if med and ref_in else None
        st["ratio_to_oneshot"] = round(med / ref_one, 3) if med and ref_one else None
    result: dict[str, Any] = {
        "benchmark": "attach",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "nproc": len(os.sched_getaffinity(0)),
            "uname_r": platform.release(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "iproute2": ip("-V").strip(),
            "cni_plugins": subprocess.run(
                ["dpkg-query", "-W", "-f", "${Version}", "containernetworking-plugins"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout,
        },
        "netplumb": git_info(),
        "guests_per_side": n,
        "method": (
            "one worker inside the host netns: in-process loop first, then N rounds of the "
            "process sides in rotating order; process times are spawn to reaped exit"
        ),
        "targets_ms": {
            "inproc_median": TARGETS_MS["inproc"],
            "oneshot_median": TARGETS_MS["oneshot"],
        },
        "sides": stats,
        "verification": checks,
        "notes": notes,
        "samples_ms": {key: [round(x, 4) for x in run["samples_ms"]] for key, run in raw.items()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    report(result)
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    failed = any(st["failures"] for st in stats.values())
    unverified = any(c["guests_ok"] != n or c["bridge_ports"] != n for c in checks.values())
    return 1 if failed or unverified or leftovers else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--guests", type=int, default=100, help="guests per side (100)")
    parser.add_argument("--quick", action="store_true", help="20 guests per side")
    parser.add_argument("--worker", nargs=3, metavar=("TAG", "N", "TMP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        tag, n, tmp = args.worker
        print(json.dumps(worker(tag, int(n), Path(tmp))))
        return 0
    n = 20 if args.quick else args.guests
    if not 1 <= n <= 5000:
        parser.error("--guests must be between 1 and 5000")
    return drive(n)


if __name__ == "__main__":
    sys.exit(main())
