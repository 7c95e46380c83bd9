"""netplumb's own records: what it created, per network namespace.

The state directory is scoped by the network namespace netplumb runs in, so that netplumb run
under ``ip netns exec X`` acts on X alone (tests simulate whole hosts that way):
``/run/netplumb/host`` for the machine's own namespace, ``/run/netplumb/netns-<inode>`` for any
other; ``NETPLUMB_STATE_DIR`` overrides it. Records are ``marshal`` dicts written atomically
(write to a temporary file, then rename): reading and writing them must not cost the one-shot
path a ``json`` import (~14 ms here, it pulls in ``re``).
"""

from __future__ import annotations

import marshal
import os

from netplumb.errors import StateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Record = dict[str, "Any"]

_root: str | None = None


def state_dir() -> str:
    global _root  # noqa: PLW0603 -- computed once per process
    if _root is None:
        env = os.environ.get("NETPLUMB_STATE_DIR")
        if env:
            _root = env
        else:
            mine = os.stat("/proc/self/ns/net")
            try:
                init = os.stat("/proc/1/ns/net")
                same = (mine.st_dev, mine.st_ino) == (init.st_dev, init.st_ino)
            except OSError:
                same = False
            _root = "/run/netplumb/" + ("host" if same else f"netns-{mine.st_ino}")
    return _root


def path(*parts: str) -> str:
    return os.path.join(state_dir(), *parts)


def ensure_dir(*parts: str) -> str:
    p = path(*parts)
    os.makedirs(p, mode=0o755, exist_ok=True)
    return p


def read(*parts: str) -> Record | None:
    p = path(*parts)
    try:
        with open(p, "rb") as f:
            data = marshal.load(f)
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, TypeError) as exc:
        raise StateError(f"cannot read netplumb record {p}: {exc}") from None
    if not isinstance(data, dict):
        raise StateError(f"cannot read netplumb record {p}: not a record")
    return data


def write(record: Record, *parts: str) -> None:
    ensure_dir(*parts[:-1])
    p = path(*parts)
    tmp = f"{p}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            marshal.dump(record, f)
        os.replace(tmp, p)
    except OSError as exc:
        raise StateError(f"cannot write netplumb record {p}: {exc.strerror}") from None


def remove(*parts: str) -> None:
    try:
        os.unlink(path(*parts))
    except FileNotFoundError:
        pass


def names(*parts: str) -> list[str]:
    """The record names in a state subdirectory (temporary files left out), sorted."""
    try:
        entries = os.listdir(path(*parts))
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if not e.endswith(".tmp") and not e.startswith("."))
