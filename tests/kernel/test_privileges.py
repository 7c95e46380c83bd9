"""A command that lacks netplumb's privileges says so first, in one line, and touches nothing.

The process is root's uid with every capability dropped (``setpriv --bounding-set=-all``):
what a user without root has, and also root in a restricted container. (Its uid still reads
the checkout wherever CI clones it, which an unprivileged uid might not.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from netns_helpers import NetnsFactory

pytestmark = pytest.mark.kernel

BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
ALL = "CAP_DAC_OVERRIDE, CAP_KILL, CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN"
DROP_ALL = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]


def _ruleset(ns: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True, text=True
    ).stdout


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        (["netplumb", "ps"], "netplumb ps: "),
        (["netplumb", "run", "--name", "x", "--", "sleep", "9"], "netplumb run: "),
        (["netplumb", "network", "create", "n1", "--subnet", "10.71.0.0/24"], "netplumb network: "),
        (["netplumb", "reconcile"], "netplumb reconcile: "),
        (["netplumb", "link", "env", "db", "mongo"], "netplumb link: "),
        (["pipework", "br1", "4242", "10.71.0.2/24"], "pipework: "),
        (["netplumb", "pipework", "br1", "4242", "10.71.0.2/24"], "netplumb pipework: "),
    ],
)
def test_without_privileges_one_line_and_nothing_changes(
    netns: NetnsFactory, argv: list[str], prefix: str
) -> None:
    ns = netns("priv")
    before_links = subprocess.run(["ip", "-n", ns, "-j", "link"], capture_output=True).stdout
    before_rules = _ruleset(ns)
    state = netns.lab.state
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, *DROP_ALL, str(BIN / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        env=netns.lab.environ(),
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr == (
        f"{prefix}needs root (run it as root, e.g. with sudo); this process lacks {ALL}\n"
    )
    assert proc.stdout == ""
    assert not state.exists()
    assert subprocess.run(["ip", "-n", ns, "-j", "link"], capture_output=True).stdout == (
        before_links
    )
    assert _ruleset(ns) == before_rules


def test_one_missing_capability_is_named(netns: NetnsFactory) -> None:
    ns = netns("priv")
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "setpriv",
            "--bounding-set=-net_admin",
            str(BIN / "netplumb"),
            "ps",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr.endswith("this process lacks CAP_NET_ADMIN\n")


def test_completion_needs_nothing() -> None:
    proc = subprocess.run(
        [*DROP_ALL, str(BIN / "netplumb"), "completion", "bash"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("# netplumb completion for bash")
    assert proc.stderr == ""
