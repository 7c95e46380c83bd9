"""Docker containers as guests, through the Docker Engine API (the ``docker`` SDK).

Imported only when a reference is not a netplumb host, netns, PID or path: the SDK costs
~100 ms to import, which one-shot commands on other guests must not pay.
"""

from __future__ import annotations

import contextlib
import os

from netplumb.errors import NetplumbError, RuntimeUnavailable
from netplumb.runtimes.guest import Guest, open_netns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

_client: Any = None

# Reads answer in milliseconds; creating or removing a container waits for the storage driver,
# which copies or deletes a whole root filesystem with vfs, and on a busy disk that has taken
# over 30 s. `docker create` and `docker rm` have no client timeout; netplumb waits this long.
STORAGE_TIMEOUT = 300


def client() -> Any:
    global _client  # noqa: PLW0603 -- one connection per process
    if _client is None:
        if not os.path.exists("/var/run/docker.sock") and not os.environ.get("DOCKER_HOST"):
            raise RuntimeUnavailable("Docker: not running")
        import docker

        try:
            _client = docker.from_env(timeout=30)
            _client.ping()
        except Exception as exc:
            _client = None
            raise RuntimeUnavailable(f"Docker: not reachable: {exc}") from None
    return _client


@contextlib.contextmanager
def storage_calls() -> Iterator[Any]:
    """The API client with room for calls that wait on the storage driver (create, remove)."""
    api = client().api
    before, api.timeout = api.timeout, STORAGE_TIMEOUT
    try:
        yield api
    finally:
        api.timeout = before


def inspect(ref: str) -> dict[str, Any] | None:
    """The container's inspect document, or None when Docker knows no such container."""
    import docker.errors

    try:
        attrs: dict[str, Any] = client().api.inspect_container(ref)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise RuntimeUnavailable(f"Docker: {exc.explanation or exc}") from None
    return attrs


def guest(ref: str) -> Guest | None:
    attrs = inspect(ref)
    if attrs is None:
        return None
    cid = attrs["Id"]
    pid = attrs["State"].get("Pid") or 0
    if not attrs["State"].get("Running") or pid == 0:
        raise NetplumbError(f"Docker container {ref} is not running")
    fd = open_netns(f"/proc/{pid}/ns/net")
    # The PID could have died and been reused between the inspect and the open: check that
    # the container still runs under that very PID now that the descriptor is held.
    again = inspect(cid)
    if again is None or again["State"].get("Pid") != pid:
        os.close(fd)
        raise NetplumbError(f"Docker container {ref} restarted while netplumb resolved it")
    name = attrs.get("Name", "").lstrip("/") or cid[:12]
    return Guest(f"docker:{cid[:12]}", "docker", name, fd, pid, cid[:8])
