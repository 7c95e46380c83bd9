"""The sides of bench/dns.py: Docker's embedded DNS, aardvark-dns, dnsmasq, netplumb.

Each side sets up a server with one member name (A), a fake upstream answering
fwd.example.test, and an asker: a namespace to run the load generator in (``enter``, a
command prefix) and the address it asks (``server``). ``new_name()`` makes one more name
appear the way that side does it and returns the ms from that step's end (``docker run``
returning, SIGHUP sent, a hosts file written, ``netplumb run`` returning) until the asker's
first answer for it (a poller asks every millisecond from the asker's namespace, started
before the step); negative when the name resolves before the step returns. ``last_step_ms``
is the step's own duration (``docker run``, ``netplumb run``; 0 for a signal). ``close()``
removes what the side made; it is always called.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import dnslab
from dnslab import FWD_NAME, GATEWAY, Lab, Namespaces, Poller, Upstream, sh

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "netplumb/busybox:test"
NETPLUMB = str(ROOT / ".venv" / "bin" / "netplumb")
MISSING = "nosuch"


class Side:
    label = ""
    last_step_ms = 0.0  # how long the last new_name's step itself took (docker run, ...)
    enter: list[str]
    server: str
    queries: dict[str, str]

    def new_name(self, i: int) -> float | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _since(poller: Poller, t_step: float) -> float | None:
    first = poller.first_ok()
    return None if first is None else round((first - t_step) * 1000, 2)


class DockerSide(Side):
    """A busybox asker, a member and the upstream on a user-defined network; the asker's
    embedded DNS (127.0.0.11) forwards to the upstream because the asker was started with
    ``--dns UPSTREAM`` (Docker's per-container upstream: the machine's resolv.conf is not
    touched). dnsmasq runs in the upstream container's network namespace (nsenter)."""

    label = "Docker embedded DNS (127.0.0.11)"

    def __init__(self, tag: str) -> None:
        self.net = f"npb-dns-{tag}"
        self.prefix = f"npb-dns-{tag}"
        self.containers: list[str] = []
        self.upstream_proc: subprocess.Popen[str] | None = None
        try:
            self._setup(tag)
        except BaseException:
            self.close()
            raise

    def _setup(self, tag: str) -> None:
        sh("bash", str(ROOT / "scripts" / "busybox-image.sh"))
        sh("docker", "network", "create", self.net)
        up = self._run("up")
        up_pid = self._inspect(up, "{{.State.Pid}}")
        up_ip = self._inspect(
            up, f'{{{{(index .NetworkSettings.Networks "{self.net}").IPAddress}}}}'
        )
        self.upstream_proc = subprocess.Popen(
            ["nsenter", f"--net=/proc/{up_pid}/ns/net", *dnslab.upstream_argv()], text=True
        )
        self.member = self._run("m")
        asker = self._run("a", "--dns", up_ip)
        self.enter = ["nsenter", f"--net=/proc/{self._inspect(asker, '{{.State.Pid}}')}/ns/net"]
        self.server = "127.0.0.11"
        self.queries = {"member": self.member, "missing": f"{MISSING}-{tag}", "forwarded": FWD_NAME}
        dnslab.wait_answers(self.enter, self.server, FWD_NAME)

    def _run(self, suffix: str, *extra: str) -> str:
        name = f"{self.prefix}-{suffix}"
        self.containers.append(name)
        sh(
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            self.net,
            *extra,
            IMAGE,
            "sleep",
            "100000",
        )
        return name

    def _inspect(self, name: str, fmt: str) -> str:
        return sh("docker", "inspect", "-f", fmt, name).stdout.strip()

    def new_name(self, i: int) -> float | None:
        name = f"{self.prefix}-n{i}"
        poller = Poller(self.enter, self.server, name)
        try:
            t0 = time.monotonic()
            self._run(f"n{i}")
            t_step = time.monotonic()
            self.last_step_ms = round((t_step - t0) * 1000, 2)
            return _since(poller, t_step)
        finally:
            poller.proc.kill()
            sh("docker", "rm", "-f", name, check=False)

    def close(self) -> None:
        dnslab.stop(self.upstream_proc)
        if self.containers:
            sh("docker", "rm", "-f", *self.containers, check=False)
        sh("docker", "network", "rm", self.net, check=False)


