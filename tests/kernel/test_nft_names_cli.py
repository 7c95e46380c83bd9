"""Names and nftables on a real kernel (issue 12: "a bridge name can rewrite the firewall").

Every front door that takes an interface or network name refuses one nft would read as syntax
with one line and exit status 2, and leaves the namespace as it was: the oracles are
``ip -j link`` and ``nft -j list ruleset``, taken before and after, and the state directory.
A positive control shows the same commands do change both when the name is good. Then: any
name the model accepts loads into the kernel as exactly itself, with the rule count unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netns_helpers import NetnsFactory, run
from netplumb.errors import InvalidValue
from netplumb.model.names import IFNAME_CHARS, check_ifname
from netplumb.model.network import make_network
from netplumb.nft.render import Allow, NetSpec, Publication, render, rule_count, transaction

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
RULE = "only ASCII letters, digits, '_', '.' and '-' are allowed"


class Machine:
    """A throwaway namespace standing for the machine, with a guest namespace beside it."""

    def __init__(self, netns: NetnsFactory, tmp: Path) -> None:
        self.ns = netns("m")
        self.guest = netns("g")  # attach/pipework targets: never the real machine's PID 1
        self.state = netns.lab.state  # tmp / "state": the lab's
        self.env = netns.lab.environ()
        run(["ip", "-n", self.ns, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p"])

    def np(self, *argv: str, tool: str = "netplumb", **kw: Any) -> Any:
        return run(["ip", "netns", "exec", self.ns, str(BIN / tool), *argv], check=False, **kw)

    def links(self) -> list[str]:
        rows = json.loads(run(["ip", "-n", self.ns, "-j", "link"]).stdout)
        return sorted(str(r["ifname"]) for r in rows)

    def ruleset(self) -> list[dict[str, Any]]:
        out = run(["ip", "netns", "exec", self.ns, "nft", "-j", "list", "ruleset"]).stdout
        items: list[dict[str, Any]] = json.loads(out)["nftables"]
        return [i for i in items if "metainfo" not in i]

    def snapshot(self) -> tuple[list[str], list[dict[str, Any]], list[str], list[str]]:
        records = sorted(str(p.relative_to(self.state)) for p in self.state.rglob("*.json"))
        return self.links(), self.ruleset(), self.links_of(self.guest), records

    def links_of(self, ns: str) -> list[str]:
        rows = json.loads(run(["ip", "-n", ns, "-j", "link"]).stdout)
        return sorted(str(r["ifname"]) for r in rows)


@pytest.fixture
def machine(netns: NetnsFactory, tmp_path: Path) -> Iterator[Machine]:
    yield Machine(netns, tmp_path)


def _topology(tmp: Path, bridge: str) -> str:
    path = tmp / "evil.yaml"
    path.write_text(
        "name: evil\n"
        "networks:\n"
        "  evil:\n"
        f"    bridge: {json.dumps(bridge)}\n"
        "    subnet: 10.249.0.0/24\n"
        "    isolation: true\n"
        "services:\n"
        "  web:\n"
        "    command: sleep 100\n"
        "    networks: [evil]\n"
    )
    return str(path)


EVIL = 'b"accept#'  # the bridge


def _front_doors(m: Machine, tmp: Path) -> list[tuple[list[str], str]]:
    """(argv, the one line it must print) of every CLI door an interface name comes in by."""
    topo = _topology(tmp, EVIL)
    sub = ["--subnet", "10.249.0.0/24"]
    return [
        (
            ["network", "create", "evil", "--bridge", EVIL, *sub, "--isolation"],
            f"netplumb: invalid bridge name {EVIL!r}: {RULE}",
        ),
        (
            ["network", "create", "e;vil", *sub, "--isolation"],
            "netplumb: invalid network name: 'e;vil'",
        ),
        (
            ["up", "-f", topo],
            f"netplumb: {topo}:4: networks.evil.bridge: invalid bridge name {EVIL!r}: {RULE}",
        ),
        (["attach", m.guest, EVIL], f"netplumb: invalid host interface {EVIL!r}: {RULE}"),
        (
            ["attach", m.guest, "np-x", "-i", "e{th1}"],
            f"netplumb: invalid interface name (-i) 'e{{th1}}': {RULE}",
        ),
        (
            ["attach", m.guest, "np-x", "-l", "v$x"],
            f"netplumb: invalid host interface name (-l) 'v$x': {RULE}",
        ),
        (
            ["pipework", EVIL, m.guest, "10.249.0.2/24"],
            f"netplumb pipework: invalid host interface {EVIL!r}: {RULE}",
        ),
        (
            ["pipework", "np-x", "-i", "e;th1", m.guest, "10.249.0.2/24"],
            f"netplumb pipework: invalid container interface name (-i) 'e;th1': {RULE}",
        ),
        (
            ["lan", "bridge", "lan0", "--bridge", "br\\0"],
            f"netplumb: invalid bridge name 'br\\\\0': {RULE}",
        ),
        (["lan", "bridge", "lan0#"], f"netplumb: invalid host interface 'lan0#': {RULE}"),
        (
            ["lan", "macvlan", "lan0", "--shim", "s@x"],
            f"netplumb: invalid shim name 's@x': {RULE}",
        ),
        (
            ["lan", "attach", m.guest, "-i", "e*"],
            f"netplumb: invalid interface name (-i) 'e*': {RULE}",
        ),
    ]


def test_every_front_door_refuses_and_changes_nothing(machine: Machine, tmp_path: Path) -> None:
    before = machine.snapshot()
    for argv, line in _front_doors(machine, tmp_path):
        proc = machine.np(*argv, env=machine.env)
        assert (proc.returncode, proc.stderr, proc.stdout) == (2, line + "\n", ""), argv
        assert machine.snapshot() == before, argv


def test_cni_refuses_a_hostile_bridge_and_changes_nothing(machine: Machine) -> None:
    conf = {
        "cniVersion": "1.0.0",
        "name": "evil",
        "type": "netplumb-cni",
        "subnet": "10.249.0.0/24",
        "bridge": EVIL,
        "isolation": True,
    }
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "NETPLUMB_STATE_DIR": str(machine.state),
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c0ffee01",
        "CNI_NETNS": f"/run/netns/{machine.guest}",
        "CNI_IFNAME": "eth0",
    }
    before = machine.snapshot()
    proc = machine.np(tool="netplumb-cni", input=json.dumps(conf), env=env)
    assert proc.returncode != 0 and proc.stderr == ""
    assert json.loads(proc.stdout)["msg"] == (
        f"invalid network config: invalid bridge name {EVIL!r}: {RULE}"
    )
    assert machine.snapshot() == before


def test_a_good_name_does_change_the_kernel(machine: Machine) -> None:
    # the positive control of the two tests above: the oracles see what a command changes
    before = machine.snapshot()
    good = "np-ok.1_x"
    proc = machine.np(
        "network",
        "create",
        "ok",
        "--bridge",
        good,
        "--subnet",
        "10.249.0.0/24",
        "--isolation",
        env=machine.env,
    )
    assert proc.returncode == 0, proc.stderr
    links, rules, _, _ = machine.snapshot()
    assert links != before[0] and good in links
    guards = [
        r["rule"]
        for r in rules
        if "rule" in r and r["rule"]["chain"] == "raw_prerouting" and "network:ok" in str(r)
    ]
    assert len(guards) == 1
    left = guards[0]["expr"][0]["match"]
    assert (left["left"], left["op"], left["right"]) == ({"meta": {"key": "iifname"}}, "!=", good)
    assert guards[0]["expr"][-1] == {"drop": None}


# -- any accepted name loads as itself ---------------------------------------------------------

NAMES = st.text(alphabet=sorted(IFNAME_CHARS), min_size=1, max_size=15)


def _accepted(bridge: str, port: str, net: str) -> bool:
    try:
        check_ifname(bridge)
        check_ifname(port)
        make_network(net, "np-x", "10.249.0.0/24")
    except InvalidValue:
        return False
    return True


def _names_in(value: object) -> set[str]:
    """Every interface name an iifname/oifname match compares with, in ``nft -j`` output."""
    out: set[str] = set()
    if isinstance(value, dict):
        if "match" in value:
            m = value["match"]
            key = m["left"].get("meta", {}).get("key") if isinstance(m["left"], dict) else None
            if key in ("iifname", "oifname"):
                right = m["right"]
                items = right["set"] if isinstance(right, dict) else [right]
                out |= {str(i) for i in items}
        for v in value.values():
            out |= _names_in(v)
    elif isinstance(value, list):
        for v in value:
            out |= _names_in(v)
    return out


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(NAMES, NAMES, st.text(alphabet=sorted(IFNAME_CHARS), min_size=1, max_size=40))
def test_an_accepted_name_loads_as_itself(
    machine: Machine, bridge: str, port: str, net: str
) -> None:
    if not _accepted(bridge, port, net):
        return
    spec = NetSpec(net, bridge, "10.249.0.0/24", 4, True, (port,))
    text = render(
        [spec],
        [Publication("host:web", 4, None, 8080, "10.249.0.2", 80, "tcp")],
        [Allow(bridge, "10.249.0.3", "10.249.0.2", 80, "tcp", "link:app:web")],
    )
    run(["ip", "netns", "exec", machine.ns, "nft", "-f", "-"], input=transaction(text))
    rules = [i["rule"] for i in machine.ruleset() if "rule" in i]
    assert len(rules) == rule_count(text)
    # "lo" is the loopback guards'; every other name compared with is the bridge, or the set
    # of the isolated network's ports, which holds the port and nothing else
    assert _names_in(rules) == {"lo", bridge, f"@ports_{net}"}
    sets = {i["set"]["name"]: i["set"].get("elem", []) for i in machine.ruleset() if "set" in i}
    assert [e["elem"]["val"] for e in sets[f"ports_{net}"]] == [port]
    chains = {i["chain"]["name"] for i in machine.ruleset() if "chain" in i}
    assert f"iso_{net}" in chains
