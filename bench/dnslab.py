"""Namespaces and servers for the DNS benchmarks (bench/dns.py, bench/dns_facts.py).

A lab is a throwaway "machine" namespace ``npb-dns-TAG-SIDE`` with a bridge ``br0`` whose
gateway address is 10.98.0.1/24, and guest namespaces on that bridge (``guest(i)``:
10.98.0.{10+i}/24). The fake upstream is dnsmasq in a namespace of its own (``Upstream``),
answering one name, fwd.example.test (192.0.2.53), and NXDOMAIN for every other (it never
forwards); each lab reaches it over a veth pair of its own (lab K: 10.99.K.1 <-> 10.99.K.2).

Everything a lab made goes with ``close()``: its server processes (by pid), then its
namespaces (which take their veths and bridges along).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
LOAD = str(ROOT / "bench" / "dnsload.py")
AARDVARK = "/usr/lib/podman/aardvark-dns"
FWD_NAME = "fwd.example.test"
FWD_ADDR = "192.0.2.53"
GATEWAY = "10.98.0.1"
SUBNET_PREFIX = "10.98.0"


def sh(*argv: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=300, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc


def dnsmasq_argv(*extra: str) -> list[str]:
    """dnsmasq in the foreground, no config file, /etc/hosts or resolv.conf, no log."""
    return [
        "dnsmasq",
        "-k",
        "--conf-file=/dev/null",
        "--no-hosts",
        "--no-resolv",
        "--pid-file=",
        "-u",
        "root",
        "--log-facility=/dev/null",
        *extra,
    ]


def stop(proc: subprocess.Popen[Any] | int | None) -> None:
    """End one process this benchmark started (by its pid), then reap it if it is ours."""
    if proc is None:
        return
    pid = proc if isinstance(proc, int) else proc.pid
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if isinstance(proc, subprocess.Popen):
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)


def upstream_argv() -> list[str]:
    """The fake upstream: fwd.example.test, NXDOMAIN for every other name, never forwards.
    No --bind-interfaces: it answers on every address its namespace has, now or later."""
    return dnsmasq_argv("-p", "53", f"--host-record={FWD_NAME},{FWD_ADDR}", "--local=/#/")


class Namespaces:
    """Network namespaces made by this run, deleted (with their links) by ``close``."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.procs: list[subprocess.Popen[Any] | int] = []

    def add(self, name: str) -> str:
        sh("ip", "netns", "add", name)
        self.names.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def spawn(self, ns: str, argv: list[str], **kw: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], text=True, **kw)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()
        for name in reversed(self.names):
            sh("ip", "netns", "del", name, check=False)
        self.names.clear()


class Upstream:
    """The fake upstream: dnsmasq in its own namespace, one veth pair per lab."""

    def __init__(self, nss: Namespaces, tag: str) -> None:
        self.nss = nss
        self.ns = nss.add(f"npb-dns-{tag}-up")
        self.links = 0
        self.proc = nss.spawn(self.ns, upstream_argv())

    def link(self, lab_ns: str) -> str:
        """A veth pair to ``lab_ns``; returns the upstream's address as seen from there."""
        self.links += 1
        k = self.links
        sh(
            "ip",
            "-n",
            lab_ns,
            "link",
            "add",
            "up0",
            "type",
            "veth",
            "peer",
            "name",
            f"l{k}",
            "netns",
            self.ns,
        )
        sh("ip", "-n", lab_ns, "addr", "add", f"10.99.{k}.1/30", "dev", "up0")
        sh("ip", "-n", lab_ns, "link", "set", "up0", "up")
        sh("ip", "-n", self.ns, "addr", "add", f"10.99.{k}.2/30", "dev", f"l{k}")
        sh("ip", "-n", self.ns, "link", "set", f"l{k}", "up")
        return f"10.99.{k}.2"


