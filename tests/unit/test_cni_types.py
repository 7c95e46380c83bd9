"""netplumb-cni's results and errors in every supported version's format, error-code mapping,
and the plugin's answers to calls that never reach the kernel (VERSION, bad input)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from netplumb.cni.plugin import handle
from netplumb.cni.types import (
    SUPPORTED_VERSIONS,
    CniError,
    IPConfig,
    from_netplumb,
    result_json,
    version_info,
)
from netplumb.errors import (
    Conflict,
    GuestNotFound,
    InvalidValue,
    KernelError,
    NetplumbError,
    NotSupported,
    StateError,
)

IFS: list[dict[str, object]] = [
    {"name": "np-demo"},
    {"name": "npc0123"},
    {"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "/run/netns/x"},
]
IPS = [IPConfig("10.88.0.2/16", "10.88.0.1", 2), IPConfig("fd00::2/64", None, 2)]
ROUTES: list[dict[str, object]] = [{"dst": "0.0.0.0/0", "gw": "10.88.0.1"}]


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_result_current_format(version: str) -> None:
    assert result_json(version, IFS, IPS, ROUTES, {}) == {
        "cniVersion": version,
        "interfaces": IFS,
        "ips": [
            {"interface": 2, "address": "10.88.0.2/16", "gateway": "10.88.0.1"},
            {"interface": 2, "address": "fd00::2/64"},
        ],
        "routes": ROUTES,
        "dns": {},
    }


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_result_legacy_format_has_ip_versions(version: str) -> None:
    out = result_json(version, IFS, IPS, ROUTES, {"nameservers": ["10.88.0.1"]})
    assert out["ips"] == [
        {"version": "4", "interface": 2, "address": "10.88.0.2/16", "gateway": "10.88.0.1"},
        {"version": "6", "interface": 2, "address": "fd00::2/64"},
    ]
    assert out["dns"] == {"nameservers": ["10.88.0.1"]}


def test_chained_prev_result_comes_first() -> None:
    prev: dict[str, object] = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "lo0"}],
        "ips": [{"address": "192.0.2.5/24", "interface": 0, "version": "4"}],
        "routes": [{"dst": "192.0.2.0/24"}],
        "dns": {"search": ["example"]},
    }
    out = result_json("1.0.0", IFS, IPS[:1], ROUTES, {}, prev)
    assert out["interfaces"] == [{"name": "lo0"}, *IFS]
    assert out["ips"] == [
        {"address": "192.0.2.5/24", "interface": 0},
        {"interface": 3, "address": "10.88.0.2/16", "gateway": "10.88.0.1"},
    ]
    assert out["routes"] == [{"dst": "192.0.2.0/24"}, *ROUTES]
    assert out["dns"] == {"search": ["example"]}


def test_error_object() -> None:
    assert CniError(7, "bad", "more").to_json("1.0.0") == {
        "cniVersion": "1.0.0",
        "code": 7,
        "msg": "bad",
        "details": "more",
    }
    assert "details" not in CniError(100, "x").to_json("1.1.0")


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (InvalidValue("x"), 7),
        (GuestNotFound("x"), 3),
        (Conflict("x"), 100),
        (KernelError("cannot add veth", 17), 101),
        (StateError("x"), 102),
        (NotSupported("x"), 105),
        (NetplumbError("x"), 106),
    ],
)
def test_netplumb_errors_map_to_codes(exc: NetplumbError, code: int) -> None:
    err = from_netplumb(exc)
    assert err.code == code and err.msg == str(exc)


def test_version_info() -> None:
    assert version_info() == {"cniVersion": "1.1.0", "supportedVersions": list(SUPPORTED_VERSIONS)}


# -- the plugin's answers without the kernel --------------------------------------------------


def call(environ: dict[str, str], stdin: str) -> tuple[int, Any]:
    rc, out = handle(environ, stdin)
    return rc, json.loads(out) if out else None


def test_version_command() -> None:
    rc, out = call({"CNI_COMMAND": "VERSION"}, '{"cniVersion": "0.4.0"}')
    assert rc == 0 and out == version_info()


def test_error_answers_in_the_configs_version() -> None:
    environ = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "a", "CNI_NETNS": "/x", "CNI_IFNAME": "e"}
    rc, out = call(environ, '{"cniVersion": "0.4.0", "name": "n", "mode": "x"}')
    assert rc == 1
    assert out == {
        "cniVersion": "0.4.0",
        "code": 7,
        "msg": 'invalid network config: mode: "x" is not bridge or macvlan',
    }


def test_error_answers_in_the_plugins_version_when_config_has_none() -> None:
    rc, out = call({"CNI_COMMAND": "ADD"}, "{}")
    assert rc == 1 and out["cniVersion"] == "1.1.0" and out["code"] == 4


def test_garbage_stdin_is_code_6() -> None:
    environ = {"CNI_COMMAND": "STATUS"}
    rc, out = call(environ, "not json")
    assert (rc, out["code"], out["cniVersion"]) == (1, 6, "1.1.0")
