"""A reader that goes away (``netplumb ... | head -2``) ends the command quietly, as Unix
tools end: no "Broken pipe" line, the status a shell shows for SIGPIPE (141)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def _to_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first write: every write fails with EPIPE
    try:
        return subprocess.run(
            [str(BIN / argv[0]), *argv[1:]], stdout=write, stderr=subprocess.PIPE, timeout=30
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "argv",
    [
        ["netplumb", "completion", "bash"],
        ["netplumb", "completion", "zsh"],
        ["pipework", "--help"],
        ["netplumb", "pipework", "--help"],
    ],
)
def test_a_closed_pipe_ends_the_command_quietly(argv: list[str]) -> None:
    proc = _to_closed_pipe(argv)
    assert proc.stderr == b""
    assert proc.returncode == 141


@pytest.mark.parametrize("argv", [["netplumb", "--help"], ["netplumb", "network", "ls", "--help"]])
def test_argparse_help_to_a_closed_pipe_is_quiet_too(argv: list[str]) -> None:
    """argparse prints help itself; newer 3.11 releases swallow the write's error there and
    exit 0, older ones leave it to netplumb (141). Quiet either way."""
    proc = _to_closed_pipe(argv)
    assert proc.stderr == b""
    assert proc.returncode in (0, 141)


def test_an_open_pipe_still_gets_everything() -> None:
    proc = subprocess.run(
        [str(BIN / "netplumb"), "completion", "bash"], capture_output=True, timeout=30
    )
    assert proc.returncode == 0 and proc.stdout.startswith(b"# netplumb completion for bash")
