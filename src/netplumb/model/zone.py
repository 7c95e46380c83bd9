"""What a network's name server knows and how it answers (pure): the zone of every netplumb
network, built from netplumb's records (``ops/dns.py``), and the answer to one question.

A member is a guest on a network (a host, a Docker container, a CNI container): its names (its
name, hostname, ``--network-alias`` aliases, its service's name when it is a replica) resolve
on that network to its addresses there. An asker sees the networks it is on (found by its
source address; an address no record names sees the network it asked on), its link aliases
(``--link db:mongo``: ``mongo`` for the linking guest only) and reverse names of the addresses
on those networks. A name known only on other networks gets NXDOMAIN, as does a reverse name
inside the asker's subnets that nobody holds; every other name is forwarded (``None``), except
on an internal network, which refuses.
"""

from __future__ import annotations

import random
import socket

from netplumb.model import dnswire as w

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

Answer = tuple[int, list[tuple[int, bytes]]]  # rcode, records (type, rdata)


def pack(ip: str) -> bytes:
    """An address in network byte order (4 or 16 bytes)."""
    return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)


class NetSpec:
    """A network as the server needs it: where it listens, whom it answers."""

    __slots__ = ("bridge", "gateways", "internal", "name", "subnets")

    def __init__(
        self,
        name: str,
        bridge: str,
        gateways: tuple[str, ...],
        subnets: tuple[tuple[str, int], ...],
        internal: bool = False,
    ) -> None:
        self.name = name
        self.bridge = bridge
        self.gateways = gateways  # the addresses it listens on
        self.subnets = subnets  # (network address, prefix length): the askers it answers
        self.internal = internal


class MemberSpec:
    """A guest as the zone needs it: its names, its addresses per network, its link aliases."""

    __slots__ = ("addresses", "links", "names", "owner")

    def __init__(
        self,
        owner: str,
        names: tuple[str, ...],
        addresses: tuple[tuple[str, str], ...],
        links: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.owner = owner
        self.names = names  # the first is the one reverse lookups give
        self.addresses = addresses  # (network, ip)
        self.links = links  # (alias, target name)


def _subnet(ip: str, plen: int) -> tuple[int, int, int]:
    raw = pack(ip)
    bits = len(raw) * 8
    mask = ((1 << plen) - 1) << (bits - plen) if plen else 0
    return len(raw), int.from_bytes(raw, "big") & mask, mask


class Zone:
    """Every network's names, and the answer to a question (``lookup``)."""

    def __init__(self, networks: Iterable[NetSpec], members: Iterable[MemberSpec]) -> None:
        self.networks = {n.name: n for n in networks}
        self._subnets = {
            n.name: [_subnet(ip, plen) for ip, plen in n.subnets] for n in self.networks.values()
        }
        self._v4: dict[str, dict[str, list[bytes]]] = {n: {} for n in self.networks}
        self._v6: dict[str, dict[str, list[bytes]]] = {n: {} for n in self.networks}
        self._ptr: dict[str, dict[str, bytes]] = {n: {} for n in self.networks}
        self._owner_of: dict[bytes, str] = {}
        self._nets_of: dict[str, tuple[str, ...]] = {}
        self._links_of: dict[str, dict[str, str]] = {}
        self._known: set[str] = set()
        self.members = 0
        for m in members:
            names = [n.lower() for n in dict.fromkeys(m.names) if n]
            nets: list[str] = []
            for net, ip in m.addresses:
                if net not in self.networks or not names:
                    continue
                raw = pack(ip)
                table = self._v4[net] if len(raw) == 4 else self._v6[net]
                for name in names:
                    held = table.setdefault(name, [])
                    if raw not in held:
                        held.append(raw)
                self._ptr[net][w.reverse_name(raw)] = w.encode_name(names[0])
                self._owner_of[raw] = m.owner
                if net not in nets:
                    nets.append(net)
            if nets:
                self.members += 1
                self._known.update(names)
                self._nets_of[m.owner] = tuple(nets)
                if m.links:
                    self._links_of[m.owner] = {a.lower(): t.lower() for a, t in m.links}

    def answers_to(self, network: str, source: bytes) -> bool:
        """Whether an asker at ``source`` (packed) is one ``network`` answers: one of its
        subnets. Anyone else gets no answer (never an open resolver)."""
        value = int.from_bytes(source, "big")
        size = len(source)
        return any(
            n == size and value & mask == net for n, net, mask in self._subnets.get(network, ())
        )

    def lookup(self, network: str, source: bytes, qname: str, qtype: int) -> Answer | None:
        """The answer to ``qname``/``qtype`` asked on ``network`` from ``source``; None: not
        netplumb's to answer (forward it)."""
        owner = self._owner_of.get(source)
        nets = self._nets_of.get(owner, (network,)) if owner is not None else (network,)
        if owner is not None:
            qname = self._links_of.get(owner, {}).get(qname, qname)
        if qname.endswith(".arpa"):
            return self._reverse(nets, qname)
        v4: list[bytes] = []
        v6: list[bytes] = []
        hit = False
        for net in nets:
            four, six = self._v4[net].get(qname), self._v6[net].get(qname)
            if four is not None or six is not None:
                hit = True
                v4 += [a for a in four or () if a not in v4]
                v6 += [a for a in six or () if a not in v6]
        if hit:
            records: list[tuple[int, bytes]] = []
            if qtype in (w.TYPE_A, w.TYPE_ANY):
                records += [(w.TYPE_A, a) for a in v4]
            if qtype in (w.TYPE_AAAA, w.TYPE_ANY):
                records += [(w.TYPE_AAAA, a) for a in v6]
            if len(records) > 1:
                random.shuffle(records)  # replicas in varying order, as Docker gives them
            return w.NOERROR, records
        if qname in self._known:
            return w.NXDOMAIN, []
        return None

    def _reverse(self, nets: tuple[str, ...], qname: str) -> Answer | None:
        for net in nets:
            found = self._ptr[net].get(qname)
            if found is not None:
                return w.NOERROR, [(w.TYPE_PTR, found)]
        raw = w.reverse_address(qname)
        if raw is not None and any(self.answers_to(net, raw) for net in nets):
            return w.NXDOMAIN, []  # inside the asker's networks: nobody holds it
        return None

    def forwards(self, network: str) -> bool:
        """Whether names not netplumb's are forwarded for askers on ``network``."""
        net = self.networks.get(network)
        return net is not None and not net.internal
