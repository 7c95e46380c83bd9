"""Adding and deleting elements of netplumb's nftables maps over nfnetlink, in one transaction.

Why not ``nft add element``: starting ``nft`` costs 3-5 ms a call here (fork, exec, its own
cache of the table) and the Python bindings of libnftables the same work in-process plus
~5 ms of ``ctypes`` import; a publication is one element, a few dozen bytes. This module speaks
the two nf_tables messages netplumb needs (NEWSETELEM, DELSETELEM) inside one batch, on the
standard library alone, in the calling process's network namespace: the kernel applies the
whole batch or nothing (one transaction), as ``nft -f`` does.

Elements go in messages of at most 32 KiB of them (a netlink attribute holds 64 KiB), all in one
batch; a batch bigger than a socket buffer is refused before anything is sent (EMSGSIZE), for
the caller to apply the whole ruleset instead (which costs as much as a change that size).

The elements are those ``nft/elements.py`` describes, byte for byte what ``nft -f`` would send
for the same text (a kernel test lists them back with ``nft -j`` and compares).
"""

from __future__ import annotations

import errno as _errno
import os
import struct
from _socket import AF_NETLINK, SOCK_CLOEXEC, SOCK_RAW
from _socket import socket as _rawsocket

from netplumb.errors import KernelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from netplumb.nft.elements import Element, SetElement

NETLINK_NETFILTER = 12
SOL_NETLINK, NETLINK_EXT_ACK = 270, 11
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 16, 17
NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM = 12, 14
NFPROTO_INET, NFPROTO_BRIDGE = 1, 7
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 0x1, 0x4, 0x400
NLMSG_ERROR = 2
NLA_F_NESTED = 0x8000
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_USERDATA = 1, 2, 6
NFTA_DATA_VALUE = 1
NFTNL_UDATA_SET_ELEM_COMMENT = 0
NLMSGERR_ATTR_MSG = 1

_FLUSH, _DELETE, _ADD = 0, 1, 2  # the order of a transaction's messages
MAX_BATCH = 200_000  # bytes: under the default socket send buffer (net.core.wmem_default)
_HDR = struct.Struct("=LHHLL")
_NFGEN = struct.Struct("=BBH")  # family, version, res_id (0 in a message of the batch)
_ATTR = struct.Struct("=HH")


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return _ATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def _nest(kind: int, payload: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, payload)


def _element(e: Element | SetElement, with_data: bool) -> bytes:
    body = _nest(NFTA_SET_ELEM_KEY, _attr(NFTA_DATA_VALUE, e.key))
    if with_data:
        if e.data is not None:
            body += _nest(NFTA_SET_ELEM_DATA, _attr(NFTA_DATA_VALUE, e.data))
        note = e.comment.encode() + b"\0"
        body += _attr(
            NFTA_SET_ELEM_USERDATA, bytes([NFTNL_UDATA_SET_ELEM_COMMENT, len(note)]) + note
        )
    return _nest(NFTA_LIST_ELEM, body)


class Refused(KernelError):
    """The kernel refused the batch: nothing of it was applied. ``errno`` says why (ENOENT: the
    table, a map or an element is missing; EEXIST: an element exists with other data)."""


