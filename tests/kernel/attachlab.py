"""The attach tests' lab: the one lab of ``tests/lab.py`` with an ``ip -j`` oracle and the
objects the tests make themselves (bridges, veths of their own).

netplumb always runs inside the lab's "host" namespace (``ip netns exec npt-<id>-host ...``)
with its own state directory, so the machine's interfaces and netplumb's real state are never
touched. Everything is read back with ``ip -j``, /proc and real traffic, never with netplumb's
own code. Cleanup is the lab's: everything goes, in reverse order, also when a test fails.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Literal

from lab import NETPLUMB, PIPEWORK, ROOT, Json, ip_json, sh, wait_for
from lab import Lab as BaseLab

__all__ = ["NETPLUMB", "PIPEWORK", "ROOT", "Json", "Lab", "sh", "wait_for"]


class Lab(BaseLab):
    """A "host" namespace where netplumb runs, guests around it, and cleanup for all of them."""

    def __init__(self, tmp: Path, state: Literal["dir", "root", "netns"] = "dir") -> None:
        super().__init__(tmp, host="host", state=state)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return self.environ(extra)

    def attachments(self) -> list[str]:
        d = self.state / "attach"
        return sorted(p.name for p in d.iterdir()) if d.exists() else []

    # -- the oracle: ip -j --------------------------------------------------------------------

    def ipj(self, ns: str, *args: str) -> list[Json]:
        return ip_json(ns, *args)

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

    def on_bridge(self, bridge: str, ns: str, ifname: str, addr: str | None = None) -> None:
        """Plug ``ns`` into ``bridge`` with a veth of the test's own (host end ``t<ns-role>``)."""
        host_end = ("t" + ns.rsplit("-", 1)[1])[:15]
        self.veth(self.host, host_end, ns, ifname)
        sh("ip", "-n", self.host, "link", "set", host_end, "master", bridge)
        if addr:
            sh("ip", "-n", ns, "addr", "add", addr, "dev", ifname)
