"""The one applier: execute an ordered plan of typed actions, undo in reverse on failure.

Every changing command computes a plan (``plan/``, pure) and hands it here with ``execute``,
which carries out one action and returns how to undo what it created (None: nothing to
undo, e.g. a removal or a wait). Whatever fails (an action, the final ``commit`` that writes
the record, Ctrl-C), the undos recorded so far run newest first, and the original error is
what the caller sees. An undo that fails does not stop the others: it is passed to
``undo_failed`` (the default keeps quiet, since the first error is the one that matters).

Kept free of imports beyond ``lightos`` and ``errors``: the one-shot ``pipework`` path loads it.
"""

from __future__ import annotations

from netplumb.errors import NetplumbError
from netplumb.lightos import getenv

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import TypeAlias, TypeVar

    A = TypeVar("A")
    Undo: TypeAlias = Callable[[], None]

# Tests inject a failure after the first action of a given type (its class name) to check
# rollback on real kernel objects: ``NETPLUMB_FAIL_AFTER=CreateVeth netplumb attach ...``.
_fail_after = getenv("NETPLUMB_FAIL_AFTER", "")


def fail_after_for_tests(name: str) -> None:
    global _fail_after  # noqa: PLW0603 -- a test hook
    _fail_after = name


def apply(
    actions: Iterable[A],
    execute: Callable[[A], Undo | None],
    *,
    commit: Callable[[], None] | None = None,
    undo: list[Undo] | None = None,
    undo_failed: Callable[[NetplumbError], None] | None = None,
) -> None:
    """Execute ``actions`` in order, then ``commit``; on any error undo in reverse, re-raise.

    ``undo``: undos of what the caller did before the plan, undone with it (newest last)."""
    done: list[Undo] = undo if undo is not None else []
    try:
        for action in actions:
            step = execute(action)
            if step is not None:
                done.append(step)
            if _fail_after and _fail_after == type(action).__name__:
                raise NetplumbError(f"injected failure after {_fail_after}")
        if commit is not None:
            commit()
    except BaseException:
        rollback(done, undo_failed)
        raise


def rollback(done: list[Undo], undo_failed: Callable[[NetplumbError], None] | None = None) -> None:
    """Run ``done`` newest first, keeping on past errors (each goes to ``undo_failed``)."""
    for step in reversed(done):
        try:
            step()
        except NetplumbError as exc:
            if undo_failed is not None:
                undo_failed(exc)
    done.clear()
