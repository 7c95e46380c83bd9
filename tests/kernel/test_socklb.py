"""The machine's own connections to ``127.0.0.1:PORT`` of a published port go to the guest when
they are made (``kernel/socklb.py``), on real namespaces, a real cgroup and real BPF programs.

netplumb is told the cgroup (``NETPLUMB_SOCKLB_CGROUP``): a child of a cgroup v2 mount the test
makes, so only the test's clients, written into it, are redirected. Oracles: the address the
guest's server sees (the gateway for a connection made to the guest, the loopback NAT source
for one the DNAT translated), what the client's ``getpeername`` says, and ``bpftool`` for the
programs attached to the cgroup and the services map.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from kernel.portlab import (
    GATEWAY,
    HAIRPIN_SOURCE,
    LOOPBACK_SOURCE,
    PEER_SERVER,
    SELF_SOURCE,
)
from kernel.portlab import Lab as PortsLab
from lab import REMOVE, run

pytestmark = pytest.mark.kernel

# Connects to HOST:PORT (from a socket bound to BIND first, if given) and prints what the
# server saw and what getpeername says, as JSON; an error's name when it cannot connect.
CLIENT = textwrap.dedent("""
    import json, socket, sys
    host, port, bind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.socket()
    s.settimeout(5)
    if bind:
        s.bind((bind, 0))
    try:
        s.connect((host, port))
    except OSError as e:
        print(json.dumps(type(e).__name__))
        sys.exit()
    peer = s.getpeername()
    print(json.dumps([s.makefile().read().split()[0], list(peer)]))
""")


class Lab(PortsLab):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        with self.closed_on_error():
            mount = tmp / "cgroup2"
            mount.mkdir()
            run(["mount", "-t", "cgroup2", "none", str(mount)])
            self.defer(f"mount {mount}", partial(run, ["umount", str(mount)]), REMOVE)
            self.cgroup = mount / f"npt-{self.id}"
            self.cgroup.mkdir()
            self.defer(f"cgroup {self.cgroup}", self.cgroup.rmdir, REMOVE)

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return super().environ({"NETPLUMB_SOCKLB_CGROUP": str(self.cgroup), **(extra or {})})

    def client(
        self,
        port: int,
        ns: str = "",
        bind: str = "",
        in_cgroup: bool = True,
        host: str = "127.0.0.1",
        guest: str = "",
    ) -> object:
        """CLIENT from the machine (or namespace ``ns``, or netplumb host ``guest``), written
        into the lab's cgroup first unless told not to."""
        enter = f"echo $$ > {self.cgroup}/cgroup.procs; " if in_cgroup else ""
        argv = ["sh", "-c", enter + 'exec python3 -c "$0" "$@"', CLIENT, host, str(port), bind]
        if guest:  # nsenter keeps this mount namespace: the lab's cgroup is seen
            argv = ["nsenter", f"--net=/proc/{self.pid(guest)}/ns/net", *argv]
            return json.loads(run(argv, env=self.environ()).stdout)
        return json.loads(self.run_in(ns or self.m, *argv).stdout)

    def pid(self, guest: str) -> int:
        rows = json.loads(self.np("ps", "--json").stdout)
        return int(next(r["pid"] for r in rows if r["name"] == guest))

    def address(self, guest: str) -> str:
        rows = json.loads(self.np("ps", "--json").stdout)
        return str(next(r["addresses"][0] for r in rows if r["name"] == guest)).split("/")[0]

    def attached(self) -> list[str]:
        rows = json.loads(
            run(["bpftool", "-j", "cgroup", "show", str(self.cgroup)]).stdout.strip() or "[]"
        )
        return sorted(f"{r['attach_type']} {r['name']}" for r in rows)


def services_map(lab: Lab) -> int | None:
    """The id of the services map of the program attached to the lab's cgroup (bpftool)."""
    rows = json.loads(
        run(["bpftool", "-j", "cgroup", "show", str(lab.cgroup)]).stdout.strip() or "[]"
    )
    ids = [r["id"] for r in rows if r["name"] == "np_connect4"]
    if not ids:
        return None
    prog = json.loads(run(["bpftool", "-j", "prog", "show", "id", str(ids[0])]).stdout)
    for map_id in prog["map_ids"]:
        info = json.loads(run(["bpftool", "-j", "map", "show", "id", str(map_id)]).stdout)
        if info["name"] == "np_services":
            return int(map_id)
    return None


