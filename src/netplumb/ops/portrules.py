"""netplumb's nftables tables kept equal to its records, each change touching only its own.

Two ways to the kernel, chosen by what changed:

- ``changed(add, drop)``: bindings published or unpublished become elements added to or deleted
  from the DNAT maps (``nft/elements.py``), one small nfnetlink transaction
  (``kernel/nftset.py``) whose cost does not depend on how many ports exist. When the kernel
  says the table or a map is missing or differs (someone flushed the ruleset, or an older
  netplumb made the table without maps), the whole ruleset is rendered and applied instead:
  a change repairs what it touches.
- ``sync()``: the whole ruleset, rendered from the records (``nft/render.py``, golden-tested)
  and applied in one ``nft -f`` transaction: networks created or removed, isolation and link
  flows, ``reconcile``.

Chosen by measurement (``bench/nft_alternatives.py``, in a throwaway namespace, 2 shared CPUs,
kernel 6.18, nft 1.0.6; one more port of one host, mean of 50, with 0 and with 1,000 ports
existing; two runs under different load):

    whole ruleset rewritten with nft -f (before)   18-19 ms         35-60 ms
    nft add rule, a rule per port                  2.7-7.7 ms       2.9-8.6 ms
    nft add element into a DNAT map                2.4-5.7 ms       2.6-4.5 ms
    the same through libnftables (ctypes)          0.1-0.6 ms       0.1 ms  (+5 ms ctypes import)
    the element over nfnetlink (kernel/nftset.py)  0.04 ms          0.03 ms

Rules per port (per-owner chains alike) also keep the packet path linear in the number of
ports, and deleting one needs its handle (a listing, or handles kept in the records); map
elements are one hash lookup on the packet path and are deleted by their key. The element over
nfnetlink costs nothing next to the record writes, and imports nothing heavy.
"""

from __future__ import annotations

from netplumb import state
from netplumb.nft.elements import Element
from netplumb.ops import lanredirect, ruleinputs, sockredirect
from netplumb.state import portrecords
from netplumb.state.lock import Lock

# The renderer (nft/render.py) is imported where the whole ruleset is made (``ruleinputs``): a
# publication does not need it, and ``netplumb publish`` is a command scripts run once per
# port (each import costs it).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from netplumb.nft.elements import SetElement
    from netplumb.state import Record

TABLE = "netplumb"


class PortsLock(Lock):
    """The ports lock: records of published ports and the kernel's tables change under it, so
    a whole rewrite never drops an element another process added after it read the records.
    Re-entrant within the process (a publication that repairs the table takes it again)."""

    _depth = 0

    def __init__(self) -> None:
        super().__init__("ports.lock")

    def __enter__(self) -> PortsLock:
        if PortsLock._depth == 0:
            super().__enter__()
        PortsLock._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        PortsLock._depth -= 1
        if PortsLock._depth == 0:
            super().__exit__(*exc)


_batch_depth = 0
_batch_dirty = False  # a whole rewrite is due at the batch's end
_batch_iso = False  # the isolated networks' sets are due
_batch_guests = False  # the redirection's reach is due (hosts started)
_batch_elements: dict[tuple[str, bytes], tuple[Record | None, Record | None]] = {}
_at_batch_end: list[Callable[[], None]] = []


def in_batch() -> bool:
    return _batch_depth > 0


def at_batch_end(callback: Callable[[], None]) -> None:
    """Call ``callback`` once when the outermost batch ends (after its kernel changes)."""
    if callback not in _at_batch_end:
        _at_batch_end.append(callback)


class batch:  # used like a function: ``with ports.batch():``
    """Within the block, kernel changes are deferred and made once at its end: bringing up or
    removing N guests then costs one transaction, not N. What is due is the least that covers
    them: the publications' elements, the isolated networks' sets, or (when something asked
    for it, a network created or removed) the whole ruleset."""

    def __enter__(self) -> None:
        global _batch_depth  # noqa: PLW0603 -- process-wide, nesting allowed
        _batch_depth += 1

    def __exit__(self, *exc: object) -> None:
        global _batch_depth, _batch_dirty, _batch_iso, _batch_guests  # noqa: PLW0603
        _batch_depth -= 1
        if _batch_depth:
            return
        try:
            pending = list(_batch_elements.values())
            _batch_elements.clear()
            if _batch_dirty:
                _batch_dirty = _batch_iso = _batch_guests = False
                sync()
                return
            add = [new for _old, new in pending if new is not None]
            drop = [old for old, _new in pending if old is not None]
            if add or drop:
                changed(add, drop)
            if _batch_iso:
                _batch_iso = False
                isolation_changed()
            if _batch_guests:
                _batch_guests = False
                guests_came()
        finally:
            while _at_batch_end:
                _at_batch_end.pop(0)()


def sync() -> None:
    """Make the kernel's netplumb tables equal to the records (one atomic transaction)."""
    global _batch_dirty  # noqa: PLW0603
    if _batch_depth:
        _batch_dirty = True
        return
    from netplumb.kernel import nft

    with PortsLock():
        nft.apply_text(ruleinputs.desired())
        sockredirect.refresh()
        lanredirect.refresh()


