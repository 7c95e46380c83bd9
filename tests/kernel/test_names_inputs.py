"""What netplumb's DNS server reads (issue 14), on real namespaces: network aliases, Docker
29's links without variables (``--no-link-env``, ``link_env: false``), replicas' service
names, and internal networks (Docker's ``--internal``: no way out).

Layout: test_ports_links's machine ``m`` (netplumb runs there) on a LAN with a neighbour
(``lan``, 192.168.50.66). Oracles: the environment of the hosts' processes
(``/proc/PID/environ``), their ``/etc/hosts``, the records as files (marshal), real traffic.
"""

from __future__ import annotations

import json
import marshal
import secrets
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel.lanportlab import MACHINE_LAN, NEIGHBOUR
from kernel.lanportlab import Lab as LinkLab
from kernel.nameslab import OUTSIDE, NamesLab

pytestmark = pytest.mark.kernel


class Lab(LinkLab):
    def record(self, kind: str, name: str) -> dict[str, Any]:
        data: dict[str, Any] = marshal.loads((self.state / kind / name).read_bytes())
        return data

    def proc_env(self, name: str) -> list[str]:
        """The environment of host ``name``'s command, as the kernel holds it."""
        pid = next(
            r["pid"] for r in json.loads(self.np("ps", "--json").stdout) if r["name"] == name
        )
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return sorted(v.decode() for v in raw if v)

    def ping(self, name: str, address: str) -> bool:
        proc = self.np("exec", name, "--", "ping", "-c", "1", "-W", "1", address, check=False)
        return proc.returncode == 0


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def test_no_link_env_keeps_the_hosts_line_and_drops_the_variables(lab: Lab) -> None:
    lab.server("mongodb", 27017, "-e", "FOO=bar")
    sleep = ["--", "sleep", "1000"]
    lab.np("run", "--name", "old", "--link", "mongodb:mongo", *sleep)  # the default: engine 28
    lab.np("run", "--name", "new", "--link", "mongodb:mongo", "--no-link-env", *sleep)
    old, new = lab.proc_env("old"), lab.proc_env("new")
    assert "MONGO_PORT_27017_TCP=tcp://10.89.0.2:27017" in old and "MONGO_ENV_FOO=bar" in old
    assert [v for v in new if v.startswith("MONGO_")] == []
    # exec gives the same environment as the command got: none of them either
    execd = lab.np("exec", "new", "--", "env").stdout.splitlines()
    assert [v for v in execd if v.startswith("MONGO_")] == []
    for name in ("old", "new"):
        hosts = lab.np("exec", name, "--", "cat", "/etc/hosts").stdout.splitlines()
        assert "10.89.0.2\tmongo mongodb" in hosts
    # the records: link_env only when off (absent means on), the links as before
    assert "link_env" not in lab.record("hosts", "old")
    assert lab.record("hosts", "new")["link_env"] is False
    assert lab.record("hosts", "new")["links"] == [["mongodb", "mongo"]]
    # Docker 29's links still refuse a target that is not running
    proc = lab.np("run", "--name", "x", "--link", "nosuch:db", "--no-link-env", *sleep, check=False)
    assert proc.stderr.strip().endswith("No such container: nosuch")


def test_network_aliases_go_into_the_record_and_inspect(lab: Lab) -> None:
    lab.np(
        "run",
        "--name",
        "db",
        "--network-alias",
        "mongo",
        "--network-alias",
        "db.internal",
        "--network-alias",
        "mongo",
        "--",
        "sleep",
        "1000",
    )
    assert lab.record("hosts", "db")["aliases"] == ["mongo", "db.internal"]
    doc = json.loads(lab.np("inspect", "db").stdout)[0]
    assert doc["NetworkSettings"]["Networks"]["netplumb"]["Aliases"] == ["mongo", "db.internal"]
    lab.np("run", "--name", "plain", "--", "sleep", "1000")
    assert "aliases" not in lab.record("hosts", "plain")
    assert "service" not in lab.record("hosts", "plain")


