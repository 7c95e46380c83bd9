"""The holder's two formats, shared by its Python (``supervise.py``) and C (``holder.c``) forms.

Both are trivial to parse in C, so that either holder can write what the other, or netplumb,
reads:

- ``status``: one ``KEY VALUE`` line per field of ``FIELDS`` (the value up to the end of the
  line; an empty value for ``start`` is None).
- The hand-over, through a memory file, of a holder's state when it execs its small program
  (``supervise._reexec``): NUL-separated ``KEY``, ``VALUE`` pairs: ``version``, ``files``,
  ``log``, ``policy``, ``retries``, ``started`` (CLOCK_MONOTONIC seconds of the command's
  start, the same clock after exec), one ``arg`` per argument, one ``env`` (``K=V``) per
  variable, then the status's fields. Paths, arguments and variables hold any byte but NUL.

Here too the reading and writing of the holder's files in the host's files directory: its
``status`` and the ``control`` file that carries ``stop``/``start`` orders. This module imports
only ``os``: the Python holder loads it.
"""

from __future__ import annotations

import os

FIELDS = (
    "state",  # running, restarting, exited
    "pid",  # the command's, 0 when none runs
    "start",  # its start time (/proc/PID/stat field 22), to tell it from a later PID
    "restart_count",
    "exit_code",  # of the last exit: the code, or 128 + the signal
    "error",  # why the command could not be started, if it could not
    "ack",  # the token of the last order carried out
    "started_at",  # wall-clock seconds
    "finished_at",
)
_INTS = ("pid", "restart_count", "exit_code")
_FLOATS = ("started_at", "finished_at")
VERSION = "1"  # holder.c checks it: a holder built from another source refuses to start


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value).replace("\n", " ").replace("\0", " ")  # one line, no NUL


def _value(key: str, text: str) -> object:
    """A field's value from its text (ValueError if it is not one)."""
    if key in _INTS:
        return int(text)
    if key == "start":
        return int(text) if text else None
    if key in _FLOATS:
        return float(text)
    return text


def dump_status(status: dict[str, object]) -> bytes:
    return os.fsencode("".join(f"{key} {_text(status.get(key))}\n" for key in FIELDS))


def load_status(data: bytes) -> dict[str, object] | None:
    """The fields of a status file (None if it is not one)."""
    out: dict[str, object] = {}
    try:
        for line in os.fsdecode(data).split("\n"):
            key, _, text = line.partition(" ")
            if key in FIELDS:
                out[key] = _value(key, text)
    except ValueError:
        return None
    return out if len(out) == len(FIELDS) else None


def dump_handover(
    files: str,
    log: str,
    argv: list[str],
    env: dict[str, str],
    policy: tuple[str, int],
    started: float,
    status: dict[str, object],
) -> bytes:
    pairs = [
        ("version", VERSION),
        ("files", files),
        ("log", log),
        ("policy", policy[0]),
        ("retries", str(policy[1])),
        ("started", repr(started)),
        *(("arg", arg) for arg in argv),
        *(("env", f"{key}={value}") for key, value in env.items()),
        *((key, _text(status.get(key))) for key in FIELDS),
    ]
    return b"".join(os.fsencode(key) + b"\0" + os.fsencode(value) + b"\0" for key, value in pairs)


class Handover:
    """A hand-over's values (a plain class: ``dataclasses`` would cost the holder memory)."""

    __slots__ = ("argv", "env", "files", "log", "policy", "retries", "started", "status")

    def __init__(self) -> None:
        self.files = self.log = self.policy = ""
        self.retries = 0
        self.started = 0.0
        self.argv: list[str] = []
        self.env: dict[str, str] = {}
        self.status: dict[str, object] = {}


def load_handover(data: bytes) -> Handover:
    words = [os.fsdecode(w) for w in data.split(b"\0")[:-1]]
    out = Handover()
    for key, value in zip(words[::2], words[1::2], strict=True):
        if key == "arg":
            out.argv.append(value)
        elif key == "env":
            name, _, text = value.partition("=")
            out.env[name] = text
        elif key in FIELDS:
            out.status[key] = _value(key, value)
        elif key == "retries":
            out.retries = int(value)
        elif key == "started":
            out.started = float(value)
        elif key in ("files", "log", "policy"):
            setattr(out, key, value)
    return out


STATUS = "status"
CONTROL = "control"


def write_status(files: str, status: dict[str, object]) -> None:
    """Atomically (temporary file, rename), 0600: a status may name what the command got."""
    path = os.path.join(files, STATUS)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with open(fd, "wb") as f:
        f.write(dump_status(status))
    os.replace(tmp, path)


def read_status(files: str) -> dict[str, object] | None:
    """The holder's last status (``holderfile``'s format; None if there is none)."""
    try:
        with open(os.path.join(files, STATUS), "rb") as f:
            data = f.read()
    except OSError:
        return None
    if data[:1] in (b"{", b"\xfb"):  # a marshal dict: a holder started before holderfile
        import marshal

        try:
            value = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            return None
        return value if isinstance(value, dict) else None
    return load_status(data)


def read_control(files: str) -> list[str]:
    """The last order's words (``[]`` if none was given)."""
    try:
        with open(os.path.join(files, CONTROL)) as f:
            return f.read().split()
    except OSError:
        return []
