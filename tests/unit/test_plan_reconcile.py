"""Reconcile's pure part: scoped marks, requests rebuilt from records, repairs and orphans."""

from __future__ import annotations

import pytest

from netplumb.errors import InvalidValue
from netplumb.model.addresses import parse_address_spec
from netplumb.model.attach import AttachRequest, DhcpSpec
from netplumb.model.ip import IP, Interface
from netplumb.model.mac import Mac
from netplumb.model.names import mark_owner, mark_scope, owner_mark
from netplumb.plan.actions import AddAddress, GuestLinkUp, ReplaceDefault
from netplumb.plan.reconcile import (
    GuestView,
    hosts_with_links,
    orphans,
    plan_repair,
    request_from_record,
)

SCOPE = "0123456789abcdef"


@pytest.mark.parametrize("owner", ["docker:0123456789ab", "host:web", "netns:a:b:1-2", "pid:1:2"])
def test_scoped_marks_read_back_as_their_owner_and_scope(owner: str) -> None:
    mark = owner_mark(owner, SCOPE)
    assert mark == f"netplumb:{owner}/{SCOPE}"
    assert mark_owner(mark) == owner
    assert mark_scope(mark) == SCOPE
    # a mark from before scopes: the same owner, no scope
    assert mark_owner(owner_mark(owner)) == owner
    assert mark_scope(owner_mark(owner)) is None


def test_other_netplumb_marks_have_no_scope() -> None:
    for alias in ("netplumb:bridge", "netplumb:lan:eth0", "netplumb:network:demo", None, "x"):
        assert mark_scope(alias) is None


def _record(**extra: object) -> dict[str, object]:
    req = AttachRequest(
        "web",
        "br1",
        "eth1",
        addresses=(parse_address_spec("10.2.0.11/16@10.2.0.1"),),
        dhcp=None,
    )
    rec: dict[str, object] = {
        "owner": "docker:0123456789ab",
        "ifname": "eth1",
        "signature": req.signature(),
        "kind": "veth",
        "host_name": "veth1pl01234567",
        "bridge": "br1",
    }
    rec.update(extra)
    return rec


def test_the_request_is_rebuilt_from_a_record_with_the_mac_it_had() -> None:
    req = request_from_record(_record(guest_mac="02:42:0a:02:00:0b"), "c1")
    assert req == AttachRequest(
        "c1",
        "br1",
        "eth1",
        host_ifname="veth1pl01234567",
        addresses=(parse_address_spec("10.2.0.11/16@10.2.0.1"),),
        mac=Mac.parse("02:42:0a:02:00:0b"),
    )


def test_a_record_from_before_issue_13_is_rebuilt_without_a_mac() -> None:
    req = request_from_record(_record(bridge_created=True), "c1")
    assert req.mac is None
    assert req.create_bridge


def test_the_requested_mac_and_dhcp_win() -> None:
    sig = AttachRequest(
        "web", "br1", "eth2", mac=Mac.parse("02:00:00:00:00:01"), dhcp=DhcpSpec("udhcpc", ("-x",))
    ).signature()
    rec = _record(signature=sig, ifname="eth2", guest_mac="02:00:00:00:00:99")
    req = request_from_record(rec, "c1")
    assert str(req.mac) == "02:00:00:00:00:01"
    assert req.dhcp == DhcpSpec("udhcpc", ("-x",))


def test_a_record_without_a_signature_is_a_clear_error() -> None:
    with pytest.raises(InvalidValue, match="attach record without a signature"):
        request_from_record({"ifname": "eth1"}, "c1")


def test_repair_puts_back_what_is_missing_and_nothing_when_in_step() -> None:
    req = request_from_record(_record(), "c1")
    iface = Interface.parse("10.2.0.11/16")
    gw = IP.parse("10.2.0.1")
    assert plan_repair(req, GuestView("m", True, frozenset({iface}), frozenset({gw}))) == []
    assert plan_repair(req, GuestView("m", False)) == [
        AddAddress("eth1", iface),
        GuestLinkUp("eth1"),
        ReplaceDefault("eth1", gw),
    ]


def test_orphans_are_only_this_scopes_marks_without_records() -> None:
    mine = owner_mark("docker:a", SCOPE)
    links = [
        ("eth0", None),
        ("eth1", mine),  # recorded
        ("eth2", mine),  # no record: an orphan
        ("eth3", owner_mark("docker:a", "fedcba9876543210")),  # another scope's
        ("eth4", owner_mark("docker:a")),  # from before scopes
        ("br0", "netplumb:bridge"),
    ]
    assert orphans(links, {("docker:a", "eth1")}, SCOPE) == ["eth2"]


def test_hosts_with_links_replaces_stale_link_lines_and_keeps_the_rest() -> None:
    docker_wrote = (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "10.89.0.2\tdatabase\n"  # extra_hosts as created: the target's address then
        "10.89.0.2\tdb\n"
        "10.89.0.7\tweb  # the guest's own\n"
    )
    wanted = ["10.89.0.50\tdatabase db-host db"]
    out = hosts_with_links(docker_wrote, wanted, {"database", "db"})
    assert out == (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "10.89.0.7\tweb  # the guest's own\n"
        "10.89.0.50\tdatabase db-host db\n"
    )
    assert hosts_with_links(out, wanted, {"database", "db"}) == out  # in step: unchanged


def test_hosts_with_links_takes_dockers_own_lines_as_in_step() -> None:
    """Docker writes one line per name of ``extra_hosts``: the same answers, nothing to do."""
    docker_wrote = "127.0.0.1\tlocalhost\n10.89.0.2\tdatabase\n10.89.0.2\tdb\n"
    assert hosts_with_links(docker_wrote, ["10.89.0.2\tdatabase db"], {"database", "db"}) == (
        docker_wrote
    )
    # a stale line first wins a lookup: not in step, even with the right one after it
    shadowed = "10.89.0.9\tdatabase\n10.89.0.2\tdatabase db\n"
    out = hosts_with_links(shadowed, ["10.89.0.2\tdatabase db"], {"database", "db"})
    assert out == "10.89.0.2\tdatabase db\n"
