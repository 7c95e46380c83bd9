"""Names a guest answers to in DNS besides its own: network aliases (pure).

``netplumb run --network-alias NAME`` and a topology service's ``aliases:`` give a guest more
names on its networks, as Docker's ``--network-alias`` does. netplumb's DNS server answers
them, so an alias must be a name DNS can carry: labels of ASCII letters, digits and hyphens,
separated by single dots, each 1 to 63 bytes, 253 bytes in all (RFC 1035's limits on a name in
text form without its final dot).
"""

from __future__ import annotations

from netplumb.errors import InvalidValue

MAX_NAME = 253
MAX_LABEL = 63
_LABEL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
ALIAS_RULE = (
    "labels of ASCII letters, digits and '-' separated by dots, "
    f"each 1-{MAX_LABEL} characters, at most {MAX_NAME} in all"
)


def alias_problem(name: str) -> str | None:
    """Why ``name`` is not a DNS name netplumb can answer, or None when it is one."""
    if not name:
        return "empty"
    if len(name) > MAX_NAME:
        return f"longer than {MAX_NAME} characters"
    for label in name.split("."):
        if not label:
            return "an empty label (a dot at the start or end, or two dots in a row)"
        if len(label) > MAX_LABEL:
            return f"a label longer than {MAX_LABEL} characters"
        if not _LABEL_CHARS.issuperset(label):
            return f"only {ALIAS_RULE}"
    return None


def check_alias(name: str) -> str:
    """``name`` if it is a valid network alias; else InvalidValue, one line."""
    problem = alias_problem(name)
    if problem is not None:
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise InvalidValue(f"invalid network alias {shown!r}: {problem}")
    return name


def check_aliases(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Every alias checked, in order, each once (a repeated one is kept once, as Docker does)."""
    return tuple(dict.fromkeys(check_alias(n) for n in names))
