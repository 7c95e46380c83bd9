"""netplumb lan (issue 6) on a simulated LAN: bridge mode with its transaction and dead-man
timer, ARP probing, the pool under parallel requests, DHCP and macvlan mode with its shim."""

from __future__ import annotations

import marshal
import os
import subprocess
import time
from pathlib import Path

import pytest

from kernel.attachlab import NETPLUMB
from kernel.lanlab import NEIGHBOUR_MAC, SUBNET, LanLab, sh, wait_for

pytestmark = pytest.mark.kernel

POOL = ["pool", "set", f"{SUBNET}.0/24", "--range", f"{SUBNET}.200-{SUBNET}.239"]
POOL += ["--gateway", f"{SUBNET}.1", "--dhcp-range", f"{SUBNET}.100-{SUBNET}.150"]


def _deadman_gone(lab: LanLab) -> bool:
    pids = sh("ip", "netns", "pids", lab.host).stdout.split()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"netplumb-lan-deadman" in f.read():
                    return False
        except OSError:
            pass
    return True


def test_bridge_keeps_the_host_and_puts_containers_on_the_lan(lan: LanLab) -> None:
    before = lan.settled_layout()
    out = lan.lan_cmd("bridge", "phys0", "--timeout", "300").stdout
    assert "phys0 is now a port of br-phys0" in out
    assert lan.master_of("phys0") == "br-phys0"
    assert lan.addrs(lan.host, "br-phys0", "4") == [f"{SUBNET}.2/24"]
    assert lan.addrs(lan.host, "br-phys0", "6") == ["fd77::2/64"]
    assert lan.addrs(lan.host, "phys0") == []
    assert lan.default_routes(lan.host, "4") == [(f"{SUBNET}.1", "br-phys0")]
    assert lan.default_routes(lan.host, "6") == [("fd77::1", "br-phys0")]
    assert lan.ping(lan.router, f"{SUBNET}.2") and lan.ping(lan.router, "fd77::2")
    assert lan.ping(lan.host, f"{SUBNET}.1")

    lan.lan_cmd(*POOL)
    c1, c2 = lan.netns("c1"), lan.netns("c2")
    assert lan.lan_cmd("attach", c1).stdout.strip() == f"{SUBNET}.200"
    assert lan.lan_cmd("attach", c2, "--ip", f"{SUBNET}.233").stdout.strip() == f"{SUBNET}.233"
    assert lan.addrs(c1, "eth1", "4") == [f"{SUBNET}.200/24"]
    assert lan.default_routes(c2, "4") == [(f"{SUBNET}.1", "eth1")]
    for addr in (f"{SUBNET}.200", f"{SUBNET}.233"):
        assert lan.ping(lan.router, addr), f"the router does not reach {addr}"
    for c in (c1, c2):
        assert lan.ping(c, f"{SUBNET}.1") and lan.ping(c, f"{SUBNET}.2")

    assert "confirmed: phys0 stays on bridge br-phys0" in lan.lan_cmd("confirm").stdout
    assert wait_for(lambda: _deadman_gone(lan))
    status = lan.lan_cmd("status").stdout
    assert "confirmed: True" in status and f"{SUBNET}.200={c1}" not in status
    refused = lan.lan_cmd("unbridge", check=False)
    assert refused.returncode == 1
    assert 'bridge "br-phys0" still has ports' in refused.stderr
    lan.lan_cmd("detach", c1)
    lan.lan_cmd("detach", c2)
    assert "leases: -" in lan.lan_cmd("status").stdout
    lan.lan_cmd("unbridge")
    assert lan.settled_layout() == before
    assert lan.link(lan.host, "br-phys0") is None


@pytest.mark.parametrize(
    "step",
    ["deadman", "enslave", "delete-routes", "delete-addresses", "add-addresses", "add-routes"],
)
def test_a_failure_halfway_restores_the_interface_byte_for_byte(lan: LanLab, step: str) -> None:
    before = lan.settled_layout()
    proc = lan.lan_cmd("bridge", "phys0", check=False, env={"NETPLUMB_LAN_FAIL_AFTER": step})
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"netplumb: injected failure after {step}"
    assert lan.settled_layout() == before
    assert wait_for(lambda: _deadman_gone(lan))
    assert "mode: -" in lan.lan_cmd("status").stdout


