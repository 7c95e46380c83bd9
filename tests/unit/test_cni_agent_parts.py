"""Parts of ``netplumb cni agent`` that need no root: a client that gave up is told apart from
one that only finished sending (real sockets), and the fingerprint of the modules' files
notices a changed file."""

from __future__ import annotations

import importlib
import os
import socket
import sys
from pathlib import Path

import pytest

from netplumb.cni import agent


def test_a_client_that_closed_is_told_from_one_that_finished_sending() -> None:
    ours, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours:
        client.sendall(b"CNI_COMMAND=DEL\0\0{}")
        client.shutdown(socket.SHUT_WR)  # what every client does once it has sent the call
        assert not agent.gave_up(ours)
        client.close()  # what a client that fell back to the Python plugin did
        assert agent.gave_up(ours)


def test_fingerprint_notices_a_changed_module_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = tmp_path / "netplumb_fp_probe.py"
    mod.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("netplumb_fp_probe")
    try:
        fp = agent.Fingerprint()
        assert str(mod) in fp.paths and not fp.changed()
        tmp = tmp_path / "new.py"
        tmp.write_text("X = 2\n")
        os.replace(tmp, mod)  # an upgrade writes new files
        assert fp.changed()
    finally:
        del sys.modules["netplumb_fp_probe"]
