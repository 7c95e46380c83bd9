"""Plans for ``netplumb up`` and ``down`` (pure): golden texts for the article's system and
table tests for what changes when the file or the running system does.

Golden files are rewritten with ``NETPLUMB_UPDATE_GOLDEN=1 pytest tests/unit/test_project_plan.py``;
read the diff before committing it.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from netplumb.errors import Conflict
from netplumb.model.network import make_network
from netplumb.plan.observed import Guest, Observed
from netplumb.plan.project import (
    CreateNetwork,
    Keep,
    RemoveGuest,
    RemoveNetwork,
    StartGuest,
    WaitReady,
    changes,
    digest,
    plan_down,
    plan_up,
    render,
)
from netplumb.topofile.load import load, loads
from netplumb.topofile.model import Topology

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("NETPLUMB_UPDATE_GOLDEN"))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text()


def article() -> Topology:
    return load(ROOT / "examples" / "birthdays.yaml")


def running(topo: Topology, **overrides: Guest | None) -> Observed:
    """Everything of ``topo`` up and matching, except the guests overridden (None: missing);
    each guest holds, as its records say, one address and veth per network and its ports."""
    guests = {}
    for i, r in enumerate(topo.replicas, 2):
        owner = f"host:{r.name}" if r.runtime == "host" else f"docker:{i:012x}"
        addresses = tuple((a.network, f"10.89.0.{i}") for a in r.networks)
        ifaces = tuple((a.ifname, f"v{a.ifname}pl{100 + i}") for a in r.networks)
        ifaces += tuple((x.ifname, f"v{x.ifname}pl{100 + i}") for x in r.interfaces)
        guests[r.name] = Guest(
            r.name, r.runtime, topo.name, digest(r), True, owner, addresses, ifaces, len(r.ports)
        )
    for name, g in overrides.items():
        if g is None:
            guests.pop(name, None)
        else:
            guests[name] = g
    default = make_network("netplumb", "np0", "10.89.0.0/16", subnet6="fd89:6e70:6c62::/64")
    leases: dict[str, set[str]] = {}
    for g in guests.values():
        for net, ip in g.addresses:
            leases.setdefault(net, set()).add(ip)
    return Observed(
        networks={"netplumb": default, **{n.name: n for n in topo.networks}},
        guests=guests,
        recorded=tuple(n for n in topo.order if n in guests),
        recorded_runtimes={r.name: r.runtime for r in topo.replicas},
        owned_networks=tuple(n.name for n in topo.networks),
        leases={net: frozenset(ips) for net, ips in leases.items()},
    )


def test_first_up_of_the_article_golden() -> None:
    check_golden("plan_up_birthdays.txt", render(plan_up(article(), Observed())))


def test_first_up_of_the_docker_article_golden() -> None:
    topo = load(ROOT / "examples" / "birthdays-docker.yaml")
    check_golden("plan_up_birthdays_docker.txt", render(plan_up(topo, Observed())))


def test_down_of_the_article_golden() -> None:
    check_golden("plan_down_birthdays.txt", render(plan_down(running(article()))))


def test_the_database_is_waited_for_once_before_the_first_web_server() -> None:
    actions = plan_up(article(), Observed())
    waits = [a for a in actions if isinstance(a, WaitReady)]
    assert [(w.name, w.before, str(w.condition)) for w in waits] == [
        ("mongodb", "webserver1", "tcp:27017")
    ]
    starts = [a.replica.name for a in actions if isinstance(a, StartGuest)]
    assert starts == ["mongodb", "webserver1", "webserver2", "webserver3"]
    order = [str(a) for a in actions]
    assert order.index("start mongodb (host)") < order.index(str(waits[0]))
    assert order.index(str(waits[0])) < order.index("start webserver1 (host)")
    assert isinstance(actions[0], CreateNetwork) and actions[0].network.name == "demo"


def test_a_second_up_changes_nothing() -> None:
    topo = article()
    actions = plan_up(topo, running(topo))
    assert changes(actions) == []
    assert all(isinstance(a, Keep) for a in actions)
    assert render(actions) == "nothing to do: everything is up to date\n"


def test_a_changed_port_replaces_only_that_service() -> None:
    before = article()
    text = (ROOT / "examples" / "birthdays.yaml").read_text()
    after = loads(text.replace("8080-8082:8080", "9080-9082:8080"), "birthdays.yaml")
    actions = changes(plan_up(after, running(before)))
    removed = [a.name for a in actions if isinstance(a, RemoveGuest)]
    started = [a.replica.name for a in actions if isinstance(a, StartGuest)]
    assert removed == ["webserver3", "webserver2", "webserver1"]
    assert started == ["webserver1", "webserver2", "webserver3"]
    assert all(a.reason == "changed" for a in actions if isinstance(a, RemoveGuest))


def test_a_replaced_link_target_replaces_the_hosts_linking_to_it() -> None:
    topo = article()
    db = topo.replica("mongodb")
    stopped = Guest("mongodb", "host", topo.name, digest(db), False)
    actions = changes(plan_up(topo, running(topo, mongodb=stopped)))
    reasons = {a.name: a.reason for a in actions if isinstance(a, RemoveGuest)}
    assert reasons == {
        "mongodb": "not running",
        "webserver1": "its link target mongodb is replaced",
        "webserver2": "its link target mongodb is replaced",
        "webserver3": "its link target mongodb is replaced",
    }


def test_one_missing_replica_is_started_alone() -> None:
    topo = article()
    actions = changes(plan_up(topo, running(topo, webserver2=None)))
    assert [str(a) for a in actions] == [
        "wait for mongodb: tcp:27017 (up to 60 s)",
        "start webserver2 (host)",
    ]


def test_a_service_that_left_the_file_is_removed_first() -> None:
    topo = article()
    obs = running(topo)
    obs = Observed(
        obs.networks,
        {**obs.guests, "old": Guest("old", "docker", topo.name, "x", True)},
        ("old", *obs.recorded),
        {**obs.recorded_runtimes, "old": "docker"},
        obs.owned_networks,
    )
    actions = changes(plan_up(topo, obs))
    assert actions == [RemoveGuest("old", "docker", "not in the file any more")]


def test_a_network_that_left_the_file_is_removed_last() -> None:
    topo = article()
    gone = make_network("gone", "br-gone", "10.77.0.0/24")
    obs = running(topo)
    obs = Observed(
        {**obs.networks, "gone": gone},
        obs.guests,
        obs.recorded,
        obs.recorded_runtimes,
        ("gone", *obs.owned_networks),
    )
    assert changes(plan_up(topo, obs)) == [RemoveNetwork("gone")]


def test_a_runtime_change_replaces_the_guest() -> None:
    topo = article()
    r = topo.replica("webserver1")
    obs = running(topo, webserver1=Guest("webserver1", "docker", topo.name, digest(r), True))
    actions = changes(plan_up(topo, obs))
    assert RemoveGuest("webserver1", "docker", "runtime changed to host") in actions


@pytest.mark.parametrize(
    ("owner", "message"),
    [
        (
            None,
            'Conflict. The name "webserver2" is already in use by another command (host): '
            "remove it first or rename the service",
        ),
        (
            "shop",
            'Conflict. The name "webserver2" is already in use by project shop (host): '
            "remove it first or rename the service",
        ),
    ],
)
def test_a_name_held_by_someone_else_is_refused(owner: str | None, message: str) -> None:
    topo = article()
    obs = Observed(guests={"webserver2": Guest("webserver2", "host", owner, None, True)})
    with pytest.raises(Conflict) as info:
        plan_up(topo, obs)
    assert str(info.value) == message


def test_a_network_defined_otherwise_is_refused() -> None:
    topo = article()
    other = make_network("demo", "br9", "10.9.0.0/16")
    with pytest.raises(Conflict) as info:
        plan_up(topo, Observed(networks={"demo": other}))
    assert str(info.value) == (
        "network demo exists with another definition (10.9.0.0/16 on br9); take down what "
        "uses it, or rename the network in the file"
    )


def test_down_removes_only_what_exists_and_never_the_default_network() -> None:
    topo = article()
    obs = running(topo, webserver2=None)
    obs = Observed(
        obs.networks,
        obs.guests,
        (*obs.recorded, "webserver2"),
        obs.recorded_runtimes,
        ("netplumb", *obs.owned_networks),
    )
    assert [str(a) for a in plan_down(obs)] == [
        "remove webserver3 (down)",
        "remove webserver1 (down)",
        "remove mongodb (down)",
        "remove network demo",
    ]


def test_digest_follows_every_resolved_field() -> None:
    base = textwrap.dedent(
        """
        services:
          web:
            command: sleep 1
        """
    )
    one = loads(base, "p.yaml").replica("web")
    assert digest(one) == digest(loads(base, "p.yaml").replica("web"))
    for changed in (
        base.replace("sleep 1", "sleep 2"),
        base + "    environment: {A: b}\n",
        base + "    expose: [80]\n",
        base + "    hostname: other\n",
        base + "    networks: {netplumb: {ipv4_address: 10.89.0.9}}\n",
    ):
        assert digest(loads(changed, "p.yaml").replica("web")) != digest(one), changed


def test_dry_run_steps_come_from_the_attach_planner() -> None:
    """Each guest's interface lines are exactly what ``netplumb attach`` would plan."""
    from netplumb.model.addresses import AddressSpec
    from netplumb.model.attach import AttachRequest
    from netplumb.model.ip import IP, Interface
    from netplumb.plan.attach import HostLink, plan_attach
    from netplumb.plan.attach import Observed as AttachObserved

    topo = article()
    start = next(a for a in plan_up(topo, Observed()) if isinstance(a, StartGuest))
    gw, gw6 = IP.parse("10.89.0.1"), IP.parse("fd89:6e70:6c62::1")
    req = AttachRequest(
        "mongodb",
        "np0",
        "eth0",
        addresses=(
            AddressSpec(Interface(IP.parse("10.89.0.2"), 16), gw),
            AddressSpec(Interface(IP.parse("fd89:6e70:6c62::2"), 64), gw6),
        ),
    )
    attach = plan_attach(
        req,
        AttachObserved(HostLink("np0", True, 1500)),
        owner="host:mongodb",
        guest_short="PID",
        guest_name="mongodb",
    )
    lines = [str(s) for s in start.steps]
    first = lines.index(str(attach[0]))
    assert lines[first : first + len(attach)] == [str(a) for a in attach]


