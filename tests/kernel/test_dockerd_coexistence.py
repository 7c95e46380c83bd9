"""With dockerd's FORWARD policy (DROP + DOCKER-USER) in the namespace, bridged guests still talk.

The "machine" namespace gets the iptables layout dockerd makes (policy DROP, a DOCKER-USER
chain jumped to first) and bridge-nf-call-iptables on, as dockerd leaves it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab import NETPLUMB, PIPEWORK, Lab

pytestmark = pytest.mark.kernel


def test_netplumb_bridge_is_accepted_in_docker_user_and_released(tmp_path: Path) -> None:
    with Lab(tmp_path, host="m") as lab:
        a, b = lab.netns("a"), lab.netns("b")

        def in_m(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            return lab.in_host(*argv, check=check)

        in_m("iptables", "-P", "FORWARD", "DROP")
        in_m("iptables", "-N", "DOCKER-USER")
        in_m("iptables", "-A", "DOCKER-USER", "-j", "RETURN")
        in_m("iptables", "-I", "FORWARD", "-j", "DOCKER-USER")
        in_m("sh", "-c", "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables")
        in_m(PIPEWORK, "brdk", a, "10.61.0.2/24")
        in_m(PIPEWORK, "brdk", b, "10.61.0.3/24")
        rules = in_m("iptables", "-S", "DOCKER-USER").stdout
        assert (
            '-A DOCKER-USER -i brdk -o brdk -m comment --comment "netplumb:bridge" -j ACCEPT'
            in rules
        )
        ping = subprocess.run(
            ["ip", "netns", "exec", a, "ping", "-c1", "-W2", "10.61.0.3"],
            capture_output=True,
            text=True,
        )
        assert ping.returncode == 0, ping.stdout
        # the same bridge without the rule: dropped (the test would pass vacuously otherwise)
        in_m(
            "iptables",
            "-D",
            "DOCKER-USER",
            "-i",
            "brdk",
            "-o",
            "brdk",
            "-m",
            "comment",
            "--comment",
            "netplumb:bridge",
            "-j",
            "ACCEPT",
        )
        blocked = subprocess.run(
            ["ip", "netns", "exec", a, "ping", "-c1", "-W1", "10.61.0.3"],
            capture_output=True,
            text=True,
        )
        assert blocked.returncode != 0
        in_m(
            "iptables",
            "-I",
            "DOCKER-USER",
            "-i",
            "brdk",
            "-o",
            "brdk",
            "-m",
            "comment",
            "--comment",
            "netplumb:bridge",
            "-j",
            "ACCEPT",
        )
        for ns in (a, b):
            lab.delete_netns(ns)
        assert "removed bridge brdk" in in_m(NETPLUMB, "gc").stdout
        assert "netplumb" not in in_m("iptables", "-S", "DOCKER-USER").stdout
