"""``birthdays mongo``: a MongoDB-compatible server wherever the service runs.

``mongod`` when it is installed; otherwise secantusdb (a MongoDB wire-protocol server on
WiredTiger, a pure pip dependency). The launcher replaces itself with the server process, so a
container's SIGTERM reaches the database directly.

secantusdb runs standalone, as a plain ``mongod`` does: by default it advertises itself as
a one-node replica set whose member address is its bind address, which clients in other
containers cannot use (``0.0.0.0:27017``) unless they connect directly. It runs under
``birthdays.secantusd`` rather than its own launcher, which can hang on a stop signal (see there).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass

from birthdays.errors import LauncherError


@dataclass(frozen=True, slots=True)
class MongoOptions:
    port: int = 27017
    host: str = "127.0.0.1"
    data: str = "mongo-data"
    engine: str = "auto"  # auto | mongod | secantus


def command(options: MongoOptions) -> list[str]:
    """The argv of the database server for ``options``."""
    mongod = shutil.which("mongod")
    engine = options.engine
    if engine == "auto":
        engine = "mongod" if mongod else "secantus"
    if engine == "mongod":
        if mongod is None:
            raise LauncherError("cannot start mongod: not installed (no mongod in PATH)")
        return [
            mongod,
            "--port",
            str(options.port),
            "--dbpath",
            options.data,
            "--bind_ip",
            options.host,
        ]
    if importlib.util.find_spec("secantus") is None:
        raise LauncherError(
            "cannot start a database: neither mongod nor the secantusdb package is installed"
        )
    return [
        sys.executable,
        "-m",
        "birthdays.secantusd",  # secantusdb's server, stopped without its launcher's race
        "--host",
        options.host,
        "--port",
        str(options.port),
        "--storage-path",
        options.data,
    ]


def run(options: MongoOptions) -> None:
    """Exec the database server; returns only by raising ``LauncherError``."""
    argv = command(options)
    try:
        os.makedirs(options.data, exist_ok=True)
    except OSError as exc:
        raise LauncherError(
            f"cannot create data directory {options.data}: {exc.strerror}"
        ) from None
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        raise LauncherError(f"cannot start {argv[0]}: {exc.strerror}") from None
