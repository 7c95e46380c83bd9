"""A LAN neighbour's connections to published ports, translated by netplumb's tc programs
(``kernel/lanlb.py``) instead of the kernel's DNAT, on real namespaces and real programs.

Oracles: real TCP traffic from the neighbour and what the guest's server saw; the DNAT's rules
flushed (``nft flush ruleset``), so that only the programs can answer; ``bpftool`` for the
programs loaded and the ports map; sha256 of a file carried both ways.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.lanportlab import MACHINE_LAN, NEIGHBOUR, NETPLUMB, Lab

pytestmark = pytest.mark.kernel

# Answers each connection with the address and port it came from, and closes only after the
# client has (the guest then holds no TIME_WAIT: a later connection of the same 4-tuple is
# accepted whatever its timestamps).
ECHO_PEER = textwrap.dedent("""
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 9000))
    s.listen(128)
    while True:
        c, (addr, port) = s.accept()
        c.sendall(f"{addr} {port}\\n".encode())
        c.recv(1)
        c.close()
""")

# Connects from a fixed source port to HOST:PORT, reads the line, closes first; prints the
# line, or the error's name.
CLIENT = textwrap.dedent("""
    import socket, sys
    host, port, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", sport))
    s.settimeout(3)
    try:
        s.connect((host, port))
        print(s.makefile().readline().strip())
    except OSError as e:
        print(type(e).__name__)
    s.close()
""")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def _programs() -> set[tuple[int, str]]:
    """The LAN path's programs loaded on the machine (id, name): loaded only while attached."""
    import subprocess

    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    return {
        (int(p["id"]), str(p["name"]))
        for p in json.loads(out.stdout)
        if p.get("name") in ("np_lan_in", "np_lan_out")
    }


def _ports_map(lab: Lab, before: set[tuple[int, str]]) -> int:
    """How many entries the ports map of the lab's programs holds (``bpftool``)."""
    import subprocess

    mine = [i for i, n in _programs() - before if n == "np_lan_in"]
    assert len(mine) == 1, mine
    prog = json.loads(
        subprocess.run(
            ["bpftool", "-j", "prog", "show", "id", str(mine[0])], capture_output=True, text=True
        ).stdout
    )
    for map_id in prog["map_ids"]:
        info = subprocess.run(
            ["bpftool", "-j", "map", "show", "id", str(map_id)], capture_output=True, text=True
        )
        if json.loads(info.stdout)["name"] == "np_lan_ports":
            dump = subprocess.run(
                ["bpftool", "-j", "map", "dump", "id", str(map_id)],
                capture_output=True,
                text=True,
            )
            return len(json.loads(dump.stdout))
    raise AssertionError("no ports map")


def _bridge_packets(lab: Lab) -> tuple[int, int]:
    """Packets the default network's bridge has sent and received (``ip -j -s link``)."""
    stats = json.loads(lab.sh(lab.m, "ip", "-j", "-s", "link", "show", "np0").stdout)[0]
    return int(stats["stats64"]["tx"]["packets"]), int(stats["stats64"]["rx"]["packets"])


def _wait_http(lab: Lab, url: str, want: str) -> None:
    deadline = time.monotonic() + 10
    while (got := lab.http(lab.lan, url)) != want:
        assert time.monotonic() < deadline, (url, got, want)
        time.sleep(0.1)


def test_the_lan_path_serves_a_neighbour_without_the_dnat_and_goes_with_the_guest(
    lab: Lab,
) -> None:
    before = _programs()
    lab.server("web", 8080, "-p", "8080:8080", "-p", f"{MACHINE_LAN}:8081:8080")
    loaded = _programs() - before
    assert sorted(n for _i, n in loaded) == ["np_lan_in", "np_lan_out"]
    assert _ports_map(lab, before) == 2  # 8080 on the LAN address (the only uplink), and 8081
    # without netplumb's rules, only the programs can translate (the test can fail: with
    # NETPLUMB_LAN_FASTPATH=off, test_ports_links.py sees the same flush stop the port)
    lab.sh(lab.m, "nft", "flush", "ruleset")
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "200"
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8081/") == "200"
    # delivered into the guest's namespace through its veth's peer, not sent by the bridge,
    # and the replies turned at the veth, before the bridge: 20 requests (5 packets or more
    # each way) leave the bridge's counts as they were (the test can fail: through
    # bpf_redirect_neigh, or turned at the bridge, each would count)
    sent, received = _bridge_packets(lab)
    for _ in range(20):
        assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "200"
    now = _bridge_packets(lab)
    assert now[0] - sent < 5
    assert now[1] - received < 5
    logs = lab.np("logs", "web").stdout + lab.np("logs", "web").stderr
    assert f"{NEIGHBOUR} - -" in logs  # the guest sees the neighbour's own address
    lab.np("unpublish", "web", f"{MACHINE_LAN}:8081:8080")
    assert _ports_map(lab, before) == 1
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8081/") == "000"
    lab.np("rm", "-f", "web")
    assert _programs() - before == set()  # detached from every link, so unloaded
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "000"


