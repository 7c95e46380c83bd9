"""The ``nft -f`` text of netplumb's tables as a whole (pure): the transaction that replaces
them, and counts that tell a rendered ruleset from one someone flushed (``nft/render.py``
renders the text)."""

from __future__ import annotations

TABLE = "netplumb"


def transaction(text: str) -> str:
    """``nft -f`` input that replaces netplumb's tables in one transaction, or removes them.

    ``table X`` before ``delete table X`` makes the delete valid whether or not X exists yet.
    """
    head = [f"table inet {TABLE}", f"delete table inet {TABLE}"]
    head += [f"table bridge {TABLE}", f"delete table bridge {TABLE}"]
    return "\n".join(head) + "\n" + text


def rule_count(text: str) -> int:
    """How many rules the rendered text holds (to notice a ruleset someone flushed): the lines
    of its chains, chain types left out."""
    count, in_chain = 0, False
    for line in text.splitlines():
        if line.startswith("\tchain "):
            in_chain = True
        elif line == "\t}":
            in_chain = False
        elif in_chain and not line.lstrip().startswith("type "):
            count += 1
    return count


def element_count(text: str) -> int:
    """How many elements the maps of the rendered text hold."""
    return sum(1 for line in text.splitlines() if line.startswith("\t\t\t"))
