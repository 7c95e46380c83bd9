"""A reader that goes away (``netplumb ... | head -2``) ends the command quietly, as Unix
tools end: no "Broken pipe" line, the status a shell shows for SIGPIPE (141)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


@pytest.mark.parametrize(
    "argv",
    [
        ["netplumb", "completion", "bash"],
        ["netplumb", "--help"],
        ["netplumb", "network", "ls", "--help"],
        ["pipework", "--help"],
        ["netplumb", "pipework", "--help"],
    ],
)
def test_a_closed_pipe_ends_the_command_quietly(argv: list[str]) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first write: every write fails with EPIPE
    try:
        proc = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]], stdout=write, stderr=subprocess.PIPE, timeout=30
        )
    finally:
        os.close(write)
    assert proc.stderr == b""
    assert proc.returncode == 141


def test_an_open_pipe_still_gets_everything() -> None:
    proc = subprocess.run(
        [str(BIN / "netplumb"), "completion", "bash"], capture_output=True, timeout=30
    )
    assert proc.returncode == 0 and proc.stdout.startswith(b"# netplumb completion for bash")
