"""Applying netplumb's nftables text with ``nft -f`` (one atomic transaction) and reading back
what the kernel holds."""

from __future__ import annotations

import json
import subprocess

from netplumb.errors import KernelError, NetplumbError
from netplumb.nft.render import TABLE, transaction


def _nft(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["nft", *args], input=stdin, capture_output=True, text=True, timeout=30, check=False
        )
    except FileNotFoundError:
        raise NetplumbError("nft is not installed (Debian package nftables)") from None


def apply_text(text: str) -> None:
    """Replace netplumb's tables with ``text`` (or remove them when it is empty), atomically."""
    proc = _nft(["-f", "-"], transaction(text))
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["failed"])[0]
        raise KernelError(f"cannot apply netplumb's nftables ruleset: {detail}", 22)


def rules_in_kernel() -> tuple[int, int] | None:
    """How many rules and set or map elements netplumb's tables hold now; None when its inet
    table does not exist."""
    proc = _nft(["-j", "list", "table", "inet", TABLE])
    if proc.returncode != 0:
        return None
    items = json.loads(proc.stdout).get("nftables", [])
    bridge = _nft(["-j", "list", "table", "bridge", TABLE])
    if bridge.returncode == 0:
        items += json.loads(bridge.stdout).get("nftables", [])
    rules = sum(1 for item in items if "rule" in item)
    sets = [item.get("map") or item.get("set") or {} for item in items]
    elements = sum(len(found.get("elem", [])) for found in sets)
    return rules, elements
