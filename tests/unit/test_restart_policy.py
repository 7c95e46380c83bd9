"""Restart policies (``model/restart.py``): Docker's grammar and errors word for word, the
decision to restart, and Docker's back-off schedule; ``restart:`` in topology files."""

from __future__ import annotations

import os
import signal

import pytest

from netplumb.errors import InvalidValue
from netplumb.model import restart
from netplumb.model.restart import RestartPolicy
from netplumb.topofile.load import loads
from netplumb.topofile.model import replica_lines


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("no", RestartPolicy("no", 0)),
        ("", RestartPolicy("no", 0)),
        ("always", RestartPolicy("always", 0)),
        ("unless-stopped", RestartPolicy("unless-stopped", 0)),
        ("on-failure", RestartPolicy("on-failure", 0)),
        ("on-failure:5", RestartPolicy("on-failure", 5)),
        ("on-failure:0", RestartPolicy("on-failure", 0)),
        ("on-failure:+2", RestartPolicy("on-failure", 2)),
        ("always:", RestartPolicy("always", 0)),  # Docker: an empty count is no count
    ],
)
def test_policies_parse(text: str, policy: RestartPolicy) -> None:
    assert restart.parse(text) == policy


# Docker's texts (docker/cli opts.ParseRestartPolicy, moby container.ValidateRestartPolicy)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (":3", "invalid restart policy format: no policy provided before colon"),
        ("on-failure:x", "invalid restart policy format: maximum retry count must be an integer"),
        ("always:2:3", "invalid restart policy format: maximum retry count must be an integer"),
        ("on-failure:1.5", "invalid restart policy format: maximum retry count must be an integer"),
        (
            "always:3",
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        ),
        (
            "unless-stopped:1",
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        ),
        (
            "no:-1",
            "invalid restart policy: maximum retry count can only be used with 'on-failure' "
            "and cannot be negative",
        ),
        ("on-failure:-1", "invalid restart policy: maximum retry count cannot be negative"),
        (
            "sometimes",
            "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', "
            "'on-failure', or 'unless-stopped'",
        ),
        (
            "Always",
            "invalid restart policy: unknown policy 'Always'; use one of 'no', 'always', "
            "'on-failure', or 'unless-stopped'",
        ),
    ],
)
def test_bad_policies_are_refused_with_dockers_words(text: str, message: str) -> None:
    with pytest.raises(InvalidValue) as info:
        restart.parse(text)
    assert str(info.value) == message


def test_text_and_docker_form_round_trip() -> None:
    for text in ("no", "always", "unless-stopped", "on-failure", "on-failure:3"):
        assert str(restart.parse(text)) == text
    assert restart.parse("on-failure:3").docker() == {
        "Name": "on-failure",
        "MaximumRetryCount": 3,
    }


@pytest.mark.parametrize(
    ("policy", "code", "count", "expected"),
    [
        ("no", 1, 0, False),
        ("no", 0, 0, False),
        ("always", 0, 0, True),
        ("always", 1, 1000, True),
        ("unless-stopped", 0, 7, True),
        ("on-failure", 0, 0, False),  # a clean exit is not a failure
        ("on-failure", 1, 0, True),
        ("on-failure", 137, 99, True),  # no limit
        ("on-failure:2", 1, 0, True),
        ("on-failure:2", 1, 1, True),
        ("on-failure:2", 1, 2, False),  # two restarts made: no third
        ("on-failure:2", 0, 0, False),
    ],
)
def test_should_restart(policy: str, code: int, count: int, expected: bool) -> None:
    assert restart.should_restart(restart.parse(policy), code, count) is expected


def test_back_off_doubles_from_100_ms_to_a_minute() -> None:
    delays = []
    delay = 0.0
    for _ in range(14):
        delay = restart.next_delay(delay, ran=0.5)
        delays.append(delay)
    assert delays[:6] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    assert delays[9] == pytest.approx(51.2)
    assert delays[10:] == [60.0] * 4


def test_back_off_starts_afresh_after_ten_seconds_of_running() -> None:
    assert restart.next_delay(12.8, ran=9.99) == 25.6
    assert restart.next_delay(12.8, ran=10.0) == 0.1
    assert restart.next_delay(60.0, ran=3600) == 0.1


def test_exit_codes_are_dockers() -> None:
    for code in (0, 1, 3, 127, 255):
        pid = os.fork()
        if pid == 0:
            os._exit(code)
        assert restart.exit_code(os.waitpid(pid, 0)[1]) == code
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.kill(os.getpid(), signal.SIGKILL)
    assert restart.exit_code(os.waitpid(pid, 0)[1]) == 137


def test_topology_restart_is_resolved() -> None:
    topo = loads(
        "services:\n"
        "  a: {command: x, restart: always}\n"
        "  b: {command: x, restart: 'on-failure:3'}\n"
        "  c: {command: x, restart: no}\n"  # YAML's false: the policy no, as in Compose
        "  d: {command: x}\n"
    )
    got = {r.name: r.restart for r in topo.replicas}
    assert got == {
        "a": RestartPolicy("always"),
        "b": RestartPolicy("on-failure", 3),
        "c": RestartPolicy("no"),
        "d": RestartPolicy("no"),
    }
    assert "  restart: on-failure:3" in replica_lines(topo.replica("b"))
    assert not any(line.startswith("  restart") for line in replica_lines(topo.replica("d")))
