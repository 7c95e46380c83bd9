"""netplumb-cni, black box: the plugin exec'd with CNI_* variables and stdin in real
namespaces, for every command and the specification's rules (repeated DEL, DEL without a
namespace, a second ADD, GC, bad configs and their codes). After every test nothing may be
left: no marked interface, no lease, no nftables rule, no record (``Cni.leftovers``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kernel.attachlab import Lab, sh, wait_for
from kernel.cnilab import Cni, install_plugin, start_agent, stop_agent

pytestmark = pytest.mark.kernel


@pytest.fixture(params=["launcher", "agent", "on-demand"])
def cni(lab: Lab, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cni]:
    """The plugin in each of its forms: the Python launcher; the compiled client with an
    agent started by hand; the default install, the compiled client with no agent beforehand
    (the first call starts one and is served by the Python plugin, later ones by the agent)."""
    plugin_dir = tmp_path / "cni-bin"
    install_plugin(plugin_dir, client=request.param != "launcher")
    if request.param == "agent":
        start_agent(lab)
    c = Cni(lab, plugin_dir, f"npt{lab.id}")
    c.path = {
        "agent": ("agent at",),
        "on-demand": ("agent at", "no agent at", "no agent, starting one, at"),
    }.get(request.param)
    try:
        yield c
        assert c.leftovers() == [], "the test left CNI objects behind"
    finally:
        pid = stop_agent(lab.state)
    if request.param == "on-demand" and c.calls:
        assert pid is not None, "no agent was started on demand"


def guest_addrs(lab: Lab, guest: str, dev: str = "eth0") -> list[str]:
    return lab.addrs(guest, dev, "4")


# -- ADD and DEL ------------------------------------------------------------------------------


def test_add_gives_a_working_interface_and_the_spec_result(lab: Lab, cni: Cni) -> None:
    g = lab.netns("g1")
    conf = cni.config()
    out = cni.add(g, "c1", conf)
    eth0 = lab.link(g, "eth0")
    assert eth0 is not None and "UP" in eth0["flags"]
    assert guest_addrs(lab, g) == ["10.77.0.2/24"]
    assert lab.default_routes(g) == [("10.77.0.1", "eth0")]
    bridge = f"np-{cni.net}"[:15]
    assert out == {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": bridge, "mac": lab.link(lab.host, bridge)["address"]},  # type: ignore[index]
            {"name": out["interfaces"][1]["name"], "mac": out["interfaces"][1]["mac"]},
            {"name": "eth0", "mac": eth0["address"], "sandbox": f"/run/netns/{g}"},
        ],
        "ips": [{"interface": 2, "address": "10.77.0.2/24", "gateway": "10.77.0.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.77.0.1"}],
        "dns": {},
    }
    veth = lab.link(lab.host, out["interfaces"][1]["name"])
    assert veth is not None and veth.get("master") == bridge
    assert lab.ping(g, "10.77.0.1", tries=3)
    cni.delete(g, "c1", conf)
    assert lab.link(g, "eth0") is None
    assert lab.link(lab.host, out["interfaces"][1]["name"]) is None


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.1.0"])
def test_result_in_the_configs_version(lab: Lab, cni: Cni, version: str) -> None:
    g = lab.netns("g1")
    conf = cni.config(cniVersion=version)
    out = cni.add(g, "c1", conf)
    assert out["cniVersion"] == version
    ip = out["ips"][0]
    assert ("version" in ip) == (version < "1.0.0")
    cni.delete(g, "c1", conf)


def test_del_twice_and_del_of_what_was_never_added_succeed(lab: Lab, cni: Cni) -> None:
    g = lab.netns("g1")
    conf = cni.config()
    cni.add(g, "c1", conf)
    cni.delete(g, "c1", conf)
    cni.delete(g, "c1", conf)
    cni.delete(None, "c1", conf)
    cni.delete(g, "never-added", conf)


def test_del_after_the_namespace_is_gone_with_empty_netns(lab: Lab, cni: Cni) -> None:
    g = lab.netns("g1")
    conf = cni.config(runtimeConfig={"portMappings": [{"hostPort": 18080, "containerPort": 80}]})
    out = cni.add(g, "c1", conf)
    assert cni.port_rules() and cni.leases() == {"10.77.0.2": "cni:c1:eth0"}
    sh("ip", "netns", "del", g)
    lab.namespaces.remove(g)
    assert wait_for(lambda: lab.link(lab.host, out["interfaces"][1]["name"]) is None)
    cni.delete(None, "c1", {k: v for k, v in conf.items() if k != "runtimeConfig"})
    # the reference portmap needs the mappings again on DEL; netplumb-cni its records only
    assert cni.port_rules() == [] and cni.leases() == {}


def test_del_with_the_recorded_namespace_when_netns_is_empty(lab: Lab, cni: Cni) -> None:
    """containerd may send an empty CNI_NETNS while the namespace still exists."""
    g = lab.netns("g1")
    conf = cni.config()
    cni.add(g, "c1", conf)
    cni.delete(None, "c1", conf)
    assert lab.link(g, "eth0") is None


def test_second_add_fails_without_allocating(lab: Lab, cni: Cni) -> None:
    g = lab.netns("g1")
    conf = cni.config()
    cni.add(g, "c1", conf)
    err = cni.fails("ADD", conf, container="c1", netns=f"/run/netns/{g}")
    assert err == {
        "cniVersion": "1.0.0",
        "code": 100,
        "msg": f'container c1 already has interface "eth0" on network {cni.net} (DEL it first)',
    }
    assert cni.leases() == {"10.77.0.2": "cni:c1:eth0"}
    assert [ln["ifname"] for ln in lab.links(g)] == ["lo", "eth0"]
    cni.delete(g, "c1", conf)


def test_interface_name_taken_in_the_guest_is_a_conflict(lab: Lab, cni: Cni) -> None:
    g = lab.netns("g1")
    sh("ip", "-n", g, "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
    conf = cni.config()
    err = cni.fails("ADD", conf, container="c1", netns=f"/run/netns/{g}")
    assert err["code"] == 100 and 'already has an interface "eth0"' in err["msg"]
    assert cni.leftovers() == []
    cni.delete(g, "c1", conf)


@pytest.mark.parametrize("step", ["CreateVeth", "AddAddress", "GuestLinkUp", "ReplaceDefault"])
def test_add_failing_halfway_leaves_nothing(lab: Lab, cni: Cni, step: str) -> None:
    g = lab.netns("g1")
    conf = cni.config()
    err = cni.fails(
        "ADD",
        conf,
        container="c1",
        netns=f"/run/netns/{g}",
        extra_env={"NETPLUMB_FAIL_AFTER": step},
    )
    assert err["msg"] == f"injected failure after {step}"
    assert cni.leftovers() == []
    assert [ln["ifname"] for ln in lab.links(g)] == ["lo"]
    cni.delete(g, "c1", conf)  # what a runtime does after a failed ADD
    assert cni.add(g, "c1", conf)["ips"][0]["address"] == "10.77.0.2/24"
    cni.delete(g, "c1", conf)


@pytest.mark.parametrize(
    "step",
    [
        "ClaimAttachment",
        "EnsureNetwork",
        "LeaseCniAddress",
        "CreateVeth",
        "ReplaceDefault",
        "RecordAttach",
        "PublishCniPorts",
        "RefreshIsolation",
    ],
)
def test_add_plan_rolls_back_after_each_of_its_actions(lab: Lab, cni: Cni, step: str) -> None:
    """ADD is one plan executed by the applier: a failure after any of its actions (CNI's own
    and the attach planner's) leaves nothing in either namespace nor in netplumb's records."""
    g = lab.netns("g1")
    conf = cni.config(
        isolation=True,
        runtimeConfig={"portMappings": [{"hostPort": 18090, "containerPort": 80}]},
    )
    host_before = sorted(ln["ifname"] for ln in lab.links(lab.host))
    err = cni.fails(
        "ADD",
        conf,
        container="c1",
        netns=f"/run/netns/{g}",
        extra_env={"NETPLUMB_FAIL_AFTER": step},
    )
    assert err["msg"] == f"injected failure after {step}"
    assert cni.leftovers() == []
    assert [ln["ifname"] for ln in lab.links(g)] == ["lo"]
    bridge = f"np-{cni.net}"[:15]  # the network outlives its attachments, as after a DEL
    host_after = sorted(ln["ifname"] for ln in lab.links(lab.host))
    assert sorted(set(host_after) - {bridge}) == host_before
    for d in ("attach", "attach.pending", "ports"):
        assert sorted(p.name for p in (lab.state / d).glob("*")) == [], d
    ruleset = sh("ip", "netns", "exec", lab.host, "nft", "list", "ruleset").stdout
    assert "npc" not in ruleset  # the isolated network's port set lost the veth again
    assert cni.add(g, "c1", conf)["ips"][0]["address"] == "10.77.0.2/24"
    cni.delete(g, "c1", conf)


def test_unknown_namespace_is_code_3_and_allocates_nothing(cni: Cni) -> None:
    err = cni.fails("ADD", cni.config(), container="c1", netns="/run/netns/npt-none-here")
    assert err["code"] == 3
    assert err["msg"] == "no such guest /run/netns/npt-none-here: no such file"
    assert cni.records() == []


# -- addresses, MACs, ports -------------------------------------------------------------------


def test_static_ip_and_mac_from_runtime_config_and_cni_args(lab: Lab, cni: Cni) -> None:
    g1, g2 = lab.netns("g1"), lab.netns("g2")
    conf = cni.config(runtimeConfig={"ips": ["10.77.0.50/24"], "mac": "02:00:00:77:00:50"})
    out = cni.add(g1, "c1", conf)
    assert guest_addrs(lab, g1) == ["10.77.0.50/24"]
    assert lab.link(g1, "eth0")["address"] == "02:00:00:77:00:50"  # type: ignore[index]
    assert out["interfaces"][2]["mac"] == "02:00:00:77:00:50"
    plain = cni.config()
    cni.add(g2, "c2", plain, args="IgnoreUnknown=1;IP=10.77.0.60;MAC=02:00:00:77:00:60")
    assert guest_addrs(lab, g2) == ["10.77.0.60/24"]
    assert lab.link(g2, "eth0")["address"] == "02:00:00:77:00:60"  # type: ignore[index]
    assert lab.ping(g1, "10.77.0.60", tries=3)
    g3 = lab.netns("g3")
    err = cni.fails("ADD", plain, container="c3", netns=f"/run/netns/{g3}", args="IP=10.77.0.60")
    assert err["code"] == 100
    assert (
        err["msg"] == f"address 10.77.0.60 is already in use in network {cni.net} (by cni:c2:eth0)"
    )
    cni.delete(g1, "c1", conf)
    cni.delete(g2, "c2", plain)
    cni.delete(g3, "c3", plain)


def _http_server(lab: Lab, guest: str, port: int) -> None:
    lab.popen(guest, ["python3", "-m", "http.server", "--bind", "0.0.0.0", str(port)])

    def listening() -> bool:
        out = sh("ip", "netns", "exec", guest, "ss", "-ltnH", check=False).stdout
        return f":{port} " in out

    assert wait_for(listening, timeout=10)


def _curl(lab: Lab, url: str) -> int:
    proc = sh(
        "ip",
        "netns",
        "exec",
        lab.host,
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        url,
        check=False,
    )
    return int(proc.stdout or 0)


def test_port_mappings_are_published_and_removed(lab: Lab, cni: Cni) -> None:
    g = lab.netns("g1")
    conf = cni.config(
        runtimeConfig={
            "portMappings": [{"hostPort": 18081, "containerPort": 8000, "protocol": "tcp"}]
        }
    )
    cni.add(g, "web", conf)
    _http_server(lab, g, 8000)
    assert _curl(lab, "http://10.77.0.1:18081/") == 200
    assert _curl(lab, "http://127.0.0.1:18081/") == 200
    assert cni.port_rules() == ["netplumb:cni:web:eth0"]
    cni.delete(g, "web", {k: v for k, v in conf.items() if k != "runtimeConfig"})
    assert cni.port_rules() == []
    assert _curl(lab, "http://127.0.0.1:18081/") == 0


def test_port_taken_on_the_host_fails_the_add_and_leaves_nothing(lab: Lab, cni: Cni) -> None:
    g = lab.netns("g1")
    holder = lab.popen(
        lab.host,
        [
            "python3",
            "-c",
            "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 18082)); "
            "s.listen(); time.sleep(600)",
        ],
    )
    assert wait_for(
        lambda: ":18082 " in sh("ip", "netns", "exec", lab.host, "ss", "-ltnH").stdout, 10
    )
    conf = cni.config(runtimeConfig={"portMappings": [{"hostPort": 18082, "containerPort": 80}]})
    err = cni.fails("ADD", conf, container="c1", netns=f"/run/netns/{g}")
    assert err["code"] == 100
    assert err["msg"] == "Bind for 0.0.0.0:18082 failed: port is already allocated"
    assert cni.leftovers() == [] and [ln["ifname"] for ln in lab.links(g)] == ["lo"]
    holder.kill()
    cni.delete(g, "c1", conf)


# -- CHECK, GC, STATUS, VERSION -----------------------------------------------------------------


def test_check(lab: Lab, cni: Cni) -> None:
    g = lab.netns("g1")
    conf = cni.config()
    out = cni.add(g, "c1", conf)
    chained = {**conf, "prevResult": out}
    assert cni.call("CHECK", chained, container="c1", netns=f"/run/netns/{g}") == (0, None)
    err = cni.fails("CHECK", conf, container="c1", netns=f"/run/netns/{g}")
    assert (err["code"], err["msg"]) == (7, "invalid network config: CHECK needs prevResult")
    sh("ip", "-n", g, "addr", "flush", "dev", "eth0")
    err = cni.fails("CHECK", chained, container="c1", netns=f"/run/netns/{g}")
    assert (err["code"], err["msg"]) == (
        104,
        'container c1 interface "eth0": address 10.77.0.2/24 is missing',
    )
    err = cni.fails("CHECK", chained, container="c9", netns=f"/run/netns/{g}")
    assert err["msg"] == f'container c9 interface "eth0": no attachment on network {cni.net}'
    cni.delete(g, "c1", conf)


def test_gc_removes_every_attachment_not_in_the_valid_list(lab: Lab, cni: Cni) -> None:
    guests = [lab.netns(f"g{i}") for i in range(3)]
    conf = cni.config(cniVersion="1.1.0")
    for i, g in enumerate(guests):
        cni.add(g, f"c{i}", conf)
    sh("ip", "netns", "del", guests[2])  # one of the dead has lost its namespace too
    lab.namespaces.remove(guests[2])
    gc = {**conf, "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}
    assert cni.call("GC", gc) == (0, None)
    assert lab.link(guests[0], "eth0") is None
    assert guest_addrs(lab, guests[1]) == ["10.77.0.3/24"]
    assert cni.leases() == {"10.77.0.3": "cni:c1:eth0"}
    assert cni.records() == ["c1@eth0"]
    cni.delete(guests[1], "c1", conf)


def test_status_and_version(cni: Cni) -> None:
    assert cni.call("STATUS", cni.config(cniVersion="1.1.0")) == (0, None)
    err = cni.fails("STATUS", cni.config(cniVersion="1.1.0", mode="macvlan", master="npt-nope"))
    assert (err["code"], err["msg"]) == (50, 'master interface "npt-nope" does not exist')
    rc, out = cni.call("VERSION", '{"cniVersion": "1.1.0"}')
    assert rc == 0 and out["supportedVersions"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


@pytest.mark.parametrize(
    ("fields", "code", "msg"),
    [
        (
            {"cniVersion": "9.9.9"},
            1,
            'incompatible CNI versions: config is "9.9.9", plugin '
            "supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0",
        ),
        ({"mode": "ipvlan"}, 7, 'invalid network config: mode: "ipvlan" is not bridge or macvlan'),
        (
            {"subnet": "10.77.0.0/33"},
            7,
            "invalid network config: invalid prefix length /33 for 10.77.0.0",
        ),
    ],
)
def test_bad_configs_answer_with_their_code(
    cni: Cni, fields: dict[str, object], code: int, msg: str
) -> None:
    err = cni.fails("ADD", cni.config(**fields), container="c1", netns="/run/netns/x")
    assert (err["code"], err["msg"]) == (code, msg)


def test_bad_input_answers(cni: Cni) -> None:
    assert cni.fails("ADD", "{nope", container="c1", netns="/x")["code"] == 6
    err = cni.fails("ADD", cni.config(), container="c1")
    assert (err["code"], err["msg"]) == (4, "ADD needs CNI_NETNS: not set or empty")
    err = cni.fails("ADD", cni.config(), container="c1", netns="/x", args="FOO=1")
    assert err["msg"] == "CNI_ARGS: unknown argument FOO (IgnoreUnknown=1 lets it pass)"
    assert cni.records() == []


def test_network_with_another_definition_is_code_7(lab: Lab, cni: Cni) -> None:
    g = lab.netns("g1")
    conf = cni.config()
    cni.add(g, "c1", conf)
    err = cni.fails(
        "ADD",
        cni.config(subnet="10.78.0.0/24"),
        container="c2",
        netns=f"/run/netns/{g}",
        ifname="eth1",
    )
    assert err["code"] == 7 and "exists in netplumb as 10.77.0.0/24" in err["msg"]
    cni.delete(g, "c1", conf)


# -- macvlan, delegated IPAM, isolation -------------------------------------------------------


def test_macvlan_mode(lab: Lab, cni: Cni) -> None:
    parent = f"npt{lab.id}p"
    # (no dummy driver on these kernels: a veth pair's end is the parent)
    sh("ip", "-n", lab.host, "link", "add", parent, "type", "veth", "peer", "name", parent + "x")
    sh("ip", "-n", lab.host, "link", "set", parent, "up")
    sh("ip", "-n", lab.host, "link", "set", parent + "x", "up")
    g1, g2 = lab.netns("g1"), lab.netns("g2")
    conf = cni.config(mode="macvlan", master=parent, subnet="192.168.77.0/24")
    out = cni.add(g1, "m1", conf)
    cni.add(g2, "m2", conf)
    link = lab.link(g1, "eth0", details=True)
    assert link is not None and link["linkinfo"]["info_kind"] == "macvlan"
    assert out["interfaces"] == [
        {"name": "eth0", "mac": link["address"], "sandbox": f"/run/netns/{g1}"}
    ]
    assert guest_addrs(lab, g1) == ["192.168.77.2/24"] and guest_addrs(lab, g2) == [
        "192.168.77.3/24"
    ]
    assert lab.ping(g1, "192.168.77.3", tries=3)
    cni.delete(g1, "m1", conf)
    cni.delete(None, "m2", conf)
    assert lab.link(g1, "eth0") is None and lab.link(g2, "eth0") is None
    g3 = lab.netns("g3")
    assert cni.add(g3, "m3", conf)["ips"][0]["address"] == "192.168.77.2/24"  # lease freed
    cni.delete(g3, "m3", conf)


def test_twenty_parallel_adds_on_a_macvlan_pool_get_twenty_addresses(lab: Lab, cni: Cni) -> None:
    """The macvlan pool is one table of the allocator: 20 ADDs at once get 20 different
    addresses, the lowest of the subnet; their DELs leave the table empty."""
    parent = f"npt{lab.id}q"
    sh("ip", "-n", lab.host, "link", "add", parent, "type", "veth", "peer", "name", parent + "x")
    sh("ip", "-n", lab.host, "link", "set", parent, "up")
    conf = cni.config(mode="macvlan", master=parent, subnet="192.168.78.0/24")
    guests = [lab.netns(f"r{i}") for i in range(20)]
    with ThreadPoolExecutor(20) as pool:  # each call is its own process
        outs = list(pool.map(lambda ig: cni.add(ig[1], f"r{ig[0]}", conf), enumerate(guests)))
    got = [out["ips"][0]["address"] for out in outs]
    assert sorted(got) == sorted(f"192.168.78.{n}/24" for n in range(2, 22))
    for g, addr in zip(guests, got, strict=True):
        assert guest_addrs(lab, g) == [addr]
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda ig: cni.delete(ig[1], f"r{ig[0]}", conf), enumerate(guests)))
    table = lab.state / "leases.d" / f"%cni-{cni.net}"
    assert not table.exists() or list(table.iterdir()) == []


def test_delegated_host_local_ipam(lab: Lab, cni: Cni, tmp_path: Path) -> None:
    g = lab.netns("g1")
    data = tmp_path / "host-local"
    conf = cni.config(
        ipam={
            "type": "host-local",
            "dataDir": str(data),
            "ranges": [[{"subnet": "10.77.0.0/24", "rangeStart": "10.77.0.100"}]],
            "routes": [{"dst": "0.0.0.0/0"}],
        }
    )
    out = cni.add(g, "h1", conf)
    assert out["ips"][0]["address"] == "10.77.0.100/24"
    assert guest_addrs(lab, g) == ["10.77.0.100/24"]
    assert lab.default_routes(g) == [("10.77.0.1", "eth0")]
    assert (data / cni.net / "10.77.0.100").exists()
    assert cni.leases() == {"10.77.0.100": "cni:h1:eth0"}  # netplumb's own leases avoid it
    cni.delete(g, "h1", conf)
    assert not (data / cni.net / "10.77.0.100").exists()


def test_delegated_ipam_failure_is_code_103(lab: Lab, cni: Cni) -> None:
    g = lab.netns("g1")
    conf = cni.config(ipam={"type": "no-such-ipam"})
    err = cni.fails("ADD", conf, container="c1", netns=f"/run/netns/{g}")
    assert err["code"] == 103 and err["msg"].startswith('IPAM plugin "no-such-ipam" not found')
    assert cni.records() == []


def test_isolation_blocks_guest_to_guest_traffic(lab: Lab, cni: Cni) -> None:
    g1, g2 = lab.netns("g1"), lab.netns("g2")
    conf = cni.config(isolation=True)
    cni.add(g1, "i1", conf)
    cni.add(g2, "i2", conf)
    assert lab.ping(g1, "10.77.0.1", tries=3)  # the gateway stays reachable
    assert not lab.ping(g1, "10.77.0.3", tries=2)
    ruleset = sh("ip", "netns", "exec", lab.host, "nft", "list", "table", "bridge", "netplumb")
    assert ruleset.stdout.count("npc") == 2  # both veths, in the network's set of ports
    cni.delete(g1, "i1", conf)
    cni.delete(g2, "i2", conf)


def test_no_stdout_noise_and_json_only(cni: Cni) -> None:
    proc = subprocess.run(
        [str(cni.plugin)],
        input="{}",
        capture_output=True,
        text=True,
        env={"CNI_COMMAND": "VERSION"},
        timeout=30,
    )
    assert proc.returncode == 0 and json.loads(proc.stdout)["cniVersion"] == "1.1.0"
    assert socket.gethostname()  # (keeps the import honest: the harness itself uses no mocks)


def test_a_plain_add_and_del_look_up_no_module_along_sys_path(lab: Lab, tmp_path: Path) -> None:
    """The Python launcher's ADD and DEL import only what Python builds in or freezes, what
    it imported before the launcher's first line, and what the modules file holds
    (``cni/modules.py``: netplumb's modules and ``STDLIB``): every other module is a lookup
    along ``sys.path`` (~0.3 ms for the first one). Nor ``os``, frozen but ~1 ms to import
    (``netplumb.lightos``)."""
    import _imp
    import sys

    from netplumb.cni.modules import Finder

    plugin_dir = tmp_path / "cni-bin"
    install_plugin(plugin_dir)
    cni = Cni(lab, plugin_dir, f"npt{lab.id}")
    conf = cni.config()
    g1, g2 = lab.netns("g1"), lab.netns("g2")
    cni.add(g1, "resident", conf)  # the network and its name server
    imported: list[str] = []
    cni.add(g2, "c2", conf, imports=imported)
    cni.delete(g2, "c2", conf, imports=imported)
    cni.delete(g1, "resident", conf)
    startup = subprocess.run(
        [sys.executable, "-S", "-P", "-X", "importtime", "-c", "pass"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    at_start = {ln.split("|")[-1].strip() for ln in startup.splitlines()[1:]}
    fd = os.open(plugin_dir / "netplumb-cni.modules", os.O_RDONLY)
    in_file = set(Finder(fd, "modules").index)
    os.close(fd)
    looked_up = {
        m
        for m in imported
        if m not in at_start
        and m not in in_file
        and m not in sys.builtin_module_names
        and not _imp.is_frozen(m)
    }
    assert "netplumb.cni.add" in imported and "netplumb.cni.teardown" in imported
    assert looked_up == set()
    assert "os" not in imported, "a module on ADD's or DEL's path imports os"
    assert cni.leftovers() == []


def test_agent_fast_path_in_a_namespace_named_by_its_cookie(lab: Lab, tmp_path: Path) -> None:
    """No NETPLUMB_STATE_DIR: the client finds the agent's socket by state/__init__.py's rule, the
    namespace's inode and cookie (``netns-<inode>-<cookie>``), and the call takes the agent's
    path (its NETPLUMB_CNI_DEBUG line says so); the socket is root's alone."""
    import os
    import shutil
    import stat
    import tempfile

    from kernel.cnilab import VENV_PY

    plugin_dir = tmp_path / "cni-bin"
    install_plugin(plugin_dir, client=True)
    root = Path(tempfile.mkdtemp(prefix="npr-", dir="/tmp"))  # short: a socket path is <108
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETPLUMB_", "CNI_"))}
    env["NETPLUMB_STATE_ROOT"] = str(root)
    cni = Cni(lab, plugin_dir, f"npt{lab.id}")
    try:
        agent = lab.popen(
            lab.host, [VENV_PY, "-c", "from netplumb.cni.agent import serve; serve()"], env=env
        )
        ino = os.stat(f"/run/netns/{lab.host}").st_ino
        assert wait_for(lambda: bool(list(root.glob("netns-*/cni-agent.sock"))), 15)
        assert agent.poll() is None
        socks = list(root.glob("netns-*/cni-agent.sock"))
        [sock] = socks
        scope = sock.parent
        assert scope.name.startswith(f"netns-{ino}-") and scope.name != f"netns-{ino}-"
        assert stat.S_IMODE(sock.lstat().st_mode) == 0o600
        assert stat.S_IMODE(scope.stat().st_mode) == 0o700
        lab.state = scope  # the oracle's reads (leftovers) go to the same directory
        g = lab.netns("g1")
        conf = json.dumps(cni.config())

        def call(command: str) -> subprocess.CompletedProcess[str]:
            call_env = {
                **env,
                "NETPLUMB_CNI_DEBUG": "1",
                "CNI_COMMAND": command,
                "CNI_CONTAINERID": "c1",
                "CNI_NETNS": f"/run/netns/{g}",
                "CNI_IFNAME": "eth0",
                "CNI_PATH": str(plugin_dir),
            }
            return subprocess.run(
                ["ip", "netns", "exec", lab.host, str(cni.plugin)],
                input=conf,
                env=call_env,
                capture_output=True,
                text=True,
                timeout=60,
            )

        add = call("ADD")
        assert add.returncode == 0, add.stdout + add.stderr
        assert add.stderr == f"netplumb-cni: agent at {sock}\n"
        assert json.loads(add.stdout)["ips"][0]["address"] == "10.77.0.2/24"
        assert cni.records() == ["c1@eth0"]
        assert guest_addrs(lab, g) == ["10.77.0.2/24"]
        delete = call("DEL")
        assert delete.returncode == 0 and delete.stderr == f"netplumb-cni: agent at {sock}\n"
        assert cni.leftovers() == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
