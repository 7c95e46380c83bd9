"""Restart policies of lightweight hosts, with Docker's grammar, errors and back-off.

``--restart no|on-failure[:N]|always|unless-stopped`` (Docker's ``ParseRestartPolicy`` and
``ValidateRestartPolicy``, word for word in their errors). The back-off is Docker's restart
manager's: the delay before a restart starts at 100 ms and doubles each restart up to 1 min,
and goes back to 100 ms once the command ran 10 s or more. ``on-failure`` restarts only after
a non-zero exit, and ``on-failure:N`` at most N times (0: no limit).
"""

from __future__ import annotations

from netplumb.errors import InvalidValue

NO = "no"
ALWAYS = "always"
ON_FAILURE = "on-failure"
UNLESS_STOPPED = "unless-stopped"
POLICIES = (NO, ALWAYS, ON_FAILURE, UNLESS_STOPPED)

FIRST_DELAY = 0.1  # seconds
MAX_DELAY = 60.0
RESET_AFTER = 10.0  # a command that ran this long starts the back-off afresh


class RestartPolicy:
    """A policy's name and ``on-failure``'s maximum (0: none). A plain immutable class, not a
    dataclass: the holder imports this module, and ``dataclasses`` would cost it memory."""

    __slots__ = ("maximum_retry_count", "name")
    name: str
    maximum_retry_count: int

    def __init__(self, name: str = NO, maximum_retry_count: int = 0) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "maximum_retry_count", maximum_retry_count)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"RestartPolicy is immutable: cannot set {key}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RestartPolicy) and (self.name, self.maximum_retry_count) == (
            other.name,
            other.maximum_retry_count,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.maximum_retry_count))

    def __repr__(self) -> str:
        return f"RestartPolicy({self.name!r}, {self.maximum_retry_count})"

    def docker(self) -> dict[str, object]:
        """``HostConfig.RestartPolicy`` as ``docker inspect`` shows it."""
        return {"Name": self.name, "MaximumRetryCount": self.maximum_retry_count}

    def __str__(self) -> str:
        if self.name == ON_FAILURE and self.maximum_retry_count:
            return f"{self.name}:{self.maximum_retry_count}"
        return self.name


def _atoi(text: str) -> int | None:
    """Go's ``strconv.Atoi``: an optional sign, then ASCII digits."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not (digits.isascii() and digits.isdigit()):
        return None
    return int(text)


def parse(text: str) -> RestartPolicy:
    """A restart policy from ``--restart`` or a topology file's ``restart:``."""
    if text == "":
        return RestartPolicy()  # Docker's empty name: no restart
    name, colon, count_text = text.partition(":")
    if colon and not name:
        raise InvalidValue("invalid restart policy format: no policy provided before colon")
    count = 0
    if count_text:
        parsed = _atoi(count_text)
        if parsed is None:
            raise InvalidValue(
                "invalid restart policy format: maximum retry count must be an integer"
            )
        count = parsed
    return validate(RestartPolicy(name, count))


def validate(policy: RestartPolicy) -> RestartPolicy:
    if policy.name in (NO, ALWAYS, UNLESS_STOPPED):
        if policy.maximum_retry_count:
            message = (
                "invalid restart policy: maximum retry count can only be used with 'on-failure'"
            )
            if policy.maximum_retry_count < 0:
                message += " and cannot be negative"
            raise InvalidValue(message)
        return policy
    if policy.name == ON_FAILURE:
        if policy.maximum_retry_count < 0:
            raise InvalidValue("invalid restart policy: maximum retry count cannot be negative")
        return policy
    raise InvalidValue(
        f"invalid restart policy: unknown policy '{policy.name}'; use one of "
        f"'{NO}', '{ALWAYS}', '{ON_FAILURE}', or '{UNLESS_STOPPED}'"
    )


def should_restart(policy: RestartPolicy, exit_code: int, restart_count: int) -> bool:
    """Whether a command that exited with ``exit_code`` is started again (a host stopped with
    ``netplumb stop`` never is: the caller checks that first)."""
    if policy.name in (ALWAYS, UNLESS_STOPPED):
        return True
    if policy.name == ON_FAILURE:
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


def next_delay(previous: float, ran: float) -> float:
    """The delay before the next restart, given the previous delay (0 before the first) and
    how long the command ran (Docker's restart manager)."""
    if ran >= RESET_AFTER or previous <= 0:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def exit_code(wait_status: int) -> int:
    """Docker's exit code of a ``waitpid`` status: the code, or 128 + the signal."""
    import os

    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status) if os.WIFEXITED(wait_status) else 255
