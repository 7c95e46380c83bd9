"""An example for the help of every nested subcommand (``netplumb network create --help``...).

Top-level commands carry theirs where they are defined; ``attach_examples`` fills in the
nested ones, so that every ``--help`` ends with one (a unit test checks that none is missing).
"""

from __future__ import annotations

import argparse

NESTED = {
    "link env": "netplumb link env mongodb mongo --from webserver1",
    "network create": "netplumb network create demo --bridge br1 --subnet 10.2.0.0/16",
    "network ls": "netplumb network ls",
    "network rm": "netplumb network rm demo",
    "lan bridge": "netplumb lan bridge eth1 --timeout 60",
    "lan confirm": "netplumb lan confirm",
    "lan unbridge": "netplumb lan unbridge",
    "lan status": "netplumb lan status --json",
    "lan macvlan": "netplumb lan macvlan eth1 --shim",
    "lan pool": "netplumb lan pool set 192.168.1.0/24 --range 192.168.1.200-192.168.1.239",
    "lan pool set": (
        "netplumb lan pool set 192.168.1.0/24 --range 192.168.1.200-192.168.1.239 "
        "--dhcp-range 192.168.1.100-192.168.1.150"
    ),
    "lan pool show": "netplumb lan pool show",
    "lan pool rm": "netplumb lan pool rm",
    "lan attach": "netplumb lan attach webserver1 -i eth2",
    "lan detach": "netplumb lan detach webserver1 eth2",
    "lan probe": "netplumb lan probe 192.168.1.77",
    "cni install": "netplumb cni install --dir /opt/cni/bin --conf-dir /etc/cni/net.d",
    "cni agent": "netplumb cni agent &",
}


def attach_examples(root: argparse.ArgumentParser) -> None:
    from netplumb.cli.parser import walk

    for path, parser in walk(root):
        example = NESTED.get(" ".join(path))
        if example is not None and not parser.epilog:
            parser.epilog = f"example:\n  {example}"
            parser.formatter_class = argparse.RawDescriptionHelpFormatter
