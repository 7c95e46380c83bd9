"""secantusdb as ``birthdays mongo`` runs it: stopped by SIGINT or SIGTERM without a race.

secantusdb's own launcher stops the server from a signal handler. Python runs a handler in the
main thread between two bytecodes, and secantusdb's main thread sits in ``Event.wait()``, which
briefly holds the event's lock on the way in; a stop signal that lands there (right after the
server starts answering, as a test or an impatient user sends it) runs ``Event.set()`` on a lock
its own thread holds, and the process hangs for good. Here no handler runs at all: the stop
signals are blocked before any thread starts (threads inherit the mask) and the main thread
takes them with ``sigwait``, then stops the server.

    python -m birthdays.secantusd --host ADDR --port N --storage-path DIR
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

STOP = {signal.SIGINT, signal.SIGTERM}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="birthdays-secantusd")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017)
    parser.add_argument("--storage-path", required=True)
    args = parser.parse_args(argv)
    # An ignored signal stays ignored across exec (`birthdays mongo &` from a script ignores
    # SIGINT), and sigwait never sees an ignored one; blocked first, so that every thread,
    # including any that importing secantusdb starts, inherits the mask.
    for sig in STOP:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP)
    from secantus.config import apply_overrides, load_config  # type: ignore[import-untyped]
    from secantus.server import SecantusDBServer  # type: ignore[import-untyped]

    base, _ = load_config(None)
    cfg = apply_overrides(
        base, {"host": args.host, "port": args.port, "storage_path": args.storage_path}
    )
    logging.basicConfig(
        level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server = SecantusDBServer(
        host=cfg.host,
        port=cfg.port,
        storage_path=cfg.storage_path,
        replica_set_name=None,  # standalone, as a plain mongod
        require_auth=cfg.auth,
        noop_heartbeat_seconds=cfg.noop_heartbeat_seconds,
        enable_test_commands=bool(cfg.enable_test_commands),
        oplog_retention_seconds=cfg.oplog_retention_seconds,
        oplog_max_entries=cfg.oplog_max_entries,
        oplog_archive_dir=cfg.oplog_archive_dir,
        cache_size=cfg.cache_size,
        session_max=cfg.session_max,
        sync_on_commit=cfg.sync_on_commit,
    )
    server.start()
    signal.sigwait(STOP)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
