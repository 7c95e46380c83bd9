"""Published ports' translated connections come from the network's NAT sources, on real
namespaces: the machine's own connections to 127.0.0.1:PORT from one, a guest's hairpin
connections from the other, never from the gateway the machine's direct connections use.

Why (issue 16): a connection to 127.0.0.1:PORT masqueraded to the gateway address kept its
source port, so it landed on 4-tuples a direct connection from the gateway left in the guest's
TIME_WAIT (or the reverse). Its TCP timestamps come from another offset, the guest rejected the
SYN as old (PAWS) and the client waited a second to retransmit it. Oracles: the address the
guest's server sees, the kernel's own counters (``TcpExtTCPSynRetrans`` of the client's
namespace, ``TcpExtPAWSTimewait`` of the guest's), ``ip -j`` and ``nft``.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import Lab as BaseLab
from lab import ip_json, wait_for

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
NETPLUMB = str(ROOT / ".venv" / "bin" / "netplumb")
GATEWAY, LOOPBACK_SOURCE, HAIRPIN_SOURCE = "10.89.0.1", "10.89.255.254", "10.89.255.253"

# The guest's server: answers each connection with the address it came from, then closes it
# first, so the guest holds the connection in TIME_WAIT (as a web server that closes does).
PEER_SERVER = textwrap.dedent("""
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8080))
    s.listen(128)
    while True:
        c, (addr, port) = s.accept()
        c.sendall(f"{addr} {port}\\n".encode())
        c.close()
""")

# A client that connects from fixed source ports, one connection after another, to HOST:PORT,
# and prints what the server saw of each and the seconds each took.
CLIENT = textwrap.dedent("""
    import json, socket, sys, time
    host, port, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    bind = sys.argv[5] if len(sys.argv) > 5 else ""
    out = []
    for p in range(first, first + count):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((bind, p))
        s.settimeout(10)
        t = time.monotonic()
        s.connect((host, port))
        seen = s.makefile().read().split()  # to the end: the server closes first
        out.append([seen[0], int(seen[1]), time.monotonic() - t])
        s.close()
    print(json.dumps(out))
