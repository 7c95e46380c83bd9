"""The service's configuration, resolved from the command line and the environment.

The database address comes, first match wins, from ``--mongo-uri``; from the positional
arguments of the article's script (``birthdays serve 8080 ADDR PORT``); from the link-style
variables Docker links and Kubernetes Services inject (``MONGO_PORT_27017_TCP_ADDR`` and
``MONGO_PORT_27017_TCP_PORT``); else mongod's default, 127.0.0.1:27017.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from birthdays.errors import ConfigError

MIB = 1024 * 1024
# A JSON body of 2 MiB is at most ~12 MiB of BSON (a long array of one-digit numbers grows the
# most, 2 bytes to 12), under MongoDB's 16 MiB document limit; larger bodies could be accepted
# here and refused by the database.
MAX_BODY_CEILING = 2 * MIB
ENV_ADDR = "MONGO_PORT_27017_TCP_ADDR"
ENV_PORT = "MONGO_PORT_27017_TCP_PORT"


@dataclass(frozen=True, slots=True)
class MongoTarget:
    uri: str
    direct: bool  # one address from a link or the command line: talk to it, not its set
    source: str  # where the address came from, for the startup log line


DEFAULT_MONGO = MongoTarget("mongodb://127.0.0.1:27017/", True, "default")


@dataclass(frozen=True, slots=True)
class ServeConfig:
    port: int = 8080
    listen: str = "0.0.0.0"
    mongo: MongoTarget = DEFAULT_MONGO
    database: str = "demo"
    collection: str = "birthdays"
    workers: int = 1
    max_body: int = MIB
    db_timeout: float = 2.0
    write_concern: int | str = 1
    batch_docs: int = 1000
    stream_batch: int = 1000
    db_reads: int = 1
    max_connections: int = 1024
    shutdown_timeout: float = 25.0
    loop: str = "auto"  # auto | uvloop | asyncio


def parse_port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"{what}: invalid port: {text!r}")
    return int(text)


def _host_uri(addr: str, port: int) -> str:
    host = f"[{addr}]" if ":" in addr and not addr.startswith("[") else addr
    return f"mongodb://{host}:{port}/"


def resolve_mongo(
    positional: Sequence[str], uri: str | None, env: Mapping[str, str]
) -> MongoTarget:
    """Where the database is, from the sources in the module docstring."""
    if len(positional) > 2:
        raise ConfigError(f"too many arguments: {' '.join(positional[2:])}")
    if uri is not None:
        if positional:
            raise ConfigError("give the database as --mongo-uri or as ADDR PORT, not both")
        if not uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ConfigError(f"--mongo-uri: not a MongoDB URI: {uri!r}")
        return MongoTarget(uri, False, "--mongo-uri")
    if positional:
        addr = positional[0]
        port = parse_port(positional[1], "database port") if len(positional) == 2 else 27017
        if not addr:
            raise ConfigError("database address: empty")
        return MongoTarget(_host_uri(addr, port), True, "arguments")
    env_addr = env.get(ENV_ADDR, "")
    if env_addr:
        env_port = env.get(ENV_PORT, "") or "27017"
        return MongoTarget(_host_uri(env_addr, parse_port(env_port, ENV_PORT)), True, ENV_ADDR)
    return DEFAULT_MONGO


def parse_write_concern(text: str) -> int | str:
    if text == "majority":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ConfigError(f"--write-concern: expected a number >= 1 or 'majority', not {text!r}")


def check(config: ServeConfig) -> ServeConfig:
    """Invariants argparse cannot express."""
    if not 0 < config.max_body <= MAX_BODY_CEILING:
        raise ConfigError(f"--max-body: must be 1..{MAX_BODY_CEILING} bytes")
    if config.workers < 1 or config.workers > 64:
        raise ConfigError("--workers: must be 1..64")
    if config.db_timeout <= 0:
        raise ConfigError("--db-timeout: must be positive")
    if min(config.batch_docs, config.stream_batch, config.max_connections, config.db_reads) < 1:
        raise ConfigError(
            "--batch-docs, --stream-batch, --db-reads, --max-connections: must be positive"
        )
    if not config.database or any(c in config.database for c in '/\\. "$\x00'):
        raise ConfigError(f"--database: invalid name: {config.database!r}")
    coll = config.collection
    if not coll or coll.startswith("system.") or "$" in coll or "\x00" in coll:
        raise ConfigError(f"--collection: invalid name: {coll!r}")
    return config
