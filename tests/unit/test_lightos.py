"""``netplumb.lightos``: each function is its ``os`` namesake, with ``os`` imported or not."""

from __future__ import annotations

import os
import posixpath
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplumb import lightos

SRC = str(Path(lightos.__file__).resolve().parents[1])
PART = st.text(alphabet="ab/.", max_size=8)


@given(PART, st.lists(PART, max_size=4))
def test_join_is_os_path_join(first: str, rest: list[str]) -> None:
    assert lightos.join(first, *rest) == posixpath.join(first, *rest)


@given(PART)
def test_dirname_is_os_path_dirname(path: str) -> None:
    assert lightos.dirname(path) == posixpath.dirname(path)


def test_exists_and_isdir(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for p in (tmp_path, f, tmp_path / "nowhere", tmp_path / "dangling", "a\0b", ""):
        assert (lightos.exists(str(p)), lightos.isdir(str(p))) == (
            os.path.exists(p),
            os.path.isdir(p),
        ), p


def test_getenv_follows_os_environ_once_os_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPT_LIGHTOS", "set after start")
    assert lightos.getenv("NPT_LIGHTOS") == "set after start"
    assert lightos.environ()["NPT_LIGHTOS"] == "set after start"
    monkeypatch.delenv("NPT_LIGHTOS")
    assert lightos.getenv("NPT_LIGHTOS") == ""
    assert lightos.getenv("NPT_LIGHTOS", "default") == "default"


def test_without_os_the_environment_the_process_started_with() -> None:
    code = (
        f"import sys; sys.path.append({SRC!r})\n"
        "from netplumb import lightos\n"
        "assert 'os' not in sys.modules, 'lightos imported os'\n"
        "print(repr(lightos.getenv('NPT_A')), repr(lightos.getenv('NPT_B', 'd')),"
        " repr(lightos.environ()['NPT_A']))\n"
    )
    env: dict[bytes, bytes] = {
        b"PATH": b"/usr/bin:/bin",
        b"PYTHONIOENCODING": b"utf-8:backslashreplace",
        b"NPT_A": "caf\u00e9 \udcff".encode("utf-8", "surrogateescape"),
    }
    out = subprocess.run(
        [sys.executable, "-S", "-P", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["'caf\u00e9", "\\udcff'", "'d'", "'caf\u00e9", "\\udcff'"]
