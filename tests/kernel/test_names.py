"""Names on netplumb's networks: real queries (``dig``, ``getent``) from inside hosts to the
name server netplumb runs, in a lab whose "machine" namespace has its own resolv.conf
(``/etc/netns/<ns>/resolv.conf``, which ``ip netns exec`` puts in place) pointing at a fake
upstream: dnsmasq in a namespace of its own, which knows one outside name."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from kernel.nameslab import OUTSIDE, NamesLab
from lab import NETPLUMB, run, wait_for

pytestmark = pytest.mark.kernel


def test_names_on_two_networks_links_and_reverse(names: NamesLab) -> None:
    lab = names
    lab.netplumb("network", "create", "front", "--subnet", "10.61.0.0/24", "--subnet6", "fd61::/64")
    lab.netplumb("network", "create", "back", "--subnet", "10.62.0.0/24")
    lab.up("db", "--network", "back", "--ip", "10.62.0.10")
    lab.up("web", "--network", "front", "--ip", "10.61.0.10")
    lab.up("app", "--network", "front", "--ip", "10.61.0.20", "--link", "db:mongo")
    lab.pipework("np-back", "app", "10.62.0.20/24")  # app is on both networks now
    # a host's resolv.conf names its network's server, with the machine's search domains
    conf = lab.netplumb("exec", "web", "cat", "/etc/resolv.conf").stdout
    assert conf == "nameserver 10.61.0.1\nnameserver fd61::1\nsearch lab.test\noptions ndots:0\n"
    assert lab.dig("web", "app") == "10.61.0.20"
    assert lab.dig("app", "web") == "10.61.0.10"
    # db lives on another network: web gets NXDOMAIN, not an answer, not a forward; app, on
    # both, resolves the members of both
    assert lab.status("web", "db") == "NXDOMAIN"
    assert lab.dig("app", "db") == "10.62.0.10"
    assert lab.dig("db", "app") == "10.62.0.20"
    # a link alias is the linking host's own; getent goes through the system's resolver
    assert lab.dig("app", "mongo") == "10.62.0.10"
    assert lab.dig("web", "mongo") == ""  # forwarded: the upstream does not know it
    found = lab.netplumb("exec", "app", "getent", "ahostsv4", "web").stdout.split()
    assert found[0] == "10.61.0.10", found
    # reverse lookups, IPv4 and IPv6, inside the network
    assert lab.dig("app", "-x", "10.61.0.10") == "web."
    ip6 = lab.dig("app", "web", "AAAA")
    assert ip6.startswith("fd") and lab.dig("app", "-x", ip6) == "web."
    assert lab.status("app", "-x", "10.61.0.99") == "NXDOMAIN"  # nobody's
    # TCP too
    assert lab.dig("web", "+tcp", "app") == "10.61.0.20"
    # detached from back, app is no name there any more (it lives on front only: NXDOMAIN)
    lab.netplumb("detach", "app", "eth1")
    assert wait_for(lambda: lab.status("db", "app") == "NXDOMAIN", timeout=5)


def test_a_first_member_starts_the_server_on_sockets_bound_for_it(names: NamesLab) -> None:
    """A network's first member is not kept waiting for the name server (~35 ms): its attach
    binds the network's sockets, starts the server with them and returns; a question asked
    meanwhile waits in the socket. The server holds the very sockets (none bound twice) and
    binds a network that comes later itself."""
    lab = names
    lab.netplumb("network", "create", "front", "--subnet", "10.61.0.0/24", "--subnet6", "fd61::/64")
    lab.up("web", "--network", "front", "--ip", "10.61.0.10")
    pid = lab.server_pid()
    assert pid is not None
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    given = [e for e in environ if e.startswith(b"NETPLUMB_DNS_INHERIT=")]
    assert len(given) == 1 and given[0].count(b"|") == 2, given  # the lock, two gateways

    def listeners(proto: str) -> list[str]:
        out = run(["ip", "netns", "exec", lab.host, "ss", "-Hln" + proto + "p", "sport", "= 53"])
        return sorted(line.split()[3] for line in out.stdout.splitlines() if f"pid={pid}," in line)

    assert listeners("u") == ["10.61.0.1%np-front:53", "[fd61::1]%np-front:53"]
    assert listeners("t") == listeners("u")
    assert lab.dig("web", "web") == "10.61.0.10"
    assert lab.dig("web", "+tcp", "web") == "10.61.0.10"
    # a second network while the server runs: it binds that one itself
    lab.netplumb("network", "create", "back", "--subnet", "10.62.0.0/24")
    lab.up("db", "--network", "back", "--ip", "10.62.0.10")
    assert lab.server_pid() == pid
    assert lab.dig("db", "db") == "10.62.0.10"
    assert "10.62.0.1%np-back:53" in listeners("u")
    log = (lab.state / "logs" / "dns.log").read_text() if (lab.state / "logs").exists() else ""
    assert "cannot listen" not in log, log


def test_forwarding_and_the_upstream_gone(names: NamesLab) -> None:
    lab = names
    lab.netplumb("network", "create", "front", "--subnet", "10.61.0.0/24")
    lab.up("web", "--network", "front")
    assert lab.dig("web", OUTSIDE[0]) == OUTSIDE[1]
    assert lab.dig("web", "+tcp", OUTSIDE[0]) == OUTSIDE[1]
    assert lab.status("web", "missing.test") == "NXDOMAIN"  # the upstream's answer
    lab.dnsmasq.kill()
    lab.dnsmasq.wait()
    start = time.monotonic()
    assert lab.status("web", OUTSIDE[0]) == "SERVFAIL"  # within dig's 8 s: never a hang
    assert time.monotonic() - start < 8
    assert lab.dig("web", "web") != ""  # its own names still answer


def test_a_new_host_resolves_a_removed_one_does_not_and_addresses_follow(
    names: NamesLab,
) -> None:
    lab = names
    lab.netplumb("network", "create", "front", "--subnet", "10.61.0.0/24")
    lab.up("web", "--network", "front")
    lab.up("db", "--network", "front", "--ip", "10.61.0.50")
    assert lab.dig("web", "db") == "10.61.0.50"
    lab.netplumb("rm", "-f", "db")
    assert wait_for(lambda: lab.dig("web", "db") == "", timeout=5)
    lab.up("db", "--network", "front", "--ip", "10.61.0.60")  # back with a new address
    assert wait_for(lambda: lab.dig("web", "db") == "10.61.0.60", timeout=5)


def test_down_leaves_no_server_and_it_answers_only_its_networks(names: NamesLab) -> None:
    lab = names
    lab.netplumb("network", "create", "front", "--subnet", "10.61.0.0/24")
    lab.up("web", "--network", "front")
    pid = lab.server_pid()
    assert pid is not None and os.path.exists(f"/proc/{pid}")
    # a namespace beyond the machine, routed to the gateway: the server says nothing to it
    outside = lab.netns("lan")
    lab.veth(lab.host, "lan0", outside, "eth0")
    run(["ip", "-n", lab.host, "addr", "add", "192.168.99.1/24", "dev", "lan0"])
    run(["ip", "-n", outside, "addr", "add", "192.168.99.2/24", "dev", "eth0"])
    run(["ip", "-n", outside, "route", "add", "10.61.0.0/24", "via", "192.168.99.1"])
    assert run(["ip", "netns", "exec", outside, "ping", "-c1", "-W2", "10.61.0.1"], check=False)
    dig = ["dig", "+tries=1", "+timeout=2", "@10.61.0.1", "web"]
    answer = run(["ip", "netns", "exec", outside, *dig], check=False)
    # (its sockets are the bridge's: the kernel answers "port unreachable" for it)
    assert "no servers could be reached" in answer.stdout, answer.stdout
    # nor on the machine's other addresses
    answer = run(["ip", "netns", "exec", outside, *dig[:-2], "@192.168.99.1", "web"], check=False)
    assert "no servers could be reached" in answer.stdout, answer.stdout
    lab.netplumb("rm", "-f", "web")
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=5)
    assert not (lab.state / "dns.pid").exists()
    # a project's up starts it, its down leaves no server and no PID file
    topo = lab.tmp / "names.yaml"
    topo.write_text(
        "name: names\nnetworks:\n  back:\n    subnet: 10.64.0.0/24\nservices:\n"
        "  web:\n    replicas: 2\n    command: sleep infinity\n    networks: [back]\n"
    )
    lab.netplumb("up", "-f", str(topo))
    assert lab.dig("web1", "web2") == "10.64.0.3"
    pid = lab.server_pid()
    assert pid is not None
    lab.netplumb("down", "-f", str(topo))
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=5)
    assert not (lab.state / "dns.pid").exists()


def test_two_hundred_hosts_on_one_network(names: NamesLab) -> None:
    lab = names
    lab.netplumb("network", "create", "big", "--subnet", "10.63.0.0/16")
    for i in range(200):
        lab.up(f"h{i}", "--network", "big")
    queries = "\n".join(f"h{i}" for i in range(200))
    (lab.tmp / "q").write_text(queries + "\n")
    out = lab.netplumb("exec", "h0", "dig", "+short", "+tries=1", "-f", str(lab.tmp / "q"))
    got = out.stdout.split()
    assert len(got) == 200 and len(set(got)) == 200
    assert all(ip.startswith("10.63.") for ip in got)


def test_a_killed_server_is_started_again_by_reconcile_and_by_watch(names: NamesLab) -> None:
    lab = names
    lab.netplumb("network", "create", "front", "--subnet", "10.61.0.0/24")
    lab.up("web", "--network", "front")
    lab.up("db", "--network", "front", "--ip", "10.61.0.50")
    first = lab.server_pid()
    assert first is not None
    os.kill(first, 9)
    assert wait_for(lambda: not os.path.exists(f"/proc/{first}"), timeout=5)
    assert lab.status("web", "+timeout=1", "db").startswith("no answer")
    assert "started the name server" in lab.netplumb("reconcile").stdout
    assert lab.dig("web", "db") == "10.61.0.50"
    assert lab.netplumb("reconcile").stdout == ""  # in step: nothing to say
    second = lab.server_pid()
    assert second is not None and second != first
    watch = lab.popen(lab.host, [NETPLUMB, "watch"], stdout=subprocess.PIPE)
    assert watch.stdout is not None and watch.stdout.readline() == "watching\n"
    os.kill(second, 9)
    assert wait_for(lambda: lab.server_pid() not in (None, second), timeout=10)
    assert lab.dig("web", "db") == "10.61.0.50"
