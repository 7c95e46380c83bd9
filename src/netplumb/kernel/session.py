"""The kernel side of attach and detach: one netlink socket in the host's namespace, one in the
guest's, and a method per action that does it and returns how to undo it.

Every verb is idempotent where that is safe: deleting what is gone is fine; creating what
exists is an error that names the object (the planner checked first, so this only happens in a
race with another command).
"""

from __future__ import annotations

import errno
import posix
import struct

from netplumb.errors import KernelError, NetplumbError
from netplumb.kernel import netns
from netplumb.kernel.netlink import Netlink
from netplumb.kernel.rtmsg import Link
from netplumb.plan.actions import (
    AddAddress,
    AddHostRoute,
    Announce,
    CreateBridge,
    CreateMacvlan,
    CreateVeth,
    GuestLinkUp,
    MoveIntoGuest,
    ReplaceDefault,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Undo = Callable[[], None]

BRIDGE_MARK = "netplumb:bridge"


def _noop() -> None:
    return None


_host: Netlink | None = None


def host_socket() -> Netlink:
    """One netlink socket in this process's own namespace, kept for the process's life (a
    process that attaches many guests pays for it once)."""
    global _host  # noqa: PLW0603 -- one per process
    if _host is None:
        _host = Netlink()
    return _host


class Session:
    """Kernel access for one command on one guest."""

    def __init__(self, guest_fd: int) -> None:
        self.guest_fd = guest_fd
        self.host = host_socket()
        self._guest: Netlink | None = None
        self.results: dict[str, object] = {}
        self._guest_index: dict[str, int] = {}  # guest interface indexes, looked up once
        self.bridge_index: dict[str, int] = {}  # filled by observe(): no second lookup
        # Someone else's bridges (no netplumb mark) this command attaches to, filled by
        # observe(): netplumb's port on one calls for a DOCKER-USER rule (kernel/dockeruser).
        self.adopted_bridges: set[str] = set()
        self.marks: dict[str, str] = {}  # guest interfaces to mark when they come up
        self.hairpin: dict[str, str] = {}  # guest interface -> the host end to set hairpin on

    @property
    def guest(self) -> Netlink:
        if self._guest is None:
            self._guest = netns.socket_in(self.guest_fd)
        return self._guest

    def close(self) -> None:
        if self._guest is not None:
            self._guest.close()

    def guest_link(self, name: str) -> Link:
        link = self.guest.get_link(name)
        if link is None:
            raise KernelError(f'find interface "{name}" in the guest', errno.ENODEV)
        self._guest_index[name] = link.index
        self.results["guest_mac"] = link.mac.hex(":")  # kept by the record: reconcile's MAC
        return link

    def guest_index(self, name: str) -> int:
        """The guest interface's index, asked of the kernel once per command."""
        index = self._guest_index.get(name)
        return index if index is not None else self.guest_link(name).index

    # -- actions ------------------------------------------------------------------------------

    def create_bridge(self, a: CreateBridge) -> Undo:
        try:
            self.host.create_link(
                a.name, "bridge", up=True, mtu=a.mtu, what=f'cannot add bridge "{a.name}"'
            )
        except KernelError as exc:
            existing = self.host.get_link(a.name)
            if exc.errno == errno.EEXIST and existing is not None and existing.kind == "bridge":
                return _noop  # another command created it meanwhile: ours to share, not to undo
            raise
        link = self.host.get_link(a.name)
        assert link is not None

        def undo() -> None:
            from netplumb.kernel import dockeruser

            self._delete_host(link.index, f'bridge "{a.name}"')
            dockeruser.sync(self.host)

        try:
            self.host.set_link(link.index, alias=BRIDGE_MARK, what=f'cannot mark bridge "{a.name}"')
            from netplumb.kernel import dockeruser  # subprocess: only bridge creation pays

            dockeruser.sync(self.host)
        except BaseException:
            undo()
            raise
        self.results["bridge_created"] = True
        return undo

    def create_veth(self, a: CreateVeth) -> Undo:
        """One request makes the pair: host end up on the bridge, guest end (down, final name)
        directly in the guest. The guest end is marked when it is brought up (GuestLinkUp)."""
        master = self.bridge_index.get(a.bridge) or self._index_of(a.bridge)
        # (Asking for IFF_UP on a peer created in another namespace fails with ENOTCONN on
        # kernel 6.18; it comes up after its addresses anyway.)
        peer = Netlink.veth_peer(a.guest_name, netns_fd=self.guest_fd, mtu=a.mtu, mac=a.mac)
        what = f'cannot add veth "{a.host_name}" to bridge "{a.bridge}"'
        try:
            self.host.create_link(
                a.host_name, "veth", up=True, mtu=a.mtu, master=master, info_data=peer, what=what
            )
        except KernelError as exc:
            if exc.errno == errno.EEXIST:
                raise KernelError(
                    f'{what}: the name "{a.host_name}" is taken (choose another with -l)', exc.errno
                ) from None
            raise

        adopted = a.bridge in self.adopted_bridges

        def undo() -> None:
            self.host.delete_link(0, f'cannot delete veth "{a.host_name}"', name=a.host_name)
            if adopted:
                from netplumb.kernel import dockeruser

                dockeruser.sync(self.host)

        try:
            self.host.set_link(
                0, by_name=a.host_name, alias=a.owner, what=f'cannot mark veth "{a.host_name}"'
            )
            if adopted:  # netplumb's first port may make it one of netplumb's bridges
                from netplumb.kernel import dockeruser

                dockeruser.sync(self.host)
        except NetplumbError:
            undo()
            raise
        self.marks[a.guest_name] = a.owner
        self.hairpin[a.guest_name] = a.host_name
        self.results.update(kind="veth", host_name=a.host_name, bridge=a.bridge)
        return undo

    def _index_of(self, name: str) -> int:
        link = self.host.get_link(name)
        if link is None:
            raise KernelError(f'cannot find "{name}"', errno.ENODEV)
        return link.index

    def create_macvlan(self, a: CreateMacvlan) -> Undo:
        parent = self.host.get_link(a.parent)
        if parent is None:
            raise KernelError(f'cannot add macvlan on "{a.parent}"', errno.ENODEV)
        self.host.create_link(
            a.guest_name,
            "macvlan",
            mtu=a.mtu,
            mac=a.mac,
            link=parent.index,
            netns_fd=self.guest_fd,
            info_data=struct.pack("=HHI", 8, 1, 4),  # IFLA_MACVLAN_MODE = bridge
            what=f'cannot add macvlan "{a.guest_name}" on "{a.parent}" in the guest',
        )
        link = self.guest_link(a.guest_name)

        def undo() -> None:
            self._delete_guest(link.index, f'macvlan "{a.guest_name}"')

        try:
            self.guest.set_link(
                link.index, alias=a.owner, what=f'cannot mark macvlan "{a.guest_name}"'
            )
        except NetplumbError:
            undo()
            raise
        self.results.update(kind="macvlan", parent=a.parent)
        return undo

    def move_into_guest(self, a: MoveIntoGuest) -> Undo:
        link = self.host.get_link(a.host_name)
        if link is None:
            raise KernelError(f'cannot move "{a.host_name}" into the guest', errno.ENODEV)
        self.host.set_link(
            link.index,
            netns_fd=self.guest_fd,
            name=a.guest_name,
            what=f'cannot move "{a.host_name}" into the guest as "{a.guest_name}"',
        )
        moved = self.guest_link(a.guest_name)
        self.results.update(kind="phys", host_name=a.host_name, original_mac=link.mac.hex(":"))

        def undo() -> None:
            self.move_back(moved.index, a.host_name, link.mac)

        try:
            self.guest.set_link(
                moved.index, alias=a.owner, mac=a.mac, what=f'cannot set up "{a.guest_name}"'
            )
        except NetplumbError:
            undo()
            raise
        return undo

    def move_back(self, guest_index: int, host_name: str, mac: bytes | None) -> None:
        self.guest.set_link(
            guest_index, up=False, alias="", mac=mac, what=f'cannot reset "{host_name}"'
        )
        self.guest.set_link(
            guest_index,
            netns_fd=netns.self_netns_fd(),
            name=host_name,
            what=f'cannot move "{host_name}" back to the host',
        )

    def guest_link_up(self, a: GuestLinkUp) -> Undo:
        self.guest.set_link(
            self.guest_index(a.ifname),
            up=True,
            alias=self.marks.get(a.ifname),
            what=f'cannot set "{a.ifname}" up in the guest',
        )
        host_end = self.hairpin.pop(a.ifname, None)
        if host_end is not None:
            # hairpin: with bridge-nf-call-iptables on (dockerd turns it on), a guest's packet
            # to its own published port is DNATed and bridged back to the port it came by. Set
            # once the guest end is up: set before, the bridge dropped the guest's first frame
            # (its gratuitous ARP) on kernel 6.18.
            what = f'cannot set hairpin mode on "{host_end}"'
            self.host.set_hairpin(self._index_of(host_end), what)
        return _noop

    def add_address(self, a: AddAddress) -> Undo:
        index = self.guest_index(a.ifname)
        ip, plen = a.interface.ip, a.interface.prefixlen
        self.guest.add_address(
            index,
            ip.family,
            ip.packed,
            plen,
            what=f'cannot add address {a.interface} to "{a.ifname}"',
        )
        return lambda: self.guest.delete_address(
            index, ip.family, ip.packed, plen, what=f"cannot remove address {a.interface}"
        )

    def add_host_route(self, a: AddHostRoute) -> Undo:
        index = self.guest_index(a.ifname)
        plen = 32 if a.dest.version == 4 else 128
        what = f'cannot add route to {a.dest} via "{a.ifname}"'
        self.guest.route("add", a.dest.family, a.dest.packed, plen, oif=index, what=what)

        def undo() -> None:
            try:
                self.guest.route("delete", a.dest.family, a.dest.packed, plen, oif=index, what=what)
            except KernelError as exc:
                if exc.errno != errno.ESRCH:
                    raise

        return undo

    def replace_default(self, a: ReplaceDefault) -> Undo:
        """Replace the guest's default route; the old ones are kept for undo and detach."""
        gw = a.gateway
        index = self.guest_index(a.ifname)
        before = self.guest.default_routes(gw.family)
        self.results.setdefault("previous_defaults", []).extend(  # type: ignore[attr-defined]
            [gw.family, g.hex() if g else None, oif, proto] for g, oif, proto in before
        )
        for old_gw, oif, _proto in before:
            self.guest.route(
                "delete",
                gw.family,
                None,
                0,
                gateway=old_gw,
                oif=oif,
                what="cannot replace default route",
            )
        self.guest.route(
            "replace",
            gw.family,
            None,
            0,
            gateway=gw.packed,
            oif=index,
            what=f'cannot set default route via {gw} on "{a.ifname}"',
        )

        def undo() -> None:
            try:
                self.guest.route(
                    "delete", gw.family, None, 0, gateway=gw.packed, what="undo default route"
                )
            except KernelError as exc:
                if exc.errno not in (errno.ESRCH, errno.ENODEV):
                    raise
            self.restore_defaults([[gw.family, g.hex() if g else None, o, p] for g, o, p in before])

        return undo

    def restore_defaults(self, routes: list[list[object]]) -> None:
        """Put back default routes that an attach replaced, where their interface still exists."""
        for family, gw_hex, oif, *rest in routes:
            proto = rest[0] if rest and isinstance(rest[0], int) else 4
            gw = bytes.fromhex(gw_hex) if isinstance(gw_hex, str) else None
            if not isinstance(family, int):
                continue
            try:
                self.guest.route(
                    "replace",
                    family,
                    None,
                    0,
                    gateway=gw,
                    oif=oif if isinstance(oif, int) else None,
                    what="cannot restore the previous default route",
                    protocol=proto,
                )
            except KernelError as exc:
                if exc.errno not in (errno.ENODEV, errno.ENETUNREACH, errno.EINVAL):
                    raise

    def announce(self, a: Announce) -> Undo:
        """Have the kernel send one gratuitous ARP when the interface comes up.

        ``arp_notify`` makes the kernel announce the interface's addresses on link-up, without
        anyone waiting. (Sending it from an AF_PACKET socket costs ~28 ms here: closing a packet
        socket waits for an RCU grace period.) The plan orders this before ``GuestLinkUp``.
        """
        with netns.entered(self.guest_fd):
            try:
                with open(f"/proc/sys/net/ipv4/conf/{a.ifname}/arp_notify", "w") as f:
                    f.write("1")
            except OSError:
                pass  # an announcement is a courtesy; no IPv4 on this interface is not an error
        return _noop

    # -- deletion -----------------------------------------------------------------------------

    def _delete_host(self, index: int, what: str) -> None:
        self.host.delete_link(index, f"cannot delete {what}")

    def _delete_guest(self, index: int, what: str) -> None:
        self.guest.delete_link(index, f"cannot delete {what}")


def kill_pidfile(pidfile: str, must_contain: str) -> None:
    """Stop the process a pidfile names, if its command line still mentions ``must_contain``."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return
    if pid > 0:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmdline = ""
        if must_contain in cmdline:
            try:
                posix.kill(pid, 15)
            except ProcessLookupError:
                pass
    try:
        posix.unlink(pidfile)
    except FileNotFoundError:
        pass
