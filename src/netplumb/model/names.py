"""Kernel interface names and netplumb's ownership marks."""

from __future__ import annotations

from netplumb.errors import InvalidValue

IFNAMSIZ = 16  # including the terminating NUL: 15 usable bytes
OWNER_PREFIX = "netplumb:"


def check_ifname(name: str, what: str = "interface name") -> str:
    """Validate a kernel interface name before anything is created.

    pipework fails late (after creating the veth) on names over 15 bytes; here it is the first
    check.
    """
    try:
        raw = name.encode()
    except UnicodeEncodeError:  # a non-UTF-8 argument, as sys.argv decodes it
        raise InvalidValue(f"invalid {what} {name!r}: not valid UTF-8") from None
    if not raw:
        raise InvalidValue(f"invalid {what}: empty")
    if len(raw) >= IFNAMSIZ:
        raise InvalidValue(f"invalid {what} {name!r}: longer than 15 bytes")
    # The kernel's dev_valid_name(): no '/', ':' or isspace() character (" \t\n\v\f\r").
    if name in (".", "..") or any(c in name for c in "/: \t\n\v\f\r") or "\0" in name:
        raise InvalidValue(f"invalid {what} {name!r}: contains '/', ':', NUL or white space")
    return name


def owner_mark(owner: str) -> str:
    """The interface alias that marks an object as netplumb's, for one owner (a guest key)."""
    return OWNER_PREFIX + owner


def mark_owner(alias: str | None) -> str | None:
    """The owner named by an alias, or None if the object is not netplumb's."""
    if alias and alias.startswith(OWNER_PREFIX):
        return alias[len(OWNER_PREFIX) :]
    return None


def host_ifname(guest_ifname: str, pid_or_id: str) -> str:
    """pipework's host-side name ``v<ifname>pl<pid>``, shortened to fit 15 bytes."""
    name = f"v{guest_ifname}pl{pid_or_id}"
    if len(name.encode()) < IFNAMSIZ:
        return name
    # Keep the distinguishing tail (the pid/id) rather than the common prefix. Counted in bytes,
    # not characters: the limit is the kernel's, and a non-ASCII name has more bytes than
    # characters. A character cut in two at either end is dropped whole.
    head = "v" + guest_ifname.encode()[:4].decode(errors="ignore") + "pl"
    keep = IFNAMSIZ - 1 - len(head.encode())
    tail = pid_or_id.encode()[-keep:].decode(errors="ignore")
    return head + tail
