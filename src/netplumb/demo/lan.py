"""The demo's last part, the article's last section: a web server on the host's own LAN.

With no interface named, the LAN is simulated and nothing of the machine's is touched: a
netplumb host ``lan-router`` plays the LAN (a switch ``lan0`` and the router's address
192.168.77.1), and a veth ``np-lan0`` into it plays the machine's network card, with the
machine's LAN address 192.168.77.2. Then the article's move, made safe: ``netplumb lan bridge``
moves the card's address and routes to a bridge under a dead-man timer, the demo checks that
the router still answers and confirms, declares a pool, and gives webserver1 a probed LAN
address; the router (another machine on the LAN) reaches the web server directly.

With ``--lan IF`` the same is done on a real interface, with the pool range given by
``--lan-pool`` (outside the LAN's DHCP range); the change is confirmed only once the
interface's default gateway (if it has one) still answers, else the timer puts it back.
"""

from __future__ import annotations

import json

from netplumb.demo.steps import curl, query, show
from netplumb.errors import NetplumbError

ROUTER = "lan-router"
CARD = "np-lan0"
SUBNET = "192.168.77"
POOL_RANGE = f"{SUBNET}.200-{SUBNET}.239"
GUEST = "webserver1"
GUEST_IF = "eth2"


def _bridge_of(card: str) -> str:
    return f"br-{card}"[:15]


def _interface_subnet(ifname: str) -> tuple[str, str | None]:
    """(subnet of the interface's first IPv4 address, its default gateway or None)."""
    addrs = json.loads(query(["ip", "-j", "-4", "addr", "show", "dev", ifname]).stdout or "[]")
    infos = [a for link in addrs for a in link.get("addr_info", [])]
    if not infos:
        raise NetplumbError(f"demo: {ifname} has no IPv4 address: it is not on a LAN")
    from netplumb.model.ip import IP, Interface

    net = Interface.parse(f"{infos[0]['local']}/{infos[0]['prefixlen']}")
    subnet = f"{IP(net.network_int.to_bytes(4, 'big'))}/{net.prefixlen}"
    routes = json.loads(
        query(["ip", "-j", "-4", "route", "show", "default", "dev", ifname]).stdout or "[]"
    )
    gateway = routes[0].get("gateway") if routes else None
    return subnet, gateway


def simulate(np: str) -> None:
    """The simulated LAN: a host playing the switch and router, a veth playing the card."""
    show([np, "run", "--name", ROUTER, "--network", "none", "--", "sleep", "infinity"])
    rows = json.loads(query([np, "inspect", ROUTER]).stdout)
    pid = str(rows[0]["State"]["Pid"])  # the router's process: in its network namespace
    show(["ip", "link", "add", CARD, "type", "veth", "peer", "name", "uplink", "netns", pid])
    inside = (
        "ip link add lan0 type bridge && ip link set uplink master lan0 && "
        f"ip link set uplink up && ip addr add {SUBNET}.1/24 dev lan0 && ip link set lan0 up"
    )
    show([np, "exec", ROUTER, "--", "sh", "-c", inside])
    show(["ip", "addr", "add", f"{SUBNET}.2/24", "dev", CARD])
    show(["ip", "link", "set", CARD, "up"])


def up(np: str, card: str | None, pool_range: str | None) -> str:
    """Put webserver1 on the LAN; returns its LAN address."""
    if card is None:
        print(
            f"# A simulated LAN: {ROUTER} is the switch and router ({SUBNET}.1), {CARD} this "
            f"machine's card on it ({SUBNET}.2)\n"
        )
        simulate(np)
        card, pool_range = CARD, POOL_RANGE
    if pool_range is None:
        raise NetplumbError(
            "demo: --lan needs --lan-pool FIRST-LAST (outside the LAN's DHCP range)"
        )
    subnet, gateway = _interface_subnet(card)
    if card == CARD:
        gateway = f"{SUBNET}.1"
    print(f"\n# Host network integration: {card}'s address moves to a bridge, safely\n")
    show([np, "lan", "bridge", card, "--timeout", "60"])
    if gateway is not None:
        alive = query(["ping", "-c", "1", "-W", "2", gateway])
        if alive.returncode != 0:
            raise NetplumbError(
                f"demo: the gateway {gateway} does not answer through the bridge: not "
                "confirming, the dead-man timer puts the interface back within 60 s"
            )
        print(f"# the gateway {gateway} still answers: confirm, or the timer reverts it")
    show([np, "lan", "confirm"])
    show([np, "lan", "pool", "set", subnet, "--range", pool_range])
    print(f"\n# {GUEST} gets an address on the LAN, probed with ARP first (RFC 5227)\n")
    addr = show([np, "lan", "attach", GUEST, "-i", GUEST_IF]).strip()
    if card == CARD:
        print("\n# Another machine on the LAN reaches the web server directly\n")
        show([np, "exec", ROUTER, "--", *curl(f"http://{addr}:8080")])
    return addr


def down(np: str) -> None:
    """Undo the LAN part, whatever of it exists."""
    status = query([np, "lan", "status", "--json"])
    if status.returncode != 0:
        return
    info = json.loads(status.stdout or "{}")
    if info.get("leases"):
        show([np, "lan", "detach", GUEST, GUEST_IF], check=False)
    if info.get("pool"):
        show([np, "lan", "pool", "rm"], check=False)
    if info.get("mode") == "bridge":
        show([np, "lan", "unbridge", "--force"], check=False)
    card = query(["ip", "link", "show", CARD])
    if card.returncode == 0:
        show(["ip", "link", "del", CARD], check=False)
    hosts = query([np, "ps", "--json"])
    if ROUTER in {r["name"] for r in json.loads(hosts.stdout or "[]")}:
        show([np, "rm", "-f", ROUTER])
