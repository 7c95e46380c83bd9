"""Docker link variables and hosts lines (``netplumb.model.links``).

The reference's example word for word, engine 28's port order, runs of consecutive ports, the
alias prefix, the target's own environment; then properties over random port sets: every port
gives its four variables exactly once, the count of variables follows from the ports and their
runs, and the set of variables equals what moby's ``links.ToEnv`` (engine 28) computes.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplumb.errors import InvalidValue
from netplumb.model.links import (
    env_prefix,
    hosts_line,
    link_env,
    merge_env,
    parse_link,
    sort_ports,
)

IP = "172.17.0.2"


def four(prefix: str, port: int, proto: str, ip: str = IP) -> list[str]:
    p = f"{prefix}_PORT_{port}_{proto.upper()}"
    return [
        f"{p}={proto}://{ip}:{port}",
        f"{p}_ADDR={ip}",
        f"{p}_PORT={port}",
        f"{p}_PROTO={proto}",
    ]


def run(prefix: str, first: int, last: int, proto: str, ip: str = IP) -> list[str]:
    s = f"{prefix}_PORT_{first}_{proto.upper()}"
    return [
        f"{s}_START={proto}://{ip}:{first}",
        f"{s}_PORT_START={first}",
        f"{s}_END={proto}://{ip}:{last}",
        f"{s}_PORT_END={last}",
    ]


# ---------------------------------------------------------------------------------- link_env


def test_the_references_example() -> None:
    assert link_env("db", "web", IP, [(27017, "tcp")], ["FOO=bar"]) == [
        "DB_PORT=tcp://172.17.0.2:27017",
        "DB_PORT_27017_TCP=tcp://172.17.0.2:27017",
        "DB_PORT_27017_TCP_ADDR=172.17.0.2",
        "DB_PORT_27017_TCP_PORT=27017",
        "DB_PORT_27017_TCP_PROTO=tcp",
        "DB_NAME=/web/db",
        "DB_ENV_FOO=bar",
    ]


def test_the_articles_variables() -> None:
    env = merge_env(link_env("mongo", "webserver", "10.89.0.2", [(27017, "tcp")], []), {})
    assert env["MONGO_PORT_27017_TCP_ADDR"] == "10.89.0.2"
    assert env["MONGO_PORT_27017_TCP_PORT"] == "27017"


def test_sort_ports_is_engine_28s() -> None:
    # moby's TestSortPorts: tcp first, then the other protocols by name, each ascending
    ports = [
        (6379, "tcp"),
        (6376, "udp"),
        (6380, "tcp"),
        (6376, "sctp"),
        (6381, "tcp"),
        (6381, "udp"),
        (6375, "udp"),
        (6375, "sctp"),
    ]
    assert sort_ports(ports) == [
        (6379, "tcp"),
        (6380, "tcp"),
        (6381, "tcp"),
        (6375, "sctp"),
        (6376, "sctp"),
        (6375, "udp"),
        (6376, "udp"),
        (6381, "udp"),
    ]
    assert sort_ports(ports + ports) == sort_ports(ports)  # a set of ports


@pytest.mark.parametrize(
    ("ports", "alias_port"),
    [
        ([(53, "udp"), (8080, "tcp"), (443, "tcp")], "W_PORT=tcp://172.17.0.2:443"),
        ([(53, "udp"), (9000, "sctp")], "W_PORT=sctp://172.17.0.2:9000"),
        ([(53, "udp"), (5, "udp")], "W_PORT=udp://172.17.0.2:5"),
        ([(65535, "tcp"), (1, "udp")], "W_PORT=tcp://172.17.0.2:65535"),
    ],
)
def test_alias_port_is_the_lowest_tcp_port_else_the_first(
    ports: list[tuple[int, str]], alias_port: str
) -> None:
    assert link_env("w", "x", IP, ports, [])[0] == alias_port


def test_no_ports_no_port_variables() -> None:
    assert link_env("db", "web", IP, [], ["A=1"]) == ["DB_NAME=/web/db", "DB_ENV_A=1"]


def test_every_port_in_engine_28_order() -> None:
    ports = [(53, "udp"), (443, "tcp"), (80, "tcp"), (9000, "sctp")]
    assert link_env("web", "client", IP, ports, []) == [
        "WEB_PORT=tcp://172.17.0.2:80",
        *four("WEB", 80, "tcp"),
        *four("WEB", 443, "tcp"),
        *four("WEB", 9000, "sctp"),
        *four("WEB", 53, "udp"),
        "WEB_NAME=/client/web",
    ]


def test_runs_of_consecutive_ports_get_range_variables_after_their_last_port() -> None:
    ports = [(9002, "tcp"), (9000, "tcp"), (9001, "tcp"), (9005, "tcp"), (7000, "udp")]
    ports += [(7001, "udp"), (7003, "udp")]
    assert link_env("ranged", "l", IP, ports, ["A=1", "B=2"]) == [
        "RANGED_PORT=tcp://172.17.0.2:9000",
        *four("RANGED", 9000, "tcp"),
        *four("RANGED", 9001, "tcp"),
        *four("RANGED", 9002, "tcp"),
        *run("RANGED", 9000, 9002, "tcp"),
        *four("RANGED", 9005, "tcp"),
        *four("RANGED", 7000, "udp"),
        *four("RANGED", 7001, "udp"),
        *run("RANGED", 7000, 7001, "udp"),
        *four("RANGED", 7003, "udp"),
        "RANGED_NAME=/l/ranged",
        "RANGED_ENV_A=1",
        "RANGED_ENV_B=2",
    ]


@pytest.mark.parametrize(
    "ports",
    [
        [(80, "tcp"), (82, "tcp")],  # not adjacent
        [(80, "tcp"), (81, "udp")],  # adjacent numbers, other protocols
        [(81, "tcp"), (81, "udp"), (82, "sctp")],
        [(65535, "tcp"), (0, "udp")],
    ],
)
def test_no_range_without_a_run(ports: list[tuple[int, str]]) -> None:
    env = link_env("a", "b", IP, ports, [])
    assert not [v for v in env if "_START=" in v or "_END=" in v]
    assert len(env) == 1 + 4 * len(ports) + 1


def test_a_run_at_the_top_of_the_port_space() -> None:
    env = link_env("a", "b", IP, [(65535, "tcp"), (65534, "tcp")], [])
    assert env[-5:-1] == run("A", 65534, 65535, "tcp")


@pytest.mark.parametrize(
    ("alias", "prefix"),
    [
        ("db", "DB"),
        ("my-db", "MY_DB"),
        ("my-db.x", "MY_DB.X"),  # only '-' becomes '_': a '.' stays, as in Docker
        ("Mongo_1", "MONGO_1"),
        ("a--b", "A__B"),
    ],
)
def test_alias_prefix(alias: str, prefix: str) -> None:
    assert env_prefix(alias) == prefix
    env = link_env(alias, "web", IP, [(5432, "tcp")], ["K=v"])
    assert all(v.startswith(prefix + "_") for v in env)
    assert f"{prefix}_NAME=/web/{alias}" in env  # the name keeps the alias as written
    assert f"{prefix}_PORT_5432_TCP_ADDR={IP}" in env
    assert env[-1] == f"{prefix}_ENV_K=v"


def test_target_environment() -> None:
    target_env = [
        "PATH=/usr/bin",
        "MixedCase=Yes",
        "HOME=/nothome",
        "EMPTY=",
        "home=kept",  # only HOME and PATH themselves are left out
        "URL=mongodb://h:1/?a=b",
        "PATHS=kept",
        "NOVALUE",  # not a variable: Docker skips an entry without '='
        "=nokey",  # netplumb leaves it out too (Docker writes MY_DB.X_ENV_=nokey)
    ]
    assert link_env("my-db.x", "web", IP, [], target_env) == [
        "MY_DB.X_NAME=/web/my-db.x",
        "MY_DB.X_ENV_MixedCase=Yes",
        "MY_DB.X_ENV_EMPTY=",
        "MY_DB.X_ENV_home=kept",
        "MY_DB.X_ENV_URL=mongodb://h:1/?a=b",
        "MY_DB.X_ENV_PATHS=kept",
    ]


def test_merge_env_lets_the_process_win() -> None:
    link_vars = link_env("db", "web", IP, [(27017, "tcp")], ["FOO=bar"])
    own = {"DB_ENV_FOO": "mine", "LANG": "C", "DB_PORT": "tcp://elsewhere:1"}
    merged = merge_env(link_vars, own)
    assert merged["DB_ENV_FOO"] == "mine"
    assert merged["DB_PORT"] == "tcp://elsewhere:1"
    assert merged["DB_PORT_27017_TCP_ADDR"] == IP
    # link variables first, in their order, then the process's own new ones
    assert list(merged) == [v.partition("=")[0] for v in link_vars] + ["LANG"]
    assert merge_env(["A=1=2", "B="], {}) == {"A": "1=2", "B": ""}


def test_merge_env_of_two_links() -> None:
    first = link_env("db", "web", "10.0.0.2", [(5432, "tcp")], [])
    second = link_env("cache", "web", "10.0.0.3", [(6379, "tcp")], [])
    merged = merge_env(first + second, {})
    assert len(merged) == len(first) + len(second)
    assert merged["DB_PORT"] == "tcp://10.0.0.2:5432"
    assert merged["CACHE_PORT"] == "tcp://10.0.0.3:6379"


# -------------------------------------------------------------------------------- parse_link


@pytest.mark.parametrize(
    ("spec", "pair"),
    [
        ("db", ("db", "db")),
        ("db:mongo", ("db", "mongo")),
        ("/db:mongo", ("db", "mongo")),
        ("/db", ("db", "db")),
        ("my-db.x:alias-1", ("my-db.x", "alias-1")),
    ],
)
def test_parse_link(spec: str, pair: tuple[str, str]) -> None:
    assert parse_link(spec) == pair


@pytest.mark.parametrize("spec", ["a:b:c", "", ":", "a:", ":b", "a::b"])
def test_parse_link_refuses(spec: str) -> None:
    with pytest.raises(InvalidValue) as exc:
        parse_link(spec)
    assert str(exc.value) == f"bad format for links: {spec}"


# -------------------------------------------------------------------------------- hosts_line


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("172.17.0.2", "db", "3f4a9b2c1d0e", "mongodb"), "172.17.0.2\tdb 3f4a9b2c1d0e mongodb"),
        # the name is left out when it equals the alias
        (("172.17.0.2", "db", "3f4a9b2c1d0e", "db"), "172.17.0.2\tdb 3f4a9b2c1d0e"),
        (("10.89.0.4", "mongo", "mongo-host", "mongodb"), "10.89.0.4\tmongo mongo-host mongodb"),
        # netplumb hosts are named after their hostname: no name written twice
        (("10.89.0.2", "db", "db", "db"), "10.89.0.2\tdb"),
        (("10.89.0.2", "mongo", "db", "db"), "10.89.0.2\tmongo db"),
        (("fd00::2", "db", "", "mongodb"), "fd00::2\tdb mongodb"),
    ],
)
def test_hosts_line(args: tuple[str, str, str, str], line: str) -> None:
    assert hosts_line(*args) == line


# ------------------------------------------------------------------------------ properties

PORTS = st.sets(
    st.tuples(
        st.one_of(st.integers(1, 40), st.integers(65520, 65535)),
        st.sampled_from(["tcp", "udp", "sctp"]),
    ),
    max_size=30,
)
ENVS = st.lists(
    st.tuples(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), st.text(max_size=8)),
    max_size=5,
    unique_by=lambda kv: kv[0],
).map(lambda kvs: [f"{k}={v}" for k, v in kvs])


def runs_of(ports: set[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """The maximal runs of two or more consecutive port numbers of one protocol."""
    out = []
    for proto in {p for _, p in ports}:
        numbers = {n for n, p in ports if p == proto}
        for first in numbers:
            if first - 1 in numbers:
                continue  # not the start of a run
            last = first
            while last + 1 in numbers:
                last += 1
            if last > first:
                out.append((first, last, proto))
    return out


def docker_to_env(
    link_name: str, ip: str, ports: set[tuple[int, str]], env: list[str]
) -> list[str]:
    """moby's ``daemon/links.Link.ToEnv`` (engine 28), written out in Python as the oracle.

    One difference in order only: moby writes a run's range variables after the four variables
    of the port that follows the run (when one does); the reference and netplumb put them right
    after the run's last port. The set of variables is the same.
    """
    alias = link_name.rsplit("/", 1)[-1].upper().replace("-", "_")
    ordered = sorted(ports, key=lambda p: (p[1] != "tcp", p[1], p[0]))
    out: list[str] = []
    start = end = (0, "")
    for i, (port, proto) in enumerate(ordered):
        if i == 0:
            start = end = (port, proto)
            out.append(f"{alias}_PORT={proto}://{ip}:{port}")
        out += four(alias, port, proto, ip)
        if port == end[0] + 1 and proto == start[1]:
            end = (port, proto)
            if i < len(ordered) - 1:
                continue
        if end != start:
            out += run(alias, start[0], end[0], start[1], ip)
        start = end = (port, proto)
    out.append(f"{alias}_NAME={link_name}")
    for item in env:
        key, sep, value = item.partition("=")
        if sep and key not in ("HOME", "PATH"):
            out.append(f"{alias}_ENV_{key}={value}")
    return out


@given(PORTS, ENVS, st.sampled_from(["db", "my-db.x", "a"]))
def test_link_env_properties(ports: set[tuple[int, str]], envs: list[str], alias: str) -> None:
    env = link_env(alias, "web", IP, list(ports), envs)
    prefix = env_prefix(alias)
    runs = runs_of(ports)
    kept = [e for e in envs if e.partition("=")[0] not in ("HOME", "PATH")]

    assert len(env) == (1 if ports else 0) + 4 * len(ports) + 4 * len(runs) + 1 + len(kept)
    names = [v.partition("=")[0] for v in env]
    assert len(names) == len(set(names))
    if ports:
        first = min(ports, key=lambda p: (p[1] != "tcp", p[1], p[0]))
        assert env[0] == f"{prefix}_PORT={first[1]}://{IP}:{first[0]}"
    for port, proto in ports:  # each port's four variables, once, together
        i = env.index(four(prefix, port, proto)[0])
        assert env[i : i + 4] == four(prefix, port, proto)
    for first_port, last_port, proto in runs:  # right after the run's last port's variables
        i = env.index(four(prefix, last_port, proto)[0])
        assert env[i + 4 : i + 8] == run(prefix, first_port, last_port, proto)
    assert env[len(env) - len(kept) - 1] == f"{prefix}_NAME=/web/{alias}"
    assert env[len(env) - len(kept) :] == [f"{prefix}_ENV_{e}" for e in kept]

    assert set(env) == set(docker_to_env(f"/web/{alias}", IP, ports, envs))
