"""The holder's own program: ``python -I -S -B holder.py FD`` (``supervise._reexec``).

A host's holder starts as a fork of netplumb; once its command runs, it execs this small
program, which imports the supervision loop and the restart policy and nothing else, reads
its state from the memory file FD (``holderfile``'s hand-over), and supervises from there
(``supervise.resume``). Where ``scripts/setup.sh`` compiled the C holder (``holder.c``), the
holder execs that instead: the same loop and files, in ~0.05 MB of private memory where this
one takes ~2.9 MB. This program stays as the fallback, and ``NETPLUMB_HOLDER=python`` picks it.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # -I leaves out the script's directory and the environment: netplumb is found from here
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from netplumb.hosts import supervise

    supervise.resume(int(sys.argv[1]))