def test_an_unconfirmed_change_reverts_itself(lan: LanLab) -> None:
    before = lan.settled_layout()
    lan.lan_cmd("bridge", "phys0", "--timeout", "2")
    assert lan.master_of("phys0") == "br-phys0"
    # the command has returned; the timer is a process of its own (no terminal, own session)
    assert wait_for(lambda: lan.link(lan.host, "br-phys0") is None, timeout=30)
    assert lan.settled_layout() == before
    status = lan.lan_cmd("status").stdout
    assert "not confirmed within 2 s" in status
    proc = lan.lan_cmd("confirm", check=False)
    assert proc.stderr.strip() == (
        "netplumb: no LAN change is waiting for confirmation (netplumb lan status)"
    )


def test_a_card_gone_under_the_bridge_is_forgotten_only_with_force(lan: LanLab) -> None:
    # the demo's card is a veth to a LAN router host: when that host's processes die (a
    # reboot, a killed session), the card goes with its namespace and the record stays
    lan.lan_cmd("bridge", "phys0", "--timeout", "300")
    lan.lan_cmd("confirm")
    sh("ip", "-n", lan.lan, "link", "del", "p-host")
    assert lan.link(lan.host, "phys0") is None
    refused = lan.lan_cmd("unbridge", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'netplumb: cannot restore "phys0": it is gone (netplumb lan unbridge --force removes '
        'bridge "br-phys0" all the same)'
    )
    assert lan.link(lan.host, "br-phys0") is not None
    assert "mode: bridge" in lan.lan_cmd("status").stdout
    out = lan.lan_cmd("unbridge", "--force").stdout
    assert out.strip() == "phys0 is gone, nothing to restore; bridge br-phys0 removed"
    assert lan.link(lan.host, "br-phys0") is None
    assert "mode: -" in lan.lan_cmd("status").stdout


def test_bad_input_changes_nothing(lan: LanLab) -> None:
    before = lan.settled_layout()
    cases = [
        (("bridge", "nosuch0"), 'netplumb: host interface "nosuch0" does not exist'),
        (("bridge", "lo"), 'netplumb: "lo" is not an Ethernet interface'),
        (
            ("bridge", "phys0", "--bridge", "phys0"),
            'netplumb: cannot create bridge "phys0": an interface of that name exists',
        ),
        (
            ("bridge", "phys0", "--timeout", "0"),
            "netplumb: invalid --timeout 0: 1 to 86400 seconds",
        ),
        (("unbridge",), "netplumb: no LAN bridge to undo (netplumb lan status)"),
        (
            ("attach", lan.host),
            "netplumb: no LAN is set up: netplumb lan bridge HOSTIF, or netplumb lan macvlan "
            "HOSTIF, first",
        ),
        (
            (
                "pool",
                "set",
                f"{SUBNET}.0/24",
                "--range",
                f"{SUBNET}.120-{SUBNET}.160",
                "--dhcp-range",
                f"{SUBNET}.100-{SUBNET}.150",
            ),
            f"netplumb: invalid pool range {SUBNET}.120-{SUBNET}.160: it overlaps the LAN's "
            f"DHCP range {SUBNET}.100-{SUBNET}.150",
        ),
    ]
    for args, message in cases:
        proc = lan.lan_cmd(*args, check=False)
        assert proc.returncode != 0, args
        assert proc.stderr.strip() == message
    assert lan.settled_layout() == before


def test_the_neighbours_address_is_refused_100_times_out_of_100(lan: LanLab) -> None:
    lan.lan_cmd("bridge", "phys0")
    lan.lan_cmd("confirm")
    lan.lan_cmd(*POOL)
    guest = lan.netns("g")
    want = (
        f"netplumb: address {SUBNET}.9 is in use on the LAN: {NEIGHBOUR_MAC} answered an ARP "
        "probe for it (nothing was changed)"
    )
    refused = 0
    for _ in range(100):
        proc = lan.lan_cmd("attach", guest, "--ip", f"{SUBNET}.9", check=False)
        refused += proc.returncode == 1 and proc.stderr.strip() == want
    assert refused == 100
    assert [ln["ifname"] for ln in lan.links(guest)] == ["lo"]
    # allocating automatically skips an address that answers: the neighbour squats .200
    sh("ip", "-n", lan.neighbour, "addr", "add", f"{SUBNET}.200/24", "dev", "eth0")
    assert lan.lan_cmd("attach", guest).stdout.strip() == f"{SUBNET}.201"
    assert f"{SUBNET}.200=arp:{NEIGHBOUR_MAC}" in lan.lan_cmd("status").stdout
    # and the host's own address is never handed out
    proc = lan.lan_cmd("attach", lan.netns("h"), "--ip", f"{SUBNET}.2", check=False)
    assert "is in use on the LAN" in proc.stderr
    lan.lan_cmd("detach", guest)
    lan.lan_cmd("unbridge")