def services(lab: Lab) -> list[tuple[int, str, int, str, int]]:
    """The entries of the services map (netns cookie, address, port, guest address, guest
    port), read with bpftool."""
    map_id = services_map(lab)
    if map_id is None:
        return []
    out = []
    for row in json.loads(run(["bpftool", "-j", "map", "dump", "id", str(map_id)]).stdout):
        k = bytes(int(x, 16) for x in row["key"])
        v = bytes(int(x, 16) for x in row["value"])
        cookie = int.from_bytes(k[:8], "little")
        ip, guest = ".".join(map(str, k[8:12])), ".".join(map(str, v[0:4]))
        out.append((cookie, ip, int.from_bytes(k[12:14]), guest, int.from_bytes(v[4:6])))
    return sorted(out)


def netns_cookie(lab: Lab, ns: str = "", guest: str = "") -> int:
    code = "import socket; print(int.from_bytes(socket.socket().getsockopt(1, 71, 8), 'little'))"
    if guest:
        argv = ["nsenter", f"--net=/proc/{lab.pid(guest)}/ns/net", "python3", "-c", code]
        return int(run(argv).stdout)
    return int(lab.run_in(ns, "python3", "-c", code).stdout)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Lab(tmp_path) as made:  # closed even when the test fails
        yield made


def test_connections_to_127_0_0_1_are_made_to_the_guest_and_named_as_asked(lab: Lab) -> None:
    lab.serve()  # srv, published on 127.0.0.1:18080 and on every address's 18081
    lab.np("publish", "srv", "18082:8080/udp")
    guest = json.loads(lab.np("ps", "--json").stdout)[0]["addresses"][0].split("/")[0]
    assert lab.attached() == ["cgroup_inet4_connect np_connect4",
                              "cgroup_inet4_getpeername np_peername4"]  # fmt: skip
    cookie = netns_cookie(lab, lab.m)
    mine = [s for s in services(lab) if s[0] == cookie]
    assert mine == [
        (cookie, GATEWAY, 18081, guest, 8080),  # published on every address: the machine's too
        (cookie, "127.0.0.1", 18080, guest, 8080),
        (cookie, "127.0.0.1", 18081, guest, 8080),
    ]  # TCP only: the UDP port keeps the DNAT alone
    # made to the guest: it sees the gateway, not the loopback NAT source; the client's peer is
    # still the address it asked for
    assert lab.client(18080) == [GATEWAY, ["127.0.0.1", 18080]]
    assert lab.client(18081) == [GATEWAY, ["127.0.0.1", 18081]]
    # outside the cgroup, and from a socket bound to a loopback address: the DNAT, as before
    assert lab.client(18080, in_cgroup=False) == [LOOPBACK_SOURCE, ["127.0.0.1", 18080]]
    assert lab.client(18080, bind="127.0.0.1") == [LOOPBACK_SOURCE, ["127.0.0.1", 18080]]
    # another namespace's 127.0.0.1 is its own: nothing published there
    other = lab.netns("other")
    assert lab.client(18080, ns=other) == "ConnectionRefusedError"


def test_unpublished_ports_leave_the_map_and_the_last_one_detaches_the_programs(
    lab: Lab,
) -> None:
    lab.serve()
    cookie = netns_cookie(lab, lab.m)
    lab.np("publish", "srv", "18090:9090")
    ports = [s[2] for s in services(lab) if s[0] == cookie and s[1] == "127.0.0.1"]
    assert ports == [18080, 18081, 18090]
    lab.np("unpublish", "srv", "9090")
    assert sorted({s[2] for s in services(lab)}) == [18080, 18081]  # its guests' entries too
    assert lab.client(18090) == "ConnectionRefusedError"
    assert lab.client(18081)[0] == GATEWAY  # type: ignore[index]
    lab.np("rm", "-f", "srv")
    assert lab.attached() == []
    assert services(lab) == []


