"""Network aliases (``netplumb run --network-alias``, ``aliases:``): names DNS can carry."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from netplumb.errors import InvalidValue
from netplumb.model.dnsnames import ALIAS_RULE, MAX_LABEL, MAX_NAME, check_alias, check_aliases

LABEL63 = "a" * MAX_LABEL


@pytest.mark.parametrize(
    "name",
    [
        "db",
        "mongo",
        "web-1",
        "Web.Internal",
        "9lives",
        "-x",  # no rule on hyphens' places: a DNS name as RFC 2181 allows, and Docker takes it
        LABEL63,
        ".".join([LABEL63] * 3 + ["a" * 61]),  # 253 characters
    ],
)
def test_good_aliases(name: str) -> None:
    assert check_alias(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("web_1", f"only {ALIAS_RULE}"),
        ("a b", f"only {ALIAS_RULE}"),
        ("café", f"only {ALIAS_RULE}"),
        ("a\nb", f"only {ALIAS_RULE}"),
        ("a/b", f"only {ALIAS_RULE}"),
        ("*.example", f"only {ALIAS_RULE}"),
        (".db", "an empty label (a dot at the start or end, or two dots in a row)"),
        ("db.", "an empty label (a dot at the start or end, or two dots in a row)"),
        ("a..b", "an empty label (a dot at the start or end, or two dots in a row)"),
        (LABEL63 + "a", f"a label longer than {MAX_LABEL} characters"),
        (".".join([LABEL63] * 3 + ["a" * 62]), f"longer than {MAX_NAME} characters"),
    ],
)
def test_bad_aliases_are_one_line(name: str, problem: str) -> None:
    with pytest.raises(InvalidValue) as info:
        check_alias(name)
    text = str(info.value)
    assert text.endswith(f": {problem}")
    assert text.startswith("invalid network alias ")
    assert "\n" not in text


def test_a_long_bad_alias_is_shown_cut() -> None:
    with pytest.raises(InvalidValue, match=r"^invalid network alias 'aaaa[a]*\.\.\.': "):
        check_alias("a" * 300)


def test_repeated_aliases_are_kept_once_in_order() -> None:
    assert check_aliases(["b", "a", "b"]) == ("b", "a")
    with pytest.raises(InvalidValue, match="'x_y'"):
        check_aliases(["ok", "x_y"])


@given(st.text(max_size=300))
@example("-")
@example("a.-.b")
def test_an_accepted_alias_is_a_dns_name(name: str) -> None:
    try:
        check_alias(name)
    except InvalidValue:
        return
    assert 0 < len(name.encode()) <= MAX_NAME
    for label in name.split("."):
        assert 0 < len(label) <= MAX_LABEL
        assert all(c.isascii() and (c.isalnum() or c == "-") for c in label)
