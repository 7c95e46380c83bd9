"""Kernel interface names and netplumb's ownership marks."""

from __future__ import annotations

from netplumb.errors import InvalidValue

IFNAMSIZ = 16  # including the terminating NUL: 15 usable bytes
OWNER_PREFIX = "netplumb:"

# Narrower than the kernel, which takes any byte but '/', ':', NUL and white space: netplumb
# pastes interface names into nftables text (``iifname "np0"``), where '"' ends the string and
# the rest of the line becomes rules or, after '#', a comment (issue 12: a bridge named
# 'b"accept#' turned a guard into "accept"); a trailing '*' is a wildcard there ("np*" matches
# every np-prefixed interface) and a backslash escapes it. Rather than list what nft reads as
# syntax, allow what real interface names use: kernel and udev names (eth0, enp0s31f6, wlp2s0,
# enx001122334455), bridges (docker0, br-0123456789ab), VLANs (eth0.100) and veths (vethweb)
# are letters, digits, '-', '_' and '.'. ASCII only: nothing a terminal or nft reads another
# way. Every interface name a user gives is checked so, not only those that reach nft today: a
# host interface given to pipework may be a netplumb network's bridge, and a guest interface
# name is part of its host-side veth's name (pipework's v<ifname>pl<pid>), a bridge port.
IFNAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
IFNAME_RULE = "only ASCII letters, digits, '_', '.' and '-' are allowed"


def check_ifname(name: str, what: str = "interface name") -> str:
    """Validate a kernel interface name before anything is created: the kernel's rules, and only
    the characters of ``IFNAME_CHARS`` (the name may be pasted into nftables text).

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
    if not set(name) <= IFNAME_CHARS:
        raise InvalidValue(f"invalid {what} {name!r}: {IFNAME_RULE}")
    return name


def network_mark(name: str) -> str:
    """The alias of a network's bridge: netplumb made it, for that network."""
    return f"netplumb:network:{name}"


def owner_mark(owner: str, scope: str | None = None) -> str:
    """The interface alias that marks an object as netplumb's, for one owner (a guest key).

    ``scope`` is the identity of the state directory whose records name the object
    (``state.scope_id``): ``netplumb:<owner>/<scope>``. Owner keys never hold a '/' (no
    interface, netns or host name may), so the last '/' separates them. Marks made before
    scopes existed (``netplumb:<owner>``) still read as the owner's, with no scope: ``reconcile``
    never removes such an object as unknown, since it cannot tell whose records name it.
    """
    return OWNER_PREFIX + owner + (f"/{scope}" if scope else "")


def mark_owner(alias: str | None) -> str | None:
    """The owner named by an alias, or None if the object is not netplumb's."""
    if alias and alias.startswith(OWNER_PREFIX):
        return alias[len(OWNER_PREFIX) :].rpartition("/")[0] or alias[len(OWNER_PREFIX) :]
    return None


def mark_scope(alias: str | None) -> str | None:
    """The scope a mark carries (``owner_mark``), or None for an unmarked or pre-scope one."""
    if alias and alias.startswith(OWNER_PREFIX) and "/" in alias:
        return alias.rpartition("/")[2] or None
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
