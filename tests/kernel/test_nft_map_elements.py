"""DNAT map elements added and deleted over nfnetlink (``kernel/nftset.py``), checked by nft.

The oracle is nft itself: the base table is loaded from the golden-tested text with
``nft -f``, elements are added by netplumb's own client, and ``nft list`` must print them
exactly as the renderer writes the same publications (so the bytes are nft's own encoding,
comments included). Then a packet: a published port answers through an element added this way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from netns_helpers import NetnsFactory, run
from netplumb.nft.render import Allow, NetSpec, Publication, render, transaction

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
NET = NetSpec("netplumb", "np0", "10.89.0.0/16", 4, False, (), "fd89::/64")
PUBS = [
    Publication("host:web", 4, None, 8080, "10.89.0.2", 8080, "tcp"),
    Publication("host:web", 6, None, 8080, "fd89::2", 8080, "tcp"),
    Publication("host:web", 4, "127.0.0.1", 8081, "10.89.0.2", 80, "tcp"),
    Publication("host:web", 6, "::1", 8090, "fd89::2", 80, "tcp"),
    Publication("host:dns", 4, None, 53, "10.89.0.3", 5353, "udp"),
    Publication('docker:we"ird', 4, "192.168.1.10", 5000, "10.89.0.4", 5000, "sctp"),
]


def _client(
    ns: str, add: list[Publication], delete: list[Publication], keep: Sequence[Publication] = ()
) -> str:
    """Run netplumb's client in ``ns``; returns the errno name it was refused with, or ''.
    With the map elements go the guests' ``publish4_self`` pairs, as ``portrules.changed``
    does: a deleted publication's pair goes unless a publication in ``keep`` holds it."""
    code = f"""
import errno
from netplumb.kernel import nftset
from netplumb.nft.render import Publication, element, self_elements
pubs = [Publication(*a) for a in {[_args(p) for p in add]!r}]
gone = [Publication(*a) for a in {[_args(p) for p in delete]!r}]
kept = {{p.container_ip for p in [Publication(*a) for a in {[_args(p) for p in keep]!r}]}}
add = [element(p) for p in pubs] + self_elements(pubs)
delete = [element(p) for p in gone]
delete += [e for e in self_elements(gone) if e.text.split()[0] not in kept]
try:
    nftset.change("netplumb", add, delete)
except nftset.Refused as exc:
    print(errno.errorcode[exc.errno], exc)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return run([sys.executable, "-c", code], netns=ns, env=env).stdout.strip()


def _args(p: Publication) -> tuple[object, ...]:
    return (p.owner, p.family, p.host_ip, p.host_port, p.container_ip, p.container_port, p.proto)


def _maps(ns: str) -> str:
    """The maps' part of ``nft list table inet netplumb`` (chains follow them)."""
    text = run(["nft", "list", "table", "inet", "netplumb"], netns=ns).stdout
    return text.split("\tchain ", 1)[0]


def test_elements_added_over_netlink_are_what_nft_would_load(netns: NetnsFactory) -> None:
    ns = netns("elem")
    run(["nft", "-f", "-"], netns=ns, input=transaction(render([NET], [], [])))
    assert _client(ns, PUBS, []) == ""
    # what nft lists equals what nft lists after loading the rendered text with the elements
    ours = _maps(ns)
    reference = netns("ref")
    run(["nft", "-f", "-"], netns=reference, input=transaction(render([NET], PUBS, [])))
    assert ours == _maps(reference)
    # a comment per publication, and per guest with a published IPv4 port (its pair)
    assert ours.count('comment "netplumb:') == len(PUBS) + 3
    assert 'comment "netplumb:docker:we\'ird"' in ours
    # adding again what is there is fine; deleting removes exactly those
    assert _client(ns, PUBS[:2], []) == ""
    assert _client(ns, [], PUBS[2:], keep=PUBS[:2]) == ""
    run(["nft", "flush", "table", "inet", "netplumb"], netns=reference)
    run(["nft", "-f", "-"], netns=reference, input=transaction(render([NET], PUBS[:2], [])))
    assert _maps(ns) == _maps(reference)


def test_a_refused_batch_changes_nothing(netns: NetnsFactory) -> None:
    ns = netns("elem")
    assert _client(ns, PUBS, []).startswith("ENOENT cannot add elements of nftables set")
    run(["nft", "-f", "-"], netns=ns, input=transaction(render([NET], PUBS[:1], [])))
    before = _maps(ns)
    # one element to delete is not there: the whole batch (with its additions) is refused
    assert _client(ns, PUBS[1:3], PUBS[4:5]).startswith("ENOENT cannot delete elements")
    assert _maps(ns) == before
    # an element of the same key with other data: refused, nothing changes
    other = Publication("host:x", 4, None, 8080, "10.89.0.9", 80, "tcp")
    assert _client(ns, [other], []).split()[0] in ("EEXIST", "EBUSY")
    assert _maps(ns) == before