""")


def counters(pid: int) -> dict[str, int]:
    """TcpExt counters of the network namespace of process ``pid``."""
    lines = Path(f"/proc/{pid}/net/netstat").read_text().splitlines()
    out: dict[str, int] = {}
    for head, values in zip(lines[0::2], lines[1::2], strict=True):
        if head.startswith("TcpExt:"):
            out.update(zip(head.split()[1:], map(int, values.split()[1:]), strict=True))
    return out


def time_wait(pid: int) -> int:
    """How many connections the namespace of ``pid`` holds in TIME_WAIT."""
    argv = ["nsenter", "-t", str(pid), "-n", "ss", "-Htn", "state", "time-wait"]
    return (
        len(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split("\n")) - 1
    )


class Lab(BaseLab):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, host="m")
        self.m = self.host

    def np(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run_in(self.m, NETPLUMB, *args, check=check)

    def serve(self) -> int:
        """The guest ``srv`` with PEER_SERVER, published on 127.0.0.1 and on every address;
        returns its PID."""
        self.np(
            "run",
            "--name",
            "srv",
            "-p",
            "127.0.0.1:18080:8080",
            "-p",
            "18081:8080",
            "--",
            "python3",
            "-c",
            PEER_SERVER,
        )
        pid = int(json.loads(self.np("ps", "--json").stdout)[0]["pid"])
        listening = "until ss -Htln sport = :8080 | grep -q .; do sleep 0.05; done"
        self.np("exec", "srv", "--", "timeout", "10", "sh", "-c", listening)
        return pid

    def connect(
        self, host: str, port: int, first: int, count: int, bind: str = ""
    ) -> list[tuple[str, int, float]]:
        """CLIENT from the machine: (address the server saw, port it saw, seconds taken)."""
        argv = ["python3", "-c", CLIENT, host, str(port), str(first), str(count)]
        out = self.run_in(self.m, *argv, *([bind] if bind else [])).stdout
        return [(str(a), int(p), float(t)) for a, p, t in json.loads(out)]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def test_the_network_holds_its_nat_sources_and_the_rules_translate_to_them(lab: Lab) -> None:
    lab.serve()
    addrs = {
        f"{a['local']}/{a['prefixlen']}"
        for link in ip_json(lab.m, "addr", "show", "dev", "np0")
        for a in link["addr_info"]
    }
    assert {f"{GATEWAY}/16", f"{LOOPBACK_SOURCE}/32", f"{HAIRPIN_SOURCE}/32"} <= addrs
    chain = lab.run_in(lab.m, "nft", "list", "chain", "inet", "netplumb", "nat_postrouting").stdout
    assert f"ip saddr 127.0.0.0/8 ct status dnat snat ip to {LOOPBACK_SOURCE}" in chain
    assert f"ct status dnat snat ip to {HAIRPIN_SOURCE}" in chain
    # the guest's port lets a frame back out the way it came (its own published port)
    ports = ip_json(lab.m, "-d", "link", "show", "master", "np0")
    assert ports and all(p["linkinfo"]["info_slave_data"]["hairpin"] is True for p in ports)
    # no guest is ever given them
    proc = lab.np("run", "--name", "x", "--ip", LOOPBACK_SOURCE, "--", "sleep", "1", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().endswith(
        f"address {LOOPBACK_SOURCE} is reserved in network netplumb: "
        "published ports' connections come from it"
    )
    assert [h["name"] for h in json.loads(lab.np("ps", "--json").stdout)] == ["srv"]


def test_published_and_direct_connections_never_share_a_4_tuple(lab: Lab) -> None:
    """The same source ports, first through 127.0.0.1:PORT, then straight to the guest, then
    through the published port again: every SYN is taken at once (no retransmit, no PAWS
    rejection), and each path keeps its own source address and the client's port."""
    srv = lab.serve()
    guest_ip = json.loads(lab.np("ps", "--json").stdout)[0]["addresses"][0].split("/")[0]
    client = lab.sleeper(lab.m)
    before_m, before_g = counters(client), counters(srv)
    first, count = 41000, 200
    published = lab.connect("127.0.0.1", 18080, first, count, "127.0.0.1")
    # the guest holds them (the last may take a moment): the next SYNs meet them
    assert wait_for(lambda: time_wait(srv) >= count), time_wait(srv)
    direct = lab.connect(guest_ip, 8080, first, count)
    again = lab.connect("127.0.0.1", 18080, first, count, "127.0.0.1")
    after_m, after_g = counters(client), counters(srv)
    ports = list(range(first, first + count))
    assert [(a, p) for a, p, _ in published] == [(LOOPBACK_SOURCE, p) for p in ports]
    assert [(a, p) for a, p, _ in direct] == [(GATEWAY, p) for p in ports]
    assert [(a, p) for a, p, _ in again] == [(LOOPBACK_SOURCE, p) for p in ports]
    assert after_g["PAWSTimewait"] - before_g["PAWSTimewait"] == 0
    assert after_m["TCPSynRetrans"] - before_m["TCPSynRetrans"] == 0


def test_a_guests_hairpin_connection_comes_from_the_hairpin_source(lab: Lab) -> None:
    """Another guest, and the server's own guest, through the gateway address to the published
    port: from the hairpin source, the client's ports kept."""
    lab.serve()
    lab.np("run", "--name", "cli", "--", "sleep", "1000")
    # (ports apart: the same port from both within a few minutes is remapped, as it must be)
    for name, first in (("cli", 42000), ("srv", 43000)):
        argv = ("python3", "-c", CLIENT, GATEWAY, "18081", str(first), "20")
        out = lab.np("exec", name, "--", *argv).stdout
        assert [(a, p) for a, p, _ in json.loads(out)] == [
            (HAIRPIN_SOURCE, p) for p in range(first, first + 20)
        ]
