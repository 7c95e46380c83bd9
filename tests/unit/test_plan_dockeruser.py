"""The one decision on DOCKER-USER rules (plan/dockeruser.py): pure, no root."""

from __future__ import annotations

from netplumb.plan.dockeruser import BridgeView, FilterTable, diff, parse_filter, roles, rules_for

# `iptables -S` of a machine running dockerd, with netplumb rules of an earlier run in it.
DOCKER_S = """-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N DOCKER-ISOLATION-STAGE-1
-N DOCKER-ISOLATION-STAGE-2
-N DOCKER-USER
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i br-5f2a1c -o br-5f2a1c -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-USER -i old0 -o old0 -m comment --comment "netplumb:bridge" -j ACCEPT
-A DOCKER-USER -o np0 -m comment --comment "netplumb:network:np0" -j ACCEPT
-A DOCKER-USER -i np0 -m comment --comment "netplumb:network:np0" -j ACCEPT
-A DOCKER-USER -i np0 -m comment --comment "netplumb:network:np0" -j ACCEPT
-A DOCKER-USER -i eth9 -m comment --comment "a user's own rule" -j ACCEPT
-A DOCKER-USER -j RETURN
"""


def test_parse_reads_presence_ours_and_dockers_bridges() -> None:
    table = parse_filter(DOCKER_S, ok=True)
    assert table.present
    assert table.ours == (
        (
            "-i",
            "old0",
            "-o",
            "old0",
            "-m",
            "comment",
            "--comment",
            "netplumb:bridge",
            "-j",
            "ACCEPT",
        ),
        *rules_for("np0", "network")[::-1],
        rules_for("np0", "network")[0],
    )
    # negated names are not Docker's bridges; a user's rule in DOCKER-USER is not Docker's
    assert table.docker_bridges == {"docker0", "br-5f2a1c"}


def test_no_chain_no_firewall() -> None:
    assert not parse_filter("-P INPUT ACCEPT\n-P FORWARD ACCEPT\n", ok=True).present
    assert not parse_filter("", ok=False).present


def test_roles_for_every_kind_of_bridge() -> None:
    views = [
        BridgeView("np0", "netplumb:network:netplumb", False),
        BridgeView("br1", "netplumb:network:demo", True),
        BridgeView("brpw", "netplumb:bridge", True),
        BridgeView("br-np-lan0", "netplumb:lan:np-lan0", False),
        BridgeView("brown", None, True),  # someone else's, with netplumb's port: adopted
        BridgeView("bridle", "their alias", False),  # someone else's, not used
        BridgeView("docker0", None, True),  # Docker's own, even with netplumb's port
    ]
    assert roles(views, frozenset({"docker0"})) == {
        "np0": "network",
        "br1": "network",
        "brpw": "bridge",
        "br-np-lan0": "bridge",
        "brown": "bridge",
    }


def test_diff_inserts_missing_and_deletes_stale_and_duplicates() -> None:
    table = parse_filter(DOCKER_S, ok=True)
    insert, delete = diff(table, {"np0": "network", "br-np-lan0": "bridge"})
    assert insert == rules_for("br-np-lan0", "bridge")
    assert delete == [table.ours[0], table.ours[3]]  # old0's, and np0's second -i copy


def test_diff_is_empty_when_in_step_and_without_dockers_firewall() -> None:
    wanted = {"np0": "network"}
    table = FilterTable(True, tuple(rules_for("np0", "network")), frozenset())
    assert diff(table, wanted) == ([], [])
    assert diff(FilterTable(False, (), frozenset()), wanted) == ([], [])


def test_rules_print_back_as_iptables_prints_them() -> None:
    import shlex

    line = '-A DOCKER-USER -i br1 -o br1 -m comment --comment "netplumb:bridge" -j ACCEPT'
    assert tuple(shlex.split(line)[2:]) == rules_for("br1", "bridge")[0]
