"""The plans ``--dry-run`` prints for network create/rm, publish, unpublish, rm and detach,
from fixed values (pure: no root). One golden file pins them all; rewrite it with
``NETPLUMB_UPDATE_GOLDEN=1`` and read the diff before committing it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from netplumb.model.ip import IP
from netplumb.model.names import network_mark
from netplumb.model.network import make_network
from netplumb.model.ports import parse_port_spec
from netplumb.plan.actions import Action
from netplumb.plan.networks import BridgeSeen, plan_create, plan_remove
from netplumb.plan.observed import Guest
from netplumb.plan.ports import plan_publish, plan_unpublish
from netplumb.plan.removal import detach_steps
from netplumb.plan.upsteps import remove_steps

GOLDEN = Path(__file__).parent / "golden" / "plan_commands.txt"


def render() -> str:
    net = make_network("lab", "np-lab", "10.94.0.0/24", subnet6="fd94::/64", mtu=9000)
    web = Guest(
        "web",
        "host",
        None,
        None,
        True,
        "host:web",
        (("lab", "10.94.0.2"), ("lab", "fd94::2")),
        (("eth0", "veth0pl4242"), ("eth1", "veth1pl4242")),
        2,
    )
    v4, v6 = IP.parse("10.94.0.2"), IP.parse("fd94::2")
    binding: dict[str, object] = {
        "family": 4,
        "host_ip": None,
        "host_port": 8080,
        "container_ip": "10.94.0.2",
        "container_port": 80,
        "proto": "tcp",
    }
    bridge = BridgeSeen("bridge", network_mark("lab"), True, frozenset(net.gateways))
    specs = ("8080:80", "127.0.0.1::53/udp", "[::]:9000:90")
    # the commands' own planners, from what they would observe: nothing of the network yet
    # (create), its bridge (rm), the guest's addresses (publish), its one binding (unpublish)
    sections: dict[str, Sequence[Action]] = {
        "network create lab --subnet 10.94.0.0/24 --subnet6 fd94::/64 --mtu 9000": plan_create(
            net, None, [], None, []
        ),
        "network create back --subnet 10.95.0.0/24 --internal": plan_create(
            make_network("back", "np-back", "10.95.0.0/24", internal=True), None, [net], None, []
        ),
        "network rm lab": plan_remove("lab", net, [], bridge),
        "publish web 8080:80 127.0.0.1::53/udp [::]:9000:90": plan_publish(
            "web",
            [m for spec in specs for m in parse_port_spec(spec)],
            {4: str(v4), 6: str(v6)},
        ),
        "unpublish web 80": plan_unpublish([binding], parse_port_spec("80")),
        "rm web": remove_steps(web, one_by_one=True),
        "detach web eth1": detach_steps("eth1", "veth1pl4242", [("lab", "10.94.0.3")], "", ()),
        # an interface on the LAN (macvlan: gone with the guest end) that also holds a CNI lease
        "detach web eth2": detach_steps(
            "eth2",
            None,
            (),
            "host:web@eth2",
            [("%lan", "192.168.1.200"), ("%cni-np", "10.88.0.7")],
        ),
    }
    out = []
    for command, actions in sections.items():
        out.append(f"$ netplumb {command} --dry-run\n")
        out += [f"{a}\n" for a in actions]
    return "".join(out)


def test_command_plans_golden() -> None:
    text = render()
    if os.environ.get("NETPLUMB_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
