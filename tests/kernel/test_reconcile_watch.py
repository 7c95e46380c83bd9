"""``netplumb reconcile`` and ``netplumb watch`` on real namespaces (issue 13 §5).

An interface netplumb attached that someone deletes comes back with its name, addresses, MAC
and default route; an interface with this state directory's mark that no record names goes;
one with another scope's mark, or with a mark from before scopes, stays; a reconcile in step
changes nothing. The oracle is ``ip -j`` and ping, as everywhere in tests/kernel.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator

import pytest

from kernel.attachlab import NETPLUMB, Json, Lab, sh, wait_for

pytestmark = pytest.mark.kernel

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")


def _eth1(lab: Lab, guest: str) -> Json | None:
    return lab.link(guest, "eth1")


def _attached(lab: Lab, net: str) -> tuple[str, str, Json]:
    """A guest with eth1 on pipework's bridge br-<id> (gateway .1, a peer at .3)."""
    guest, peer = lab.netns("g"), lab.netns("p")
    bridge = f"br-{lab.id}"
    lab.pipework(bridge, guest, f"{net}.2/24@{net}.1")
    lab.on_bridge(bridge, peer, "eth0", f"{net}.3/24")
    link = _eth1(lab, guest)
    assert link is not None
    return guest, peer, link


def _state_of(lab: Lab, guest: str) -> tuple[Json, Json, str | None]:
    link = _eth1(lab, guest)
    return lab.snapshot(guest), lab.snapshot(lab.host), link["address"] if link else None


def test_reconcile_puts_back_a_deleted_interface_and_is_idempotent(lab: Lab) -> None:
    guest, peer, before = _attached(lab, "10.61.0")
    snap_before = lab.snapshot(guest)
    sh("ip", "-n", guest, "link", "del", "eth1")
    assert _eth1(lab, guest) is None

    out = lab.netplumb("reconcile").stdout
    assert f"restored eth1 of {guest}" in out

    after = _eth1(lab, guest)
    assert after is not None
    assert after["address"] == before["address"]  # the same MAC
    assert after["ifalias"] == before["ifalias"]
    assert lab.addrs(guest, "eth1") == ["10.61.0.2/24"]
    assert lab.default_routes(guest) == [("10.61.0.1", "eth1")]
    assert lab.snapshot(guest) == snap_before
    assert lab.ping(peer, "10.61.0.2", tries=3)

    # in step: a second reconcile changes nothing and says nothing
    in_step = _state_of(lab, guest)
    assert lab.netplumb("reconcile").stdout == ""
    assert _state_of(lab, guest) == in_step


def test_reconcile_puts_back_a_lost_address_on_an_interface_still_there(lab: Lab) -> None:
    guest, peer, _ = _attached(lab, "10.62.0")
    sh("ip", "-n", guest, "addr", "flush", "dev", "eth1")
    out = lab.netplumb("reconcile").stdout
    assert f"repaired eth1 of {guest}" in out
    assert lab.addrs(guest, "eth1") == ["10.62.0.2/24"]
    assert lab.default_routes(guest) == [("10.62.0.1", "eth1")]
    assert lab.ping(peer, "10.62.0.2", tries=3)


def test_reconcile_removes_only_its_own_marked_objects_without_a_record(lab: Lab) -> None:
    guest, _, link = _attached(lab, "10.63.0")
    mark = str(link["ifalias"])
    assert re.fullmatch(r"netplumb:netns:.+/[0-9a-f]{16}", mark), mark
    # objects marked by another state directory, and by a netplumb from before scopes
    other, old = mark.rpartition("/")[0] + "/0123456789abcdef", mark.rpartition("/")[0]
    for name, alias in (("other0", other), ("old0", old)):
        sh("ip", "-n", guest, "link", "add", name, "type", "bridge")
        sh("ip", "-n", guest, "link", "set", name, "alias", alias)
    # a record lost: eth1 (and its host end) carry this scope's mark and no record names them
    for rec in lab.attachments():
        (lab.state / "attach" / rec).unlink()
    host_end = lab.link_by_index(lab.host, int(link["link_index"]))
    assert host_end is not None

    out = lab.netplumb("reconcile").stdout
    assert f"removed eth1 of {guest} (netplumb's mark, no record)" in out
    names = [ln["ifname"] for ln in lab.links(guest)]
    assert "eth1" not in names
    assert {"other0", "old0"} <= set(names)
    assert lab.link(lab.host, host_end["ifname"]) is None


def test_reconcile_leaves_a_guest_that_is_gone_to_gc(lab: Lab) -> None:
    guest, _, _ = _attached(lab, "10.64.0")
    sh("ip", "netns", "del", guest)
    lab.namespaces.remove(guest)
    assert lab.netplumb("reconcile").stdout == ""
    assert len(lab.attachments()) == 1  # gc's to forget, not reconcile's
    assert "removed attachment" in lab.netplumb("gc").stdout


@pytest.fixture
def watch(lab: Lab) -> Iterator[subprocess.Popen[str]]:
    proc = lab.popen(lab.host, [NETPLUMB, "watch"], env=lab.env(), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first == "watching\n", first
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def test_watch_puts_back_a_deleted_interface(lab: Lab, watch: subprocess.Popen[str]) -> None:
    guest, peer, before = _attached(lab, "10.65.0")
    sh("ip", "-n", guest, "link", "del", "eth1")
    assert wait_for(lambda: (_eth1(lab, guest) or {}).get("address") == before["address"], 10)
    assert wait_for(lambda: lab.addrs(guest, "eth1") == ["10.65.0.2/24"], 10)
    assert lab.ping(peer, "10.65.0.2", tries=5)

    second = lab.netplumb("watch", check=False)
    assert second.returncode == 1
    assert second.stderr == f"netplumb watch: already running (pid {watch.pid})\n"

    watch.send_signal(signal.SIGTERM)
    out, _ = watch.communicate(timeout=10)
    assert watch.returncode == 0
    lines = out.splitlines()
    assert any(f"restored eth1 of {guest}" in ln for ln in lines), out
    assert all(STAMP.match(ln) for ln in lines), out


def test_watch_ends_cleanly_on_sigint(lab: Lab, watch: subprocess.Popen[str]) -> None:
    watch.send_signal(signal.SIGINT)
    watch.communicate(timeout=10)
    assert watch.returncode == 0