def test_a_file_crosses_the_lan_path_whole_both_ways(lab: Lab) -> None:
    """Checksums are updated, not recomputed: large segments (GSO) both ways must arrive
    intact."""
    lab.np(
        "run", "--name", "files", "-p", "8090:8090", "--",
        "sh", "-c", "head -c 30000000 /dev/urandom > /tmp/blob && cd /tmp && "
        "exec python3 -m http.server 8090",
    )  # fmt: skip
    _wait_http(lab, f"http://{MACHINE_LAN}:8090/blob", "200")
    want = lab.np("exec", "files", "--", "sha256sum", "/tmp/blob").stdout.split()[0]
    got = lab.sh(lab.lan, "sh", "-c", f"curl -s -m 20 http://{MACHINE_LAN}:8090/blob | sha256sum")
    assert got.stdout.split()[0] == want
    # the neighbour to the guest: a stream read by a server counting its bytes' digest
    lab.np(
        "run", "--name", "sink", "-p", "8091:8091", "--", "python3", "-c", textwrap.dedent("""
            import hashlib, socket
            s = socket.socket(); s.bind(("0.0.0.0", 8091)); s.listen()
            while True:
                c, _ = s.accept(); h = hashlib.sha256()
                while data := c.recv(1 << 16):
                    h.update(data)
                c.sendall(h.hexdigest().encode()); c.close()
        """),
    )  # fmt: skip
    sent = lab.sh(
        lab.lan,
        "python3",
        "-c",
        textwrap.dedent(f"""
            import hashlib, os, socket, time
            blob = os.urandom(30_000_000)
            for _ in range(50):
                try:
                    s = socket.create_connection(("{MACHINE_LAN}", 8091), timeout=10)
                    break
                except OSError:
                    time.sleep(0.1)
            s.sendall(blob); s.shutdown(socket.SHUT_WR)
            print(hashlib.sha256(blob).hexdigest(), s.makefile().read())
        """),
    )
    mine, theirs = sent.stdout.split()
    assert mine == theirs
    lab.np("rm", "-f", "files", "sink")


def test_a_direct_connection_reusing_a_translated_4_tuple_is_not_turned(lab: Lab) -> None:
    """The neighbour reaches the guest through the published port, then directly (routed) from
    the same source port: the guest sees the same 4-tuple both times. The direct connection's
    SYN deletes the translated one's entry, so its replies keep the guest's address (the test
    can fail: without that deletion they are turned into the published port's, and the
    neighbour's connection times out)."""
    lab.np("run", "--name", "echo", "-p", "9000:9000", "--", "python3", "-c", ECHO_PEER)
    guest = json.loads(lab.np("ps", "--json").stdout)[0]["addresses"][0].split("/")[0]
    lab.sh(lab.lan, "ip", "route", "add", "10.89.0.0/16", "via", MACHINE_LAN)
    # netplumb drops what reaches a guest's address from elsewhere than its bridge (Docker
    # engine 28's rule); without that rule, as before it, the neighbour routes to the guest
    lab.sh(lab.m, "nft", "flush", "chain", "inet", "netplumb", "raw_prerouting")

    def client(host: str, sport: int) -> str:
        return lab.sh(lab.lan, "python3", "-c", CLIENT, host, "9000", str(sport)).stdout.strip()

    deadline = time.monotonic() + 10
    while client(MACHINE_LAN, 41000) != f"{NEIGHBOUR} 41000":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for sport in range(41001, 41006):
        assert client(MACHINE_LAN, sport) == f"{NEIGHBOUR} {sport}"
        assert client(guest, sport) == f"{NEIGHBOUR} {sport}"
        assert client(MACHINE_LAN, sport) == f"{NEIGHBOUR} {sport}"
    lab.np("rm", "-f", "echo")


def test_a_foreign_firewall_makes_the_lan_path_step_aside(lab: Lab) -> None:
    """dockerd's layout (FORWARD DROP, DOCKER-USER first) is netplumb's to live with: the LAN
    path serves under it. A rule of the user's in DOCKER-USER, Docker's place to restrict
    published ports, is honoured: at the next reconcile the programs go and the DNAT serves
    the port, through that rule."""
    lab.sh(lab.m, "iptables", "-P", "FORWARD", "DROP")
    lab.sh(lab.m, "iptables", "-N", "DOCKER-USER")
    lab.sh(lab.m, "iptables", "-A", "DOCKER-USER", "-j", "RETURN")
    lab.sh(lab.m, "iptables", "-I", "FORWARD", "-j", "DOCKER-USER")
    before = _programs()
    lab.server("web", 8080, "-p", "8080:8080")
    assert len(_programs() - before) == 2
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "200"
    lab.sh(lab.m, "iptables", "-I", "DOCKER-USER", "-s", NEIGHBOUR, "-j", "DROP")
    assert "restored the socket and LAN redirection" in lab.np("reconcile").stdout
    assert _programs() - before == set()
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "000"  # dropped
    lab.sh(lab.m, "iptables", "-D", "DOCKER-USER", "-s", NEIGHBOUR, "-j", "DROP")
    lab.np("reconcile")
    assert len(_programs() - before) == 2
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "200"
    # a table of someone else's filtering forwarded packets: the same
    lab.sh(lab.m, "nft", "add", "table", "inet", "userfw")
    lab.sh(lab.m, "nft", "add chain inet userfw forwarded { type filter hook forward priority 0; }")
    lab.np("reconcile")
    assert _programs() - before == set()
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "200"  # the DNAT's
    lab.np("rm", "-f", "web")


def test_reconcile_attaches_the_programs_again(lab: Lab) -> None:
    before = _programs()
    lab.server("web", 8080, "-p", "8080:8080")
    ours = _programs() - before
    # detached behind netplumb's back (the programs' own clear, as a crash or a hand would)
    lab.sh(lab.m, str(Path(NETPLUMB).parent / "python"), "-c",
           "from netplumb.kernel import lanlb; print(lanlb.clear())")  # fmt: skip
    assert _programs() - before == set()
    assert "restored the socket and LAN redirection" in lab.np("reconcile").stdout
    assert len(_programs() - before) == 2
    assert _programs() - before != ours  # loaded anew
    lab.sh(lab.m, "nft", "flush", "ruleset")
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "200"
    lab.np("rm", "-f", "web")
