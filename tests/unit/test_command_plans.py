"""The plans ``--dry-run`` prints for network create/rm, publish, unpublish, rm and detach,
from fixed values (pure: no root). One golden file pins them all; rewrite it with
``NETPLUMB_UPDATE_GOLDEN=1`` and read the diff before committing it."""

from __future__ import annotations

import os
from pathlib import Path

from netplumb.model.ip import IP
from netplumb.model.network import make_network
from netplumb.model.ports import parse_port_spec
from netplumb.plan.observed import Guest
from netplumb.plan.steps import DetachInterface, PublishPort, ReleaseAddress, UnpublishPort
from netplumb.plan.upsteps import network_steps, remove_network_steps, remove_steps

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
    sections = {
        "network create lab --subnet 10.94.0.0/24 --subnet6 fd94::/64 --mtu 9000": network_steps(
            net
        ),
        "network rm lab": remove_network_steps(net, "lab"),
        "publish web 8080:80 127.0.0.1::53/udp [::]:9000:90": tuple(
            PublishPort(
                m, (v4, v6) if m.host_ip is None else (v4,) if m.host_ip.version == 4 else (v6,)
            )
            for spec in ("8080:80", "127.0.0.1::53/udp", "[::]:9000:90")
            for m in parse_port_spec(spec)
        ),
        "unpublish web 80": (UnpublishPort(binding),),
        "rm web": remove_steps(web, one_by_one=True),
        "detach web eth1": (
            DetachInterface("eth1", "veth1pl4242"),
            ReleaseAddress("lab", "10.94.0.3"),
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