@pytest.mark.parametrize(
    ("alias", "problem"),
    [
        ("web_1", "only labels of ASCII letters, digits and '-' separated by dots"),
        ("a..b", "an empty label"),
        ("x" * 64, "a label longer than 63 characters"),
    ],
)
def test_a_bad_alias_is_one_line_and_makes_nothing(lab: Lab, alias: str, problem: str) -> None:
    before = lab.sh(lab.m, "ip", "-o", "link").stdout.count("\n")
    argv = ["run", "--name", "web", "--network-alias", "ok", "--network-alias", alias]
    proc = lab.np(*argv, "--", "sleep", "1000", check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(
        "netplumb: invalid network alias"
    )
    assert problem in proc.stderr
    assert json.loads(lab.np("ps", "--json").stdout) == []
    assert lab.sh(lab.m, "ip", "-o", "link").stdout.count("\n") == before  # not even np0


def test_aliases_need_a_network(lab: Lab) -> None:
    argv = ["run", "--name", "web", "--network", "none", "--network-alias", "www"]
    proc = lab.np(*argv, "--", "sleep", "1000", check=False)
    assert proc.returncode != 0
    assert proc.stderr == "netplumb: cannot give network aliases to a host with --network none\n"
    assert json.loads(lab.np("ps", "--json").stdout) == []


TOPOLOGY = """\
name: names
link_env: false
networks:
  back: {bridge: npt-back0, subnet: 10.97.0.0/24, internal: true}
services:
  db:
    command: python3 -m http.server 7000 --bind 0.0.0.0
    expose: [7000]
    networks: [back]
    aliases: [mongo, database]
  web:
    replicas: 2
    command: sleep 1000
    networks: [back]
    links: [db]
    depends_on: {db: {condition: "tcp:7000"}}
  legacy:
    command: sleep 1000
    networks: [netplumb, back]
    links: [db]
    link_env: true
"""


def test_topology_aliases_services_link_env_and_an_internal_network(
    lab: Lab, tmp_path: Path
) -> None:
    path = tmp_path / "names.yaml"
    path.write_text(textwrap.dedent(TOPOLOGY))
    lab.np("up", "-f", str(path))
    try:
        db = lab.record("hosts", "db")
        assert (db["aliases"], db["service"]) == (["mongo", "database"], "db")
        assert [lab.record("hosts", n)["service"] for n in ("web1", "web2", "legacy")] == [
            "web",
            "web",
            "legacy",
        ]
        assert lab.record("networks", "back")["internal"] is True
        assert "internal\n" in lab.np("network", "ls").stdout  # back's line ends so
        # link_env: false for the file, true for legacy alone
        for name in ("web1", "web2"):
            assert [v for v in lab.proc_env(name) if v.startswith("DB_")] == []
            assert lab.record("hosts", name)["link_env"] is False
            assert "\tdb\n" in lab.np("exec", name, "--", "cat", "/etc/hosts").stdout
        assert "DB_PORT=tcp://10.97.0.2:7000" in lab.proc_env("legacy")
        assert "link_env" not in lab.record("hosts", "legacy")
    finally:
        lab.np("down", "-f", str(path))
    assert "back" not in lab.np("network", "ls").stdout


def test_an_internal_network_reaches_its_members_and_the_gateway_nothing_beyond(
    lab: Lab,
) -> None:
    # The oracle on the LAN: the neighbour counts what arrives from the internal subnet.
    # Pinging is not enough: netplumb's guard drops replies to an unmasqueraded guest anyway,
    # but a one-way packet (a UDP datagram, an echo request) would still leave the machine.
    lab.sh(lab.lan, "nft", "add", "table", "ip", "watch")
    hook = "{ type filter hook input priority 0; }"
    lab.sh(lab.lan, "nft", "add", "chain", "ip", "watch", "input", hook)
    lab.sh(lab.lan, "nft", "add", "rule", "ip", "watch", "input", "ip saddr 10.97.0.0/24 counter")
    lab.np(
        "network",
        "create",
        "back",
        "--bridge",
        "npt-back0",
        "--subnet",
        "10.97.0.0/24",
        "--internal",
    )
    lab.np("network", "create", "front", "--bridge", "npt-front0", "--subnet", "10.98.0.0/24")
    sleep = ["--", "sleep", "1000"]
    lab.np("run", "--name", "a", "--network", "back", *sleep)
    lab.np("run", "--name", "b", "--network", "back", *sleep)
    lab.np("run", "--name", "c", "--network", "front", *sleep)
    lab.np("run", "--name", "d", *sleep)  # the default network
    assert lab.ping("a", "10.97.0.3")  # a fellow member: bridged, not routed
    assert lab.ping("a", "10.97.0.1")  # the gateway: the machine, where DNS will answer
    assert lab.ping("c", NEIGHBOUR) and lab.ping("d", NEIGHBOUR)  # the others go out
    assert not lab.ping("a", NEIGHBOUR)
    assert arrived(lab) == 0  # not even the request left the machine
    assert lab.ping("a", MACHINE_LAN)  # the machine's other addresses: input, not forward
    assert not lab.ping("a", "10.98.0.2")  # another network's guest (the guard drops it too)
    assert lab.sh(lab.lan, "ping", "-c", "1", "-W", "1", "10.97.0.2", check=False).returncode != 0
    # the two drop rules are what keeps it in: flushed, the requests reach the neighbour
    # (unmasqueraded); `reconcile` sees the ruleset drifted and puts them back
    lab.sh(lab.m, "nft", "flush", "chain", "inet", "netplumb", "forward")
    lab.ping("a", NEIGHBOUR)
    leaked = arrived(lab)
    assert leaked > 0
    lab.np("reconcile")
    assert not lab.ping("a", NEIGHBOUR)
    assert arrived(lab) == leaked
    # a published port: from the machine itself (output, not forward), not from the LAN
    lab.server("s", 8000, "--network", "back", "-p", "18300:8000")
    assert lab.http(lab.m, "http://127.0.0.1:18300/") == "200"
    assert lab.http(lab.lan, f"http://{MACHINE_LAN}:18300/") == "000"
    # nothing leaves with the machine's address either: no masquerade rule for it
    ruleset = lab.ruleset()
    assert "10.97.0.0/24 oifname" not in ruleset
    assert 'iifname "npt-back0" oifname != "npt-back0" drop' in ruleset
    lines = lab.np("network", "ls").stdout.splitlines()
    assert [ln.rsplit(" ", 1)[-1] for ln in lines if ln.startswith(("back", "front"))] == [
        "internal",
        "10.98.0.1",
    ]
    for name in ("a", "b", "c", "d", "s"):
        lab.np("rm", "-f", name)
    lab.np("network", "rm", "back")
    assert "npt-back0" not in lab.ruleset()


def arrived(lab: Lab) -> int:
    """Packets from the internal subnet the neighbour has received (its own nft counter)."""
    out = json.loads(lab.sh(lab.lan, "nft", "-j", "list", "chain", "ip", "watch", "input").stdout)
    for item in out["nftables"]:
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                return int(expr["counter"]["packets"])
    raise AssertionError(f"no counter in {out}")


BUSYBOX = "netplumb/busybox:test"


def test_docker_guests_get_aliases_service_and_link_env_in_their_records(
    lab: Lab, tmp_path: Path
) -> None:
    tag = secrets.token_hex(2)
    web = f"npt-web{tag}"
    path = tmp_path / "dockernames.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: npt-names{tag}
            services:
              db:
                command: python3 -m http.server 7000 --bind 0.0.0.0
                expose: [7000]
              web:
                runtime: docker
                image: {BUSYBOX}
                command: sleep 1000
                replica_names: "{web}-{{n}}"
                replicas: 2
                links: [db]
                link_env: false
                aliases: [www]
                depends_on: {{db: {{condition: "tcp:7000"}}}}
            """
        )
    )
    guests = [f"{web}-1", f"{web}-2"]
    for name in guests:
        lab.container(name)  # netplumb's to remove: this only if a failure left it
    lab.np("up", "-f", str(path))
    try:
        for name in guests:
            rec = lab.record("docker", name)
            assert (rec["aliases"], rec["service"], rec["link_env"]) == (["www"], "web", False)
            env = docker("inspect", "-f", "{{json .Config.Env}}", name)
            assert [v for v in json.loads(env) if v.startswith("DB_")] == []
            hosts = docker("exec", name, "cat", "/etc/hosts").splitlines()
            assert [ln.split()[1:] for ln in hosts if ln.startswith("10.89.0.")] == [["db"]]
    finally:
        lab.np("down", "-f", str(path))


def docker(*argv: str) -> str:
    return subprocess.run(["docker", *argv], capture_output=True, text=True, check=True).stdout


# -- the inputs as the name server reads them (the server: ops/dnsserver.py, test_names.py) ----

NAMED = """\
name: named
link_env: false
networks:
  back: {subnet: 10.63.0.0/24, internal: true}
services:
  db:
    command: sleep infinity
    networks:
      back: {ipv4_address: 10.63.0.10}
    aliases: [mongo-db, db.internal]
  web:
    replicas: 3
    command: sleep infinity
    networks: [back]
    links: [db:mongo]
"""


def test_aliases_services_links_and_internal_networks_resolve(
    names: NamesLab, tmp_path: Path
) -> None:
    lab = names
    path = tmp_path / "named.yaml"
    path.write_text(NAMED)
    lab.netplumb("up", "-f", str(path))
    try:
        # the service's aliases, its name for every replica, the link alias for the linker
        assert lab.dig("web1", "mongo-db") == "10.63.0.10"
        assert lab.dig("web2", "db.internal") == "10.63.0.10"
        assert lab.dig("web1", "mongo") == "10.63.0.10"
        replicas = sorted(lab.dig("db", "web").split())
        assert len(replicas) == 3 and all(a.startswith("10.63.0.") for a in replicas)
        assert sorted(lab.dig("db", n) for n in ("web1", "web2", "web3")) == replicas
        # link_env: false (Docker 29): the name and /etc/hosts, no variables
        env = lab.netplumb("exec", "web1", "env").stdout
        assert "MONGO_" not in env
        # an internal network forwards no outside name; the default network does
        assert lab.status("web1", OUTSIDE[0]) == "REFUSED"
    finally:
        lab.netplumb("down", "-f", str(path))
    lab.up("cache", "--network-alias", "memo", "--network-alias", "memo.lab")
    lab.up("client")
    cache_ip = lab.dig("client", "cache")
    assert cache_ip.startswith("10.89.0.")
    assert lab.dig("client", "memo") == cache_ip
    assert lab.dig("client", "memo.lab") == cache_ip
    assert lab.dig("client", OUTSIDE[0]) == OUTSIDE[1]
