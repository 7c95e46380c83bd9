"""netplumb-cni under real runtimes, installed as `netplumb cni install` does by default (the
compiled client, no agent running: the first call starts one). Podman 4.3 with its CNI
backend starts containers with
``--network <netplumb network> -p ... --ip ... --mac-address ...``, and containerd's
``ctr run --cni`` starts one on a netplumb-cni network; traffic is checked from the lab's host
namespace (to the container, to the published port), and after removal nothing of the
attachment is left (links, leases, nftables rules, records).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.podmanlab import CONTAINERD_SOCKETS, IMAGE, Ctr, Podman
from kernel.attachlab import Lab, sh, wait_for
from kernel.cnilab import Cni, install_plugin, stop_agent

pytestmark = pytest.mark.kernel

HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]


@pytest.fixture
def podman_lab(tmp_path: Path) -> Iterator[tuple[Lab, Podman, Cni]]:
    if subprocess.run(["which", "podman"], capture_output=True).returncode != 0:
        pytest.skip("podman is not installed (scripts/setup.sh installs it)")
    # netplumb's own state directory for a namespace (see podmanlab: no NETPLUMB_STATE_DIR),
    # by its rule (inode and cookie)
    lab = Lab(tmp_path, state="netns")
    plugin_dir = tmp_path / "cni-bin"
    pm = None
    try:
        # the default install: the compiled client, no agent running; the runtime's first
        # call starts one (which must not hold podman's pipes: podman reads them to EOF)
        install_plugin(plugin_dir, client=True)
        pm = Podman(lab, Path(f"/tmp/npt-podman-{secrets.token_hex(3)}"), plugin_dir)
        pm.import_image()
        cni = Cni(lab, plugin_dir, f"npt{lab.id}")
        pm.network(
            cni.net,
            {
                "type": "netplumb-cni",
                "subnet": "10.79.0.0/24",
                "capabilities": {"portMappings": True, "ips": True, "mac": True},
            },
        )
        yield lab, pm, cni
        pm.close()
        pm = None
        wait_for(lambda: cni.leftovers() == [], 15)
        assert cni.leftovers() == [], "podman rm left CNI objects behind"
        assert stop_agent(lab.state) is not None, "the runtime's calls started no agent"
    finally:
        if pm is not None:
            pm.close()
        stop_agent(lab.state)
        lab.close()


def _http(lab: Lab, url: str) -> str:
    proc = sh("ip", "netns", "exec", lab.host, "curl", "-s", "--max-time", "5", url, check=False)
    return proc.stdout


def test_podman_run_with_ip_mac_and_published_port(podman_lab: tuple[Lab, Podman, Cni]) -> None:
    lab, pm, cni = podman_lab
    pm.run(
        "npt-web",
        "--network",
        cni.net,
        "--ip",
        "10.79.0.42",
        "--mac-address",
        "02:00:00:79:00:42",
        "-p",
        "18090:80",
        IMAGE,
        *HTTPD,
    )
    addr = pm("exec", "npt-web", "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert "inet 10.79.0.42/24" in addr
    link = pm("exec", "npt-web", "cat", "/sys/class/net/eth0/address").stdout.strip()
    assert link == "02:00:00:79:00:42"
    assert wait_for(lambda: _http(lab, "http://10.79.0.42/") == "hello from busybox\n", 10)
    assert _http(lab, "http://127.0.0.1:18090/") == "hello from busybox\n"
    assert _http(lab, "http://10.79.0.1:18090/") == "hello from busybox\n"
    assert cni.leases() == {"10.79.0.42": next(iter(cni.leases().values()))}
    assert cni.port_rules() == [next(iter(cni.port_rules()))]
    # podman inspect reads the result netplumb-cni gave
    inspect = pm("inspect", "-f", "{{json .NetworkSettings.Networks}}", "npt-web").stdout
    assert '"IPAddress":"10.79.0.42"' in inspect and '"MacAddress":"02:00:00:79:00:42"' in inspect
    pm("rm", "-f", "-t", "0", "npt-web")
    assert cni.leftovers() == []
    assert _http(lab, "http://127.0.0.1:18090/") == ""


def test_podman_containers_reach_each_other_and_get_pooled_addresses(
    podman_lab: tuple[Lab, Podman, Cni],
) -> None:
    _lab, pm, cni = podman_lab
    pm.run("npt-a", "--network", cni.net, IMAGE, "sleep", "600")
    pm.run("npt-b", "--network", cni.net, IMAGE, *HTTPD)
    a = pm("exec", "npt-a", "ip", "-o", "-4", "addr", "show", "eth0").stdout
    b = pm("exec", "npt-b", "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert "10.79.0.2/24" in a and "10.79.0.3/24" in b
    got = pm("exec", "npt-a", "wget", "-q", "-O", "-", "http://10.79.0.3/").stdout
    assert got == "hello from busybox\n"
    assert sorted(cni.leases()) == ["10.79.0.2", "10.79.0.3"]
    pm("stop", "-t", "0", "npt-a")  # stop releases the network too (CNI DEL, by conmon's
    assert wait_for(lambda: sorted(cni.leases()) == ["10.79.0.3"], 15)  # cleanup: async)
    pm("start", "npt-a")  # and start attaches it again
    assert sorted(cni.leases()) == ["10.79.0.2", "10.79.0.3"]


@pytest.mark.docker  # the containerd that comes with docker.io (make test starts dockerd)
def test_containerd_ctr_run_cni(podman_lab: tuple[Lab, Podman, Cni]) -> None:
    lab, pm, cni = podman_lab
    socket = next((s for s in CONTAINERD_SOCKETS if os.path.exists(s)), None)
    if socket is None:
        pytest.skip("no containerd socket (make test starts dockerd, which starts containerd)")
    ctr = Ctr(lab, pm.base / "ctr", cni.plugin_dir, socket, f"npt-{lab.id}")
    try:
        ctr("images", "import", str(pm.oci_archive(pm.base / "busybox.oci")))
        net = f"{cni.net}c"  # a network of its own: GC-free, and a second netplumb network
        cni.net = net
        ctr.network(net, {"type": "netplumb-cni", "subnet": "10.80.0.0/24"})
        run = ctr.run_cni(IMAGE, f"npt-{lab.id}-c1", *HTTPD)
        assert wait_for(lambda: _http(lab, "http://10.80.0.2/") == "hello from busybox\n", 20), (
            run.poll(),
            run.stderr.read() if run.poll() is not None and run.stderr else "",
        )
        assert cni.leases() == {"10.80.0.2": next(iter(cni.leases().values()))}
        assert cni.records() and cni.marked_links()
        ctr("task", "kill", "-s", "KILL", f"npt-{lab.id}-c1")
        run.wait(timeout=60)
        assert cni.leftovers() == []  # ctr run removed the network when the task exited
    finally:
        ctr.close()
