"""Every bridge netplumb creates or adopts works under dockerd's firewall, in both families.

The lab's "host" namespace gets what dockerd makes of a machine (``netns_helpers.
docker_firewall``: FORWARD policy DROP, a DOCKER-USER chain jumped to first, Docker's own
``docker0`` rules, bridged traffic sent through iptables). Each test also shows that without
netplumb's rule the same traffic is dropped, so none passes vacuously.
"""

from __future__ import annotations

import pytest

from kernel.lanlab import SUBNET, LanLab, sh
from netns_helpers import docker_firewall, docker_user_rules

pytestmark = pytest.mark.kernel

POOL = ["pool", "set", f"{SUBNET}.0/24", "--range", f"{SUBNET}.200-{SUBNET}.239"]


def _bridge_rule(bridge: str) -> str:
    return (
        f'-A DOCKER-USER -i {bridge} -o {bridge} -m comment --comment "netplumb:bridge" -j ACCEPT'
    )


def _network_rules(bridge: str) -> list[str]:
    tag = f'-m comment --comment "netplumb:network:{bridge}" -j ACCEPT'
    return [f"-A DOCKER-USER -i {bridge} {tag}", f"-A DOCKER-USER -o {bridge} {tag}"]


def _delete(lab: LanLab, rule: str, family: int = 4) -> None:
    tool = "iptables" if family == 4 else "ip6tables"
    sh(
        "ip",
        "netns",
        "exec",
        lab.host,
        tool,
        *rule.replace('"', "").replace("-A ", "-D ", 1).split(),
    )


def test_lan_bridge_mode_under_dockers_firewall(lan: LanLab) -> None:
    docker_firewall(lan.host)
    lan.lan_cmd("bridge", "phys0", "--timeout", "300")
    lan.lan_cmd("confirm")
    assert docker_user_rules(lan.host) == [_bridge_rule("br-phys0")]
    assert docker_user_rules(lan.host, 6) == [_bridge_rule("br-phys0")]
    lan.lan_cmd(*POOL)
    c = lan.netns("c")
    addr = lan.lan_cmd("attach", c).stdout.strip()
    assert addr == f"{SUBNET}.200"
    assert lan.ping(lan.router, addr, tries=3), "the LAN does not reach the container"
    assert lan.ping(c, f"{SUBNET}.1")
    # the control: without the rule, dockerd's policy drops the bridged traffic
    _delete(lan, _bridge_rule("br-phys0"))
    assert not lan.ping(lan.router, addr)
    # and `netplumb reconcile` puts it back (as after a dockerd restart that flushed it)
    lan.netplumb("reconcile")
    assert docker_user_rules(lan.host) == [_bridge_rule("br-phys0")]
    assert lan.ping(lan.router, addr, tries=3)
    lan.lan_cmd("detach", c)
    lan.lan_cmd("unbridge")
    assert docker_user_rules(lan.host) == []
    assert docker_user_rules(lan.host, 6) == []


def test_lan_macvlan_mode_under_dockers_firewall(lan: LanLab) -> None:
    """macvlan traffic never crosses FORWARD: it works, and netplumb adds no rule for it."""
    docker_firewall(lan.host)
    lan.lan_cmd(*POOL)
    lan.lan_cmd("macvlan", "phys0", "--shim")
    c = lan.netns("m")
    addr = lan.lan_cmd("attach", c).stdout.strip()
    assert lan.ping(lan.router, addr, tries=3)
    assert lan.ping(lan.host, addr)  # through the shim
    assert lan.ping(c, f"{SUBNET}.1")
    assert docker_user_rules(lan.host) == []
    lan.lan_cmd("detach", c)
    lan.lan_cmd("macvlan", "--remove")


def test_pipework_bridges_created_and_adopted_but_not_dockers(lan: LanLab) -> None:
    docker_firewall(lan.host)
    a, b = lan.netns("a"), lan.netns("b")
    # a bridge pipework creates
    lan.pipework("brnp", a, "10.61.0.2/24,fd61::2/64")
    lan.pipework("brnp", b, "10.61.0.3/24,fd61::3/64")
    assert docker_user_rules(lan.host) == [_bridge_rule("brnp")]
    assert docker_user_rules(lan.host, 6) == [_bridge_rule("brnp")]
    assert lan.ping(a, "10.61.0.3", tries=3)
    assert lan.ping(a, "fd61::3", tries=5)
    # someone else's bridge, adopted by attaching to it; the rule goes with netplumb's last port
    lan.bridge("brown")
    c, d = lan.netns("c"), lan.netns("d")
    lan.pipework("brown", c, "10.62.0.2/24")
    lan.pipework("brown", d, "10.62.0.3/24")
    assert _bridge_rule("brown") in docker_user_rules(lan.host)
    assert lan.ping(c, "10.62.0.3", tries=3)
    _delete(lan, _bridge_rule("brown"))
    assert not lan.ping(c, "10.62.0.3")
    lan.netplumb("reconcile")
    assert lan.ping(c, "10.62.0.3", tries=3)
    lan.netplumb("detach", c, "eth1")
    assert _bridge_rule("brown") in docker_user_rules(lan.host)  # d is still on it
    lan.netplumb("detach", d, "eth1")
    assert docker_user_rules(lan.host) == [_bridge_rule("brnp")]
    assert lan.link(lan.host, "brown") is not None  # not netplumb's: left as it was
    # Docker's own bridge: Docker's rules decide there (its --icc), netplumb adds none
    e = lan.netns("e")
    lan.pipework("docker0", e, "172.17.0.9/16")
    assert docker_user_rules(lan.host) == [_bridge_rule("brnp")]
    lan.netplumb("detach", e, "eth1")
    for ns in (a, b):
        lan.netplumb("detach", ns, "eth1")
    lan.netplumb("gc")
    assert lan.link(lan.host, "brnp") is None
    assert docker_user_rules(lan.host) == []
    assert docker_user_rules(lan.host, 6) == []


def test_network_bridges_route_and_go_with_the_network(lan: LanLab) -> None:
    docker_firewall(lan.host, ipv6=False)  # Docker without ip6tables: IPv4 only, no error
    lan.netplumb("network", "create", "fwnet", "--bridge", "npfw0", "--subnet", "10.63.0.0/24")
    assert docker_user_rules(lan.host) == _network_rules("npfw0")
    lan.netplumb("network", "rm", "fwnet")
    assert docker_user_rules(lan.host) == []


def test_dockerd_started_after_the_bridges_exist(lan: LanLab) -> None:
    """netplumb's bridges first, dockerd's firewall later: the next reconcile handles it."""
    a, b = lan.netns("a"), lan.netns("b")
    lan.pipework("brlate", a, "10.64.0.2/24")
    lan.pipework("brlate", b, "10.64.0.3/24")
    assert lan.ping(a, "10.64.0.3", tries=3)
    docker_firewall(lan.host)
    assert not lan.ping(a, "10.64.0.3")  # what a user sees once dockerd starts
    lan.netplumb("reconcile")
    assert docker_user_rules(lan.host) == [_bridge_rule("brlate")]
    assert lan.ping(a, "10.64.0.3", tries=3)
    for ns in (a, b):
        lan.netplumb("detach", ns, "eth1")
    lan.netplumb("gc")
    assert docker_user_rules(lan.host) == []
