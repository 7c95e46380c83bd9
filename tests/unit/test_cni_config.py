"""netplumb-cni's request parsing: environment, CNI_ARGS, network configs of every supported
version, runtimeConfig capabilities, and every error with its CNI code and text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from netplumb.cni import jsonlite
from netplumb.cni.config import Env, PortMap, parse_args, parse_conf, parse_env
from netplumb.cni.types import CniError
from netplumb.model.ip import IP
from netplumb.model.mac import Mac

BASE_ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c0ffee01",
    "CNI_NETNS": "/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
}


def env(**over: str) -> Env:
    return parse_env({**BASE_ENV, **over})


def conf(command: str = "ADD", args: str = "", **fields: Any) -> Any:
    doc: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": "demo",
        "type": "netplumb-cni",
        "subnet": "10.88.0.0/16",
    }
    doc.update(fields)
    doc = {k: v for k, v in doc.items() if v is not None}
    return parse_conf(json.dumps(doc), env(CNI_COMMAND=command, CNI_ARGS=args))


def error_of(fn: Any, *a: Any, **kw: Any) -> tuple[int, str]:
    with pytest.raises(CniError) as info:
        fn(*a, **kw)
    return info.value.code, info.value.msg


# -- environment ------------------------------------------------------------------------------


def test_env_parsed() -> None:
    e = env(CNI_ARGS="IgnoreUnknown=1;IP=10.88.0.5;K8S_POD_NAME=web")
    assert e.command == "ADD" and e.container_id == "c0ffee01" and e.ifname == "eth0"
    assert e.path == ("/opt/cni/bin", "/usr/lib/cni")
    assert e.arg("IP") == "10.88.0.5" and e.arg("MAC") is None


@pytest.mark.parametrize(
    ("over", "msg"),
    [
        ({"CNI_COMMAND": ""}, "CNI_COMMAND: not set (one of ADD, DEL, CHECK, VERSION, GC, STATUS)"),
        (
            {"CNI_COMMAND": "UP"},
            "CNI_COMMAND: unknown command 'UP' (one of ADD, DEL, CHECK, VERSION, GC, STATUS)",
        ),
        ({"CNI_NETNS": ""}, "ADD needs CNI_NETNS: not set or empty"),
        (
            {"CNI_CONTAINERID": "", "CNI_IFNAME": ""},
            "ADD needs CNI_CONTAINERID, CNI_IFNAME: not set or empty",
        ),
        (
            {"CNI_CONTAINERID": "a/b"},
            "CNI_CONTAINERID: invalid 'a/b': letters, digits, '_', '.' and '-' only",
        ),
        (
            {"CNI_CONTAINERID": "-abc"},
            "CNI_CONTAINERID: invalid '-abc': letters, digits, '_', '.' and '-' only",
        ),
        (
            {"CNI_IFNAME": "a-very-long-interface"},
            "CNI_IFNAME: invalid interface name 'a-very-long-interface': longer than 15 bytes",
        ),
        ({"CNI_ARGS": "IP"}, "CNI_ARGS: invalid argument 'IP': not K=V"),
        ({"CNI_ARGS": "FOO=1"}, "CNI_ARGS: unknown argument FOO (IgnoreUnknown=1 lets it pass)"),
    ],
)
def test_env_errors_are_code_4(over: dict[str, str], msg: str) -> None:
    assert error_of(parse_env, {**BASE_ENV, **over}) == (4, msg)


def test_del_without_netns_is_valid() -> None:
    """containerd sends DEL with an empty CNI_NETNS when the namespace is gone."""
    assert env(CNI_COMMAND="DEL", CNI_NETNS="").netns == ""


def test_version_gc_status_need_no_container() -> None:
    for cmd in ("VERSION", "GC", "STATUS"):
        assert parse_env({"CNI_COMMAND": cmd}).command == cmd


def test_ignore_unknown_lets_unknown_args_pass() -> None:
    assert parse_args("IgnoreUnknown=true;FOO=1") == (("IgnoreUnknown", "true"), ("FOO", "1"))


# -- configs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_every_supported_version(version: str) -> None:
    c = conf(cniVersion=version)
    assert c.version == version and c.mode == "bridge"
    assert c.network is not None and c.network.bridge == "np-demo"
    assert str(c.network.gateway) == "10.88.0.1/16"


def test_defaults_and_fields() -> None:
    c = conf(bridge="br-x", gateway="10.88.0.254", isolation=True, mtu=1400, defaultRoute=False)
    assert c.network is not None
    assert (c.network.bridge, str(c.network.gateway.ip), c.network.isolation, c.network.mtu) == (
        "br-x",
        "10.88.0.254",
        True,
        1400,
    )
    assert c.default_route is False and c.ipam_type is None


def test_capabilities_key_is_tolerated() -> None:
    assert conf(capabilities={"portMappings": True, "ips": True, "mac": True}).name == "demo"


def test_runtime_config() -> None:
    c = conf(
        runtimeConfig={
            "ips": ["10.88.0.7/16", "10.88.0.8"],
            "mac": "02:00:00:00:00:07",
            "portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "UDP", "hostIP": "127.0.0.1"},
                {"hostPort": 9000, "containerPort": 90, "hostIP": "::1"},
            ],
        }
    )
    assert c.ips == (IP.parse("10.88.0.7"), IP.parse("10.88.0.8"))
    assert c.ifname_mac == Mac.parse("02:00:00:00:00:07")
    assert [m.spec() for m in c.port_maps] == [
        "8080:80/tcp",
        "127.0.0.1:5353:53/udp",
        "[::1]:9000:90/tcp",
    ]


def test_cni_args_ip_and_mac() -> None:
    c = conf(args="IgnoreUnknown=1;IP=10.88.0.9;MAC=02:11:22:33:44:55")
    assert c.ips == (IP.parse("10.88.0.9"),)
    assert c.ifname_mac == Mac.parse("02:11:22:33:44:55")


def test_runtime_config_wins_over_cni_args() -> None:
    c = conf(args="IP=10.88.0.9", runtimeConfig={"ips": ["10.88.0.10"]})
    assert c.ips == (IP.parse("10.88.0.10"),)


def test_macvlan_mode() -> None:
    c = conf(mode="macvlan", master="eth9", subnet="192.168.50.0/24", gateway="192.168.50.254")
    assert c.network is None and c.master == "eth9"
    assert c.pool is not None and str(c.pool) == "192.168.50.254/24"


def test_delegated_ipam() -> None:
    c = conf(ipam={"type": "host-local", "subnet": "10.88.0.0/16"})
    assert c.ipam_type == "host-local"
    assert conf(ipam={"type": "netplumb"}).ipam_type is None
    m = conf(mode="macvlan", master="eth9", subnet=None, ipam={"type": "static"})
    assert m.ipam_type == "static" and m.pool is None


def test_prev_result_and_gc_list() -> None:
    prev = {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}]}
    assert conf(prevResult=prev).prev_result == prev
    valid: dict[str, Any] = {"cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}]}
    g = conf("GC", cniVersion="1.1.0", **valid)
    assert g.valid == (("a", "eth0"),)


def test_version_port_map_value() -> None:
    assert PortMap(80, 8080, "tcp", None).spec() == "80:8080/tcp"


@pytest.mark.parametrize(
    ("command", "fields", "code", "msg"),
    [
        (
            "ADD",
            {"cniVersion": "0.2.0"},
            1,
            'incompatible CNI versions: config is "0.2.0", '
            "plugin supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0",
        ),
        ("ADD", {"cniVersion": None}, 6, "the network config has no cniVersion"),
        ("CHECK", {"cniVersion": "0.3.1"}, 1, "config version 0.3.1 does not allow CHECK"),
        ("GC", {"cniVersion": "1.0.0"}, 1, "config version 1.0.0 does not allow GC"),
        ("STATUS", {"cniVersion": "0.4.0"}, 1, "config version 0.4.0 does not allow STATUS"),
        ("ADD", {"name": None}, 7, "invalid network config: name: missing"),
        ("ADD", {"name": 5}, 7, "invalid network config: name: 5 is not a string"),
        (
            "ADD",
            {"mode": "ipvlan"},
            7,
            'invalid network config: mode: "ipvlan" is not bridge or macvlan',
        ),
        (
            "ADD",
            {"subnet": None},
            7,
            "invalid network config: subnet: missing (bridge mode: the "
            'network\'s subnet, e.g. "10.88.0.0/16")',
        ),
        (
            "ADD",
            {"subnet": "10.88.0.1/16"},
            7,
            "invalid network config: invalid subnet 10.88.0.1/16: host bits set",
        ),
        (
            "ADD",
            {"bridge": "a-bridge-name-too-long"},
            7,
            "invalid network config: invalid bridge "
            "name 'a-bridge-name-too-long': longer than 15 bytes",
        ),
        ("ADD", {"mtu": "1500"}, 7, 'invalid network config: mtu: "1500" is not a number'),
        ("ADD", {"isolation": 1}, 7, "invalid network config: isolation: 1 is not a boolean"),
        (
            "ADD",
            {"mode": "macvlan"},
            7,
            "invalid network config: master: missing (macvlan mode: the parent interface)",
        ),
        (
            "ADD",
            {"ipam": {"type": "../evil"}},
            7,
            'invalid network config: ipam.type: "../evil" is not a plugin name',
        ),
        (
            "ADD",
            {"runtimeConfig": {"ips": ["10.88.0.300"]}},
            7,
            "invalid network config: runtimeConfig.ips[0]: invalid IP address: 10.88.0.300",
        ),
        (
            "ADD",
            {"runtimeConfig": {"mac": "01:00:00:00:00:01"}},
            7,
            "invalid network config: "
            "mac: invalid MAC address: 01:00:00:00:00:01: a multicast address cannot be assigned",
        ),
        (
            "ADD",
            {"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}},
            7,
            "invalid network config: runtimeConfig.portMappings[0].hostPort: 0 is not a port "
            "number (1-65535)",
        ),
        (
            "ADD",
            {
                "runtimeConfig": {
                    "portMappings": [{"hostPort": 1, "containerPort": 80, "protocol": "icmp"}]
                }
            },
            7,
            'invalid network config: runtimeConfig.portMappings[0].protocol: "icmp" is not tcp, '
            "udp or sctp",
        ),
        (
            "ADD",
            {
                "mode": "macvlan",
                "master": "eth9",
                "runtimeConfig": {"portMappings": [{"hostPort": 1, "containerPort": 80}]},
            },
            7,
            "invalid network config: runtimeConfig.portMappings: published ports need bridge mode",
        ),
        (
            "GC",
            {"cniVersion": "1.1.0"},
            7,
            "invalid network config: cni.dev/valid-attachments: "
            "missing or not a list (GC needs it)",
        ),
    ],
)
def test_config_errors(command: str, fields: dict[str, Any], code: int, msg: str) -> None:
    assert error_of(conf, command, **fields) == (code, msg)


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("", "cannot decode the network config: unexpected end of input"),
        ("[1]", "cannot decode the network config: not a JSON object"),
        (
            '{"cniVersion": "1.0.0"} x',
            "cannot decode the network config: extra data at character 24",
        ),
        (
            "{'a': 1}",
            "cannot decode the network config: Expecting property name enclosed in "
            "double quotes: line 1 column 2 (char 1)",
        ),
    ],
)
def test_undecodable_config_is_code_6(text: str, msg: str) -> None:
    assert error_of(parse_conf, text, env()) == (6, msg)


# -- jsonlite ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, True, False, None, 'x\u00e9"\\\n'], "b": {}, "c": []},
        [],
        "plain",
        -17,
    ],
)
def test_jsonlite_round_trips_like_json(value: Any) -> None:
    text = jsonlite.dumps(value)
    assert json.loads(text) == value
    assert jsonlite.loads(json.dumps(value, indent=2)) == value
    assert text == json.dumps(value, separators=(",", ":"))


def test_jsonlite_refuses_nan() -> None:
    with pytest.raises(jsonlite.DecodeError, match="NaN is not valid JSON"):
        jsonlite.loads("[NaN]")
