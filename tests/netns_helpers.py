"""Fixtures of the kernel and Docker tests, on the one lab of ``lab.py``, and the firewalls of
other engines reproduced in a test namespace.

Registered as a plugin by ``tests/conftest.py`` (which also puts ``tests/`` on ``sys.path``), so
the fixtures are available everywhere and the helpers import as ``from netns_helpers import ...``.

- ``netns``: a factory of bare throwaway namespaces (a :class:`lab.Lab` without a host);
- ``busybox_container``: a factory of busybox containers, the test image built if missing.

Every object a fixture makes has a unique ``npt-<6 hex>-...`` name and is removed at teardown,
even when the test failed; the session's leak check (conftest) reports whatever is left.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab import NETNS_PREFIX, ROOT, CommandError, Lab, is_root, need_root, remove_containers, run

__all__ = [
    "BUSYBOX_IMAGE",
    "BusyboxContainer",
    "BusyboxFactory",
    "CommandError",
    "NetnsFactory",
    "docker_firewall",
    "docker_reachable",
    "docker_user_rules",
    "is_root",
    "need_root",
    "run",
]

BUSYBOX_IMAGE = "netplumb/busybox:test"


def docker_reachable() -> bool:
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


class NetnsFactory:
    """``netns(label="") -> name``: a new namespace ``npt-<6 hex>-<label>`` with ``lo`` up, one
    of a lab's without a host namespace (the lab's cleanup deletes them)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def __call__(self, label: str = "") -> str:
        return self.lab.netns(label)


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[NetnsFactory]:
    """Factory of throwaway namespaces, all deleted (their processes killed) at teardown."""
    with Lab(tmp_path, host=None) as lab:
        yield NetnsFactory(lab)


def busybox_image() -> None:
    """Skip unless a Docker Engine answers; build the test image if missing (``make test``
    starts dockerd with scripts/start-dockerd.sh and builds it)."""
    if not docker_reachable():
        pytest.skip("Docker Engine not reachable (make test starts it)")
    if run(["docker", "image", "inspect", BUSYBOX_IMAGE], check=False).returncode != 0:
        run(["bash", str(ROOT / "scripts" / "busybox-image.sh")], timeout=300)


@dataclass(frozen=True)
class BusyboxContainer:
    name: str
    id: str
    pid: int  # of its init process: `nsenter -t PID -n ...` or /proc/PID/ns/net


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
        remove_containers(self.names)
        self.names.clear()


@pytest.fixture
def busybox_container() -> Iterator[BusyboxFactory]:
    """Factory of busybox containers, all removed (``docker rm -f``) at teardown."""
    busybox_image()
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
