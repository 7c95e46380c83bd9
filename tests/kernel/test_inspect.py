"""netplumb inspect: Docker's shape, with values checked against ip -j in the host."""

from __future__ import annotations

import json

import pytest

from kernel.attachlab import Lab

pytestmark = pytest.mark.kernel


def test_inspect_reports_what_the_kernel_holds(lab: Lab) -> None:
    lab.netplumb("run", "--name", "db", "--expose", "27017", "--", "sleep", "100")
    lab.netplumb(
        "run", "--name", "web", "--link", "db:mongo", "-p", "8080:80", "--", "sleep", "100"
    )
    [doc] = json.loads(lab.netplumb("inspect", "web").stdout)
    assert doc["Name"] == "/web" and doc["State"]["Running"] is True
    assert doc["HostConfig"]["Links"] == ["/db:/web/mongo"]
    assert "MONGO_PORT_27017_TCP_ADDR=10.89.0.2" in doc["Config"]["Env"]
    net = doc["NetworkSettings"]["Networks"]["netplumb"]
    pid = doc["State"]["Pid"]
    seen = json.loads(
        lab.in_host("nsenter", "-t", str(pid), "-n", "ip", "-j", "addr", "show", "eth0").stdout
    )[0]
    v4 = next(a for a in seen["addr_info"] if a["family"] == "inet")
    assert (net["IPAddress"], net["IPPrefixLen"]) == (v4["local"], v4["prefixlen"])
    assert net["MacAddress"] == seen["address"]
    assert net["Gateway"] == "10.89.0.1"
    assert doc["NetworkSettings"]["Ports"]["80/tcp"] == [
        {"HostIp": "0.0.0.0", "HostPort": "8080"},
        {"HostIp": "::", "HostPort": "8080"},
    ]
    missing = lab.netplumb("inspect", "nosuch", check=False)
    assert (missing.returncode, missing.stderr) == (1, "Error: No such object: nosuch\n")