def changed(add: list[Record], drop: list[Record]) -> None:
    """Bindings added to and dropped from the records: add and delete their elements only (the
    records are already written). Repairs the whole ruleset when the kernel lacks the table or
    a map, or holds an element of the same key with other data."""
    if _batch_depth:
        _defer(add, drop)
        return
    from netplumb.kernel import nftset

    mine, gone = _self_elements(add, drop)
    adding: list[Element | SetElement] = [_element(b) for b in add]
    deleting: list[Element | SetElement] = [_element(b) for b in drop]
    try:
        nftset.change(TABLE, [*adding, *mine], [*deleting, *gone])
    except nftset.Refused as exc:
        if not nftset.missing(exc):
            raise
        sync()
        return
    # the machine's and its guests' own connections sent to the guest when they are made, not
    # translated (``model/socklb.py``: the DNAT's cost is the translation itself); the DNAT
    # rules stay for every other client
    sockredirect.redirect(add, drop)
    # a LAN neighbour's translated by tc programs of netplumb's own, around netfilter
    # (``model/lanlb.py``: the same cost, per packet)
    lanredirect.redirect(add, drop)


def _self_elements(
    add: list[Record], drop: list[Record]
) -> tuple[list[SetElement], list[SetElement]]:
    """The ``publish4_self`` elements to add and to delete with these bindings: a guest's pair
    comes with its first published IPv4 port and goes with its last (from the records, which
    are already written). Adding one that is there changes nothing."""
    from netplumb.nft.elements import self_element

    def v4(bindings: list[Record]) -> dict[str, str]:
        return {str(b["container_ip"]): str(b["owner"]) for b in bindings if int(b["family"]) == 4}

    added = v4(add)
    gone = []
    for ip, owner in v4(drop).items():
        if ip in added:
            continue
        held = portrecords.bindings(owner) if portrecords.exists(owner) else []
        if not any(int(b["family"]) == 4 and b["container_ip"] == ip for b in held):
            gone.append(self_element(ip, f"netplumb:{owner}"))
    return [self_element(ip, f"netplumb:{owner}") for ip, owner in added.items()], gone


def _defer(add: list[Record], drop: list[Record]) -> None:
    """Within a batch: per element (map and key), what the kernel held before the batch and
    what it must hold after it. A drop then an add of one key deletes and adds; an add then a
    drop cancel out."""
    gone = [((e.map, e.key), b) for b in drop for e in (_element(b),)]
    new = [((e.map, e.key), b) for b in add for e in (_element(b),)]  # all checked first
    for key, b in gone:
        before, _after = _batch_elements.get(key, (b, None))
        _batch_elements[key] = (before, None)
    for key, b in new:
        before, _after = _batch_elements.get(key, (None, None))
        _batch_elements[key] = (before, b)


def isolation_changed() -> None:
    """A guest joined or left an isolated network, or a link between guests came or went: the
    isolated networks' two sets each (bridge ports, link flows) are emptied and filled again
    from the records in one nfnetlink transaction; publications and the rules stay untouched.
    The whole ruleset is applied instead when the bridge table or a set is missing."""
    global _batch_iso  # noqa: PLW0603
    if _batch_depth:
        _batch_iso = True
        return
    from netplumb.kernel import nftset
    from netplumb.nft.render import isolation_elements, links_set, ports_set

    with PortsLock():
        nets = ruleinputs.nets(isolated_only=True)
        if not nets:
            return
        allows = ruleinputs.allows()
        add: list[SetElement] = []
        flush: list[str] = []
        for n in nets:
            ports, links = isolation_elements(n, allows)
            add += ports + links
            flush += [ports_set(n), links_set(n)]
        try:
            nftset.change(TABLE, add, [], family=nftset.NFPROTO_BRIDGE, flush=flush)
        except nftset.Refused as exc:
            if not nftset.missing(exc):
                raise
            sync()


def _element(b: Record) -> Element:
    """The binding's element: ``render.element(ruleinputs.publication(b))``, without the
    renderer."""
    return Element(*ruleinputs.binding_fields(b))


def reconcile_if_drifted() -> bool:
    """Re-apply when the tables are missing or hold another number of rules or elements (say
    after ``nft flush ruleset``); returns whether it did. Cheap when netplumb owns nothing.
    Only ``reconcile``-like callers use it: reading commands change nothing."""
    if not ruleinputs.network_names() and not portrecords.owners():
        return False
    from netplumb.kernel import nft
    from netplumb.nft.render import element_count, rule_count

    text = ruleinputs.desired()
    if nft.rules_in_kernel() == (rule_count(text), element_count(text)):
        return False
    nft.apply_text(text)
    return True


def redirect_if_drifted() -> bool:
    """Make the socket redirection's entries of this namespace and of its guests, and the LAN
    path's, equal to the records and the machine's addresses and links again (after the
    programs were detached, say, an entry deleted by hand, or an address added); returns
    whether anything had to change. Cheap when netplumb publishes nothing: no BPF is
    touched."""
    if (
        not portrecords.owners()
        and state.read(*sockredirect.REACH) is None
        and state.read(*lanredirect.PATHS) is None
    ):
        return False
    with PortsLock():
        sock = sockredirect.refresh()
        return lanredirect.refresh() or sock


def guests_came() -> None:
    """Hosts started: the redirection's reach is made again, so their own connections to the
    machine's addresses reach the published ports of their networks directly (at a batch's
    end, once)."""
    global _batch_guests  # noqa: PLW0603
    if _batch_depth:
        _batch_guests = True
        return
    redirect_if_drifted()


def guests_went(records: list[Record]) -> None:
    """Hosts removed: their entries in the redirection go (keyed by their netns cookies)."""
    cookies = [c for r in records if isinstance(c := r.get("netns_cookie"), int)]
    if cookies:
        with PortsLock():
            sockredirect.forget(cookies)
