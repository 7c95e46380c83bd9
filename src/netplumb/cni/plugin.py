"""The netplumb-cni plugin: read the call, run ADD/DEL/CHECK/VERSION/GC/STATUS, write the
answer (a result, or an error object on stdout and exit status 1).

ADD is one plan of typed actions executed by the one applier with rollback (``add.py``: the
attachment's record, netplumb's address tables, the attach planner's actions, published
ports); DEL is a plan built from netplumb's records (``teardown.py``): the CNI plugin is a
front door to the same code as ``netplumb attach`` and ``pipework``, with no kernel code of
its own. This path imports only
what an ADD needs (no json, subprocess or argparse): it is run once per container start.
"""

from __future__ import annotations

import sys

from netplumb.cni.config import Env, NetConf, decode, parse_conf, parse_env
from netplumb.cni.types import (
    INTERNAL,
    IO_FAILURE,
    SPEC_VERSION,
    CniError,
    from_netplumb,
    version_info,
)
from netplumb.errors import NetplumbError
from netplumb.lightos import environ

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


# -- the entry point ----------------------------------------------------------------------------


def handle(environ: Mapping[str, str], stdin: str | None) -> tuple[int, str]:
    """One call: (exit status, what to write on stdout). ``stdin`` None: read it here."""
    version = SPEC_VERSION
    try:
        env = parse_env(environ)
        if env.command == "VERSION":
            from netplumb.cni import jsonlite

            return 0, jsonlite.dumps(version_info())
        if stdin is None:
            try:
                stdin = sys.stdin.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise CniError(IO_FAILURE, f"cannot read the network config: {exc}") from None
        version = _version_of(stdin)
        conf = parse_conf(stdin, env)
        return 0, _dispatch(env, conf, environ)
    except CniError as exc:
        err = exc
    except NetplumbError as exc:
        err = from_netplumb(exc)
    except OSError as exc:
        err = CniError(IO_FAILURE, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except Exception as exc:  # a bug: still an error object, never a traceback on stdout
        err = CniError(INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
    from netplumb.cni import jsonlite

    return 1, jsonlite.dumps(err.to_json(version))


def _version_of(stdin: str) -> str:
    """The config's version, for an error about the rest of it; else the plugin's own."""
    from netplumb.cni.types import SUPPORTED_VERSIONS

    try:
        version = decode(stdin).get("cniVersion")
    except CniError:
        return SPEC_VERSION
    return version if version in SUPPORTED_VERSIONS else SPEC_VERSION


def _dispatch(env: Env, conf: NetConf, environ: Mapping[str, str]) -> str:
    if env.command == "ADD":
        from netplumb.cni import jsonlite
        from netplumb.cni.add import add

        return jsonlite.dumps(add(env, conf, environ))
    from netplumb.cni import teardown  # not on ADD's path (~0.3 ms)

    if env.command == "DEL":
        teardown.delete(env, conf, environ)
    elif env.command == "CHECK":
        teardown.check(env, conf)
    elif env.command == "GC":
        teardown.gc(env, conf, environ)
    else:
        teardown.status(conf)
    return ""


def main() -> int:
    rc, out = handle(environ(), None)
    if out:
        sys.stdout.write(out + "\n")
    return rc


def launch() -> None:
    """Entry of the bin/netplumb-cni launcher: no interpreter teardown (~2 ms)."""
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    import posix

    posix._exit(rc)
