"""The attach tests' lab: a throwaway "host" namespace, guests, and an ip -j oracle.

netplumb always runs inside the lab's "host" namespace (``ip netns exec npt-<id>-host ...``)
with its own state directory, so the machine's interfaces and netplumb's real state are never
touched. Everything is read back with ``ip -j``, /proc and real traffic, never with netplumb's
own code. Teardown kills what runs in the lab's namespaces (by PID) and deletes them, also
when a test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NETPLUMB = str(ROOT / ".venv" / "bin" / "netplumb")
PIPEWORK = str(ROOT / ".venv" / "bin" / "pipework")

Json = dict[str, Any]


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a setup command of the test itself (not netplumb)."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def wait_for(cond: Callable[[], object], timeout: float = 5.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


class Lab:
    """A "host" namespace where netplumb runs, guests around it, and cleanup for all of them."""

    def __init__(self, tmp: Path) -> None:
        self.id = secrets.token_hex(3)
        self.tmp = tmp
        self.state = tmp / "state"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.np_hosts: list[str] = []
        self.host = self.netns("host")

    # -- namespaces and processes -------------------------------------------------------------

    def netns(self, role: str) -> str:
        name = f"npt-{self.id}-{role}"
        self.namespaces.append(name)
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def popen(self, ns: str, argv: list[str], **kw: Any) -> subprocess.Popen[str]:
        """A background process in ``ns``, killed at teardown."""
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], text=True, **kw)
        self.procs.append(proc)
        return proc

    def sleeper(self, ns: str) -> int:
        """A ``sleep`` process inside ``ns``; returns its PID once it is in the namespace."""
        proc = self.popen(ns, ["sleep", "1000"])
        want = os.stat(f"/run/netns/{ns}").st_ino

        def inside() -> bool:
            try:
                return os.stat(f"/proc/{proc.pid}/ns/net").st_ino == want
            except OSError:
                return False

        assert wait_for(inside), f"sleep did not enter {ns}"
        return proc.pid

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # every host netplumb knows in this lab, whoever started it (their namespaces are not
        # the lab's, so deleting the lab's namespaces would leave them and their holders)
        listed = self.netplumb("ps", "--json", check=False).stdout if self.state.exists() else ""
        known = {str(r["name"]) for r in json.loads(listed or "[]")}
        for name in sorted(set(self.np_hosts) | known):
            self.netplumb("rm", "-f", name, check=False)
        for ns in reversed(self.namespaces):
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", ns, check=False)

    # -- running netplumb ---------------------------------------------------------------------

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, "NETPLUMB_STATE_DIR": str(self.state)}
        env.pop("NETPLUMB_FAIL_AFTER", None)
        env.update(extra or {})
        return env

    def in_host(
        self, *argv: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the lab's host namespace, with the lab's netplumb state dir."""
        cmd = ["ip", "netns", "exec", self.host, *argv]
        proc = subprocess.run(
            cmd, env=self.env(env), capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def pipework(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.in_host(PIPEWORK, *args, check=check, env=env)

    def netplumb(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.in_host(NETPLUMB, *args, check=check, env=env)

    def attachments(self) -> list[str]:
        d = self.state / "attach"
        return sorted(p.name for p in d.iterdir()) if d.exists() else []

    # -- the oracle: ip -j --------------------------------------------------------------------

    def ipj(self, ns: str, *args: str) -> list[Json]:
        out = sh("ip", "-j", "-n", ns, *args).stdout
        data: list[Json] = json.loads(out or "[]")
        return data

    def links(self, ns: str, details: bool = False) -> list[Json]:
        return self.ipj(ns, *(["-d"] if details else []), "link")

    def link(self, ns: str, name: str, details: bool = False) -> Json | None:
        return next((ln for ln in self.links(ns, details) if ln["ifname"] == name), None)

    def link_by_index(self, ns: str, index: int) -> Json | None:
        return next((ln for ln in self.links(ns) if ln["ifindex"] == index), None)

    def addrs(self, ns: str, dev: str, family: str | None = None) -> list[str]:
        """Global (non link-local) addresses of ``dev`` as ``ip/prefix``."""
        args = ["-6"] if family == "6" else ["-4"] if family == "4" else []
        out = []
        for entry in self.ipj(ns, *args, "addr", "show", "dev", dev):
            for a in entry.get("addr_info", []):
                if a.get("scope") == "global":
                    out.append(f"{a['local']}/{a['prefixlen']}")
        return out

    def routes(self, ns: str, family: str = "4", *args: str) -> list[Json]:
        return self.ipj(ns, f"-{family}", "route", "show", *args)

    def default_routes(self, ns: str, family: str = "4") -> list[tuple[str | None, str | None]]:
        return [
            (r.get("gateway"), r.get("dev"))
            for r in self.routes(ns, family)
            if r.get("dst") == "default"
        ]

    def snapshot(self, ns: str) -> Json:
        """Links, addresses and main-table routes of ``ns``, in a form to compare."""
        links = sorted(
            (
                ln["ifname"],
                "UP" in ln["flags"],
                ln.get("master"),
                ln["mtu"],
                ln.get("ifalias"),
            )
            for ln in self.links(ns)
        )
        addrs = sorted(
            (e["ifname"], a["local"], a["prefixlen"])
            for e in self.ipj(ns, "addr")
            for a in e.get("addr_info", [])
        )
        routes = sorted(
            (
                fam,
                r.get("dst"),
                r.get("gateway"),
                r.get("dev"),
                r.get("protocol"),
                r.get("scope"),
                r.get("metric"),
            )
            for fam in ("4", "6")
            for r in self.ipj(ns, "-d", f"-{fam}", "route", "show")
        )
        return {"links": links, "addrs": addrs, "routes": routes}

    def ping(self, ns: str, addr: str, tries: int = 1) -> bool:
        """One ping (``tries`` attempts) from ``ns`` to ``addr``."""
        for _ in range(tries):
            cmd = ["ip", "netns", "exec", ns, "ping", "-c1", "-W1", addr]
            if subprocess.run(cmd, capture_output=True).returncode == 0:
                return True
        return False

    # -- objects the test itself creates (not netplumb's) -------------------------------------

    def bridge(self, name: str, mtu: int | None = None) -> None:
        sh("ip", "-n", self.host, "link", "add", "name", name, "type", "bridge")
        if mtu is not None:
            sh("ip", "-n", self.host, "link", "set", name, "mtu", str(mtu))
        sh("ip", "-n", self.host, "link", "set", name, "up")

    def veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
        """A veth pair of the test's own, both ends up."""
        sh(
            "ip",
            "-n",
            ns_a,
            "link",
            "add",
            "name",
            name_a,
            "type",
            "veth",
            "peer",
            "name",
            name_b,
            "netns",
            ns_b,
        )
        sh("ip", "-n", ns_a, "link", "set", name_a, "up")
        sh("ip", "-n", ns_b, "link", "set", name_b, "up")

    def on_bridge(self, bridge: str, ns: str, ifname: str, addr: str | None = None) -> None:
        """Plug ``ns`` into ``bridge`` with a veth of the test's own (host end ``t<ns-role>``)."""
        host_end = ("t" + ns.rsplit("-", 1)[1])[:15]
        self.veth(self.host, host_end, ns, ifname)
        sh("ip", "-n", self.host, "link", "set", host_end, "master", bridge)
        if addr:
            sh("ip", "-n", ns, "addr", "add", addr, "dev", ifname)
