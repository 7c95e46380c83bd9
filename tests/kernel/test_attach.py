"""pipework / netplumb attach, detach and gc on real namespaces, checked with ip -j and traffic.

Each test gets a throwaway "host" namespace (the lab, see conftest.py) where netplumb runs with
its own state directory; guests are other namespaces. Nothing here reads netplumb's state or
imports its code: the oracle is ``ip -j``, /proc and packets.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import subprocess
import time

import pytest

from kernel.attachlab import NETPLUMB, PIPEWORK, Json, Lab, sh, wait_for

pytestmark = pytest.mark.kernel


# -- helpers ----------------------------------------------------------------------------------


def eth(lab: Lab, guest: str, ifname: str = "eth1") -> Json:
    link = lab.link(guest, ifname)
    assert link is not None, f"{guest} has no {ifname}: {[ln['ifname'] for ln in lab.links(guest)]}"
    return link


def host_end(lab: Lab, guest: str, ifname: str = "eth1") -> Json:
    """The host end of the guest's veth, found through the kernel's peer index."""
    peer = lab.link_by_index(lab.host, eth(lab, guest, ifname)["link_index"])
    assert peer is not None, f"no host end for {guest}/{ifname}"
    return peer


def is_up(link: Json) -> bool:
    return "UP" in link["flags"]


def bridge_ports(lab: Lab, bridge: str) -> list[Json]:
    return [ln for ln in lab.links(lab.host) if ln.get("master") == bridge]


def marked(lab: Lab, ns: str) -> list[str]:
    return [
        ln["ifname"] for ln in lab.links(ns) if str(ln.get("ifalias", "")).startswith("netplumb:")
    ]


def kind(lab: Lab, ns: str, ifname: str) -> str | None:
    link = lab.link(ns, ifname, details=True)
    assert link is not None
    info: str | None = link.get("linkinfo", {}).get("info_kind")
    return info


def snapshots(lab: Lab, *namespaces: str) -> dict[str, Json]:
    return {ns: lab.snapshot(ns) for ns in (lab.host, *namespaces)}


def assert_unchanged(lab: Lab, before: dict[str, Json]) -> None:
    for ns, snap in before.items():
        assert lab.snapshot(ns) == snap, f"{ns} changed"


def failed(proc: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    """Assert the command failed (with ``code`` if given) with one line; return that line."""
    assert proc.returncode != 0, f"expected a failure: {proc.stdout}"
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"not a one-line error: {proc.stderr!r}"
    return lines[0]


def with_wan(lab: Lab, guest: str, proto: str = "boot", net: str = "172.16.0") -> None:
    """Give ``guest`` an interface of its own (wan0) and a default route through it, added
    with routing protocol ``proto`` (``ip route add`` says boot; DHCP clients, Docker differ)."""
    wan = lab.netns(f"{guest.rsplit('-', 1)[1]}w")
    lab.veth(guest, "wan0", wan, "wanp")
    sh("ip", "-n", guest, "addr", "add", f"{net}.2/24", "dev", "wan0")
    sh("ip", "-n", wan, "addr", "add", f"{net}.1/24", "dev", "wanp")
    sh("ip", "-n", guest, "route", "add", "default", "via", f"{net}.1", "proto", proto)


def wait_dad(lab: Lab, guest: str, ifname: str = "eth1") -> None:
    def settled() -> bool:
        info = [
            a for e in lab.ipj(guest, "-6", "addr", "show", "dev", ifname) for a in e["addr_info"]
        ]
        return bool(info) and not any(a.get("tentative") for a in info)

    assert wait_for(settled, timeout=6), f"IPv6 addresses of {guest} stay tentative"


def processes(ns: str) -> dict[int, str]:
    """PID -> command line of the processes in ``ns``."""
    out: dict[int, str] = {}
    for pid in sh("ip", "netns", "pids", ns).stdout.split():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                out[int(pid)] = f.read().replace(b"\0", b" ").decode()
        except OSError:
            pass
    return out


TCP_SERVER = """
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
print("ready", flush=True)
c, peer = s.accept()
c.sendall(c.recv(64).upper() + b" from " + peer[0].encode())
c.close()
"""

TCP_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
c.sendall(b"hello")
print(c.recv(128).decode())
"""