class LabSide(Side):
    """A server on the lab's gateway 10.98.0.1; the asker is guest 0 (10.98.0.10)."""

    def __init__(self, nss: Namespaces, tag: str, side: str, upstream: Upstream) -> None:
        self.lab = Lab(nss, tag, side, upstream)
        self.lab.bridge()
        self.asker = self.lab.guest()
        self.enter = ["ip", "netns", "exec", self.asker]
        self.server = GATEWAY
        self.queries = {"member": "web1", "missing": MISSING, "forwarded": FWD_NAME}
        self.dir = Path(tempfile.mkdtemp(prefix=f"npb-dns-{side}-"))

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class AardvarkSide(LabSide):
    """aardvark-dns 1.4 with one network file; the network's DNS server (1.4's second
    column of the first line) is the fake upstream. New names: the file rewritten (a
    rename, as netavark does), then SIGHUP."""

    label = "aardvark-dns 1.4"

    def __init__(self, nss: Namespaces, tag: str, upstream: Upstream) -> None:
        super().__init__(nss, tag, "aard", upstream)
        self.lines = [
            f"{GATEWAY} {self.lab.upstream}\n",
            dnslab.aardvark_line("a0", "10.98.0.10", "asker"),
            dnslab.aardvark_line("m1", "10.98.0.3", "web1"),
        ]
        self._write()
        self.pid = dnslab.aardvark_start(self.lab, self.dir)
        dnslab.wait_answers(self.enter, self.server, "web1")

    def _write(self) -> None:
        tmp = self.dir / ".bench.tmp"
        tmp.write_text("".join(self.lines))
        tmp.rename(self.dir / "bench")

    def new_name(self, i: int) -> float | None:
        name = f"new{i}"
        poller = Poller(self.enter, self.server, name)
        self.lines.append(dnslab.aardvark_line(f"n{i}", f"10.98.0.{100 + i}", name))
        self._write()
        t_step = time.monotonic()  # the signal's send: nothing can answer before it
        os.kill(self.pid, signal.SIGHUP)
        return _since(poller, t_step)


class DnsmasqSide(LabSide):
    """dnsmasq on the gateway (bind-interfaces), no cache (Docker and aardvark-dns cache
    nothing either), forwarding to the fake upstream; names in --addn-hosts (re-read on
    SIGHUP) or, with ``hostsdir``, in --hostsdir (re-read on inotify, no signal)."""

    def __init__(self, nss: Namespaces, tag: str, upstream: Upstream, hostsdir: bool) -> None:
        super().__init__(nss, tag, "dmhd" if hostsdir else "dmsh", upstream)
        self.hostsdir = hostsdir
        self.label = "dnsmasq, --hostsdir (inotify)" if hostsdir else "dnsmasq, SIGHUP"
        self.hosts = self.dir / "hosts.d" / "members" if hostsdir else self.dir / "hosts"
        self.hosts.parent.mkdir(exist_ok=True)
        self.hosts.write_text("10.98.0.3 web1\n")
        source = f"--hostsdir={self.hosts.parent}" if hostsdir else f"--addn-hosts={self.hosts}"
        self.proc = self.lab.spawn(
            dnslab.dnsmasq_argv(
                "-p",
                "53",
                f"--listen-address={GATEWAY}",
                "--bind-interfaces",
                f"--server={self.lab.upstream}",
                "--cache-size=0",
                source,
            )
        )
        dnslab.wait_answers(self.enter, self.server, "web1")

    def new_name(self, i: int) -> float | None:
        name = f"new{i}"
        poller = Poller(self.enter, self.server, name)
        line = f"10.98.0.{100 + i} {name}\n"
        if self.hostsdir:  # a new file per name: dnsmasq reads a new file in the directory
            tmp = self.hosts.parent.parent / f".{name}"
            tmp.write_text(line)
            t_step = time.monotonic()
            tmp.rename(self.hosts.parent / name)
        else:
            self.hosts.write_text(self.hosts.read_text() + line)
            t_step = time.monotonic()
            os.kill(self.proc.pid, signal.SIGHUP)
        return _since(poller, t_step)


# -- netplumb ------------------------------------------------------------------------------------


def netplumb_available() -> bool:
    """netplumb's name server is there (ops/dnsserver.py, on main since issue 14's first part)."""
    return importlib.util.find_spec("netplumb.ops.dnsserver") is not None


