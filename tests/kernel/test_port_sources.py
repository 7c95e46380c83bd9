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
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.portlab import CLIENT, GATEWAY, HAIRPIN_SOURCE, LOOPBACK_SOURCE, SELF_SOURCE, Lab
from lab import ip_json, wait_for

pytestmark = pytest.mark.kernel


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
    nat = {f"{a}/32" for a in (LOOPBACK_SOURCE, HAIRPIN_SOURCE, SELF_SOURCE)}
    assert {f"{GATEWAY}/16", *nat} <= addrs
    chain = lab.run_in(lab.m, "nft", "list", "chain", "inet", "netplumb", "nat_postrouting").stdout
    assert f"ip saddr 127.0.0.0/8 ct status dnat snat ip to {LOOPBACK_SOURCE}" in chain
    assert f"ct status dnat snat ip to {HAIRPIN_SOURCE}" in chain
    assert f"ip saddr . ip daddr @publish4_self ct status dnat snat ip to {SELF_SOURCE}" in chain
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


def self_set(lab: Lab) -> list[str]:
    """The elements of publish4_self, as the kernel holds them."""
    argv = ("nft", "-j", "list", "set", "inet", "netplumb", "publish4_self")
    items = json.loads(lab.run_in(lab.m, *argv).stdout)["nftables"]
    elems = next(i["set"] for i in items if "set" in i).get("elem", [])
    return sorted(" . ".join(e["elem"]["val"]["concat"]) for e in elems)


def test_a_guests_hairpin_connection_comes_from_the_hairpin_sources(lab: Lab) -> None:
    """Another guest through the gateway address to the published port: from the hairpin
    source; the server's own guest: from the source of its own. The client's ports kept, the
    same ports from both, neither a retransmit nor a PAWS rejection."""
    srv = lab.serve()
    guest_ip = json.loads(lab.np("ps", "--json").stdout)[0]["addresses"][0].split("/")[0]
    assert self_set(lab) == [f"{guest_ip} . {guest_ip}"]
    lab.np("run", "--name", "cli", "--", "sleep", "1000")
    before = counters(srv)
    for name, source in (("cli", HAIRPIN_SOURCE), ("srv", SELF_SOURCE), ("cli", HAIRPIN_SOURCE)):
        argv = ("python3", "-c", CLIENT, GATEWAY, "18081", "42000", "50")
        out = lab.np("exec", name, "--", *argv).stdout
        assert [(a, p) for a, p, _ in json.loads(out)] == [(source, p) for p in range(42000, 42050)]
    after = counters(srv)
    assert after["PAWSTimewait"] - before["PAWSTimewait"] == 0
    assert after["TCPSynRetrans"] - before["TCPSynRetrans"] == 0
    # the pair goes with the guest's last published IPv4 port
    lab.np("unpublish", "srv", "127.0.0.1:18080:8080")
    assert self_set(lab) == [f"{guest_ip} . {guest_ip}"]
    lab.np("unpublish", "srv", "18081:8080")
    assert self_set(lab) == []