def test_reconcile_restores_the_programs_and_the_entries_of_its_own_namespace(
    lab: Lab,
) -> None:
    lab.serve()
    cookie = netns_cookie(lab, lab.m)
    wanted = [s for s in services(lab) if s[0] == cookie]
    assert "restored" not in lab.np("reconcile").stdout  # nothing drifted: nothing said
    # the programs detached by hand (they free their maps): the DNAT serves, until reconcile
    rows = json.loads(run(["bpftool", "-j", "cgroup", "show", str(lab.cgroup)]).stdout)
    for r in rows:
        run(["bpftool", "cgroup", "detach", str(lab.cgroup), r["attach_type"], "id", str(r["id"])])
    assert lab.attached() == []
    assert lab.client(18080) == [LOOPBACK_SOURCE, ["127.0.0.1", 18080]]
    out = lab.np("reconcile").stdout
    assert "restored the socket and LAN redirection of published ports" in out
    assert [s for s in services(lab) if s[0] == cookie] == wanted
    assert lab.client(18080) == [GATEWAY, ["127.0.0.1", 18080]]
    # an entry of another namespace is left as it is; a stray one of this namespace goes
    services_id = services_map(lab)
    assert services_id is not None

    def entry(owner: int, port: int) -> list[str]:
        key = owner.to_bytes(8, "little") + bytes([127, 0, 0, 1]) + port.to_bytes(2) + b"\0\0"
        return ["key", "hex", *(f"{x:02x}" for x in key)]

    value = ["value", "hex", "0a", "59", "00", "09", "1f", "90", "00", "00"]
    other = cookie + 1_000_000  # no namespace's yet
    try:
        for owner in (cookie, other):
            run(["bpftool", "map", "update", "id", str(services_id), *entry(owner, 18099), *value])
        assert "restored the socket and LAN redirection" in lab.np("reconcile").stdout
        after = services(lab)
        assert [s for s in after if s[0] == cookie] == wanted
        assert (other, "127.0.0.1", 18099, "10.89.0.9", 8080) in after
    finally:  # else the programs would stay attached for it after the lab's last port
        run(["bpftool", "map", "delete", "id", str(services_id), *entry(other, 18099)], check=False)


LAN_ADDRESS = "192.0.2.1"  # an address of the machine's own (a dummy "LAN" interface)


