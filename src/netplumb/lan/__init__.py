"""The host's own LAN (issue 6), pure parts: what moves from the host interface to a bridge,
RFC 5227 ARP packets, the LAN address pool, MAC checks.

Nothing here touches the kernel; ``netplumb.kernel.lanlink``, ``netplumb.kernel.arp`` and
``netplumb.kernel.deadman`` do, and ``netplumb.ops.lanbridge`` / ``netplumb.ops.lanpool`` tie them
together.
"""