def test_two_containers_asking_for_one_address_in_parallel(lan: LanLab) -> None:
    lan.lan_cmd("macvlan", "phys0")
    lan.lan_cmd(*POOL)
    guests = [lan.netns(f"p{i}") for i in range(2)]
    procs = [
        subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                lan.host,
                NETPLUMB,
                "lan",
                "attach",
                g,
                "--ip",
                f"{SUBNET}.220",
            ],
            env=lan.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for g in guests
    ]
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    winners = [i for i, (rc, _o, _e) in enumerate(results) if rc == 0]
    assert len(winners) == 1, results
    loser = 1 - winners[0]
    assert results[loser][2].strip() == (
        f"netplumb: address {SUBNET}.220 is already leased on the LAN "
        f"(by {guests[winners[0]]}@eth1)"
    ) or results[loser][2].strip().startswith(f"netplumb: address {SUBNET}.220 is already")
    assert lan.addrs(guests[winners[0]], "eth1", "4") == [f"{SUBNET}.220/24"]
    assert [ln["ifname"] for ln in lan.links(guests[loser])] == ["lo"]
    assert lan.ping(lan.router, f"{SUBNET}.220")


@pytest.mark.parametrize("mode", ["bridge", "macvlan"])
def test_dhcp_for_a_container_on_the_lan(lan: LanLab, mode: str) -> None:
    lan.dnsmasq()
    lan.lan_cmd(mode, "phys0")
    c = lan.netns("d")
    assert lan.lan_cmd("attach", c, "--dhcp").stdout.strip() == "dhcp"
    got = lan.addrs(c, "eth1", "4")
    assert len(got) == 1 and got[0].startswith(f"{SUBNET}.1") and got[0].endswith("/24")
    assert 100 <= int(got[0].split("/")[0].rsplit(".", 1)[1]) <= 150
    assert lan.default_routes(c, "4") == [(f"{SUBNET}.1", "eth1")]
    assert lan.ping(lan.router, got[0].split("/")[0])
    # the client stays, to renew the lease while the container lives
    assert any(
        b"udhcpc" in Path(f"/proc/{pid}/cmdline").read_bytes()
        for pid in sh("ip", "netns", "pids", c).stdout.split()
    )
    lan.lan_cmd("detach", c)
    lan.lan_cmd(
        "unbridge" if mode == "bridge" else "macvlan", *([] if mode == "bridge" else ["--remove"])
    )


def test_macvlan_mode_with_a_shim_lets_host_and_containers_talk(lan: LanLab) -> None:
    before = lan.settled_layout()
    lan.lan_cmd(*POOL)
    out = lan.lan_cmd("macvlan", "phys0", "--shim").stdout
    assert out.strip() == f"macvlan mode on phys0; shim np-lanshim {SUBNET}.200"
    c = lan.netns("m")
    assert lan.lan_cmd("attach", c, "--mac", "02:00:00:00:77:50").stdout.strip() == f"{SUBNET}.201"
    link = lan.link(c, "eth1", details=True)
    assert link is not None and link["linkinfo"]["info_kind"] == "macvlan"
    assert link["address"] == "02:00:00:00:77:50"
    assert lan.ping(lan.host, f"{SUBNET}.201")  # host -> container, through the shim
    assert lan.ping(c, f"{SUBNET}.200")  # container -> host (the shim's address)
    assert lan.ping(c, f"{SUBNET}.1") and lan.ping(lan.router, f"{SUBNET}.201")
    assert lan.addrs(lan.host, "phys0", "4") == [f"{SUBNET}.2/24"]  # untouched
    lan.lan_cmd("detach", c)
    lan.lan_cmd("macvlan", "--remove")
    assert lan.settled_layout() == before


