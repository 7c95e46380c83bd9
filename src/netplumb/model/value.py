"""A lean base for immutable value objects.

Why not ``dataclasses``: importing it costs ~30 ms on these machines (it pulls in ``inspect``),
more than the whole 25 ms budget of a one-shot ``netplumb pipework`` command. Subclasses
declare ``__slots__`` and an ``__init__``; this base supplies equality, hashing, repr and
immutability after construction.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Value:
    __slots__ = ("_frozen",)

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__ if name != "_frozen")

    def _freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: object) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"{type(self).__name__} is immutable")
        object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._fields()))

    def __repr__(self) -> str:
        names = [n for n in self.__slots__ if n != "_frozen"]
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__name__}({inner})"
