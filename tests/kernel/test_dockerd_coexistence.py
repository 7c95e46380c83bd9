"""With dockerd's FORWARD policy (DROP + DOCKER-USER) in the namespace, bridged guests still talk.

The "machine" namespace gets the iptables layout dockerd makes (policy DROP, a DOCKER-USER
chain jumped to first) and bridge-nf-call-iptables on, as dockerd leaves it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.kernel

PIPEWORK = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pipework")
NETPLUMB = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "netplumb")


def test_netplumb_bridge_is_accepted_in_docker_user_and_released(tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    m, a, b = f"npt-{tag}-m", f"npt-{tag}-a", f"npt-{tag}-b"
    env = {**os.environ, "NETPLUMB_STATE_DIR": str(tmp_path)}

    def in_m(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", m, *argv], env=env, capture_output=True, text=True, check=check
        )

    for ns in (m, a, b):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
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
            subprocess.run(["ip", "netns", "del", ns], check=True)
        assert "removed bridge brdk" in in_m(NETPLUMB, "gc").stdout
        assert "netplumb" not in in_m("iptables", "-S", "DOCKER-USER").stdout
    finally:
        for ns in (a, b, m):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
