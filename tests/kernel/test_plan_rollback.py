"""``network create``, ``publish`` and ``unpublish`` roll their plans back whole.

Each command's plan is applied by ``ops/apply.py``; ``NETPLUMB_FAIL_AFTER=<action class>``
makes it fail right after the first action of that class, so every undo recorded so far runs.
The oracle is not netplumb's code: ``ip -j`` links and addresses, ``nft -j`` (without the
handles a rewritten table renumbers) and every file of the state directory, before and after.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import Lab

pytestmark = pytest.mark.kernel


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Lab(tmp_path) as lab:
        yield lab


def _no_handles(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_handles(v) for k, v in value.items() if k != "handle"}
    if isinstance(value, list):
        return [_no_handles(v) for v in value]
    return value


def snapshot(lab: Lab) -> dict[str, object]:
    def ip(*args: str) -> list[Any]:
        out: list[Any] = json.loads(lab.run_in(lab.host, "ip", "-j", *args).stdout or "[]")
        return out

    links = sorted((ln["ifname"], ln.get("ifalias")) for ln in ip("link"))
    addrs = sorted(
        (a["ifname"], x["local"], x["prefixlen"]) for a in ip("addr") for x in a["addr_info"]
    )
    nft = _no_handles(json.loads(lab.run_in(lab.host, "nft", "-j", "list", "ruleset").stdout))
    files = {}
    for root, _dirs, names in os.walk(lab.state):
        for name in names:
            p = Path(root) / name
            files[str(p.relative_to(lab.state))] = (
                os.readlink(p) if p.is_symlink() else p.read_bytes()
            )
    return {"links": links, "addrs": addrs, "nft": nft, "files": files}


def failing(lab: Lab, action: str, *args: str) -> str:
    proc = lab.netplumb(*args, check=False, env=lab.environ({"NETPLUMB_FAIL_AFTER": action}))
    assert proc.returncode == 1, proc.stderr
    return proc.stderr.strip()


@pytest.mark.parametrize(
    "action", ["RecordNetwork", "CreateBridge", "BridgeAddress", "Forwarding", "NetworkRules"]
)
def test_a_network_create_that_fails_after_any_action_leaves_nothing(lab: Lab, action: str) -> None:
    # a network first, so netplumb's table exists: the rollback rewrites it without the new one
    lab.netplumb("network", "create", "base", "--bridge", "npbase0", "--subnet", "10.91.0.0/24")
    before = snapshot(lab)
    argv = ["network", "create", "half", "--bridge", "nphalf0", "--subnet", "10.94.0.0/24"]
    err = failing(lab, action, *argv, "--subnet6", "fd94::/64")
    assert err == f"netplumb: injected failure after {action}"
    assert snapshot(lab) == before
    assert "half" not in lab.netplumb("network", "ls").stdout
    lab.netplumb(*argv, "--subnet6", "fd94::/64")  # and nothing is in the way of doing it
    assert "nphalf0" in lab.run_in(lab.host, "ip", "-j", "link").stdout


def test_a_publish_or_unpublish_that_fails_leaves_nothing(lab: Lab) -> None:
    lab.netplumb("run", "--name", "web", "--", "sleep", "1000")
    lab.netplumb("publish", "web", "18000:70")
    before = snapshot(lab)
    # two publications: the first is made and undone (records, index, map elements)
    err = failing(lab, "PublishPort", "publish", "web", "18080:80", "18081:81")
    assert err == "netplumb: injected failure after PublishPort"
    assert snapshot(lab) == before
    assert lab.netplumb("port", "web").stdout.splitlines() == [
        "70/tcp -> 0.0.0.0:18000",
        "70/tcp -> [::]:18000",
    ]
    # one spec, two bindings (IPv4 and IPv6): the first dropped, then put back
    err = failing(lab, "UnpublishPort", "unpublish", "web", "70")
    assert err == "netplumb: injected failure after UnpublishPort"
    after = snapshot(lab)
    assert after["nft"] == before["nft"] and after["links"] == before["links"]
    assert lab.netplumb("port", "web").stdout.splitlines() == [
        "70/tcp -> 0.0.0.0:18000",
        "70/tcp -> [::]:18000",
    ]
    lab.netplumb("publish", "web", "18080:80")  # the ports of the failed publish are free
    lab.netplumb("unpublish", "web", "70", "80")
    assert lab.netplumb("port", "web").stdout == ""