class Lab:
    """A machine namespace with br0 (10.98.0.1/24), guests on it, a link to the upstream."""

    def __init__(self, nss: Namespaces, tag: str, side: str, upstream: Upstream | None) -> None:
        self.nss = nss
        self.ns = nss.add(f"npb-dns-{tag}-{side}")
        self.prefix = f"npb-dns-{tag}-{side}"
        self.guests: list[str] = []
        self.upstream = upstream.link(self.ns) if upstream else ""

    def bridge(self, name: str = "br0", gateway: str = f"{GATEWAY}/24") -> None:
        sh("ip", "-n", self.ns, "link", "add", name, "type", "bridge")
        sh("ip", "-n", self.ns, "addr", "add", gateway, "dev", name)
        sh("ip", "-n", self.ns, "link", "set", name, "up")

    def guest(self, *addrs: str, bridge: str = "br0") -> str:
        """A guest namespace with one veth on ``bridge`` per address (eth0, eth1, ...)."""
        i = len(self.guests)
        ns = self.nss.add(f"{self.prefix}-g{i}")
        self.guests.append(ns)
        for j, addr in enumerate(addrs or (f"{SUBNET_PREFIX}.{10 + i}/24",)):
            br, _, a = addr.rpartition("@")
            port = f"g{i}p{j}"
            sh(
                "ip",
                "-n",
                self.ns,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                f"eth{j}",
                "netns",
                ns,
            )
            sh("ip", "-n", self.ns, "link", "set", port, "master", br or bridge, "up")
            sh("ip", "-n", ns, "addr", "add", a, "dev", f"eth{j}")
            sh("ip", "-n", ns, "link", "set", f"eth{j}", "up")
        return ns

    def spawn(self, argv: list[str], **kw: Any) -> subprocess.Popen[str]:
        return self.nss.spawn(self.ns, argv, **kw)


def load_in(enter: list[str], server: str, query: str, seconds: float, window: int) -> Any:
    """Run the load generator with ``enter`` (``ip netns exec NS`` or ``nsenter ...``)."""
    argv = [
        *enter,
        PYTHON,
        LOAD,
        "load",
        "--server",
        server,
        "--query",
        query,
        "--duration",
        str(seconds),
        "--window",
        str(window),
    ]
    return json.loads(sh(*argv).stdout)


class Poller:
    """``dnsload.py poll`` for one name, started in a namespace before the name exists."""

    def __init__(
        self, enter: list[str], server: str, name: str, timeout: float = 20, port: int = 53
    ) -> None:
        argv = [
            *enter,
            PYTHON,
            LOAD,
            "poll",
            "--server",
            server,
            "--query",
            name,
            "--port",
            str(port),
            "--interval",
            "0.001",
            "--timeout",
            str(timeout),
        ]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stderr is not None
        if self.proc.stderr.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"poller for {name} did not start")

    def first_ok(self) -> float | None:
        """CLOCK_MONOTONIC of the first answer, or None if none came within the timeout."""
        out, err = self.proc.communicate(timeout=60)
        if self.proc.returncode != 0:
            raise RuntimeError(f"poller failed: {err.strip()}")
        value = json.loads(out)["first_ok"]
        return None if value is None else float(value)


def wait_answers(
    enter: list[str], server: str, name: str, timeout: float = 10, port: int = 53
) -> None:
    """Wait until the server answers ``name`` with a record (it has started)."""
    got = Poller(enter, server, name, timeout, port).first_ok()
    if got is None:
        raise RuntimeError(f"{server} does not answer {name} within {timeout} s")


def aardvark_start(lab: Lab, confdir: Path) -> int:
    """aardvark-dns on port 53 in the lab's namespace; it forks and writes aardvark.pid."""
    argv = ["ip", "netns", "exec", lab.ns, AARDVARK, "--config", str(confdir), "-p", "53", "run"]
    # the daemon keeps what it inherits open: no pipes, or run() would wait for it
    null = subprocess.DEVNULL
    subprocess.run(argv, check=True, stdin=null, stdout=null, stderr=null, timeout=30)
    pidfile = confdir / "aardvark.pid"
    for _ in range(500):
        if pidfile.exists() and pidfile.read_text().strip():
            pid = int(pidfile.read_text())
            lab.nss.procs.append(pid)
            return pid
        time.sleep(0.01)
    raise RuntimeError("aardvark-dns did not write its pid file")


def aardvark_line(ident: str, ipv4: str, names: str, ipv6: str = "") -> str:
    """A container line of aardvark-dns 1.4's network file: id, IPv4s, IPv6s, names."""
    return f"{ident} {ipv4} {ipv6} {names}\n"


if __name__ == "__main__":
    sys.exit("bench/dnslab.py is a module of bench/dns.py and bench/dns_facts.py")
