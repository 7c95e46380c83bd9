"""Coexisting with dockerd: one ACCEPT rule per netplumb bridge in Docker's DOCKER-USER chain.

dockerd sets the iptables FORWARD policy to DROP, and since it also turns on
``bridge-nf-call-iptables``, even traffic *bridged* between two ports of a netplumb bridge
crosses that FORWARD chain and is dropped. Docker documents DOCKER-USER as the place for a
user's own rules; netplumb adds ``-i BR -o BR -j ACCEPT`` there, commented with its mark, only
when that chain exists in the namespace, and removes it with the bridge. Nothing else of
Docker's rules is touched.
"""

from __future__ import annotations

import shutil
import subprocess

CHAIN = "DOCKER-USER"
COMMENT = "netplumb:bridge"


def _rule(bridge: str) -> list[str]:
    return [
        CHAIN,
        "-i",
        bridge,
        "-o",
        bridge,
        "-m",
        "comment",
        "--comment",
        COMMENT,
        "-j",
        "ACCEPT",
    ]


def _iptables(*args: str) -> int:
    exe = shutil.which("iptables")
    if exe is None:
        return 127
    return subprocess.run(
        [exe, "-w", "5", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    ).returncode


def docker_chain_present() -> bool:
    return _iptables("-S", CHAIN) == 0


def allow_bridge(bridge: str) -> bool:
    """Insert the ACCEPT rule if DOCKER-USER exists and the rule is missing; True if present."""
    if not docker_chain_present():
        return False
    if _iptables("-C", *_rule(bridge)) != 0:
        _iptables("-I", *_rule(bridge))
    return True


def forget_bridge(bridge: str) -> None:
    """Remove the rule (every copy of it), if there is one."""
    while _iptables("-C", *_rule(bridge)) == 0:
        if _iptables("-D", *_rule(bridge)) != 0:
            break


def _network_rules(bridge: str) -> list[list[str]]:
    tag = ["-m", "comment", "--comment", f"netplumb:network:{bridge}", "-j", "ACCEPT"]
    return [[CHAIN, "-i", bridge, *tag], [CHAIN, "-o", bridge, *tag]]


def allow_network(bridge: str) -> None:
    """A network's guests are routed too (published ports, egress): accept both directions.

    Direct access to guests from outside stays impossible: netplumb's own raw-prerouting rule
    drops packets to a network's subnet that do not come from its bridge.
    """
    if not docker_chain_present():
        return
    for rule in _network_rules(bridge):
        if _iptables("-C", *rule) != 0:
            _iptables("-I", *rule)


def forget_network(bridge: str) -> None:
    for rule in _network_rules(bridge):
        while _iptables("-C", *rule) == 0:
            if _iptables("-D", *rule) != 0:
                break
