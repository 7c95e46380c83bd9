"""The one applier (``ops/apply.py``): order, undo in reverse, what a failure undoes."""

from __future__ import annotations

import pytest

from netplumb.errors import NetplumbError
from netplumb.ops import apply as applier


class Boom(NetplumbError):
    pass


def run(
    actions: list[str], fail: str | None = None, commit_fails: bool = False
) -> tuple[list[str], BaseException | None]:
    log: list[str] = []

    def execute(action: str) -> applier.Undo | None:
        if action == fail:
            raise Boom(f"cannot {action}")
        log.append(f"do {action}")
        if action.startswith("wait"):
            return None  # nothing to undo
        return lambda: log.append(f"undo {action}")

    def commit() -> None:
        if commit_fails:
            raise Boom("cannot write the record")
        log.append("commit")

    try:
        applier.apply(actions, execute, commit=commit)
    except Boom as exc:
        return log, exc
    return log, None


def test_in_order_then_commit() -> None:
    assert run(["a", "b"]) == (["do a", "do b", "commit"], None)


def test_a_failure_undoes_what_was_done_newest_first_and_is_raised() -> None:
    log, exc = run(["a", "wait", "b", "c"], fail="c")
    assert log == ["do a", "do wait", "do b", "undo b", "undo a"]
    assert str(exc) == "cannot c"


def test_a_failed_commit_undoes_everything() -> None:
    log, exc = run(["a", "b"], commit_fails=True)
    assert log == ["do a", "do b", "undo b", "undo a"]
    assert str(exc) == "cannot write the record"


def test_a_failing_undo_does_not_stop_the_others_and_is_reported() -> None:
    log: list[str] = []
    seen: list[str] = []

    def bad() -> None:
        raise Boom("undo failed")

    steps = {"a": lambda: log.append("undo a"), "b": bad}

    def execute(action: str) -> applier.Undo:
        if action == "c":
            raise Boom("cannot c")
        return steps[action]

    with pytest.raises(Boom, match="cannot c"):
        applier.apply(["a", "b", "c"], execute, undo_failed=lambda e: seen.append(str(e)))
    assert log == ["undo a"]
    assert seen == ["undo failed"]


def test_the_callers_own_undos_go_last_and_the_list_is_emptied() -> None:
    log: list[str] = []
    mine: list[applier.Undo] = [lambda: log.append("undo setup")]

    def execute(action: str) -> applier.Undo:
        if action == "b":
            raise Boom("cannot b")
        return lambda: log.append(f"undo {action}")

    with pytest.raises(Boom):
        applier.apply(["a", "b"], execute, undo=mine)
    assert log == ["undo a", "undo setup"]
    assert mine == []


def test_an_injected_failure_after_an_action_type_rolls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class CreateThing:
        pass

    log: list[str] = []
    monkeypatch.setattr(applier, "_fail_after", "CreateThing")
    with pytest.raises(NetplumbError, match="injected failure after CreateThing"):
        applier.apply([CreateThing()], lambda a: lambda: log.append("undone"))
    assert log == ["undone"]
