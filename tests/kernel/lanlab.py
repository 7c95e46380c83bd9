"""The simulated LAN of the lan tests: never the machine's own interface.

A "lan" namespace holds the LAN's switch (a bridge); a "rtr" namespace is the router, with
its own addresses and a DHCP server (dnsmasq); a "nbr" namespace is a neighbour holding an
address; the lab's "host" namespace (where netplumb runs) has a veth into the LAN, ``phys0``,
that plays the physical interface, with an IPv4 and an IPv6 address and default routes.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from kernel.attachlab import ROOT, Lab, sh, wait_for

PYTHON = str(ROOT / ".venv" / "bin" / "python")
SUBNET = "192.168.77"
NEIGHBOUR_MAC = "02:00:00:00:77:09"


class LanLab(Lab):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        with self.closed_on_error():
            self.lan = self.netns("lan")
            sh("ip", "-n", self.lan, "link", "add", "lanbr", "type", "bridge")
            sh("ip", "-n", self.lan, "link", "set", "lanbr", "up")
            self.router = self.netns("rtr")
            self.plug(self.router, "eth0", "p-rtr")
            sh("ip", "-n", self.router, "addr", "add", f"{SUBNET}.1/24", "dev", "eth0")
            sh("ip", "-n", self.router, "addr", "add", "fd77::1/64", "dev", "eth0", "nodad")
            self.neighbour = self.netns("nbr")
            self.plug(self.neighbour, "eth0", "p-nbr", mac=NEIGHBOUR_MAC)
            sh("ip", "-n", self.neighbour, "addr", "add", f"{SUBNET}.9/24", "dev", "eth0")
            self.plug(self.host, "phys0", "p-host")
            sh("ip", "-n", self.host, "addr", "add", f"{SUBNET}.2/24", "dev", "phys0")
            sh("ip", "-n", self.host, "addr", "add", "fd77::2/64", "dev", "phys0")
            sh("ip", "-n", self.host, "route", "add", "default", "via", f"{SUBNET}.1")
            sh("ip", "-n", self.host, "-6", "route", "add", "default", "via", "fd77::1")
            sh(
                "ip",
                "-n",
                self.host,
                "route",
                "add",
                "10.77.0.0/16",
                "via",
                f"{SUBNET}.1",
                "metric",
                "7",
            )
            assert wait_for(lambda: not self.tentative(self.host), timeout=10)

    def plug(self, ns: str, ifname: str, port: str, mac: str | None = None) -> None:
        """``ns`` gets ``ifname``, a veth whose other end ``port`` is on the LAN's switch."""
        self.veth(ns, ifname, self.lan, port)
        sh("ip", "-n", self.lan, "link", "set", port, "master", "lanbr")
        if mac:
            sh("ip", "-n", ns, "link", "set", ifname, "address", mac)

    def dnsmasq(self) -> None:
        leases = self.tmp / "dnsmasq.leases"
        self.popen(
            self.router,
            [
                "dnsmasq",
                "--no-daemon",
                "--user=root",
                "--no-resolv",
                "--no-hosts",
                "--port=0",
                "--interface=eth0",
                "--bind-interfaces",
                f"--dhcp-range={SUBNET}.100,{SUBNET}.150,255.255.255.0,2m",
                f"--dhcp-option=3,{SUBNET}.1",
                f"--dhcp-leasefile={leases}",
                "--pid-file=",
            ],
        )
        time.sleep(0.3)  # let it bind (not a timing assertion: the attach retries anyway)

    def lan_cmd(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``netplumb lan ARGS`` in the host namespace."""
        return self.netplumb("lan", *args, check=check, env=env)

    def raw_layout(self) -> tuple[str, str]:
        """``ip -j addr`` and the routes of every table, as text: compared byte for byte."""
        addrs = sh("ip", "-n", self.host, "-j", "addr").stdout
        routes = "".join(
            sh("ip", "-n", self.host, f"-{f}", "-j", "route", "show", "table", "all").stdout
            for f in ("4", "6")
        )
        return addrs, routes

    def tentative(self, ns: str) -> bool:
        """An IPv6 address still in duplicate address detection (it reads differently)."""
        data = json.loads(sh("ip", "-n", ns, "-j", "addr").stdout or "[]")
        return any(a.get("tentative") for e in data for a in e.get("addr_info", []))

    def settled_layout(self) -> tuple[str, str]:
        assert wait_for(lambda: not self.tentative(self.host), timeout=10)
        return self.raw_layout()

    def master_of(self, ifname: str) -> str | None:
        link = self.link(self.host, ifname)
        assert link is not None, f"{ifname} is gone"
        master = link.get("master")
        return str(master) if master else None


__all__ = ["NEIGHBOUR_MAC", "PYTHON", "SUBNET", "LanLab", "sh", "wait_for"]
