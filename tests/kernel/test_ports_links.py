"""Links and published ports on real namespaces, with an attacker on a simulated LAN.

Layout: a "machine" namespace runs netplumb (its hosts join the default network np0); a "lan"
namespace is a neighbour on the machine's LAN segment (veth, 192.168.50.0/24). Oracles: real
TCP/UDP traffic, ``nft -j``, ``ip -j``; never netplumb's own code.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.lanportlab import MACHINE_LAN, Lab

pytestmark = pytest.mark.kernel


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def test_link_variables_and_hosts_line(lab: Lab) -> None:
    lab.server("mongodb", 27017, "-e", "FOO=bar", "--expose", "27018")
    lab.np(
        "run",
        "--name",
        "web",
        "--link",
        "mongodb:mongo",
        "-e",
        "MONGO_NAME=mine",
        "--",
        "sleep",
        "1000",
    )
    env = lab.np("exec", "web", "--", "env").stdout.splitlines()
    mongo = [line for line in env if line.startswith("MONGO_")]
    assert mongo[:2] == [
        "MONGO_PORT=tcp://10.89.0.2:27017",
        "MONGO_PORT_27017_TCP=tcp://10.89.0.2:27017",
    ]
    assert "MONGO_PORT_27017_TCP_ADDR=10.89.0.2" in mongo
    assert "MONGO_PORT_27018_TCP_START=tcp://10.89.0.2:27017" not in mongo
    assert "MONGO_PORT_27017_TCP_PORT_END=27018" in mongo
    assert "MONGO_ENV_FOO=bar" in mongo
    assert "MONGO_NAME=mine" in mongo  # the host's own -e wins over the link variable
    assert not any(
        line.startswith("MONGO_ENV_PATH") or line.startswith("MONGO_ENV_HOME") for line in mongo
    )
    hosts = lab.np("exec", "web", "--", "cat", "/etc/hosts").stdout.splitlines()
    assert "10.89.0.2\tmongo mongodb" in hosts
    # the process itself got them, not only exec
    pid = next(r["pid"] for r in json.loads(lab.np("ps", "--json").stdout) if r["name"] == "web")
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"MONGO_PORT_27017_TCP_PORT=27017" in environ
    # `link env` prints the same variables for containers started by other tools
    printed = lab.np("link", "env", "mongodb", "mongo", "--from", "web").stdout.splitlines()
    expected = ["MONGO_NAME=/web/mongo" if v.startswith("MONGO_NAME=") else v for v in mongo]
    assert printed == expected
    assert "MONGO_NAME=/web/mongo" in printed
    as_json = json.loads(lab.np("link", "env", "mongodb", "mongo", "--json").stdout)
    assert as_json["MONGO_PORT_27017_TCP_ADDR"] == "10.89.0.2"


def test_link_errors_use_dockers_words_and_change_nothing(lab: Lab) -> None:
    lab.np("run", "--network", "none", "--name", "stopped", "--", "true")
    deadline = time.monotonic() + 5
    while json.loads(lab.np("ps", "--json").stdout)[0]["state"] != "exited":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cases = [
        ("nosuch:db", "could not get container for nosuch: No such container: nosuch"),
        ("stopped:db", "Cannot link to a non running container: /stopped AS /web/db"),
        ("a:b:c", "bad format for links: a:b:c"),
    ]
    for spec, message in cases:
        proc = lab.np("run", "--name", "web", "--link", spec, "--", "sleep", "1", check=False)
        assert proc.returncode != 0
        assert proc.stderr.strip().endswith(message), proc.stderr
    assert [r["name"] for r in json.loads(lab.np("ps", "--json").stdout)] == ["stopped"]


def test_hosts_line_follows_a_readdressed_target(lab: Lab) -> None:
    lab.np("run", "--name", "db", "--", "sleep", "1000")
    lab.np("run", "--name", "app", "--link", "db", "--", "sleep", "1000")
    assert "10.89.0.2\tdb" in lab.np("exec", "app", "--", "cat", "/etc/hosts").stdout
    lab.np("rm", "-f", "db")
    lab.np("run", "--name", "filler", "--", "sleep", "1000")  # takes 10.89.0.2
    lab.np("run", "--name", "db", "--", "sleep", "1000")  # comes back as 10.89.0.4
    hosts = lab.np("exec", "app", "--", "cat", "/etc/hosts").stdout
    assert "10.89.0.4\tdb" in hosts and "10.89.0.2\tdb" not in hosts
    assert "DB_PORT" not in lab.np("exec", "app", "--", "env").stdout  # db exposes nothing
    name_var = [
        v
        for v in lab.np("exec", "app", "--", "env").stdout.splitlines()
        if v.startswith("DB_NAME=")
    ]
    assert name_var == ["DB_NAME=/app/db"]


def test_published_ports_every_path(lab: Lab) -> None:
    lab.server("web", 8080, "-p", "8080:8080", "-p", "127.0.0.1:8081:8080")
    lab.np("run", "--name", "client", "--", "sleep", "1000")
    # an empty host IP binds IPv4 and IPv6 with the same host port, as Docker's -p does
    assert lab.np("port", "web").stdout == (
        "8080/tcp -> 0.0.0.0:8080\n8080/tcp -> 127.0.0.1:8081\n8080/tcp -> [::]:8080\n"
    )
    assert lab.np("port", "web", "8080/tcp").stdout == "0.0.0.0:8080\n127.0.0.1:8081\n[::]:8080\n"
    # from another machine to the machine's address
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "200"
    # from the machine itself: loopback and its own addresses
    assert lab.http(lab.m, "http://127.0.0.1:8080/") == "200"
    assert lab.http(lab.m, "http://127.0.0.1:8081/") == "200"
    assert lab.http(lab.m, f"http://{MACHINE_LAN}:8080/") == "200"
    # hairpin: a guest through the machine's addresses to another guest's published port
    assert lab.http_from_host("client", f"http://{MACHINE_LAN}:8080/") == "200"
    assert lab.http_from_host("client", "http://10.89.0.1:8080/") == "200"
    # and over IPv6, through the machine's address on the network (hairpin too)
    assert lab.http(lab.m, "http://[fd89:6e70:6c62::1]:8080/") == "200"
    assert lab.http_from_host("client", "http://[fd89:6e70:6c62::1]:8080/") == "200"
    # a port published on 127.0.0.1 only: not from the LAN
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8081/") == "000"
    proc = lab.np("port", "web", "84", check=False)
    assert (proc.returncode, proc.stderr) == (1, "Error: No public port '84' published for web\n")


def test_udp_and_ranges_and_ephemeral(lab: Lab) -> None:
    lab.np(
        "run",
        "--name",
        "u",
        "--expose",
        "5353/udp",
        "--expose",
        "9000-9002",
        "-P",
        "-p",
        "127.0.0.1:5353:5353/udp",
        "--",
        "python3",
        "-c",
        "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind(('0.0.0.0',5353))\n"
        "while True:\n d,a=s.recvfrom(100)\n s.sendto(d.upper(),a)",
    )
    lines = lab.np("port", "u").stdout.splitlines()
    assert "5353/udp -> 127.0.0.1:5353" in lines
    eph = [line for line in lines if line.startswith("9000/tcp")]
    lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert len(eph) == 2  # IPv4 and IPv6, one host port for both
    assert eph[0].rsplit(":", 1)[1] == eph[1].rsplit(":", 1)[1]
    assert lo <= int(eph[0].rsplit(":", 1)[1]) <= hi
    assert len([line for line in lines if line.startswith(("9000/", "9001/", "9002/"))]) == 6
    reply = lab.sh(
        lab.m,
        "python3",
        "-c",
        "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(3)\n"
        "s.sendto(b'ping',('127.0.0.1',5353))\nprint(s.recvfrom(100)[0].decode())",
    ).stdout
    assert reply.strip() == "PING"
    published = lab.np("publish", "u", "9100-9105:9000").stdout.splitlines()
    # what this command published, not the guest's other ports (`port` lists those)
    assert len(published) in (1, 2), published
    assert all(line.startswith("9000/tcp -> ") and ":910" in line for line in published)
    assert any(
        line.startswith("9000/tcp -> 0.0.0.0:910")
        for line in lab.np("port", "u").stdout.splitlines()
    )
    lab.np("unpublish", "u", "9100-9105:9000")
    assert not any(":910" in line for line in lab.np("port", "u").stdout.splitlines())


def test_conflicts_are_refused_before_anything_changes(lab: Lab) -> None:
    lab.server("a", 8080, "-p", "8080:8080")
    lab.np("run", "--name", "b", "--", "sleep", "1000")
    before = lab.publish_rules()
    proc = lab.np("publish", "b", "8080:80", check=False)
    assert (
        proc.stderr.strip() == "netplumb: Bind for 0.0.0.0:8080 failed: port is already allocated"
    )
    holder = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.m,
            "python3",
            "-c",
            "import socket,time\ns=socket.socket()\ns.bind(('0.0.0.0',8090))\n"
            "s.listen()\ntime.sleep(60)",
        ]
    )
    try:
        for _ in range(100):
            if lab.sh(lab.m, "ss", "-Htln", "sport = :8090").stdout.strip():
                break
            time.sleep(0.05)
        proc = lab.np("publish", "b", "8090:80", check=False)
        assert (
            proc.stderr.strip()
            == "netplumb: Bind for 0.0.0.0:8090 failed: port is already allocated"
        )
        proc = lab.np("run", "--name", "c", "-p", "8090:80", "--", "sleep", "100", check=False)
        assert proc.returncode == 1
    finally:
        holder.kill()
    assert lab.publish_rules() == before
    assert [r["name"] for r in json.loads(lab.np("ps", "--json").stdout)] == ["a", "b"]
    bad = lab.np("publish", "b", "abc:80", check=False)
    assert (bad.returncode, bad.stderr) == (2, "netplumb: invalid hostPort: abc\n")
    loop6 = lab.np("publish", "b", "[::1]:8095:80", check=False)
    assert loop6.returncode == 2
    assert "IPv6 loopback cannot be forwarded by the kernel" in loop6.stderr


def test_rules_go_with_the_guest_and_come_back_after_a_flush(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the DNAT's rules serve the LAN here: the LAN path's programs (kernel/lanlb.py), which a
    # flush of the ruleset does not touch, are test_lanlb.py's
    monkeypatch.setenv("NETPLUMB_LAN_FASTPATH", "off")
    lab.server("web", 8080, "-p", "8080:8080")
    assert lab.publish_rules() == ["netplumb:host:web"] * 2  # IPv4 and IPv6
    lab.sh(lab.m, "nft", "flush", "ruleset")
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "000"
    # reading commands change nothing: the flushed ruleset stays flushed
    reading_commands = [
        ["ps"],
        ["port", "web"],
        ["inspect", "web"],
        ["logs", "web"],
        ["network", "ls"],
        ["graph"],
        ["link", "env", "web", "w"],
        ["lan", "status"],
    ]
    for reading in reading_commands:
        proc = lab.np(*reading, check=False)
        assert proc.returncode == 0, (reading, proc.stderr)
        assert lab.ruleset() == "", reading
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "000"
    lab.np("reconcile")  # repairs
    assert lab.publish_rules() == ["netplumb:host:web"] * 2  # IPv4 and IPv6
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "200"
    lab.sh(lab.m, "nft", "delete", "table", "inet", "netplumb")
    # a changing command repairs what it touches: the table it publishes into
    lab.np("publish", "web", "8088:8080")
    assert lab.publish_rules() == ["netplumb:host:web"] * 4
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "200"
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8088/") == "200"
    lab.np("unpublish", "web", "8088:8080")
    assert lab.publish_rules() == ["netplumb:host:web"] * 2
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8088/") == "000"
    lab.np("rm", "web")
    assert lab.publish_rules() == []


def _in_guest(lab: Lab, name: str, script: str) -> str:
    """Run ``script`` in a host's network namespace *without* netplumb (netplumb's own
    commands are not the oracle)."""
    pid = _pids[(lab.m, name)]
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


_pids: dict[tuple[str, str], int] = {}


def _remember_pids(lab: Lab) -> None:
    for row in json.loads(lab.np("ps", "--json").stdout):
        _pids[(lab.m, str(row["name"]))] = int(row["pid"])


def _attack_loopback(lab: Lab) -> str:
    """A guest on np0 sends to 127.0.0.1:8081 through the gateway, where route_localnet is on."""
    return _in_guest(
        lab,
        "evil",
        "ip addr flush dev lo; ip link set lo up; "
        "echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet; "
        "ip route replace 127.0.0.1/32 via 10.89.0.1 dev eth0 onlink; "
        "curl -s -o /dev/null -m 2 -w %{http_code} http://127.0.0.1:8081/",
    )


def _delete_rule(lab: Lab, chain: str, comment_part: str) -> None:
    out = json.loads(
        lab.sh(lab.m, "nft", "-a", "-j", "list", "chain", "inet", "netplumb", chain).stdout
    )
    for item in out["nftables"]:
        rule = item.get("rule")
        if rule and comment_part in str(rule.get("comment", "")):
            lab.sh(
                lab.m,
                "nft",
                "delete",
                "rule",
                "inet",
                "netplumb",
                chain,
                "handle",
                str(rule["handle"]),
            )


def test_loopback_published_port_is_not_reachable_from_a_guest_or_neighbour(lab: Lab) -> None:
    lab.server("web", 8080, "-p", "127.0.0.1:8081:8080")
    lab.np("run", "--name", "evil", "--", "sleep", "1000")
    _remember_pids(lab)
    assert _attack_loopback(lab) == "000"
    _delete_rule(lab, "raw_prerouting", "loopback only from lo")  # prove the probe can succeed
    assert _attack_loopback(lab) == "200"
    lab.np("reconcile")
    assert _attack_loopback(lab) == "000"
    assert lab.sh(lab.m, "cat", "/proc/sys/net/ipv4/conf/all/route_localnet").stdout.strip() == "0"
    assert lab.sh(lab.m, "cat", "/proc/sys/net/ipv4/conf/lan0/route_localnet").stdout.strip() == "0"


def test_unpublished_ports_are_not_reachable_from_outside_the_bridge(lab: Lab) -> None:
    lab.server("web", 8080, "-p", "8080:8080")
    lab.sh(lab.lan, "ip", "route", "add", "10.89.0.0/16", "via", MACHINE_LAN)
    assert lab.http(lab.lan, "http://10.89.0.2:8080/") == "000"  # direct, bypassing publishing
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "200"  # published: fine
    _delete_rule(lab, "raw_prerouting", "netplumb:network:netplumb")
    assert lab.http(lab.lan, "http://10.89.0.2:8080/") == "200"  # the probe works without the guard
    lab.np("reconcile")
    assert lab.http(lab.lan, "http://10.89.0.2:8080/") == "000"


def test_isolated_network_allows_only_linked_exposed_ports(lab: Lab) -> None:
    lab.np("network", "create", "iso", "--subnet", "10.70.0.0/24", "--isolation")
    lab.np(
        "run",
        "--network",
        "iso",
        "--name",
        "db",
        "--expose",
        "8080",
        "--",
        "sh",
        "-c",
        "python3 -m http.server 8080 & python3 -m http.server 9090 & wait",
    )
    for port in (8080, 9090):
        deadline = time.monotonic() + 10
        while not lab.np("exec", "db", "--", "ss", "-Htln", f"sport = :{port}").stdout.strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    lab.np("run", "--network", "iso", "--name", "app", "--link", "db", "--", "sleep", "1000")
    lab.np("run", "--network", "iso", "--name", "other", "--", "sleep", "1000")
    assert lab.http_from_host("app", "http://10.70.0.2:8080/") == "200"
    assert lab.http_from_host("app", "http://10.70.0.2:9090/") == "000"  # not exposed
    assert lab.http_from_host("other", "http://10.70.0.2:8080/") == "000"  # not linked
    assert (
        lab.np("exec", "other", "--", "ping", "-c1", "-W1", "10.70.0.2", check=False).returncode
        != 0
    )
    # the same on a network without isolation: everything open (the test can fail)
    lab.np("network", "create", "open", "--subnet", "10.71.0.0/24")
    lab.np(
        "run", "--network", "open", "--name", "db2", "--", "python3", "-m", "http.server", "9090"
    )
    lab.np("run", "--network", "open", "--name", "other2", "--", "sleep", "1000")
    deadline = time.monotonic() + 10
    while lab.http_from_host("other2", "http://10.71.0.2:9090/") != "200":
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_published_ports_work_under_dockerds_forward_drop(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dockerd's layout in the machine namespace: FORWARD policy DROP, DOCKER-USER first. The
    DNAT path's (the LAN path goes around the FORWARD chain: test_lanlb.py)."""
    monkeypatch.setenv("NETPLUMB_LAN_FASTPATH", "off")
    lab.sh(lab.m, "iptables", "-P", "FORWARD", "DROP")
    lab.sh(lab.m, "iptables", "-N", "DOCKER-USER")
    lab.sh(lab.m, "iptables", "-A", "DOCKER-USER", "-j", "RETURN")
    lab.sh(lab.m, "iptables", "-I", "FORWARD", "-j", "DOCKER-USER")
    lab.sh(lab.m, "sh", "-c", "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables")
    lab.server("web", 8080, "-p", "8080:8080")
    lab.np("run", "--name", "client", "--", "sleep", "1000")
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "200"
    assert (
        lab.http_from_host("client", "http://10.89.0.2:8080/") == "200"
    )  # bridged, guest to guest
    rules = lab.sh(lab.m, "iptables", "-S", "DOCKER-USER").stdout
    assert "netplumb:network:np0" in rules
    # without netplumb's DOCKER-USER rules, Docker's DROP policy stops both (the test can fail)
    for line in rules.splitlines():
        if "netplumb" in line:
            lab.sh(lab.m, "iptables", *shlex.split(line.replace("-A ", "-D ", 1)))
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:8080/") == "000"
    lab.np("rm", "-f", "web", "client")
