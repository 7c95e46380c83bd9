"""Use cases: what each command does, printing nothing (``cli/`` prints).

Each module observes (records, the kernel, Docker), plans and applies with the one applier,
``apply`` (in order, undone in reverse on failure): ``engine`` (attach and detach),
``dryrun`` (the plans ``--dry-run`` prints for the other changing commands), ``networks``
(bridges and their address leases), ``links``,
``containers`` (``run`` with networks, links and ports), ``cleanup`` (releasing what an owner
held) and ``gc`` (what dead guests left), ``lanbridge``/``lanpool``/``languest`` (the host's
LAN), ``inspect``. Published ports (``netplumb.ops.ports``) join them once their rewrite lands.
"""