def test_a_replaced_guest_gets_back_the_address_its_removal_frees() -> None:
    before = article()
    text = (ROOT / "examples" / "birthdays.yaml").read_text()
    after = loads(text.replace("8080-8082:8080", "9080-9082:8080"), "birthdays.yaml")
    obs = running(before)
    actions = changes(plan_up(after, obs))
    web1 = next(a for a in actions if isinstance(a, StartGuest) and a.replica.name == "webserver1")
    had = obs.guests["webserver1"].addresses[0][1]
    assert f"lease {had} in network netplumb (the lowest free one now)" in map(str, web1.steps)
    assert "nft: publish :9080 to " in "\n".join(map(str, web1.steps))
    db = obs.guests["mongodb"].addresses[0][1]  # kept: its link variables name its address
    assert f"GUEST: env MONGO_PORT_27017_TCP_ADDR={db}" in map(str, web1.steps)


def test_the_topology_guide_shows_the_golden_plan() -> None:
    """docs/topology.md's ``up --dry-run`` excerpt is the start of the golden plan."""
    doc = (ROOT / "docs" / "topology.md").read_text()
    shown = doc.split("--dry-run\nproject birthdays\n", 1)[1].split("  5. start webserver2")[0]
    golden = (GOLDEN / "plan_up_birthdays.txt").read_text()
    assert shown and golden.startswith(shown)


def test_what_apply_would_refuse_ends_the_guests_steps() -> None:
    text = textwrap.dedent(
        """
        services:
          web:
            command: sleep 1
            interfaces:
              - host_if: eth9
                address: 10.9.0.2/24
        """
    )
    topo = loads(text, "p.yaml")
    start = next(a for a in plan_up(topo, Observed()) if isinstance(a, StartGuest))
    assert str(start.steps[-1]) == (
        'refused: host interface "eth9" does not exist (only missing names starting with "br" '
        "are created as bridges)"
    )
    quiet = next(a for a in plan_up(topo, Observed(steps=False)) if isinstance(a, StartGuest))
    assert quiet.steps == ()  # up plans the fine-grained steps only to print them
