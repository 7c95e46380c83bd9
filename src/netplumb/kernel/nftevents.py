"""Deletions in an nftables table, as the kernel announces them: for ``netplumb watch``.

A netfilter netlink socket subscribed to NFNLGRP_NFTABLES receives one message per object a
committed transaction deleted or created (tables, chains, rules, sets, elements) in the network
namespace the socket was made in. ``nft flush ruleset`` sends the deletion of netplumb's
tables, and ``watch`` repairs them at once instead of at its next periodic check (once a
second: half a second late on average, which missed issue 13's 300 ms).

Only deletions of the table itself, its chains, rules and sets count. A deleted element is an
``unpublish``; netplumb's own whole-table rewrites (``nft -f``: delete the table, make it anew)
count too, and the caller's check (``portrules.reconcile_if_drifted``: the rule and element
counts) finds nothing to do. Events lost to a full socket buffer (ENOBUFS) count as a deletion.
"""

from __future__ import annotations

import errno
import struct
from _socket import AF_NETLINK, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_RAW, SOL_SOCKET
from _socket import socket as _rawsocket

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_DELTABLE, NFT_MSG_DELCHAIN, NFT_MSG_DELRULE, NFT_MSG_DELSET = 2, 5, 8, 11
DELETIONS = frozenset((NFT_MSG_DELTABLE, NFT_MSG_DELCHAIN, NFT_MSG_DELRULE, NFT_MSG_DELSET))
ATTR_TABLE = 1  # NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE: all 1
SO_RCVBUF = 8
_HDR = struct.Struct("=LHHLL")
_ATTR = struct.Struct("=HH")
_NFGEN = 4  # family, version, res_id


def _table(msg: bytes) -> str | None:
    """The table a message names (its first attribute of type 1)."""
    offset = _HDR.size + _NFGEN
    while offset + _ATTR.size <= len(msg):
        length, kind = _ATTR.unpack_from(msg, offset)
        if length < _ATTR.size:
            return None
        if kind & 0x3FFF == ATTR_TABLE:
            return msg[offset + _ATTR.size : offset + length].split(b"\0", 1)[0].decode()
        offset += (length + 3) & ~3
    return None


class TableEvents:
    """Deletions in the tables named ``table`` (any family) of this process's namespace."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.sock = _rawsocket(
            AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER
        )
        try:
            self.sock.setsockopt(SOL_SOCKET, SO_RCVBUF, 1 << 20)
            # bound, with the group in the mask: an unbound socket (port id 0, the kernel's
            # own) is skipped by the kernel's broadcasts even when subscribed with setsockopt
            self.sock.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
        except BaseException:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def deleted(self) -> bool:
        """Read every pending event; whether any deleted part of the table (or was lost)."""
        hit = False
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return hit
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # events were lost: assume the worst
                    hit = True
                    continue
                raise
            offset = 0
            while offset + _HDR.size <= len(data):
                length, msg_type = _HDR.unpack_from(data, offset)[:2]
                if length < _HDR.size:
                    break
                if msg_type >> 8 == NFNL_SUBSYS_NFTABLES and msg_type & 0xFF in DELETIONS:
                    hit = hit or _table(data[offset : offset + length]) == self.table
                offset += (length + 3) & ~3
