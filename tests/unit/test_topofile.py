"""Topology files (``netplumb.topofile``): the article's example, a golden summary of it, and
every error as the one line a user sees, with its line number."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from netplumb.errors import InvalidValue
from netplumb.model.addresses import parse_address_spec
from netplumb.model.links import Link
from netplumb.model.mac import Mac
from netplumb.model.ports import PortMapping
from netplumb.topofile.load import load, loads
from netplumb.topofile.model import (
    Attachment,
    Condition,
    ExtraInterface,
    TopologyError,
    format_path,
    summary,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "birthdays.yaml"
GOLDEN = Path(__file__).parent / "golden" / "topo_birthdays.txt"

# ------------------------------------------------------------------------------ the example


def test_the_example_resolves_to_the_articles_system() -> None:
    topo = load(EXAMPLE)
    assert topo.name == "birthdays"
    assert topo.services == ("mongodb", "webserver")
    assert [r.name for r in topo.replicas] == ["mongodb", "webserver1", "webserver2", "webserver3"]
    assert topo.order == ("mongodb", "webserver1", "webserver2", "webserver3")
    (demo,) = topo.networks
    assert (demo.name, demo.bridge, demo.subnet, str(demo.gateway)) == (
        "demo",
        "br1",
        "10.2.0.0/16",
        "10.2.0.1/16",
    )

    db = topo.replica("mongodb")
    assert db.command[:2] == ("birthdays", "mongo")
    assert db.expose == ((27017, "tcp"),)
    assert db.networks == (Attachment("netplumb", "eth0"),)
    assert (db.links, db.ports, db.interfaces, db.depends_on) == ((), (), (), ())

    for i, name in enumerate(["webserver1", "webserver2", "webserver3"]):
        web = topo.replica(name)
        assert (web.service, web.index, web.hostname) == ("webserver", i + 1, name)
        assert web.command == (
            "sh",
            "-c",
            "exec birthdays serve 8080 $MONGO_PORT_27017_TCP_ADDR $MONGO_PORT_27017_TCP_PORT",
        )
        assert web.links == (Link("mongodb", "mongo"),)
        assert web.ports == (PortMapping(None, 8080 + i, 8080),)
        assert web.expose == ((8080, "tcp"),)
        (dep,) = web.depends_on
        assert (dep.name, dep.replicas) == ("mongodb", ("mongodb",))
        assert dep.condition == Condition("tcp", port=27017, timeout=60.0)
    assert topo.replica("webserver1").interfaces == ()
    assert topo.replica("webserver3").interfaces == (
        ExtraInterface("br1", "eth1", (parse_address_spec("10.2.0.11/16"),), network="demo"),
    )


def test_the_extra_interface_is_an_attach_request() -> None:
    (iface,) = load(EXAMPLE).replica("webserver3").interfaces
    req = iface.attach_request("webserver3")
    assert req.describe() == "br1 webserver3 eth1 10.2.0.11/16"


def test_the_example_matches_the_golden_summary() -> None:
    text = summary(load(EXAMPLE))
    if os.environ.get("NETPLUMB_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_the_project_is_named_after_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shop.yml"
    path.write_text("services:\n  a:\n    command: sleep 1\n")
    assert load(path).name == "shop"
    assert loads("services: {}").name == "default"
    assert loads("name: given\n").name == "given"


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match=r"^cannot read .*nosuch.yaml: No such file"):
        load(tmp_path / "nosuch.yaml")


def test_errors_name_the_file_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("services:\n  web:\n    command: x\n    ports: ['8080', abc:80]\n")
    with pytest.raises(TopologyError) as info:
        load(path)
    assert str(info.value) == f"{path}:4: services.web.ports[1]: invalid hostPort: abc"
    assert (info.value.line, info.value.path) == (4, ("services", "web", "ports", 1))
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("services", "web", "ports", 1), "services.web.ports[1]"),
        (("environment", "A.B"), 'environment["A.B"]'),
        ((), ""),
        (("a", 0, 1), "a[0][1]"),
    ],
)
def test_format_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


def test_every_yaml_example_in_the_docs_loads() -> None:
    doc = (ROOT / "docs" / "topology.md").read_text()
    blocks = re.findall(r"^```yaml\n(.*?)^```$", doc, flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) >= 10
    for k, block in enumerate(blocks):
        assert loads(block, f"docs-example-{k}.yaml").name, block


# ------------------------------------------------------------------------------ features


def resolve(text: str) -> list[str]:
    return summary(loads(textwrap.dedent(text))).splitlines()


def test_replica_names_hostnames_and_per_replica_settings() -> None:
    lines = resolve(
        """\
        networks:
          lab: {subnet: [10.7.0.0/24, "fd00:7::/64"]}
        services:
          web:
            command: serve
            replicas: 2
            replica_names: "web-{n}"
            hostname: "host{n}.lab"
            environment: [MODE=demo]
            networks: [lab]
            per_replica:
              web-2:
                hostname: second
                environment: {MODE: solo, EXTRA: 1}
                networks:
                  lab: {ipv4_address: 10.7.0.9, ipv6_address: "fd00:7::9"}
                ports: ["127.0.0.1:9000:80/udp"]
        """
    )
    assert lines[3:] == [
        "web-1: service web replica 1, runtime host",
        "  command: serve",
        "  hostname: host1.lab",
        "  env: MODE=demo",
        "  network lab: eth0 address allocated",
        "web-2: service web replica 2, runtime host",
        "  command: serve",
        "  hostname: second",
        "  env: MODE=solo",
        "  env: EXTRA=1",
        "  port: 80/udp <- 127.0.0.1:9000",
        "  network lab: eth0 10.7.0.9 fd00:7::9",
    ]


def test_a_single_replica_keeps_dockers_host_port_range() -> None:
    (line,) = [
        x for x in resolve("services: {a: {command: x, ports: [9000-9005:80]}}") if "port" in x
    ]
    assert line == "  port: 80/tcp <- :9000-9005"


def test_docker_services_and_interfaces() -> None:
    topo = loads(
        textwrap.dedent(
            """\
            services:
              cache:
                runtime: docker
                image: busybox
                command: httpd -f -p 80
                expose: ["80"]
                networks: []
                interfaces:
                  - {host_if: eth0, address: "192.168.1.50/24@192.168.1.1", mac: "U:cache"}
                  - {host_if: br9, dhcp: true}
                  - {host_if: br9, ifname: eth1, address: 0/0}
            """
        )
    )
    cache = topo.replica("cache")
    assert (cache.runtime, cache.image, cache.command) == (
        "docker",
        "busybox",
        ("httpd", "-f", "-p", "80"),
    )
    assert cache.networks == ()
    assert [str(i) for i in cache.interfaces] == [
        f"eth2 on eth0: 192.168.1.50/24@192.168.1.1 mac {Mac.derived('cache')}",
        "eth3 on br9: dhcp",
        "eth1 on br9: 0/0",
    ]


def test_dependency_order_follows_links_and_depends_on_then_the_file() -> None:
    topo = loads(
        textwrap.dedent(
            """\
            services:
              web: {command: x, replicas: 2, links: [api], depends_on: [cache]}
              api: {command: x, depends_on: {db: {condition: "command: pg_isready", timeout: 5}}}
              cache: {command: x}
              db: {command: x}
              lone: {command: x}
            """
        )
    )
    assert topo.order == ("cache", "db", "api", "web1", "web2", "lone")
    (dep,) = topo.replica("api").depends_on
    assert dep.condition == Condition("command", command="pg_isready", timeout=5.0)
    assert str(dep.condition) == "command: pg_isready"


def test_yaml_anchors_merge_keys_and_x_keys() -> None:
    topo = loads(
        textwrap.dedent(
            """\
            x-web: &web
              command: serve
              expose: [80]
            services:
              a:
                <<: *web
                expose: [81]
              b: *web
            """
        )
    )
    assert topo.replica("a").expose == ((81, "tcp"),)
    assert topo.replica("b").expose == ((80, "tcp"),)


def test_yaml_12_scalars() -> None:
    """No YAML 1.1 surprises: on/no stay strings, 22:22 is no base-60 number."""
    topo = loads(
        textwrap.dedent(
            """\
            services:
              a:
                command: [echo, on, no, 2024-01-01]
                ports: [22:22, 0x10]
                environment: {A: 0o17, B: 1.5, C: true, D: ~x}
            """
        )
    )
    a = topo.replica("a")
    assert a.command == ("echo", "on", "no", "2024-01-01")
    assert a.ports == (PortMapping(None, 22, 22), PortMapping(None, 0, 16))
    assert a.environment == ("A=15", "B=1.5", "C=true", "D=~x")


# ------------------------------------------------------------------------------ errors

SERVICES = """\
services:
  db:
    command: birthdays mongo
    expose: [27017]
  web:
    command: serve
    replicas: 3
