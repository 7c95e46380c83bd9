"""The few pieces of ``os`` and ``os.path`` the one-shot paths need, over the built-in ``posix``.

Importing ``os`` costs a fresh process ~1 ms here (it builds ``_collections_abc``'s ABCs and a
``str`` copy of the environment), a fifteenth of a plain CNI ADD. The modules a plain ADD or
DEL imports (``tests/kernel/test_cni.py`` lists what it may import) therefore call the
system through ``posix`` and this module, and import ``os`` only inside the functions ADD and
DEL never reach. Everything here behaves as its ``os`` namesake for the paths netplumb uses.
"""

from __future__ import annotations

import posix
import sys

_S_IFMT = 0o170000
_S_IFDIR = 0o040000


def getenv(name: str, default: str = "") -> str:
    """``os.environ.get(name, default)``, ``default`` an empty string. ``posix.environ`` is
    the environment the process started with: once ``os`` is imported, changes go through
    ``os.environ`` only (``putenv``), so it is asked then."""
    os = sys.modules.get("os")
    if os is not None:
        value: str = os.environ.get(name, default)
        return value
    raw = posix.environ.get(name.encode("utf-8", "surrogateescape"))
    return default if raw is None else raw.decode("utf-8", "surrogateescape")


def environ() -> dict[str, str]:
    """A copy of the environment, as ``os.environ`` would give it."""
    os = sys.modules.get("os")
    if os is not None:
        return dict(os.environ)
    return {
        k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
        for k, v in posix.environ.items()
    }


def join(first: str, *rest: str) -> str:
    """``os.path.join``: an absolute part starts over."""
    out = first
    for part in rest:
        if part.startswith("/"):
            out = part
        elif not out or out.endswith("/"):
            out += part
        else:
            out += "/" + part
    return out


def dirname(path: str) -> str:
    """``os.path.dirname``."""
    head = path[: path.rfind("/") + 1]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head


def exists(path: str) -> bool:
    """``os.path.exists``: False for anything ``stat`` refuses."""
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


def isdir(path: str) -> bool:
    """``os.path.isdir``."""
    try:
        st = posix.stat(path)
    except (OSError, ValueError):
        return False
    return st.st_mode & _S_IFMT == _S_IFDIR
