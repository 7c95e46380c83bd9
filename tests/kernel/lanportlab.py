"""The lab of the link and published-port tests with a LAN: a "machine" namespace runs netplumb
(its hosts join the default network np0); a "lan" namespace is a neighbour on the machine's LAN
segment (veth, 192.168.50.0/24). Shared by ``test_ports_links.py`` and ``test_lanlb.py``."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from lab import Lab as BaseLab

ROOT = Path(__file__).resolve().parents[2]
NETPLUMB = str(ROOT / ".venv" / "bin" / "netplumb")
MACHINE_LAN, NEIGHBOUR = "192.168.50.1", "192.168.50.66"


class Lab(BaseLab):
    """The machine ``m`` (the lab's host namespace) on a LAN with a neighbour (``lan``)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, host="m")
        with self.closed_on_error():
            self.m, self.lan = self.host, self.netns("lan")
            self.veth(self.m, "lan0", self.lan, "eth0")
            for ns, dev, addr in ((self.m, "lan0", MACHINE_LAN), (self.lan, "eth0", NEIGHBOUR)):
                self.run_in(ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)

    def sh(self, ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run_in(ns, *argv, check=check)

    def np(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.sh(self.m, NETPLUMB, *args, check=check)

    def http(self, ns: str, url: str, *extra: str) -> str:
        """The HTTP status a curl from ``ns`` gets, or "000" when nothing answers."""
        return self.sh(
            ns,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "2",
            "-w",
            "%{http_code}",
            *extra,
            url,
            check=False,
        ).stdout

    def http_from_host(self, name: str, url: str) -> str:
        return self.np(
            "exec",
            name,
            "--",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "2",
            "-w",
            "%{http_code}",
            url,
            check=False,
        ).stdout

    def server(self, name: str, port: int, *extra: str) -> None:
        self.np(
            "run",
            "--name",
            name,
            "--expose",
            str(port),
            *extra,
            "--",
            "python3",
            "-m",
            "http.server",
            str(port),
            "--bind",
            "::",  # dual stack: IPv4 and IPv6 clients
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ss = self.np("exec", name, "--", "ss", "-Htln", f"sport = :{port}").stdout
            if ss.strip():
                return
            time.sleep(0.05)
        raise AssertionError(f"{name} never listened on {port}")

    def publish_rules(self) -> list[str]:
        """The owners of the published ports, as the kernel holds them: the comments of the
        elements of netplumb's four DNAT maps (a published port is one element), sorted."""
        out = []
        for name in ("publish4", "publish4_addr", "publish6", "publish6_addr"):
            argv = ("nft", "-j", "list", "map", "inet", "netplumb", name)
            proc = self.sh(self.m, *argv, check=False)
            if proc.returncode != 0:
                continue
            for item in json.loads(proc.stdout)["nftables"]:
                for elem in item.get("map", {}).get("elem", []):
                    key = elem[0] if isinstance(elem, list) else elem
                    out.append(str(key.get("elem", {}).get("comment")))
        return sorted(out)

    def ruleset(self) -> str:
        return self.sh(self.m, "nft", "list", "ruleset").stdout
