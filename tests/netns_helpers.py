"""Helpers and fixtures for kernel and Docker tests: throwaway namespaces, an `ip -j` oracle.

Registered as a plugin by ``tests/conftest.py`` (which also puts ``tests/`` on ``sys.path``), so
the fixtures are available everywhere and the helpers import as ``from netns_helpers import ...``.

Every object a fixture makes has a unique ``npt-<6 hex>-...`` name and is removed at teardown,
even when the test failed; the session's leak check (conftest) reports whatever is left.
Results are read with ``ip -j`` and real commands, never with netplumb's own code.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUSYBOX_IMAGE = "netplumb/busybox:test"
NETNS_PREFIX = "npt-"


class CommandError(subprocess.CalledProcessError):
    """A failed command whose message carries its output: a test failure says why at once."""

    def __str__(self) -> str:
        return (
            f"{' '.join(map(str, self.cmd))} exited {self.returncode}\n"
            f"stdout: {self.stdout}\nstderr: {self.stderr}"
        )


def run(
    cmd: Sequence[str],
    netns: str | None = None,
    check: bool = True,
    timeout: float = 60,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (in namespace ``netns`` through ``ip netns exec``) and capture text output.

    With ``check`` a non-zero exit raises :class:`CommandError` (a ``CalledProcessError``).
    """
    argv = [*(["ip", "netns", "exec", netns] if netns else []), *cmd]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, input=input, env=env
    )
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, argv, proc.stdout, proc.stderr)
    return proc


def ip_json(args: Sequence[str], netns: str | None = None) -> list[dict[str, Any]]:
    """``ip -j ARGS`` (``ip -n NETNS -j ARGS``) parsed; an empty answer is an empty list."""
    out = run(["ip", *(["-n", netns] if netns else []), "-j", *args]).stdout
    rows: list[dict[str, Any]] = json.loads(out) if out.strip() else []
    return rows


def is_root() -> bool:
    return os.geteuid() == 0


def need_root() -> None:
    """Skip the calling test unless it runs as root (under CI the skip fails the run)."""
    if not is_root():
        pytest.skip("needs root (network namespaces)")


def docker_reachable() -> bool:
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _kill_and_delete(name: str) -> None:
    # Processes left inside (a server a test started, a netplumb host) would keep the namespace
    # alive after `ip netns del` removed its name: kill them first.
    pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    run(["ip", "netns", "del", name], check=False)


class NetnsFactory:
    """``netns(label="") -> name``: a new namespace ``npt-<6 hex>-<label>`` with ``lo`` up."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, label: str = "") -> str:
        need_root()
        name = f"{NETNS_PREFIX}{secrets.token_hex(3)}" + (f"-{label}" if label else "")
        run(["ip", "netns", "add", name])
        self.names.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def cleanup(self) -> None:
        while self.names:
            _kill_and_delete(self.names.pop())


@pytest.fixture
def netns() -> Iterator[NetnsFactory]:
    """Factory of throwaway namespaces, all deleted (their processes killed) at teardown."""
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """The Docker SDK client of a reachable engine, the test image present; else a skip.

    ``make test`` starts dockerd (scripts/start-dockerd.sh) and builds the image; when run
    by hand the image is built here if missing.
    """
    if not docker_reachable():
        pytest.skip("Docker Engine not reachable (make test starts it)")
    if run(["docker", "image", "inspect", BUSYBOX_IMAGE], check=False).returncode != 0:
        run(["bash", str(ROOT / "scripts" / "busybox-image.sh")], timeout=300)
    import docker

    return docker.from_env()


@dataclass(frozen=True)
class BusyboxContainer:
    name: str
    id: str
    pid: int  # of its init process: `nsenter -t PID -n ...` or /proc/PID/ns/net

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["docker", "exec", self.name, *argv], check=check)


class BusyboxFactory:
    """``busybox_container(label="", network=None, args=()) -> BusyboxContainer``.

    Runs ``netplumb/busybox:test sleep 3600`` detached as ``npt-<6 hex>-<label>``; ``network``
    is ``docker run --network`` (``"none"``: only ``lo``); ``args`` are more ``docker run``
    options, placed before the image.
    """

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(
        self, label: str = "", network: str | None = None, args: Sequence[str] = ()
    ) -> BusyboxContainer:
        name = f"{NETNS_PREFIX}{secrets.token_hex(3)}" + (f"-{label}" if label else "")
        self.names.append(name)  # before `run`: a half-made container is removed too
        opts = [*(["--network", network] if network else []), *args]
        cid = run(
            ["docker", "run", "-d", "--name", name, *opts, BUSYBOX_IMAGE, "sleep", "3600"],
            timeout=120,
        ).stdout.strip()
        pid = run(["docker", "inspect", "-f", "{{.State.Pid}}", name]).stdout.strip()
        return BusyboxContainer(name=name, id=cid, pid=int(pid))

    def cleanup(self) -> None:
        if self.names:
            run(["docker", "rm", "-f", *self.names], check=False, timeout=120)
            self.names.clear()


@pytest.fixture
def busybox_container(docker_client: Any) -> Iterator[BusyboxFactory]:
    """Factory of busybox containers, all removed (``docker rm -f``) at teardown."""
    factory = BusyboxFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


# -- firewalls of other engines, reproduced in a test namespace ------------------------------

# What dockerd (--iptables=true) leaves in the filter table, in the order it makes it: policy
# DROP on FORWARD, DOCKER-USER jumped to first (holding only RETURN), its isolation chains, and
# docker0's own rules (here for a bridge named "docker0" the helper makes, so that "a bridge
# Docker manages itself" exists too). Both families, as dockerd does with ip6tables enabled.
_DOCKER_FILTER = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
"""


def docker_firewall(ns: str, ipv6: bool = True) -> None:
    """Make namespace ``ns``'s firewall what dockerd makes of the machine's: the filter table
    above (IPv4, and IPv6 when ``ipv6``), a ``docker0`` bridge, and bridged traffic sent
    through iptables (``bridge-nf-call-iptables``/``-ip6tables``, per namespace since 5.3)."""
    exec_ = ["ip", "netns", "exec", ns]
    run(["ip", "-n", ns, "link", "add", "docker0", "type", "bridge"])
    run([*exec_, "iptables-restore"], input=_DOCKER_FILTER)
    if ipv6:
        run([*exec_, "ip6tables-restore"], input=_DOCKER_FILTER)
    for family in ("iptables", "ip6tables"):
        run([*exec_, "sysctl", "-q", "-w", f"net.bridge.bridge-nf-call-{family}=1"])


def docker_user_rules(ns: str, family: int = 4) -> list[str]:
    """netplumb's rules in DOCKER-USER, as ``iptables -S`` prints them."""
    tool = "iptables" if family == 4 else "ip6tables"
    out = run(["ip", "netns", "exec", ns, tool, "-S", "DOCKER-USER"]).stdout
    return [line for line in out.splitlines() if "netplumb" in line]
