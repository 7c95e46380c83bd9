"""A network's rules (guard, masquerade) come and go with the network, whoever makes it.

The demo left ``netplumb:network:demo`` rules behind after ``down`` once reading commands
stopped rewriting the ruleset: ``up``/``down`` made and removed the network without writing the
table. Every way of making or removing a network now writes it (``ops/networks.py``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from netns_helpers import NetnsFactory, run

pytestmark = pytest.mark.kernel

NETPLUMB = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "netplumb")
TOPOLOGY = """name: rulesproj
networks:
  side:
    bridge: npside0
    subnet: 10.93.0.0/24
services:
  idle:
    command: sleep 1000
"""


def _comments(ns: str) -> set[str]:
    out = run(["nft", "list", "table", "inet", "netplumb"], netns=ns, check=False).stdout
    return {
        line.split('comment "', 1)[1].rstrip('"')
        for line in out.splitlines()
        if 'comment "' in line
    }


@pytest.mark.parametrize("table_first", [True, False])
def test_a_network_made_by_up_gets_its_rules_and_down_takes_them(
    netns: NetnsFactory, tmp_path: Path, table_first: bool
) -> None:
    ns = netns("rules")
    env = netns.lab.environ()  # NETPLUMB_STATE_DIR: tmp_path / "state"

    def np(*args: str) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", ns, NETPLUMB, *args], env=env)

    if table_first:  # netplumb's table exists already: the new network must be added to it
        np("network", "create", "first", "--bridge", "npfirst0", "--subnet", "10.92.0.0/24")
        assert "netplumb:network:first" in _comments(ns)
    topo = tmp_path / "rules.yaml"
    topo.write_text(TOPOLOGY)
    try:
        np("up", "-f", str(topo))
        assert "netplumb:network:side" in _comments(ns)
        guard = run(["nft", "list", "chain", "inet", "netplumb", "raw_prerouting"], netns=ns).stdout
        assert 'iifname != "npside0" ip daddr 10.93.0.0/24' in guard
        np("down", "-f", str(topo))
        assert "netplumb:network:side" not in _comments(ns)
        if table_first:
            np("network", "rm", "first")
            assert "netplumb:network:first" not in _comments(ns)
    finally:
        run(["ip", "netns", "exec", ns, NETPLUMB, "down", "-p", "rulesproj"], env=env, check=False)


def test_a_network_whose_kernel_side_fails_halfway_leaves_nothing(netns: NetnsFactory) -> None:
    # IPv6 off for new devices: the bridge is made, its IPv6 gateway address is refused. The
    # bridge was left behind once (the record came after the kernel, so nothing removed it).
    ns = netns("half")
    env = netns.lab.environ()
    run(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"], netns=ns)
    argv = ["ip", "netns", "exec", ns, NETPLUMB, "network", "create", "half"]
    argv += ["--bridge", "nphalf0", "--subnet", "10.94.0.0/24", "--subnet6", "fd94::/64"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("netplumb: cannot add fd94::1/64 to nphalf0: Permission denied")
    links = run(["ip", "-j", "link"], netns=ns).stdout
    assert "nphalf0" not in links
    listed = run(["ip", "netns", "exec", ns, NETPLUMB, "network", "ls"], env=env).stdout
    assert "half" not in listed