ARP_SNIFFER = """
import socket, struct, sys, time
ifname, want, timeout = sys.argv[1], socket.inet_aton(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((ifname, 0))
s.settimeout(0.1)
print("ready", flush=True)
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        frame = s.recv(2048)
    except TimeoutError:
        continue
    arp = frame[14:42]
    if len(arp) == 28 and arp[14:18] == want:
        op = struct.unpack("!H", arp[6:8])[0]
        sender, target = socket.inet_ntoa(arp[14:18]), socket.inet_ntoa(arp[24:28])
        print(f"op={op} sender={sender} target={target}")
        sys.exit(0)
sys.exit(1)
"""


# -- 1. bridge attach -------------------------------------------------------------------------


def test_bridge_attach_with_gateway_gives_a_working_interface(lab: Lab) -> None:
    g1, g2 = lab.netns("g1"), lab.netns("g2")
    lab.bridge("br0")
    lab.pipework("br0", g1, "10.1.0.2/24@10.1.0.1")
    lab.netplumb("pipework", "br0", g2, "10.1.0.3/24@10.1.0.1")  # the same, through netplumb

    bridge = lab.link(lab.host, "br0")
    assert bridge is not None
    aliases = []
    for guest, addr in ((g1, "10.1.0.2/24"), (g2, "10.1.0.3/24")):
        link = eth(lab, guest)
        assert is_up(link)
        assert lab.addrs(guest, "eth1", "4") == [addr]
        assert lab.default_routes(guest) == [("10.1.0.1", "eth1")]
        peer = host_end(lab, guest)
        assert peer["master"] == "br0" and is_up(peer)
        assert peer["mtu"] == link["mtu"] == bridge["mtu"]
        assert str(link.get("ifalias")).startswith("netplumb:")
        assert peer.get("ifalias") == link.get("ifalias")
        aliases.append(link["ifalias"])
    assert aliases[0] != aliases[1]  # one owner per guest
    assert len(bridge_ports(lab, "br0")) == 2

    assert lab.ping(g1, "10.1.0.3", tries=3) and lab.ping(g2, "10.1.0.2")
    server = lab.popen(
        g2, ["python3", "-c", TCP_SERVER, "10.1.0.3", "5001"], stdout=subprocess.PIPE
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    client = sh("ip", "netns", "exec", g1, "python3", "-c", TCP_CLIENT, "10.1.0.3", "5001")
    assert client.stdout.strip() == "HELLO from 10.1.0.2"


# -- 2. bridges -------------------------------------------------------------------------------


def test_missing_br_bridge_is_created_and_existing_bridge_mtu_is_used(lab: Lab) -> None:
    g1, g2 = lab.netns("g1"), lab.netns("g2")
    lab.pipework("brnew", g1, "10.2.0.2/24")
    bridge = lab.link(lab.host, "brnew", details=True)
    assert bridge is not None and bridge["linkinfo"]["info_kind"] == "bridge"
    assert is_up(bridge) and bridge.get("ifalias") == "netplumb:bridge"
    assert host_end(lab, g1)["master"] == "brnew"

    lab.bridge("brj", mtu=9000)
    lab.pipework("brj", g2, "10.2.1.2/24")
    assert eth(lab, g2)["mtu"] == 9000
    peer = host_end(lab, g2)
    assert peer["master"] == "brj" and peer["mtu"] == 9000
    brj = lab.link(lab.host, "brj")
    assert brj is not None and brj["mtu"] == 9000 and "ifalias" not in brj


def test_missing_interface_not_named_br_is_an_error(lab: Lab) -> None:
    g = lab.netns("g")
    before = snapshots(lab, g)
    line = failed(lab.pipework("nosuch0", g, "10.2.0.2/24", check=False))
    assert "nosuch0" in line and "does not exist" in line
    assert_unchanged(lab, before)


# -- 3. gateway outside the subnet --------------------------------------------------------------


def test_gateway_outside_the_subnet_gets_a_host_route(lab: Lab) -> None:
    g, router = lab.netns("g"), lab.netns("rtr")
    lab.bridge("br0")
    lab.on_bridge("br0", router, "r0", "10.9.0.1/24")
    sh("ip", "-n", router, "route", "add", "10.3.0.0/24", "dev", "r0")
    sh("ip", "-n", router, "addr", "add", "192.0.2.99/32", "dev", "lo")

    lab.pipework("br0", g, "10.3.0.2/24@10.9.0.1")
    routes = {(r.get("dst"), r.get("gateway"), r.get("dev")) for r in lab.routes(g)}
    assert ("10.9.0.1", None, "eth1") in routes
    assert ("default", "10.9.0.1", "eth1") in routes
    assert lab.ipj(g, "route", "get", "198.51.100.1")[0]["gateway"] == "10.9.0.1"
    assert lab.ping(g, "192.0.2.99", tries=3)  # through the off-subnet gateway


# -- 4. IPv6 and address lists --------------------------------------------------------------------


def test_ipv6_and_several_addresses_in_one_call(lab: Lab) -> None:
    g1, g2 = lab.netns("g1"), lab.netns("g2")
    lab.pipework("br0", "-a", "6", g1, "fd00:4::2/64@fd00:4::1")
    lab.pipework("br0", g2, "10.4.0.3/24,fd00:4::3/64")

    assert is_up(eth(lab, g1))  # pipework left it down when busybox was installed
    assert lab.addrs(g1, "eth1", "6") == ["fd00:4::2/64"]
    assert lab.addrs(g1, "eth1", "4") == []
    assert lab.default_routes(g1, "6") == [("fd00:4::1", "eth1")]
    assert lab.addrs(g2, "eth1", "4") == ["10.4.0.3/24"]
    assert lab.addrs(g2, "eth1", "6") == ["fd00:4::3/64"]
    assert lab.default_routes(g2, "6") == [] and lab.default_routes(g2, "4") == []

    wait_dad(lab, g1)
    wait_dad(lab, g2)
    assert lab.ping(g1, "fd00:4::3", tries=3) and lab.ping(g2, "fd00:4::2")


def test_family_option_refuses_an_address_of_the_other_family(lab: Lab) -> None:
    g = lab.netns("g")
    before = snapshots(lab, g)
    line = failed(lab.pipework("br0", "-a", "6", g, "10.4.0.2/24", check=False), 2)
    assert "10.4.0.2/24" in line
    assert_unchanged(lab, before)


# -- 5. 0/0 -----------------------------------------------------------------------------------


def test_zero_address_gives_an_interface_up_without_address(lab: Lab) -> None:
    g = lab.netns("g")
    lab.pipework("br0", g, "0/0")
    assert is_up(eth(lab, g))
    assert lab.addrs(g, "eth1") == []
    assert lab.default_routes(g) == []


# -- 6. MAC addresses ---------------------------------------------------------------------------


def test_fixed_and_derived_mac_addresses(lab: Lab) -> None:
    g1, g2, g3 = lab.netns("g1"), lab.netns("g2"), lab.netns("g3")
    lab.pipework("br0", g1, "10.6.0.2/24", "02:11:22:33:44:55")
    assert eth(lab, g1)["address"] == "02:11:22:33:44:55"

    text = f"web-{lab.id}"
    lab.pipework("br0", g2, "10.6.0.3/24", f"U:{text}")
    lab.pipework("br1", g3, "10.6.0.3/24", f"U:{text}")  # same text, another run
    mac = eth(lab, g2)["address"]
    assert eth(lab, g3)["address"] == mac
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01  # locally administered unicast
    # pipework's recipe: 02 and five bytes of `echo TEXT | md5sum`
    digest = hashlib.md5((text + "\n").encode()).hexdigest()
    assert mac == "02:" + ":".join(digest[i : i + 2] for i in range(0, 10, 2))
    assert lab.ping(g1, "10.6.0.3", tries=3)


def test_multicast_mac_is_refused_before_anything_is_created(lab: Lab) -> None:
    g = lab.netns("g")
    before = snapshots(lab, g)
    line = failed(lab.pipework("brmc", g, "10.6.0.2/24", "03:00:00:00:00:01", check=False), 2)
    assert "multicast" in line
    assert_unchanged(lab, before)
    assert lab.attachments() == []


# -- 7. interface names -------------------------------------------------------------------------


def test_custom_guest_and_host_interface_names(lab: Lab) -> None:
    g = lab.netns("g")
    lab.pipework("br0", "-i", "eth5", "-l", "myhostend", g, "10.7.0.2/24")
    assert lab.link(g, "eth1") is None
    assert lab.addrs(g, "eth5") == ["10.7.0.2/24"]
    peer = host_end(lab, g, "eth5")
    assert peer["ifname"] == "myhostend" and peer["master"] == "br0" and is_up(peer)


def test_existing_guest_interface_name_is_a_clear_error(lab: Lab) -> None:
    g = lab.netns("g")
    sh("ip", "-n", g, "link", "add", "name", "eth1", "type", "veth", "peer", "name", "other")
    before = snapshots(lab, g)
    line = failed(lab.pipework("br7", g, "10.7.0.2/24", check=False))
    assert '"eth1"' in line and "-i" in line
    assert_unchanged(lab, before)
    assert lab.attachments() == []


@pytest.mark.parametrize(
    "argv",
    [
        ["br7", "-i", "sixteen-bytes-xx"],
        ["br7", "-l", "sixteen-bytes-xx"],
        ["brsixteen-bytes1"],  # a bridge pipework would create, and could not
    ],
)
def test_name_longer_than_15_bytes_fails_before_anything_is_created(
    lab: Lab, argv: list[str]
) -> None:
    g = lab.netns("g")
    before = snapshots(lab, g)
    line = failed(lab.pipework(*argv, g, "10.7.0.2/24", check=False), 2)
    long_name = next(a for a in argv if len(a) > 15)
    assert long_name in line and "15 bytes" in line
    assert_unchanged(lab, before)


# -- 8. macvlan -------------------------------------------------------------------------------


def lan(lab: Lab, net: str = "192.168.8") -> str:
    """A LAN on a non-bridge host interface lan0: its peer in a "lan" namespace at NET.1."""
    lan_ns = lab.netns("lan")
    lab.veth(lab.host, "lan0", lan_ns, "lanp")
    sh("ip", "-n", lan_ns, "addr", "add", f"{net}.1/24", "dev", "lanp")
    return lan_ns


def test_macvlan_on_a_non_bridge_parent(lab: Lab) -> None:
    g1, g2 = lab.netns("g1"), lab.netns("g2")
    lan(lab)
    lab.pipework("lan0", g1, "192.168.8.2/24")
    link = lab.link(g1, "eth1", details=True)
    lan0 = lab.link(lab.host, "lan0")
    assert lan0 is not None
    assert link is not None and link["linkinfo"]["info_kind"] == "macvlan"
    assert link["link_index"] == lan0["ifindex"]  # its parent is lan0
    assert link["linkinfo"]["info_data"]["mode"] == "bridge"
    assert is_up(link) and str(link.get("ifalias")).startswith("netplumb:")
    assert lab.addrs(g1, "eth1") == ["192.168.8.2/24"]
    assert lab.ping(g1, "192.168.8.1", tries=3)

    lab.pipework(f"mac:{lan0['address']}", "-i", "eth2", g2, "192.168.8.3/24")
    assert kind(lab, g2, "eth2") == "macvlan"
    assert eth(lab, g2, "eth2")["link_index"] == lan0["ifindex"]
    assert lab.ping(g2, "192.168.8.1", tries=3) and lab.ping(g2, "192.168.8.2")
    assert marked(lab, lab.host) == []  # a macvlan leaves nothing in the host namespace


# -- 9. VLANs ---------------------------------------------------------------------------------


def test_vlan_on_a_non_bridge_without_8021q_is_a_clear_error(lab: Lab) -> None:
    g = lab.netns("g")
    lan(lab)
    before = snapshots(lab, g)
    for extra in ("@10", "02:aa:bb:cc:dd:ee@10"):
        line = failed(lab.pipework("lan0", g, "192.168.8.2/24", extra, check=False))
        assert "802.1q" in line
        assert_unchanged(lab, before)


def test_vlan_on_a_bridge_is_refused(lab: Lab) -> None:
    g = lab.netns("g")
    lab.bridge("br0")
    before = snapshots(lab, g)
    line = failed(lab.pipework("br0", g, "10.9.0.2/24", "@10", check=False))
    assert "VLAN" in line and "bridge" in line
    assert_unchanged(lab, before)


# -- 10. DHCP ---------------------------------------------------------------------------------


def dnsmasq(lab: Lab, bridge: str, net: str) -> str:
    """A router namespace on ``bridge`` at NET.1 serving DHCP (NET.50-99, router NET.1)."""
    router = lab.netns("rtr")
    lab.on_bridge(bridge, router, "rtr0", f"{net}.1/24")
    lab.popen(
        router,
        [
            "dnsmasq",
            "--no-daemon",
            "--port=0",
            "--conf-file=/dev/null",
            "--user=root",
            "--interface=rtr0",
            "--bind-interfaces",
            f"--dhcp-range={net}.50,{net}.99,255.255.255.0,2m",
            f"--dhcp-option=3,{net}.1",
            f"--dhcp-leasefile={lab.tmp / 'leases'}",
            f"--pid-file={lab.tmp / 'dnsmasq.pid'}",
        ],
        stderr=open(lab.tmp / "dnsmasq.log", "w"),  # noqa: SIM115 -- the process keeps it
    )

    def listening() -> bool:
        out = sh("ip", "netns", "exec", router, "ss", "-Hlun", "sport", "=", ":67").stdout
        return bool(out.strip())

    assert wait_for(listening), (lab.tmp / "dnsmasq.log").read_text()
    return router


def test_dhcp_gets_a_lease_keeps_the_client_and_detach_stops_it(lab: Lab) -> None:
    g = lab.netns("g")
    lab.bridge("brdhcp")
    dnsmasq(lab, "brdhcp", "192.168.50")
    lab.pipework("brdhcp", g, "dhcp")

    addrs = lab.addrs(g, "eth1", "4")
    log = (lab.tmp / "dnsmasq.log").read_text()
    assert len(addrs) == 1, f"no DHCP address on eth1: {addrs}\ndnsmasq:\n{log}"
    ip = ipaddress.IPv4Interface(addrs[0])
    assert ip.network == ipaddress.IPv4Network("192.168.50.0/24")
    assert ipaddress.IPv4Address("192.168.50.50") <= ip.ip <= ipaddress.IPv4Address("192.168.50.99")
    assert lab.default_routes(g) == [("192.168.50.1", "eth1")]
    assert lab.ping(g, "192.168.50.1", tries=3)
    clients = [pid for pid, cmd in processes(g).items() if "udhcpc" in cmd and "eth1" in cmd]
    assert len(clients) == 1, processes(g)  # kept running to renew the lease

    peer_index = eth(lab, g)["link_index"]
    lab.netplumb("detach", g, "eth1")
    assert lab.link(g, "eth1") is None
    assert lab.link_by_index(lab.host, peer_index) is None
    assert wait_for(lambda: not os.path.exists(f"/proc/{clients[0]}"), timeout=3)
    assert lab.attachments() == []


# -- 11. detach and idempotency -----------------------------------------------------------------


def test_detach_removes_everything_and_reattach_is_idempotent(lab: Lab) -> None:
    g = lab.netns("g")
    with_wan(lab, g)
    lab.bridge("br0")
    before = snapshots(lab, g)

    lab.pipework("br0", g, "10.11.0.2/24@10.11.0.1")
    assert lab.default_routes(g) == [("10.11.0.1", "eth1")]
    peer = host_end(lab, g)

    again = lab.pipework("br0", g, "10.11.0.2/24@10.11.0.1")  # the same: nothing to do
    assert again.returncode == 0
    assert len(bridge_ports(lab, "br0")) == 1 and lab.addrs(g, "eth1") == ["10.11.0.2/24"]

    line = failed(lab.pipework("br0", g, "10.11.0.3/24@10.11.0.1", check=False))
    assert "eth1" in line and "detach" in line
    assert lab.addrs(g, "eth1") == ["10.11.0.2/24"] and len(bridge_ports(lab, "br0")) == 1

    plan = lab.netplumb("detach", g, "eth1", "--dry-run").stdout.splitlines()
    assert plan == [f"ip link del {peer['ifname']}  # the veth of GUEST's eth1"]
    assert lab.addrs(g, "eth1") == ["10.11.0.2/24"]  # a dry run changes nothing
    # the plan executed by the applier: stopped after its first action, the record stays and
    # ``detach`` again finishes the job (a removal has nothing to roll back)
    stopped = lab.netplumb(
        "detach", g, "eth1", check=False, env={"NETPLUMB_FAIL_AFTER": "DetachInterface"}
    )
    assert "injected failure after DetachInterface" in stopped.stderr
    assert lab.link(g, "eth1") is None and len(lab.attachments()) == 1
    lab.netplumb("detach", g, "eth1")
    assert lab.link(g, "eth1") is None
    assert lab.link_by_index(lab.host, peer["ifindex"]) is None
    assert not any("10.11.0.2" in a for a in lab.addrs(g, "wan0"))
    assert lab.default_routes(g) == [("172.16.0.1", "wan0")]  # the guest's own, back
    assert_unchanged(lab, before)
    assert lab.attachments() == []

    failed(lab.netplumb("detach", g, "eth1", check=False))  # nothing left to detach
    lab.pipework("br0", g, "10.11.0.3/24")  # after detach, a different attach is fine
    assert lab.addrs(g, "eth1") == ["10.11.0.3/24"]


def test_detach_refuses_an_interface_netplumb_did_not_attach(lab: Lab) -> None:
    g = lab.netns("g")
    with_wan(lab, g)
    before = snapshots(lab, g)
    failed(lab.netplumb("detach", g, "wan0", check=False))
    assert_unchanged(lab, before)


# -- 12. rollback -------------------------------------------------------------------------------

BRIDGE_STEPS = [
    "CreateBridge",
    "CreateVeth",
    "AddAddress",
    "Announce",
    "GuestLinkUp",
    "AddHostRoute",
    "ReplaceDefault",
]
MACVLAN_STEPS = ["CreateMacvlan", "AddAddress", "GuestLinkUp", "ReplaceDefault"]


@pytest.mark.parametrize(
    ("hostif", "step"),
    [("brrb", s) for s in BRIDGE_STEPS] + [("lan0", s) for s in MACVLAN_STEPS],
)
def test_failure_after_any_step_rolls_everything_back(lab: Lab, hostif: str, step: str) -> None:
    g = lab.netns("g")
    with_wan(lab, g)
    if hostif == "lan0":
        lan(lab, "192.168.12")
        spec = "192.168.12.2/24@192.168.12.1,fd00:12::2/64"
    else:
        spec = "10.12.0.2/24@10.12.1.1,fd00:12::2/64"  # brrb missing: netplumb creates it
    before = snapshots(lab, g)

    proc = lab.pipework(hostif, g, spec, check=False, env={"NETPLUMB_FAIL_AFTER": step})
    line = failed(proc)
    assert step in line
    assert_unchanged(lab, before)
    assert lab.default_routes(g) == [("172.16.0.1", "wan0")]
    assert lab.attachments() == []


@pytest.mark.parametrize("proto", ["boot", "static", "dhcp"])
def test_gateway_replaces_the_guests_default_route_and_detach_restores_it(
    lab: Lab, proto: str
) -> None:
    g = lab.netns("g")
    with_wan(lab, g, proto)
    lab.bridge("br0")
    before = snapshots(lab, g)

    lab.pipework("br0", g, "10.12.0.2/24@10.12.0.1")
    assert lab.default_routes(g) == [("10.12.0.1", "eth1")]
    lab.netplumb("detach", g, "eth1")
    assert lab.default_routes(g) == [("172.16.0.1", "wan0")]
    assert_unchanged(lab, before)  # the same route: protocol included


# -- 13. parallel attaches ------------------------------------------------------------------------


def run_parallel(lab: Lab, commands: list[list[str]]) -> None:
    procs = [
        subprocess.Popen(
            ["ip", "netns", "exec", lab.host, *cmd],
            env=lab.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in commands
    ]
    errors = []
    for cmd, proc in zip(commands, procs, strict=True):
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            errors.append(f"{' '.join(cmd[1:])}: {proc.returncode} {err.strip()}")
    assert not errors, "\n".join(errors)


def test_32_parallel_attaches_and_detaches(lab: Lab) -> None:
    n = 32
    guests = [lab.netns(f"p{i}") for i in range(n)]
    lab.bridge("brpar")
    run_parallel(lab, [[PIPEWORK, "brpar", g, f"10.13.0.{i + 2}/24"] for i, g in enumerate(guests)])

    assert len(bridge_ports(lab, "brpar")) == n
    for i, g in enumerate(guests):
        assert lab.addrs(g, "eth1") == [f"10.13.0.{i + 2}/24"]
        assert is_up(eth(lab, g)) and host_end(lab, g)["master"] == "brpar"
    assert lab.ping(guests[0], f"10.13.0.{n + 1}", tries=3)
    assert len(lab.attachments()) == n

    run_parallel(lab, [[NETPLUMB, "detach", g, "eth1"] for g in guests])
    assert marked(lab, lab.host) == []
    assert bridge_ports(lab, "brpar") == []
    assert all(lab.link(g, "eth1") is None for g in guests)
    assert lab.attachments() == []


def test_parallel_attaches_to_a_missing_bridge_create_it_once(lab: Lab) -> None:
    guests = [lab.netns(f"q{i}") for i in range(8)]
    run_parallel(
        lab, [[PIPEWORK, "brrace", g, f"10.13.1.{i + 2}/24"] for i, g in enumerate(guests)]
    )
    bridges = [
        ln
        for ln in lab.links(lab.host, details=True)
        if ln.get("linkinfo", {}).get("info_kind") == "bridge"
    ]
    assert [b["ifname"] for b in bridges] == ["brrace"]
    assert len(bridge_ports(lab, "brrace")) == 8
    assert lab.ping(guests[0], "10.13.1.9", tries=3)


# -- 14. guest references -------------------------------------------------------------------------


def test_guests_by_pid_proc_path_netns_path_and_host_name(lab: Lab) -> None:
    lab.bridge("br0")
    by_pid, by_proc, by_path = lab.netns("pid"), lab.netns("proc"), lab.netns("path")
    lab.pipework("br0", str(lab.sleeper(by_pid)), "10.14.0.2/24")
    lab.pipework("br0", f"/proc/{lab.sleeper(by_proc)}/ns/net", "10.14.0.3/24")
    lab.pipework("br0", f"/run/netns/{by_path}", "10.14.0.4/24")
    assert lab.addrs(by_pid, "eth1") == ["10.14.0.2/24"]
    assert lab.addrs(by_proc, "eth1") == ["10.14.0.3/24"]
    assert lab.addrs(by_path, "eth1") == ["10.14.0.4/24"]

    name, secs = f"h{lab.id}", str(100000 + secrets.randbelow(10**6))
    lab.np_hosts.append(name)
    lab.netplumb("run", "--name", name, "--network", "none", "--", "sleep", secs)
    found = sh("pgrep", "-f", f"^sleep {secs}$", check=False).stdout.split()
    assert len(found) == 1, found
    lab.pipework("br0", name, "10.14.0.5/24")
    nsenter = ["nsenter", f"--net=/proc/{found[0]}/ns/net"]
    shown = sh(*nsenter, "ip", "-j", "-4", "addr", "show", "dev", "eth1").stdout
    assert '"10.14.0.5"' in shown
    for addr in ("10.14.0.3", "10.14.0.4", "10.14.0.5"):
        assert lab.ping(by_pid, addr, tries=3), addr


def test_unknown_guest_names_the_kinds_tried(lab: Lab) -> None:
    before = snapshots(lab)
    line = failed(lab.pipework("br0", f"nosuch-{lab.id}", "10.14.0.9/24", check=False))
    for kind_name in ("netplumb host", "netns", "PID", "namespace path"):
        assert kind_name in line, line
    assert_unchanged(lab, before)


# -- 15. route, rule, tc --------------------------------------------------------------------------


def netem_available(lab: Lab) -> bool:
    scratch = lab.netns("scratch")
    sh("ip", "-n", scratch, "link", "add", "name", "s0", "type", "veth", "peer", "name", "s1")
    cmd = ["ip", "netns", "exec", scratch, "tc", "qdisc", "add", "dev", "s0", "root", "netem"]
    return sh(*cmd, "delay", "1ms", check=False).returncode == 0


def test_route_rule_and_tc_run_in_the_guest(lab: Lab) -> None:
    g = lab.netns("g")
    lab.pipework("br0", g, "10.15.0.2/24")

    lab.pipework("route", g, "add", "10.99.0.0/16", "via", "10.15.0.1")
    routes = {(r.get("dst"), r.get("gateway"), r.get("dev")) for r in lab.routes(g)}
    assert ("10.99.0.0/16", "10.15.0.1", "eth1") in routes
    failed(lab.pipework("route", g, "add", "10.98.0.0/16", "via", "192.0.2.1", check=False), 2)

    lab.pipework("rule", g, "add", "from", "10.15.0.2", "table", "100", "priority", "1000")
    rules = lab.ipj(g, "rule")
    assert any(r.get("priority") == 1000 and r.get("src") == "10.15.0.2" for r in rules), rules

    qdisc = ["netem", "delay", "1ms"] if netem_available(lab) else ["pfifo"]
    lab.pipework("tc", g, "qdisc", "add", "dev", "eth1", "root", *qdisc)
    shown = sh("ip", "netns", "exec", g, "tc", "-j", "qdisc", "show", "dev", "eth1").stdout
    assert f'"kind":"{qdisc[0]}"' in shown.replace(" ", "")


# -- 16. --wait -------------------------------------------------------------------------------


def test_wait_times_out_without_the_interface_and_returns_once_attached(lab: Lab) -> None:
    g = lab.netns("g")
    wait = ["ip", "netns", "exec", g, PIPEWORK, "--wait", "-i", "eth1"]
    t0 = time.monotonic()
    proc = sh(*wait, "--timeout", "1", check=False)
    elapsed = time.monotonic() - t0
    line = failed(proc)
    assert "eth1" in line and "1 s" in line
    # The upper bound tells --timeout 1 from the 60 s default; it includes starting pipework
    # under `ip netns exec`, which a loaded machine can stretch past the 3 s once allowed here.
    assert 0.9 <= elapsed < 20, elapsed

    # an interface that exists but is down is not ready either (pipework returned at once)
    sh("ip", "-n", g, "link", "add", "name", "eth9", "type", "veth", "peer", "name", "eth9p")
    assert (
        sh(
            "ip",
            "netns",
            "exec",
            g,
            PIPEWORK,
            "--wait",
            "-i",
            "eth9",
            "--timeout",
            "0.5",
            check=False,
        ).returncode
        != 0
    )

    waiter = lab.popen(g, [PIPEWORK, "--wait", "-i", "eth1", "--timeout", "10"])
    time.sleep(0.2)
    assert waiter.poll() is None
    lab.pipework("br0", g, "10.16.0.2/24")
    assert waiter.wait(timeout=5) == 0
    assert sh(*wait, "--timeout", "1").returncode == 0


# -- 17. gc -----------------------------------------------------------------------------------


def test_gc_removes_only_what_belongs_to_dead_guests(lab: Lab) -> None:
    dead, live, live2 = lab.netns("dead"), lab.netns("live"), lab.netns("live2")
    lab.bridge("brmine")
    lab.bridge("brempty")
    lab.veth(lab.host, "foreign0", lab.host, "foreign1")
    lab.pipework("brgc", dead, "10.17.0.2/24")  # netplumb creates brgc
    lab.pipework("brkeep", live2, "10.17.2.2/24")  # and brkeep, which keeps a live port
    lab.pipework("brmine", live, "10.17.1.2/24")
    live_peer = host_end(lab, live)
    assert len(lab.attachments()) == 3

    sh("ip", "netns", "del", dead)
    out = lab.netplumb("gc").stdout
    assert "brgc" in out

    names = {ln["ifname"] for ln in lab.links(lab.host)}
    assert "brgc" not in names
    assert {"brmine", "brempty", "brkeep", "foreign0", "foreign1", live_peer["ifname"]} <= names
    assert lab.addrs(live, "eth1") == ["10.17.1.2/24"] and lab.addrs(live2, "eth1") == [
        "10.17.2.2/24"
    ]
    assert len(lab.attachments()) == 2

    before = snapshots(lab, live, live2)
    assert lab.netplumb("gc").stdout == ""  # nothing more to collect
    assert_unchanged(lab, before)
    assert len(lab.attachments()) == 2


# -- 18. --dry-run ----------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_creates_nothing(lab: Lab) -> None:
    g = lab.netns("g")
    before = snapshots(lab, g)
    out = lab.netplumb(
        "attach",
        g,
        "brdry",
        "--ip",
        "10.18.0.2/24@10.18.0.1",
        "--mac",
        "02:00:00:00:18:02",
        "--dry-run",
    ).stdout
    for text in ("brdry", "veth", "10.18.0.2/24", "default via 10.18.0.1", "02:00:00:00:18:02"):
        assert text in out, out
    assert_unchanged(lab, before)
    assert lab.attachments() == []

    lab.netplumb(
        "attach", g, "brdry", "--ip", "10.18.0.2/24@10.18.0.1", "--mac", "02:00:00:00:18:02"
    )
    assert eth(lab, g)["address"] == "02:00:00:00:18:02"
    assert lab.addrs(g, "eth1") == ["10.18.0.2/24"]
    assert lab.default_routes(g) == [("10.18.0.1", "eth1")]


# -- 19. gratuitous ARP -------------------------------------------------------------------------


def test_attach_announces_the_new_address_with_a_gratuitous_arp(lab: Lab) -> None:
    g0, g1, sniff = lab.netns("g0"), lab.netns("g1"), lab.netns("sniff")
    lab.pipework("br0", g0, "10.19.0.2/24")
    notify = sh("ip", "netns", "exec", g0, "cat", "/proc/sys/net/ipv4/conf/eth1/arp_notify")
    assert notify.stdout.strip() == "1"

    lab.on_bridge("br0", sniff, "sn0")
    sniffer = lab.popen(
        sniff, ["python3", "-c", ARP_SNIFFER, "sn0", "10.19.0.3", "2"], stdout=subprocess.PIPE
    )
    assert sniffer.stdout is not None and sniffer.stdout.readline().strip() == "ready"
    lab.pipework("br0", g1, "10.19.0.3/24")
    assert sniffer.wait(timeout=5) == 0, "no ARP from 10.19.0.3 within 2 s"
    seen = sniffer.stdout.read()
    assert "sender=10.19.0.3 target=10.19.0.3" in seen, seen
