"""Addresses for a CNI attachment: netplumb's own pools, or a delegated IPAM plugin.

Bridge mode leases from the netplumb network's table (``networks.lease``), so guests started by
``netplumb run`` and by a CNI runtime on one network never get the same address. Macvlan mode
has no bridge and so no netplumb network: its pool is a table of the same allocator
(``state/leases.py``), ``%cni-<name>``, leased the same way. Delegation runs the plugin
``ipam.type`` names from ``CNI_PATH`` with the same environment and config, as the
specification asks.
"""

from __future__ import annotations

import os

from netplumb import state
from netplumb.cni import jsonlite
from netplumb.cni.types import IPAM_FAILURE, CniError
from netplumb.model.ip import IP, Interface
from netplumb.state import addresses
from netplumb.state import leases as alloc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from netplumb.cni.config import Env, NetConf

POOLS = "cni-pools"  # the pools' records before the allocator: one marshal dict per pool


# -- macvlan pools ----------------------------------------------------------------------------


def table(name: str) -> str:
    """The allocator table of the macvlan pool ``name`` (``state/leases.py``)."""
    return f"%cni-{name}"


def _migrate(name: str) -> None:
    """Move a pool's leases recorded before the allocator (``cni-pools/<name>``, address ->
    owner) into its table, once (under the table's lock): they stay leased to their owners."""
    if not os.path.exists(state.path(POOLS, name)):
        return
    with alloc.lock(table(name)):
        for ip, owner in _old_pool(name).items():
            alloc.take(table(name), ip, owner)
        state.remove(POOLS, name)


def _old_pool(name: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in (state.read(POOLS, name) or {}).items()}


def pool_lease(name: str, gateway: Interface, owner: str, wanted: IP | None) -> IP:
    """An address of the pool ``name`` (subnet of ``gateway``) for ``owner``."""
    _migrate(name)
    return addresses.lease_in(table(name), gateway, owner, wanted, f"network {name}")


def pool_release(name: str, owner: str) -> None:
    _migrate(name)
    alloc.release_owner(owner, lambda t: t == table(name))


def pool_owners(name: str) -> set[str]:
    return set(alloc.held(table(name)).values()) | set(_old_pool(name).values())


# -- delegation -----------------------------------------------------------------------------


def _find(plugin: str, path: tuple[str, ...]) -> str:
    for d in path:
        candidate = f"{d}/{plugin}"
        if os.access(candidate, os.X_OK):
            return candidate
    raise CniError(
        IPAM_FAILURE,
        f'IPAM plugin "{plugin}" not found in CNI_PATH ({":".join(path) or "empty"})',
    )


def _exec(exe: str, environ: dict[str, str], stdin: str) -> tuple[int, str, str]:
    import subprocess  # only delegated IPAM pays for it (~6 ms here)

    try:
        proc = subprocess.run(
            [exe],
            input=stdin,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except OSError as exc:
        raise CniError(IPAM_FAILURE, f"cannot run IPAM plugin {exe}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise CniError(IPAM_FAILURE, f"IPAM plugin {exe} did not answer within 120 s") from None
    return proc.returncode, proc.stdout, proc.stderr


def delegate(
    command: str,
    conf: NetConf,
    env: Env,
    environ: Mapping[str, str],
    raw: str | None = None,
    plugin: str | None = None,
) -> dict[str, Any] | None:
    """Run the IPAM plugin for ``command``; ADD returns its result, the others None.

    A plugin older than the config (Debian's 1.1.1 plugins speak up to CNI 1.0.0) refuses a
    1.1.0 config with code 1: it is asked again with the config marked 1.0.0, whose result
    format is the same.
    """
    plugin = plugin or conf.ipam_type
    assert plugin is not None
    exe = _find(plugin, env.path)
    child = {**environ, "CNI_COMMAND": command}
    text = raw if raw is not None else conf.raw
    rc, out, err = _exec(exe, child, text)
    if rc != 0 and _code(out) == 1 and conf.version == "1.1.0":
        older = jsonlite.loads(text)
        older["cniVersion"] = "1.0.0"
        rc, out, err = _exec(exe, child, jsonlite.dumps(older))
    if rc != 0:
        msg = _message(out) or err.strip() or f"exit status {rc}"
        raise CniError(IPAM_FAILURE, f"IPAM plugin {plugin} {command} failed: {msg}")
    if command != "ADD":
        return None
    try:
        result = jsonlite.loads(out)
    except jsonlite.DecodeError as exc:
        raise CniError(
            IPAM_FAILURE, f"IPAM plugin {plugin} gave an undecodable result: {exc}"
        ) from None
    if not isinstance(result, dict) or not isinstance(result.get("ips"), list):
        raise CniError(IPAM_FAILURE, f"IPAM plugin {plugin} gave no addresses")
    return result


def _error_object(out: str) -> dict[str, Any] | None:
    try:
        obj = jsonlite.loads(out) if out.strip() else None
    except jsonlite.DecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _code(out: str) -> int | None:
    obj = _error_object(out)
    code = obj.get("code") if obj else None
    return code if isinstance(code, int) else None


def _message(out: str) -> str:
    obj = _error_object(out)
    if not obj:
        return ""
    msg = str(obj.get("msg", ""))
    details = obj.get("details")
    return f"{msg}; {details}" if details else msg