def test_a_port_published_by_an_element_answers(netns: NetnsFactory) -> None:
    """A guest behind a veth, its port reached through the machine's 127.0.0.1 and its address
    on a LAN-side veth: the map lookups of the chain ``publish`` and netlink's bytes agree."""
    m, g = netns("m"), netns("g")
    run(["ip", "-n", m, "link", "add", "np0", "type", "veth", "peer", "eth0", "netns", g])
    run(["ip", "-n", m, "addr", "add", "10.89.0.1/16", "dev", "np0"])
    run(["ip", "-n", g, "addr", "add", "10.89.0.2/16", "dev", "eth0"])
    for ns, dev in ((m, "np0"), (g, "eth0")):
        run(["ip", "-n", ns, "link", "set", dev, "up"])
    run(["ip", "-n", g, "route", "add", "default", "via", "10.89.0.1"])
    run(["sysctl", "-qw", "net.ipv4.conf.np0.route_localnet=1"], netns=m)
    run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], netns=m)
    run(["nft", "-f", "-"], netns=m, input=transaction(render([NET], [], [])))
    server = subprocess.Popen(
        ["ip", "netns", "exec", g, "python3", "-m", "http.server", "8080", "--bind", "10.89.0.2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = "http://127.0.0.1:9080/"
        probe = ["curl", "-s", "-o", "/dev/null", "-m", "2", "--retry", "5", "--retry-connrefused"]
        probe += ["-w", "%{http_code}"]
        refused = ["curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", url]
        assert run(refused, netns=m, check=False).stdout == "000"  # not published yet
        pub = Publication("host:web", 4, "127.0.0.1", 9080, "10.89.0.2", 8080, "tcp")
        anywhere = Publication("host:web", 4, None, 9081, "10.89.0.2", 8080, "tcp")
        assert _client(m, [pub, anywhere], []) == ""
        assert run([*probe, url], netns=m, check=False).stdout == "200"
        assert run([*probe, "http://10.89.0.1:9081/"], netns=m, check=False).stdout == "200"
        assert _client(m, [], [pub]) == ""
        assert run(["curl", "-s", "-m", "1", url], netns=m, check=False).returncode != 0
    finally:
        server.kill()
        server.wait()
    listed = json.loads(
        run(["nft", "-j", "list", "map", "inet", "netplumb", "publish4"], netns=m).stdout
    )
    assert [e for i in listed["nftables"] for e in i.get("map", {}).get("elem", [])]


ISO = NetSpec("iso.x-1", "np-iso", "10.90.0.0/24", 4, True, ("vethdb", "vethweb"))
LINK = Allow("np-iso", "10.90.0.3", "10.90.0.2", 27017, "tcp", "link:web:db")


def test_an_isolated_networks_sets_are_replaced_in_one_transaction(netns: NetnsFactory) -> None:
    """A guest joins and a link comes: the network's two sets are emptied and filled again
    (``portrules.isolation_changed``); the bridge table is then what nft loads from the text
    rendered with the new records."""
    ns = netns("iso")
    run(["nft", "-f", "-"], netns=ns, input=transaction(render([ISO], [], [LINK])))
    joined = NetSpec("iso.x-1", "np-iso", "10.90.0.0/24", 4, True, ("vethdb", "vethweb", "vnew"))
    links = [LINK, Allow("np-iso", "10.90.0.4", "10.90.0.2", 53, "udp", "link:new:db")]
    args = [(a.bridge, a.src, a.dst, a.port, a.proto, a.owner) for a in links]
    code = f"""
from netplumb.kernel import nftset
from netplumb.nft.render import Allow, NetSpec, isolation_elements, links_set, ports_set
net = NetSpec("iso.x-1", "np-iso", "10.90.0.0/24", 4, True, {joined.ports!r})
allows = [Allow(*a) for a in {args!r}]
ports, flows = isolation_elements(net, allows)
nftset.change("netplumb", ports + flows, [], family=nftset.NFPROTO_BRIDGE,
              flush=[ports_set(net), links_set(net)])
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run([sys.executable, "-c", code], netns=ns, env=env)
    got = run(["nft", "list", "table", "bridge", "netplumb"], netns=ns).stdout
    reference = netns("isoref")
    run(["nft", "-f", "-"], netns=reference, input=transaction(render([joined], [], links)))
    assert got == run(["nft", "list", "table", "bridge", "netplumb"], netns=reference).stdout
    assert '"vnew"' in got and "udp . 53" in got


def test_many_elements_go_in_several_messages_of_one_batch(netns: NetnsFactory) -> None:
    """2,500 elements are more than one netlink attribute holds (64 KiB): they go in several
    messages of one batch; a change bigger than one batch is refused whole (EMSGSIZE: the
    caller applies the whole ruleset instead) and changes nothing."""
    ns = netns("many")
    run(["nft", "-f", "-"], netns=ns, input=transaction(render([NET], [], [])))
    code = """
import json, subprocess
from netplumb.kernel import nftset
from netplumb.nft.render import Publication, element
def elems(n, first):
    return [element(Publication("host:x", 4, None, first + i, "10.89.0.2", 80, "tcp"))
            for i in range(n)]
def count():
    out = subprocess.run(["nft", "-j", "list", "map", "inet", "netplumb", "publish4"],
                         capture_output=True, text=True, check=True).stdout
    return sum(len(i.get("map", {}).get("elem", [])) for i in json.loads(out)["nftables"])
nftset.change("netplumb", elems(2500, 10000), [])
print(count())
try:
    nftset.change("netplumb", elems(5000, 20000), [])
except nftset.Refused as exc:
    print(exc.errno, nftset.missing(exc), count())
nftset.change("netplumb", [], elems(2500, 10000))
print(count())
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = run([sys.executable, "-c", code], netns=ns, env=env).stdout.split("\n")
    assert out[:3] == ["2500", "90 True 2500", "0"]