"""

ERRORS_FILE = Path(__file__).parent / "golden" / "topo_errors.txt"


def error_cases() -> list[tuple[str, str]]:
    """The cases of ``golden/topo_errors.txt``: a "### MESSAGE" line, then the file's text (as
    real files, so that the line numbers in the messages can be checked by eye)."""
    cases: list[tuple[str, str]] = []
    for line in ERRORS_FILE.read_text().splitlines():
        if line.startswith("### "):
            cases.append(("", line[4:]))
        elif cases:
            text, message = cases[-1]
            cases[-1] = (text + line + "\n", message)
    return cases


ERRORS = error_cases()


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_errors_are_one_line_with_the_line_number(text: str, message: str) -> None:
    with pytest.raises(TopologyError) as info:
        loads(text)
    assert str(info.value) == f"<string>:{message}"
    assert "\n" not in str(info.value)
    assert isinstance(info.value, InvalidValue)


def test_a_static_address_per_replica_is_fine() -> None:
    per_replica = "".join(
        f"      web{i}:\n"
        f"        interfaces:\n"
        f"          - {{host_if: br2, address: 10.2.0.{i}/16}}\n"
        for i in (1, 2, 3)
    )
    topo = loads(
        SERVICES
        + "    interfaces:\n      - {host_if: br1, dhcp: true}\n"
        + "    per_replica:\n"
        + per_replica
    )
    web = topo.replicas_of("web")
    assert [str(r.interfaces[1].addresses[0]) for r in web] == [
        "10.2.0.1/16",
        "10.2.0.2/16",
        "10.2.0.3/16",
    ]
    assert [(r.interfaces[0].ifname, r.interfaces[1].ifname) for r in web] == [("eth1", "eth2")] * 3


# ------------------------------------------------------------- names for the DNS server (#14)


def test_aliases_link_env_and_internal_networks() -> None:
    topo = loads(
        textwrap.dedent(
            """\
            link_env: false
            networks:
              back: {subnet: 10.8.0.0/24, internal: true}
            services:
              db:
                command: birthdays mongo
                expose: [27017]
                networks: [back]
                aliases: [mongo.internal, database, database]
              web:
                command: serve
                replicas: 2
                networks: [back]
                links: [db:mongo]
              legacy:
                command: serve
                networks: [back]
                links: [db]
                link_env: true
            """
        )
    )
    back = topo.network("back")
    assert back is not None and back.internal
    db = topo.replica("db")
    assert db.aliases == ("mongo.internal", "database")  # a repeated alias once, as Docker
    assert [r.aliases for r in topo.replicas_of("web")] == [(), ()]
    assert [(r.name, r.service) for r in topo.replicas_of("web")] == [
        ("web1", "web"),
        ("web2", "web"),
    ]
    # the file's link_env applies to every service; a service's own wins
    assert [r.link_env for r in topo.replicas] == [False, False, False, True]
    text = summary(topo)
    assert "network back: bridge np-back, subnet 10.8.0.0/24, gateway 10.8.0.1 internal\n" in text
    assert "  aliases: mongo.internal database\n" in text
    assert text.count("  link variables: none (Docker 29)\n") == 2  # web1, web2: they link
    assert "legacy:" in text and text.split("legacy:")[1].count("link variables") == 0


def test_a_file_without_the_new_keys_keeps_its_summary_and_defaults() -> None:
    topo = loads(SERVICES)
    assert all(r.link_env and r.aliases == () for r in topo.replicas)
    assert "aliases" not in summary(topo) and "link variables" not in summary(topo)