class NetplumbSide(Side):
    """netplumb's own name server (ops/dnsserver.py: a daemon, ``netplumb-dns``, that the
    first attachment to a netplumb network starts; it follows the records by inotify).

    Layout: the lab namespace is the "machine" (netplumb runs there with a state directory of
    its own and the run's mark, as bench/scale.py does); its /etc/resolv.conf names the fake
    upstream (a bind mount in the commands' private mount namespace, which the server started
    by ``run`` inherits: the machine's file is not touched); ``netplumb network create dnsb
    --subnet 10.98.0.0/24`` (gateway 10.98.0.1), the hosts ``web1`` and ``asker`` on it; the
    load generator runs in the asker's namespace (nsenter --net=/proc/<its pid>/ns/net)
    against the gateway. New names: ``netplumb run --network dnsb --name newI -- sleep
    infinity`` returning -> first answer; each new host is removed afterwards (not timed), as
    Docker's containers are. ``close`` removes hosts, the server (it carries the mark) and
    the namespace (bench/sweep.py)."""

    label = "netplumb"

    def __init__(self, nss: Namespaces, tag: str, upstream: Upstream) -> None:
        import sweep

        self.lab = Lab(nss, tag, "np", upstream)
        self.dir = Path(tempfile.mkdtemp(prefix="npb-dns-np-"))
        self.resolv = self.dir / "resolv.conf"
        self.resolv.write_text(f"nameserver {self.lab.upstream}\n")
        self.env = sweep.marked(
            {**os.environ, "NETPLUMB_STATE_DIR": str(self.dir / "state")}, self.lab.ns
        )
        try:
            self._setup()
        except BaseException:
            self.close()  # the server and hosts it started carry the mark: swept
            raise

    def _setup(self) -> None:
        run = ("run", "--network", "dnsb")
        self.np("network", "create", "dnsb", "--subnet", "10.98.0.0/24")
        self.np(*run, "--ip", "10.98.0.3", "--name", "web1", "--", "sleep", "infinity")
        self.np(*run, "--ip", "10.98.0.10", "--name", "asker", "--", "sleep", "infinity")
        self.enter = ["nsenter", f"--net=/proc/{self._pid('asker')}/ns/net"]
        self.server = GATEWAY
        self.queries = {"member": "web1", "missing": MISSING, "forwarded": FWD_NAME}
        dnslab.wait_answers(self.enter, self.server, "web1")

    def np(self, *args: str) -> subprocess.CompletedProcess[str]:
        script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
        return sh(
            "ip",
            "netns",
            "exec",
            self.lab.ns,
            "sh",
            "-c",
            script,
            str(self.resolv),
            NETPLUMB,
            *args,
            env=self.env,
        )

    def _pid(self, name: str) -> int:
        import json

        rows: list[dict[str, Any]] = json.loads(self.np("ps", "--json").stdout)
        return int(next(r["pid"] for r in rows if r["name"] == name))

    def new_name(self, i: int) -> float | None:
        name = f"new{i}"
        poller = Poller(self.enter, self.server, name)
        try:
            t0 = time.monotonic()
            self.np("run", "--network", "dnsb", "--name", name, "--", "sleep", "infinity")
            t_step = time.monotonic()
            self.last_step_ms = round((t_step - t0) * 1000, 2)
            return _since(poller, t_step)
        finally:
            poller.proc.kill()
            self.np("rm", "-f", name)

    def close(self) -> None:
        import sweep

        sweep.sweep(self.lab.ns, self.dir, self.lab.ns, self.env)
        shutil.rmtree(self.dir, ignore_errors=True)


def make_sides(names: list[str], nss: Namespaces, upstream: Upstream, tag: str) -> list[Side]:
    """The sides asked for, set up; on an error the ones already made are closed."""
    sides: list[Side] = []
    try:
        for name in names:
            if name == "docker":
                sides.append(DockerSide(tag))
            elif name == "aardvark":
                sides.append(AardvarkSide(nss, tag, upstream))
            elif name in ("dnsmasq", "dnsmasq-hostsdir"):
                sides.append(DnsmasqSide(nss, tag, upstream, name == "dnsmasq-hostsdir"))
            elif name == "netplumb":
                sides.append(NetplumbSide(nss, tag, upstream))
    except BaseException:
        for side in sides:
            side.close()
        raise
    return sides


def new_tag() -> str:
    return secrets.token_hex(2)
