"""An attach inside a larger plan: the attach planner's actions as one part of a plan that
another command executes with the one applier (CNI ADD, ``lan attach``).

What ``engine.attach`` does around its plan, for such a plan: an attachment recorded exactly
so already is a no-op and differently a conflict; static addresses on the LAN are probed and
leased (unless the caller did it); the attachment is marked pending while its plan runs, so
``reconcile`` leaves it alone; the attach record is written by an action of its own
(``RecordAttach``), after the kernel's, so that what follows in the plan finds it.
"""

from __future__ import annotations

from netplumb import state
from netplumb.errors import Conflict
from netplumb.ops import engine
from netplumb.plan.actions import RecordAttach
from netplumb.state import pending

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from netplumb.kernel.session import Session
    from netplumb.model.attach import AttachRequest
    from netplumb.plan.actions import Action
    from netplumb.runtimes.guest import Guest

    Undo = Callable[[], None]


class AttachPart:
    def __init__(self, guest: Guest, req: AttachRequest) -> None:
        self.guest = guest
        self.req = req
        self.holder = engine.record_name(guest.key, req.guest_ifname)
        self.session: Session | None = None
        self.busy = ""
        self._execute: Callable[[Action], Undo] | None = None

    def steps(
        self, done: list[Undo], *, lan_checked: bool = False, dry_run: bool = False
    ) -> Iterator[Action]:
        """The attach actions for the guest as the kernel shows it now (none when attached
        exactly so already); what is taken before them puts its undo on ``done``. A dry run
        takes nothing and marks nothing."""
        from netplumb.kernel.session import Session

        req, guest = self.req, self.guest
        existing = state.read("attach", self.holder)
        if existing is not None:
            if existing.get("signature") == req.signature():
                return
            raise Conflict(
                f'guest {req.guest} already has interface "{req.guest_ifname}" from netplumb, '
                f"attached differently ({existing.get('describe')}); detach it first"
            )
        self.session = session = Session(guest.fd)
        if dry_run:
            yield from engine.plan_for(session, req, guest, dry_run=True)
            return
        if not lan_checked:
            lan = engine.claim_lan(req, self.holder)
            holder = self.holder
            done.append(lambda: engine.release_lan(lan, holder))
        self.busy = pending.mark(self.holder)
        self._execute = engine.executor(session, guest)
        yield from engine.plan_for(session, req, guest)
        yield RecordAttach(self.holder)

    def execute(self, action: Action) -> Undo:
        if isinstance(action, RecordAttach):
            assert self.session is not None
            engine.write_record(self.guest, self.req, self.session.results)
            engine.names_served(self.req, self.guest)
            return lambda: state.remove("attach", action.name)
        assert self._execute is not None
        return self._execute(action)

    def close(self) -> None:
        if self.busy:
            pending.clear(self.busy)
        if self.session is not None:
            self.session.close()
