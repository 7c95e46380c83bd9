"""The one exception tree of netplumb.

::

    NetplumbError                 anything netplumb reports to the user (one line, exit 1)
    ├── UsageError                bad command-line arguments (exit 2); pipework grammar errors
    ├── InvalidValue              a value that does not parse: address, MAC, name, port spec
    ├── GuestNotFound             no guest of any kind matches the reference
    ├── NotSupported              a feature this kernel or netplumb does not offer (802.1q, OVS)
    ├── Conflict                  the object exists in a different shape, or is taken
    ├── KernelError               a netlink/nft/sysctl operation failed; names op and object
    ├── RuntimeUnavailable        Docker Engine (or another runtime) could not be reached
    └── StateError                netplumb's state directory is unreadable or inconsistent

Foreign errors (``OSError`` from netlink, ``nft`` failures, Docker API errors) are translated at
the boundary into these, with a message that names the operation and the object, for example
``cannot add veth "vwebserv1" to bridge "np-demo": File exists``.
"""

from __future__ import annotations

import posix


class NetplumbError(Exception):
    """Base of every error netplumb reports to a user."""

    exit_code = 1


class UsageError(NetplumbError):
    """The command line is malformed."""

    exit_code = 2


class InvalidValue(NetplumbError):
    """A value given by the user does not parse or violates an invariant."""

    exit_code = 2


class GuestNotFound(NetplumbError):
    """No guest of any kind matches a reference."""


class NotSupported(NetplumbError):
    """The requested feature is not available here."""


class Conflict(NetplumbError):
    """An object already exists in another shape, or a resource is taken."""


class RuntimeUnavailable(NetplumbError):
    """A container runtime could not be reached."""


class StateError(NetplumbError):
    """netplumb's own records cannot be read or written."""


class KernelError(NetplumbError):
    """A kernel operation failed.

    ``errno`` keeps the kernel's error number so callers can treat EEXIST/ENODEV specially.
    """

    def __init__(self, operation: str, err: int) -> None:
        self.operation = operation
        self.errno = err
        super().__init__(f"{operation}: {posix.strerror(err)}")