def lan_address(lab: Lab, address: str = LAN_ADDRESS) -> None:
    if run(["ip", "-n", lab.m, "link", "show", "lan0"], check=False).returncode != 0:
        # a veth pair both of whose ends stay here (this kernel has no dummy interfaces)
        run(["ip", "-n", lab.m, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1"])
        for end in ("lan0", "lan1"):
            run(["ip", "-n", lab.m, "link", "set", end, "up"])
    run(["ip", "-n", lab.m, "addr", "add", f"{address}/24", "dev", "lan0"])


def test_guests_reach_published_ports_through_the_machines_addresses_directly(
    lab: Lab,
) -> None:
    lan_address(lab)
    lab.serve()  # 127.0.0.1:18080 and every address's 18081
    lab.np("run", "--name", "cli", "--", "sleep", "infinity")
    srv, cli = lab.address("srv"), lab.address("cli")
    machine, srv_c, cli_c = (
        netns_cookie(lab, lab.m),
        netns_cookie(lab, guest="srv"),
        netns_cookie(lab, guest="cli"),
    )
    entries = services(lab)
    for cookie in (machine, srv_c, cli_c):  # the machine's addresses, not the NAT sources
        assert [(s[1], s[2]) for s in entries if s[0] == cookie and s[1] != "127.0.0.1"] == [
            (GATEWAY, 18081),
            (LAN_ADDRESS, 18081),
        ]
    assert [s for s in entries if s[1] == "127.0.0.1" and s[0] != machine] == []
    # a guest's hairpin is made to the target: it sees the guest's own address, not the
    # network's hairpin NAT source; getpeername still says the address asked for
    assert lab.client(18081, host=LAN_ADDRESS, guest="cli") == [cli, [LAN_ADDRESS, 18081]]
    assert lab.client(18081, host=GATEWAY, guest="cli") == [cli, [GATEWAY, 18081]]
    # outside the cgroup: the DNAT, as before
    out = lab.client(18081, host=LAN_ADDRESS, guest="cli", in_cgroup=False)
    assert out == [HAIRPIN_SOURCE, [LAN_ADDRESS, 18081]]
    # the guest to its own published port, and the machine to its own LAN address
    assert lab.client(18081, host=LAN_ADDRESS, guest="srv") == [srv, [LAN_ADDRESS, 18081]]
    out = lab.client(18081, host=LAN_ADDRESS, guest="srv", in_cgroup=False)
    assert out == [SELF_SOURCE, [LAN_ADDRESS, 18081]]
    assert lab.client(18081, host=LAN_ADDRESS) == [GATEWAY, [LAN_ADDRESS, 18081]]
    # a port published on one address only: that address's entries, no other
    lab.np("publish", "srv", f"{LAN_ADDRESS}:18083:8080")
    entries = services(lab)
    assert sorted(s[0] for s in entries if s[2] == 18083) == sorted([machine, srv_c, cli_c])
    assert {s[1] for s in entries if s[2] == 18083} == {LAN_ADDRESS}
    assert lab.client(18083, host=GATEWAY, guest="cli") == "ConnectionRefusedError"
    # a host that goes takes its entries with it
    lab.np("rm", "-f", "cli")
    assert [s for s in services(lab) if s[0] == cli_c] == []
    assert [s for s in services(lab) if s[0] == srv_c] != []


def test_guests_of_isolated_and_other_networks_keep_the_dnat(lab: Lab) -> None:
    lan_address(lab)
    lab.np("network", "create", "iso", "--subnet", "10.77.0.0/24", "--isolation")
    lab.np("network", "create", "other", "--subnet", "10.78.0.0/24")
    lab.np("run", "--name", "isrv", "--network", "iso", "-p", "18085:8080",
           "--", "python3", "-c", PEER_SERVER)  # fmt: skip
    lab.np("run", "--name", "icli", "--network", "iso", "--", "sleep", "infinity")
    lab.serve()
    lab.np("run", "--name", "ocli", "--network", "other", "--", "sleep", "infinity")
    icli, isrv, ocli = (netns_cookie(lab, guest=g) for g in ("icli", "isrv", "ocli"))
    entries = services(lab)
    # isolated: its guests must not reach each other directly, the DNAT is their way to a
    # published port; another network's guests are not let through to np0's guests directly
    assert [s for s in entries if s[0] in (icli, isrv, ocli)] == []
    assert {s[0] for s in entries if s[2] == 18085} == {netns_cookie(lab, lab.m)}
    # the other network's guest reaches np0's published port through the DNAT, as before
    assert lab.client(18081, host=LAN_ADDRESS, guest="ocli") == [GATEWAY, [LAN_ADDRESS, 18081]]


def test_reconcile_follows_the_machines_addresses(lab: Lab) -> None:
    lab.serve()
    srv_c = netns_cookie(lab, guest="srv")
    assert {s[1] for s in services(lab) if s[0] == srv_c} == {GATEWAY}
    lan_address(lab)  # an address netplumb did not see come: the DNAT serves it meanwhile
    assert lab.client(18081, host=LAN_ADDRESS, guest="srv")[0] == SELF_SOURCE  # type: ignore[index]
    assert "restored the socket and LAN redirection" in lab.np("reconcile").stdout
    assert {s[1] for s in services(lab) if s[0] == srv_c} == {GATEWAY, LAN_ADDRESS}
    assert lab.client(18081, host=LAN_ADDRESS, guest="srv")[0] == lab.address("srv")  # type: ignore[index]
    run(["ip", "-n", lab.m, "addr", "del", f"{LAN_ADDRESS}/24", "dev", "lan0"])
    lab.np("reconcile")
    assert LAN_ADDRESS not in {s[1] for s in services(lab)}  # gone: no longer the machine's
