"""What one more published port costs in the kernel, five ways, with 0 and with N ports existing.

The measurement behind the choice in ``src/netplumb/ops/portrules.py`` (DNAT map elements added over
nfnetlink): the whole ruleset rewritten with ``nft -f`` (netplumb before issue 13), a rule per
port with ``nft add rule``, a map element with ``nft add element``, the same through
libnftables in-process (ctypes), and the element over nfnetlink (``kernel/nftset.py``). Only the
kernel side: no records, no port choice (``bench/ports.py`` times the whole publication).

Runs in a throwaway network namespace of its own (``unshare -n``, gone with the process).
Usage: .venv/bin/python bench/nft_alternatives.py [N]
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from netplumb.kernel import nftset  # noqa: E402
from netplumb.nft.render import (  # noqa: E402
    PUBLISH_RULES,
    NetSpec,
    Publication,
    element,
    render,
    transaction,
)

ROUNDS = 50
NET = NetSpec("netplumb", "np0", "10.89.0.0/16", 4, False)


def pub(port: int) -> Publication:
    return Publication("host:srv", 4, None, port, "10.89.0.2", 80, "tcp")


def nft(text: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=text, text=True, check=True)


def rules_text(ports: list[int]) -> str:
    """The shape before: one DNAT rule per port in the chain ``publish``."""
    rules = "".join(
        f'\t\tmeta nfproto ipv4 tcp dport {p} dnat ip to 10.89.0.2:80 comment "netplumb:host:srv"\n'
        for p in ports
    )
    fixed = "".join(line + "\n" for line in PUBLISH_RULES)
    return render([NET], [], []).replace(
        "\tchain publish {\n" + fixed, "\tchain publish {\n" + rules
    )


def measure(label: str, n: int, setup: Callable[[int], None], op: Callable[[int], None]) -> None:
    out = []
    for existing in (0, n):
        setup(existing)
        t = time.perf_counter()
        for i in range(ROUNDS):
            op(30000 + i)
        out.append((time.perf_counter() - t) / ROUNDS * 1000)
    print(f"{label:46} {out[0]:8.2f} ms at 0 {out[1]:8.2f} ms at {n}")


def main() -> int:
    if os.environ.get("NPB_ALT_INSIDE") != "1":  # into a namespace of our own, gone with us
        env = {**os.environ, "NPB_ALT_INSIDE": "1"}
        argv = ["unshare", "-n", sys.executable, *sys.argv]
        return subprocess.run(argv, env=env, check=False).returncode
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    current: list[int] = []

    def setup_rewrite(existing: int) -> None:
        current[:] = range(20000, 20000 + existing)
        nft(transaction(rules_text(current)))

    def rewrite(port: int) -> None:
        current.append(port)
        nft(transaction(rules_text(current)))

    measure("whole ruleset rewritten with nft -f (before)", n, setup_rewrite, rewrite)

    def setup_rules(existing: int) -> None:
        nft(transaction(rules_text(list(range(20000, 20000 + existing)))))

    def add_rule(port: int) -> None:
        argv = ["nft", "add", "rule", "inet", "netplumb", "publish", "meta", "nfproto", "ipv4"]
        argv += ["tcp", "dport", str(port), "dnat", "ip", "to", "10.89.0.2:80"]
        subprocess.run([*argv, "comment", '"netplumb:host:srv"'], check=True)

    measure("nft add rule, a rule per port", n, setup_rules, add_rule)

    def setup_maps(existing: int) -> None:
        nft(transaction(render([NET], [pub(p) for p in range(20000, 20000 + existing)], [])))

    def elem_text(port: int) -> str:
        return f'{{ tcp . {port} comment "netplumb:host:srv" : 10.89.0.2 . 80 }}'

    def add_element(port: int) -> None:
        argv = ["nft", "add", "element", "inet", "netplumb", "publish4", elem_text(port)]
        subprocess.run(argv, check=True)

    measure("nft add element into a DNAT map", n, setup_maps, add_element)

    lib = ctypes.CDLL("libnftables.so.1")
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    ctx = lib.nft_ctx_new(0)

    def add_libnftables(port: int) -> None:
        cmd = f"add element inet netplumb publish4 {elem_text(port)}"
        if lib.nft_run_cmd_from_buffer(ctx, cmd.encode()) != 0:
            raise SystemExit(f"libnftables refused: {cmd}")

    measure("the same through libnftables (ctypes)", n, setup_maps, add_libnftables)

    def add_netlink(port: int) -> None:
        nftset.change("netplumb", [element(pub(port))], [])

    measure("the element over nfnetlink (kernel/nftset.py)", n, setup_maps, add_netlink)
    return 0


if __name__ == "__main__":
    sys.exit(main())