def test_a_multicast_mac_is_refused_and_a_global_one_warned(lan: LanLab) -> None:
    lan.lan_cmd("macvlan", "phys0")
    lan.lan_cmd(*POOL)
    c = lan.netns("w")
    proc = lan.lan_cmd("attach", c, "--mac", "01:00:5e:00:00:01", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "netplumb: invalid MAC address: 01:00:5e:00:00:01: a multicast address cannot be assigned"
    )
    proc = lan.lan_cmd("attach", c, "--mac", "00:16:3e:00:77:51")
    assert proc.stderr.startswith("netplumb: warning: MAC 00:16:3e:00:77:51 is not locally")


def test_netplumb_lan_status_through_the_main_cli(lan: LanLab) -> None:
    proc = lan.netplumb("lan", "status", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "mode: -" in proc.stdout


def test_pipework_onto_the_lan_is_probed_and_leased_too(lan: LanLab) -> None:
    """The pipework command line (and netplumb attach) on the LAN's bridge go through the same
    probe and pool as ``lan attach``: the neighbour's address is refused, a pool address is
    leased while attached and released by detach."""
    lan.lan_cmd("bridge", "phys0")
    lan.lan_cmd("confirm")
    lan.lan_cmd(*POOL)
    guest = lan.netns("pw")
    taken = lan.pipework("br-phys0", guest, f"{SUBNET}.9/24", check=False)
    assert taken.returncode == 1
    assert taken.stderr.strip() == (
        f"pipework: address {SUBNET}.9 is in use on the LAN: {NEIGHBOUR_MAC} answered an ARP "
        "probe for it (nothing was changed)"
    )
    assert [ln["ifname"] for ln in lan.links(guest)] == ["lo"]
    lan.pipework("br-phys0", guest, f"{SUBNET}.210/24@{SUBNET}.1")
    assert lan.addrs(guest, "eth1", "4") == [f"{SUBNET}.210/24"]
    assert lan.ping(lan.router, f"{SUBNET}.210")
    assert f"{SUBNET}.210=" in lan.lan_cmd("status").stdout
    other = lan.netns("pw2")
    refused = lan.lan_cmd("attach", other, "--ip", f"{SUBNET}.210", check=False)
    assert f"address {SUBNET}.210 is already leased on the LAN" in refused.stderr
    lan.netplumb("detach", guest, "eth1")
    assert f"{SUBNET}.210=" not in lan.lan_cmd("status").stdout
    lan.lan_cmd("unbridge")


def test_twenty_containers_leasing_from_the_pool_at_once_get_twenty_addresses(
    lan: LanLab,
) -> None:
    """The pool is one table of the allocator: 20 ``lan attach`` processes started together
    each get a different address, the lowest ones of the range, each probed and on its guest."""
    lan.lan_cmd("macvlan", "phys0")
    lan.lan_cmd(*POOL)
    guests = [lan.netns(f"q{i}") for i in range(20)]
    procs = [
        subprocess.Popen(
            ["ip", "netns", "exec", lan.host, NETPLUMB, "lan", "attach", g],
            env=lan.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for g in guests
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert all(rc == 0 for rc, _o, _e in results), results
    got = [out.strip() for _rc, out, _e in results]
    assert sorted(got) == [f"{SUBNET}.{n}" for n in range(200, 220)]
    for g, ip in zip(guests, got, strict=True):
        assert lan.addrs(g, "eth1", "4") == [f"{ip}/24"]
    held = _leases(lan)
    for g, ip in zip(guests, got, strict=True):
        assert held[ip].startswith(f"netns:{g}:") and held[ip].endswith("@eth1"), held
    for g in guests:
        lan.lan_cmd("detach", g)
    assert _leases(lan) == {}


def _leases(lan: LanLab) -> dict[str, str]:
    """The ``leases:`` line of ``lan status``: address -> holder."""
    line = next(ln for ln in lan.lan_cmd("status").stdout.splitlines() if ln.startswith("leases:"))
    pairs = line.partition(":")[2].split()
    return dict(p.split("=", 1) for p in pairs if p != "-")


def test_leases_recorded_by_the_release_before_are_honoured(lan: LanLab) -> None:
    """``lan/leases``, the pool's table as netplumb wrote it before the allocator (one marshal
    record, address -> [holder, time]): its leases keep their addresses, its ARP hold keeps
    its address out of automatic leasing, and it is moved into the allocator on first use."""
    lan.lan_cmd("macvlan", "phys0")
    lan.lan_cmd(*POOL)
    keeper = lan.netns("old")
    lan.lan_cmd("attach", keeper, "--ip", f"{SUBNET}.203")
    # rewrite its lease (and an ARP hold) the way the release before kept them
    table = lan.state / "leases.d" / "%lan"
    holder = os.readlink(table / f"{SUBNET}.203")
    os.unlink(table / f"{SUBNET}.203")
    now = str(time.time())
    old = {f"{SUBNET}.203": [holder, now], f"{SUBNET}.200": [f"arp:{NEIGHBOUR_MAC}", now]}
    (lan.state / "lan" / "leases").write_bytes(marshal.dumps(old))
    assert f"{SUBNET}.203={holder}" in lan.lan_cmd("status").stdout
    refused = lan.lan_cmd("attach", lan.netns("new"), "--ip", f"{SUBNET}.203", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"netplumb: address {SUBNET}.203 is already leased on the LAN (by {holder})"
    )
    assert not (lan.state / "lan" / "leases").exists()  # moved into the allocator's table
    assert lan.lan_cmd("attach", lan.netns("auto")).stdout.strip() == f"{SUBNET}.201"
    lan.lan_cmd("detach", keeper)
    assert f"{SUBNET}.203=" not in lan.lan_cmd("status").stdout


def test_lan_attach_is_one_plan_dry_run_and_rollback(lan: LanLab) -> None:
    """``lan attach`` is one plan executed by the applier: ``--dry-run`` prints it and changes
    nothing; a failure after any of its actions (the pool's claim, the attach planner's, the
    attach record, the announcement) leaves no interface, lease or record; ``lan detach
    --dry-run`` prints the removal."""
    lan.lan_cmd("macvlan", "phys0")
    lan.lan_cmd(*POOL)
    c = lan.netns("c1")
    plan = lan.lan_cmd("attach", c, "--dry-run").stdout.splitlines()
    assert plan[0] == (
        f"probe {SUBNET}.200 with ARP on the LAN and lease it in the LAN pool "
        "(the lowest free one now; one that answers is skipped)"
    )
    assert f"GUEST: ip addr add {SUBNET}.200/24 dev eth1" in plan
    assert plan[-1] == f"GUEST: arping -U -I eth1 {SUBNET}.200  # announce it on the LAN"
    fixed = lan.lan_cmd("attach", c, "--ip", f"{SUBNET}.222", "--dry-run").stdout
    assert fixed.startswith(
        f"probe {SUBNET}.222 with ARP on the LAN and lease it in the LAN pool\n"
    )
    assert [ln["ifname"] for ln in lan.links(c)] == ["lo"] and _leases(lan) == {}
    for step in ("ClaimLanAddress", "CreateMacvlan", "AddAddress", "RecordAttach", "AnnounceLan"):
        proc = lan.lan_cmd("attach", c, check=False, env={"NETPLUMB_FAIL_AFTER": step})
        assert proc.returncode != 0 and f"injected failure after {step}" in proc.stderr
        assert [ln["ifname"] for ln in lan.links(c)] == ["lo"], step
        assert _leases(lan) == {}, step
        assert list((lan.state / "attach").glob("*")) == [], step
    assert lan.lan_cmd("attach", c).stdout.strip() == f"{SUBNET}.200"
    assert lan.ping(lan.router, f"{SUBNET}.200")
    plan = lan.lan_cmd("detach", c, "--dry-run").stdout.splitlines()
    assert plan == [
        "GUEST: ip link del eth1",
        f"release the LAN pool addresses of {_leases(lan)[f'{SUBNET}.200']}",
    ]
    assert lan.addrs(c, "eth1", "4") == [f"{SUBNET}.200/24"]
    lan.lan_cmd("detach", c)
    assert [ln["ifname"] for ln in lan.links(c)] == ["lo"] and _leases(lan) == {}
