"""Records that outlive the machine (``state/durable.py``, ``ops/restore.py``).

A Docker guest's records are copied when written and forgotten when removed; a host's are not;
after the state directory is wiped (a reboot wipes ``/run``), the first restore puts the copies
back through ``state`` (the attach group index with them), and only once per state directory's
life. Where the copies go depends on the environment: never the machine's ``/var/lib`` when a
test moved the state.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from netplumb import state
from netplumb.ops import restore
from netplumb.state import durable, portrecords

ATTACH = "docker:0123456789ab@eth1"
RECORD = {
    "owner": "docker:0123456789ab",
    "guest": "web",
    "ifname": "eth1",
    "kind": "veth",
    "host_name": "veth1pl42",
    "guest_mac": "02:42:0a:51:00:02",
    "signature": {"host_if": "br1", "addresses": ["10.81.0.2/24"]},
}


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    run, kept = tmp_path / "run", tmp_path / "lib"
    monkeypatch.setenv("NETPLUMB_STATE_DIR", str(run))
    monkeypatch.setenv("NETPLUMB_DURABLE_DIR", str(kept))
    monkeypatch.setattr(state, "_root", None)
    monkeypatch.setattr(state, "_scope_id", [])
    portrecords._cache.clear()
    yield run, kept
    monkeypatch.setattr(state, "_root", None)
    monkeypatch.setattr(state, "_scope_id", [])


def _wipe(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a reboot does to /run."""
    shutil.rmtree(run)
    monkeypatch.setattr(state, "_scope_id", [])
    portrecords._cache.clear()


def test_a_docker_guests_records_are_kept_and_forgotten_with_them(
    dirs: tuple[Path, Path],
) -> None:
    run, kept = dirs
    scope = state.scope_id()
    state.write(RECORD, "attach", ATTACH)
    state.write({"owner": "host:db"}, "attach", "host:db@eth1")
    assert (kept / "attach" / ATTACH).read_bytes() == (run / "attach" / ATTACH).read_bytes()
    assert not (kept / "attach" / "host:db@eth1").exists()  # a host dies with the machine
    assert (kept / "scope-id").read_text().strip() == scope
    state.remove("attach", ATTACH)
    assert not (kept / "attach" / ATTACH).exists()
    assert durable.kept(str(run)) == [("scope-id",)]


def test_the_ports_log_is_kept_append_for_append(dirs: tuple[Path, Path]) -> None:
    run, kept = dirs
    owner = "docker:0123456789ab"
    binding = {
        "owner": owner,
        "guest": "web",
        "family": 4,
        "host_ip": None,
        "host_port": 8080,
        "container_ip": "10.81.0.2",
        "container_port": 80,
        "proto": "tcp",
    }
    portrecords.add(owner, "web", [binding])
    portrecords.add(owner, "web", [{**binding, "host_port": 8081}])
    assert (kept / "ports" / owner).read_bytes() == (run / "ports" / owner).read_bytes()
    before = portrecords.add(owner, "web", [{**binding, "host_port": 8082}])
    portrecords.undo_add(owner, before)
    assert (kept / "ports" / owner).read_bytes() == (run / "ports" / owner).read_bytes()
    portrecords.drop(owner, portrecords.bindings(owner))
    assert not (kept / "ports" / owner).exists()


def test_restore_after_a_wipe_puts_the_records_back_once(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, kept = dirs
    scope = state.scope_id()
    state.write(RECORD, "attach", ATTACH)
    state.write({"name": "web", "owner": "docker:0123456789ab", "links": []}, "docker", "web")
    _wipe(run, monkeypatch)
    logged: list[str] = []
    restore.restore(logged.append)
    assert state.read("attach", ATTACH) == RECORD
    assert state.read("docker", "web") is not None
    assert state.group_names("attach", "docker:0123456789ab") == [ATTACH]
    assert state.scope_id() == scope  # the marks of before still read as this scope's
    assert logged == [f"restored 3 netplumb records kept in {kept}"]
    # Once per state directory's life: a record removed from /run alone is not brought back.
    (run / "docker" / "web").unlink()
    restore.restore(logged.append)
    assert state.read("docker", "web") is None and len(logged) == 1


def test_restore_keeps_what_an_older_netplumb_wrote(dirs: tuple[Path, Path]) -> None:
    run, kept = dirs
    (run / "attach").mkdir(parents=True)
    shutil.copy(Path(__file__), run / "attach" / ATTACH)  # any bytes: copied as they are
    restore.restore(lambda line: None)
    assert (kept / "attach" / ATTACH).read_bytes() == Path(__file__).read_bytes()


def test_restore_says_which_kept_record_it_cannot_read(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, kept = dirs
    state.write(RECORD, "attach", ATTACH)
    (kept / "attach" / ATTACH).write_bytes(b"\x00not marshal")
    _wipe(run, monkeypatch)
    logged: list[str] = []
    restore.restore(logged.append)
    assert logged[0] == f"cannot restore netplumb record attach/{ATTACH}: unreadable"
    assert state.read("attach", ATTACH) is None


@pytest.mark.parametrize(
    ("env", "state_dir", "expected"),
    [
        ({}, "/run/netplumb/host", "/var/lib/netplumb/host"),
        ({}, "/run/netplumb/netns-4026532-77", None),  # dies with its namespace
        ({"NETPLUMB_STATE_ROOT": "/tmp/t/run"}, "/tmp/t/run/host", None),  # a test's state
        ({"NETPLUMB_STATE_DIR": "/tmp/t/s"}, "/tmp/t/s", None),
        (
            {"NETPLUMB_STATE_ROOT": "/tmp/t/run", "NETPLUMB_DURABLE_ROOT": "/tmp/t/lib"},
            "/tmp/t/run/netns-4026532-77",
            "/tmp/t/lib/netns-4026532-77",
        ),
        (
            {"NETPLUMB_STATE_DIR": "/tmp/t/s", "NETPLUMB_DURABLE_DIR": "/tmp/t/d"},
            "/tmp/t/s",
            "/tmp/t/d",
        ),
    ],
)
def test_where_records_are_kept(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], state_dir: str, expected: str | None
) -> None:
    for name in (
        "NETPLUMB_STATE_ROOT",
        "NETPLUMB_STATE_DIR",
        "NETPLUMB_DURABLE_ROOT",
        "NETPLUMB_DURABLE_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert durable.directory(state_dir) == expected


def test_a_copy_that_cannot_be_written_is_no_error_of_the_command(
    dirs: tuple[Path, Path],
) -> None:
    _run, kept = dirs
    kept.write_text("a file where the directory should be")  # writing under it: ENOTDIR
    state.write(RECORD, "attach", ATTACH)
    assert state.read("attach", ATTACH) == RECORD
