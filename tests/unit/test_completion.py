"""Shell completion's candidates (pure walk of the real parser, names from a state directory)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from netplumb import state
from netplumb.cli.commands import build_parser
from netplumb.cli.completion import candidates, script


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("NETPLUMB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(state, "_root", None)
    for name in ("mongodb", "webserver1", "webserver2"):
        state.write({"name": name}, "hosts", name)
    state.write({"name": "cache"}, "docker", "cache")
    state.write({"name": "demo"}, "networks", "demo")
    state.write({"name": "birthdays"}, "projects", "birthdays")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "birthdays.yaml").write_text("")
    (tmp_path / "work" / "notes.txt").write_text("")
    monkeypatch.chdir(tmp_path / "work")
    yield
    monkeypatch.setattr(state, "_root", None)


def complete(line: str) -> list[str]:
    """Candidates for the last word of ``line`` (a trailing space: an empty last word)."""
    words = line.split(" ")
    return candidates(build_parser(), words, len(words) - 1)


@pytest.mark.usefixtures("records")
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("netplumb ne", ["network"]),
        ("netplumb network ", ["create", "ls", "rm"]),
        ("netplumb network rm ", ["demo"]),
        ("netplumb logs web", ["webserver1", "webserver2"]),
        ("netplumb port ", ["cache", "mongodb", "webserver1", "webserver2"]),
        ("netplumb rm -f m", ["mongodb"]),
        ("netplumb run --network ", ["demo"]),
        ("netplumb run --n", ["--name", "--network", "--network-alias", "--no-link-env"]),
        ("netplumb run --name x --link w", ["webserver1", "webserver2"]),
        ("netplumb down -p ", ["birthdays"]),
        ("netplumb up -f ", ["birthdays.yaml"]),
        ("netplumb demo --runtime ", ["docker", "host"]),
        ("netplumb completion ", ["bash", "zsh"]),
        ("netplumb lan attach webserver", ["webserver1", "webserver2"]),
        ("netplumb exec mongodb -- ", []),
        ("netplumb __", []),
    ],
)
def test_candidates(line: str, expected: list[str]) -> None:
    assert sorted(complete(line)) == expected


def test_interfaces_for_lan_bridge() -> None:
    assert "lo" in complete("netplumb lan bridge ")


def test_scripts_call_back_into_netplumb() -> None:
    assert 'netplumb __complete "$COMP_CWORD" "${COMP_WORDS[@]}"' in script("bash")
    assert "compdef _netplumb netplumb" in script("zsh")
