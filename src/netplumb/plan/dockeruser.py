"""Which accept rules netplumb wants in Docker's ``DOCKER-USER`` chain (pure).

dockerd sets the iptables FORWARD policy to DROP and turns on ``bridge-nf-call-iptables``, so
even traffic *bridged* between two ports of one bridge crosses FORWARD and is dropped. Docker
documents ``DOCKER-USER`` as the place for a user's own rules. This module is the one place
that decides which of netplumb's bridges get rules there, for every feature alike:

- a bridge of a netplumb network (alias ``netplumb:network:NAME``: the default network,
  ``network create``, topology files, CNI bridge mode) is routed as well as bridged
  (published ports, egress through the gateway): ``-i BR`` and ``-o BR`` are accepted, marked
  ``netplumb:network:BR``. Direct access to guests from outside stays impossible: netplumb's
  own raw-prerouting guard drops packets to a network's subnet that do not come from its
  bridge, before this chain is reached;
- any other bridge netplumb created (``pipework``/``attach``: ``netplumb:bridge``; the LAN
  bridge of ``lan bridge``: ``netplumb:lan:IF``) or adopted (someone else's bridge with a
  port netplumb attached, an interface whose alias is a netplumb owner mark) is bridged only:
  ``-i BR -o BR`` is accepted, marked ``netplumb:bridge``;
- a bridge whose forwarding Docker manages itself (one that Docker's own rules name, such as
  ``docker0``) gets nothing: Docker's ``--icc`` decides there, not netplumb.

The kernel layer (``kernel/dockeruser.py``) reads the links and the filter table, and applies
the difference this module computes: missing rules are inserted, rules of bridges that are
gone (and second copies) are deleted. Rules not marked ``netplumb:`` are never touched.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

CHAIN = "DOCKER-USER"
MARK = "netplumb:"
BRIDGE_COMMENT = "netplumb:bridge"
NETWORK_COMMENT = "netplumb:network:"
NETWORK_ALIAS = "netplumb:network:"
BRIDGE_ALIASES = ("netplumb:bridge", "netplumb:lan:")

Rule = tuple[str, ...]  # a rule of DOCKER-USER as ``iptables -S`` prints it, after "-A CHAIN"


@dataclass(frozen=True)
class BridgeView:
    """What the decision needs of one bridge: its name, its alias, whether netplumb has a port
    on it (an interface marked with a netplumb owner)."""

    name: str
    alias: str | None
    netplumb_port: bool


@dataclass(frozen=True)
class FilterTable:
    """What the decision needs of one family's iptables filter table."""

    present: bool  # a DOCKER-USER chain exists: Docker's firewall is there
    ours: tuple[Rule, ...]  # netplumb's rules in DOCKER-USER, in order, duplicates kept
    docker_bridges: frozenset[str]  # interfaces named by rules of other chains (Docker's)


def rules_for(bridge: str, role: str) -> list[Rule]:
    """The rules of one bridge, exactly as ``iptables -S`` prints them back."""
    if role == "network":
        tag = ("-m", "comment", "--comment", f"{NETWORK_COMMENT}{bridge}", "-j", "ACCEPT")
        return [("-i", bridge, *tag), ("-o", bridge, *tag)]
    return [
        ("-i", bridge, "-o", bridge, "-m", "comment", "--comment", BRIDGE_COMMENT, "-j", "ACCEPT")
    ]


def roles(bridges: Iterable[BridgeView], docker_bridges: frozenset[str]) -> dict[str, str]:
    """bridge name -> "network" or "bridge", for every bridge that gets rules."""
    out: dict[str, str] = {}
    for br in bridges:
        alias = br.alias or ""
        adopted = br.netplumb_port and br.name not in docker_bridges
        if alias.startswith(NETWORK_ALIAS):
            out[br.name] = "network"
        elif alias.startswith(BRIDGE_ALIASES) or adopted:
            out[br.name] = "bridge"
    return out


def parse_filter(text: str, ok: bool) -> FilterTable:
    """Read ``iptables -S`` (the whole filter table; ``ok``: the command succeeded)."""
    if not ok:
        return FilterTable(False, (), frozenset())
    present = False
    ours: list[Rule] = []
    named: set[str] = set()
    for line in text.splitlines():
        if line == f"-N {CHAIN}":
            present = True
            continue
        if not line.startswith("-A "):
            continue
        words = shlex.split(line)
        chain, rule = words[1], tuple(words[2:])
        comment = _option(rule, "--comment")
        if comment is not None and comment.startswith(MARK):
            if chain == CHAIN:
                ours.append(rule)
            continue
        for flag in ("-i", "-o"):
            ifname = _option(rule, flag)
            if ifname is not None and chain != CHAIN:
                named.add(ifname)
    return FilterTable(present, tuple(ours), frozenset(named))


def _option(rule: Rule, flag: str) -> str | None:
    for i, word in enumerate(rule[:-1]):
        if word == flag and (i == 0 or rule[i - 1] != "!"):
            return rule[i + 1]
    return None


def diff(table: FilterTable, wanted: dict[str, str]) -> tuple[list[Rule], list[Rule]]:
    """(rules to insert, rules to delete) to make netplumb's part of DOCKER-USER equal to what
    ``wanted`` says. Nothing when Docker's firewall is absent (no DOCKER-USER chain)."""
    if not table.present:
        return [], []
    desired = [r for br in sorted(wanted) for r in rules_for(br, wanted[br])]
    seen: set[Rule] = set()
    delete: list[Rule] = []
    for rule in table.ours:
        if rule in seen or rule not in desired:
            delete.append(rule)  # a bridge that is gone, or a second copy
        seen.add(rule)
    insert = [r for r in desired if r not in seen]
    return insert, delete
