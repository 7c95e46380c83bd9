"""The hot commands' lean path (``cli/lean.py``): ``publish``, ``unpublish`` and ``port`` in
their plain form skip argparse, and must do and print exactly what the argparse path does:
the same lines, the same one-line errors, the same exit codes. Anything but the plain form
(options, ``--help``, a wrong number of arguments) is left to argparse."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from netplumb import state
from netplumb.cli import commands, lean, main
from netplumb.kernel import caps, nft, nftset
from netplumb.ops import ports
from netplumb.state import portrecords


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("NETPLUMB_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("NETPLUMB_DEBUG", raising=False)
    monkeypatch.setattr(state, "_root", None)
    monkeypatch.setattr(caps, "missing", lambda: [])  # root or not, the commands' own words

    def no_kernel(*args: object, **kwargs: object) -> None:
        raise AssertionError("a unit test must not change the machine's nftables")

    monkeypatch.setattr(nftset, "change", no_kernel)
    monkeypatch.setattr(nft, "apply_text", no_kernel)
    portrecords._cache.clear()
    state.write({"name": "web", "networks": []}, "hosts", "web")
    yield tmp_path
    monkeypatch.setattr(state, "_root", None)


def binding(
    port: int, family: int = 4, host_ip: str | None = None, cport: int = 80
) -> dict[str, object]:
    return {
        "owner": "host:web",
        "guest": "web",
        "family": family,
        "host_ip": host_ip,
        "host_port": port,
        "container_ip": "10.89.0.2" if family == 4 else "fd00::2",
        "container_port": cport,
        "proto": "tcp" if port % 3 else "udp",
    }


@pytest.mark.parametrize(
    ("argv", "plain"),
    [
        (["publish", "web", "8080:80"], True),
        (["publish", "web", "8080:80", "127.0.0.1:53:53/udp"], True),
        (["unpublish", "web", "8080"], True),
        (["port", "web"], True),
        (["port", "web", "80/tcp"], True),
        (["publish", "web"], False),  # argparse says what is missing
        (["port", "web", "80", "81"], False),
        (["publish", "--help"], False),
        (["publish", "web", "-h"], False),
        (["publish", "web", "--", "8080:80"], False),
        (["unpublish", "-x", "web", "80"], False),
        (["ps"], False),
        ([], False),
    ],
)
def test_only_the_plain_form_skips_argparse(argv: list[str], plain: bool) -> None:
    assert (lean.parse(argv) is not None) == plain


def both(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of the argparse path and of the lean path."""
    out = []
    rc = commands.main(argv)
    out.append((rc, *capsys.readouterr()))
    hot = lean.parse(argv)
    assert hot is not None
    rc = lean.run(hot)
    out.append((rc, *capsys.readouterr()))
    return out


@pytest.mark.parametrize(
    "argv",
    [
        ["publish", "web", "99999:80"],  # an invalid spec: refused before anything changes
        ["publish", "web", "[::1]:8095:80"],
        ["unpublish", "web", "81"],  # nothing of it published: nothing reaches the kernel
        ["port", "web", "81"],
        ["port", "web"],
        ["port", "nosuchguest"],
    ],
)
def test_the_lean_path_ends_as_the_argparse_path_does(
    argv: list[str], state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    portrecords.add("host:web", "web", [binding(8080)])
    slow, fast = both(argv, capsys)
    assert fast == slow
    if argv != ["port", "web"]:
        assert fast[0] != 0 and fast[2].count("\n") == 1, fast  # one line, non-zero


def test_a_user_without_privileges_gets_the_same_line(
    state_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(caps, "missing", lambda: ["CAP_NET_ADMIN"])
    slow, fast = both(["publish", "web", "8080:80"], capsys)
    assert fast == slow == (1, "", f"{slow[2]}")
    assert slow[2] == (
        "netplumb publish: needs root (run it as root, e.g. with sudo); this process lacks "
        "CAP_NET_ADMIN\n"
    )


def test_main_takes_the_lean_path_for_the_plain_form_only(
    state_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = []
    real = lean.run

    def run(args: lean.Args) -> int:
        taken.append(args.command)
        return real(args)

    monkeypatch.setattr(lean, "run", run)
    portrecords.add("host:web", "web", [binding(8080)])
    assert main.main(["port", "web"]) == 0
    assert capsys.readouterr().out == "80/tcp -> 0.0.0.0:8080\n"
    assert main.main(["port", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: netplumb port")
    assert taken == ["port"]


def natural(text: str) -> list[object]:
    """The sort key port_lines used before it dropped ``re`` (its import cost ~5 ms)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def test_port_lines_sort_as_before(state_dir: Path) -> None:
    many = [binding(p, cport=80 + p % 7) for p in range(9000, 9040)]
    many += [binding(p, 6, cport=8080) for p in range(100, 1000, 97)]
    many += [binding(p, 4, "127.0.0.1", cport=443) for p in (5, 50, 500, 5000)]
    many += [binding(p, 6, "fd00::1", cport=443) for p in (7, 70)]
    portrecords.add("host:web", "web", many)
    lines = ports.port_lines("host:web", "web", None)
    assert lines == sorted(lines, key=natural) and len(lines) == len(many)
    assert lines[0] == "80/tcp -> 0.0.0.0:9002"  # 9000 and 9003 are udp
    hosts = ports.port_lines("host:web", "web", "443")
    assert hosts == sorted(hosts, key=natural)
    v4 = ["127.0.0.1:5", "127.0.0.1:50", "127.0.0.1:500", "127.0.0.1:5000"]
    assert hosts == [*v4, "[fd00::1]:7", "[fd00::1]:70"]


@pytest.mark.parametrize("text", ["", "a", "7", "80/tcp -> 0.0.0.0:8080", "[fd00::1]:70", "a1b"])
def test_the_natural_key_is_res(text: str) -> None:
    assert ports._natural(text) == natural(text)
