"""The kernel's announcements of deletions in netplumb's nftables tables
(``kernel/nftevents.py``), which ``netplumb watch`` repairs on at once.

A listener runs in a throwaway namespace (a child Python process) while ``nft`` changes the
namespace's ruleset: ``nft flush ruleset`` and a deleted chain or rule of netplumb's table are
seen; an element deleted (an unpublish), another table deleted, or a change in another
namespace are not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netns_helpers import NetnsFactory, run

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
TABLES = """
table inet netplumb {
	map publish4 {
		type inet_proto . inet_service : ipv4_addr . inet_service
		elements = { tcp . 8080 : 10.89.0.2 . 80 }
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		dnat ip to meta l4proto . th dport map @publish4
	}
	chain extra {
		counter
	}
}
table bridge netplumb {
	chain forward {
		type filter hook forward priority 0;
	}
}
table inet other {
	chain c {
		counter
	}
}
"""

# A listener: one line per step on stdin, then "yes" or "no" (deleted or not), when the
# kernel's events of the step are in (nft has exited: its transaction was committed).
LISTENER = """
import select, sys
from netplumb.kernel.nftevents import TableEvents
events = TableEvents("netplumb")
print("ready", flush=True)
for line in sys.stdin:
    select.select([events], [], [], 0.2)
    print("yes" if events.deleted() else "no", flush=True)
"""


@pytest.fixture
def ns(netns: NetnsFactory) -> str:
    name = netns("nftev")
    run(["nft", "-f", "-"], netns=name, input=TABLES)
    return name


def test_deletions_of_netplumbs_tables_are_announced(ns: str, netns: NetnsFactory) -> None:
    other_ns = netns("nftev2")
    run(["nft", "-f", "-"], netns=other_ns, input=TABLES)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    listener = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert listener.stdin is not None and listener.stdout is not None
    try:
        assert listener.stdout.readline() == "ready\n"

        def step(*nft: str, netns: str = ns) -> str:
            run(["nft", *nft], netns=netns)
            assert listener.stdin is not None and listener.stdout is not None
            listener.stdin.write("next\n")
            listener.stdin.flush()
            return listener.stdout.readline().strip()

        assert step("delete", "element", "inet", "netplumb", "publish4", "{ tcp . 8080 }") == "no"
        assert step("delete", "table", "inet", "other") == "no"
        assert step("flush", "ruleset", netns=other_ns) == "no"  # another namespace's
        assert step("flush", "chain", "inet", "netplumb", "extra") == "yes"  # its rule
        assert step("delete", "chain", "inet", "netplumb", "extra") == "yes"
        assert step("list", "ruleset") == "no"
        assert step("flush", "ruleset") == "yes"
    finally:
        listener.kill()
        listener.wait()