def change(
    table: str,
    add: Iterable[Element | SetElement],
    delete: Iterable[Element | SetElement],
    family: int = NFPROTO_INET,
    flush: Iterable[str] = (),
) -> None:
    """Empty the sets ``flush``, delete then add elements of ``table`` (of ``family``, inet or
    bridge) in one transaction: all or nothing.

    Adding an element that exists with the same data is fine; deleting one that is not there
    is ENOENT (the caller repairs from its records). Raises ``Refused`` with the kernel's errno.
    """
    seq = 1
    msgs: list[bytes] = []
    head = _attr(NFTA_SET_ELEM_LIST_TABLE, table.encode() + b"\0")
    by_map: dict[tuple[int, str], list[bytes]] = {}
    for name in flush:  # a DELSETELEM without elements empties the set
        by_map[(_FLUSH, name)] = []
    for order, elements in ((_DELETE, delete), (_ADD, add)):
        for e in elements:
            by_map.setdefault((order, e.map), []).append(_element(e, order == _ADD))
    if not by_map:
        return
    pid = 0
    gen = bytes((0, 0)) + NFNL_SUBSYS_NFTABLES.to_bytes(2, "big")  # the batch's subsystem
    msgs.append(
        _HDR.pack(_HDR.size + len(gen), NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, pid) + gen
    )
    acked: dict[int, str] = {}
    for (order, name), parts in sorted(by_map.items()):  # flushes, deletions, additions
        kind = NFT_MSG_NEWSETELEM if order == _ADD else NFT_MSG_DELSETELEM
        verb = "add" if kind == NFT_MSG_NEWSETELEM else "delete" if parts else "flush"
        for chunk in _chunks(parts):  # an attribute holds at most 64 KiB
            seq += 1
            body = _NFGEN.pack(family, 0, 0) + head
            body += _attr(NFTA_SET_ELEM_LIST_SET, name.encode() + b"\0")
            if chunk:
                body += _nest(NFTA_SET_ELEM_LIST_ELEMENTS, b"".join(chunk))
            flags = NLM_F_REQUEST | NLM_F_ACK
            flags |= NLM_F_CREATE if kind == NFT_MSG_NEWSETELEM else 0
            msg_type = NFNL_SUBSYS_NFTABLES << 8 | kind
            msgs.append(_HDR.pack(_HDR.size + len(body), msg_type, flags, seq, pid) + body)
            acked[seq] = f"cannot {verb} elements of nftables set {table} {name}"
    seq += 1
    end = _HDR.pack(_HDR.size + len(gen), NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, pid)
    msgs.append(end + gen)
    data = b"".join(msgs)
    if len(data) > MAX_BATCH:
        # one batch is one socket buffer: a change this big is the caller's to make whole
        raise Refused(f"cannot change nftables set elements of {table}", _errno.EMSGSIZE)
    sock = _socket()
    try:
        sock.sendall(data)
        _wait_acks(sock, acked)
    except OSError as exc:
        _sockets.clear()
        sock.close()
        if exc.errno is None:
            raise
        raise Refused(f"cannot change nftables set elements of {table}", exc.errno) from None
    except BaseException:
        _sockets.clear()  # a reply left unread must not be taken for the next call's
        sock.close()
        raise


def _chunks(parts: list[bytes]) -> list[list[bytes]]:
    """``parts`` in runs of at most 32 KiB (a flush: one empty run)."""
    out: list[list[bytes]] = [[]]
    size = 0
    for part in parts:
        if size + len(part) > 32768 and out[-1]:
            out.append([])
            size = 0
        out[-1].append(part)
        size += len(part)
    return out


# One socket per network namespace for the process's life: closing an nfnetlink socket after
# deleting elements waits for the kernel to free them (an RCU grace period, ~10 ms here), which
# would double the cost of every unpublish of a process that unpublishes many.
_sockets: dict[int, _rawsocket] = {}


def _socket() -> _rawsocket:
    netns = os.stat("/proc/thread-self/ns/net").st_ino
    sock = _sockets.get(netns)
    if sock is None:
        sock = _rawsocket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER)
        try:
            sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:
            pass
        _sockets[netns] = sock
    return sock


def _wait_acks(sock: _rawsocket, waiting: dict[int, str]) -> None:
    """Read one ack per message; the first error (the kernel stops at it) is raised."""
    while waiting:
        data = sock.recv(65536)
        offset = 0
        while offset + _HDR.size <= len(data):
            length, msg_type, _flags, seq, _pid = _HDR.unpack_from(data, offset)
            if length < _HDR.size:
                return
            if msg_type == NLMSG_ERROR and seq in waiting:
                what = waiting.pop(seq)
                (code,) = struct.unpack_from("=i", data, offset + _HDR.size)
                if code:
                    err = -code
                    raise Refused(what, err)
            offset += (length + 3) & ~3


def missing(exc: Refused) -> bool:
    """Whether the caller should apply the whole ruleset instead: the table, a set or an
    element is not there or differs (to repair), or the change is too big for one batch."""
    return exc.errno in (
        _errno.ENOENT,
        _errno.EEXIST,
        _errno.EBUSY,
        _errno.EINVAL,
        _errno.EMSGSIZE,  # too big for one batch: the whole ruleset costs as much
        _errno.ENOBUFS,
    )
