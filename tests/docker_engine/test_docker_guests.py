"""Docker containers as guests, against a real Docker Engine.

Containers come from the locally imported busybox image (scripts/busybox-image.sh). netplumb
runs inside a throwaway "machine" namespace, so its bridge lives there: the containers' new
interfaces are veths whose host ends sit on that namespace's bridge.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab import Lab
from netns_helpers import BusyboxFactory, busybox_image

pytestmark = [pytest.mark.kernel, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=120
    )


@pytest.fixture
def containers(busybox_container: BusyboxFactory) -> Callable[[], str]:
    """``start() -> name``: a busybox container ``npt-<hex>`` on Docker's default network."""
    return lambda: busybox_container().name


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    with Lab(tmp_path, host="m") as lab:
        lab.defer("netplumb gc", lambda: lab.netplumb("gc", check=False))

        def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            return lab.in_host(*argv, check=check, timeout=120)

        yield run


def _addresses(container: str, ifname: str) -> list[str]:
    pid = _docker("inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
    out = subprocess.run(
        ["nsenter", "-t", pid, "-n", "ip", "-j", "addr", "show", ifname],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        f"{a['local']}/{a['prefixlen']}"
        for a in json.loads(out)[0]["addr_info"]
        if a["scope"] == "global"
    ]


def test_pipework_attaches_docker_containers_by_name_and_id(
    containers: Callable[[], str], machine: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    a, b = containers(), containers()
    b_id = _docker("inspect", "-f", "{{.Id}}", b).stdout.strip()
    machine(str(BIN / "pipework"), "br0", a, "10.51.0.2/24")
    machine(str(BIN / "pipework"), "br0", "-i", "eth2", b_id[:12], "10.51.0.3/24")
    assert _addresses(a, "eth1") == ["10.51.0.2/24"]
    assert _addresses(b, "eth2") == ["10.51.0.3/24"]
    # traffic between the containers over the new interfaces (busybox ping inside)
    ping = _docker("exec", a, "ping", "-c", "1", "-W", "2", "10.51.0.3", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    # and TCP: busybox nc listens in b, a connects through eth1
    _docker("exec", "-d", b, "sh", "-c", "echo hello-from-b | nc -l -p 7000")
    got = ""
    for _ in range(20):
        got = _docker(
            "exec", a, "sh", "-c", "nc -w 2 10.51.0.3 7000 </dev/null", check=False
        ).stdout
        if got:
            break
    assert got.strip() == "hello-from-b"


def test_detach_and_gc_after_docker_rm(
    containers: Callable[[], str], machine: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    a, b = containers(), containers()
    machine(str(BIN / "pipework"), "br0", a, "10.52.0.2/24")
    machine(str(BIN / "pipework"), "br0", b, "10.52.0.3/24")
    machine(str(BIN / "netplumb"), "detach", a, "eth1")
    pid = _docker("inspect", "-f", "{{.State.Pid}}", a).stdout.strip()
    links = subprocess.run(
        ["nsenter", "-t", pid, "-n", "ip", "-j", "link"], capture_output=True, text=True, check=True
    ).stdout
    assert "eth1" not in [ln["ifname"] for ln in json.loads(links)]
    _docker("rm", "-f", b)
    out = machine(str(BIN / "netplumb"), "gc").stdout
    assert "removed attachment docker:" in out
    host_links = json.loads(machine("ip", "-j", "link").stdout)
    assert [
        ln["ifname"] for ln in host_links if str(ln.get("ifalias", "")).startswith("netplumb:")
    ] == []


def test_a_stopped_container_is_a_clear_error(
    containers: Callable[[], str], machine: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    a = containers()
    _docker("stop", "-t", "0", a)
    proc = machine(str(BIN / "pipework"), "br0", a, "10.53.0.2/24", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"pipework: Docker container {a} is not running"
    links = json.loads(machine("ip", "-j", "link").stdout)
    assert [ln["ifname"] for ln in links] == ["lo"]


def test_calls_on_the_storage_driver_wait_longer_than_reads() -> None:
    # vfs copies a root filesystem on create and deletes it on remove: a busy disk once took a
    # removal past the client's 30 s, and `netplumb down` failed where `docker rm` waits
    from netplumb.runtimes import docker as rt

    busybox_image()  # or a skip: no Docker Engine
    api = rt.client().api
    assert api.timeout == 30
    with pytest.raises(RuntimeError), rt.storage_calls() as slow:
        assert slow is api and slow.timeout == rt.STORAGE_TIMEOUT > 30
        raise RuntimeError("a failed call")
    assert api.timeout == 30
