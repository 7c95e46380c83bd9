"""CNI results, errors and versions, as the CNI specification 1.1.0 writes them (pure).

A plugin reports failure with an error object on standard output and a non-zero exit status.
Codes 1-99 are the specification's (1-7 and 11 are defined, 50-51 for STATUS), codes from 100
are the plugin's own; netplumb-cni's are listed below and in docs/cni.md.
"""

from __future__ import annotations

from netplumb.errors import (
    Conflict,
    GuestNotFound,
    InvalidValue,
    KernelError,
    NetplumbError,
    NotSupported,
    StateError,
)

SPEC_VERSION = "1.1.0"
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

# the specification's codes
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_NETWORK_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50  # STATUS: the plugin cannot serve ADD now

# netplumb-cni's own codes
CONFLICT = 100  # the attachment exists already, or an address, port or name is taken
KERNEL_FAILURE = 101  # a netlink or nftables operation failed
STATE_FAILURE = 102  # netplumb's records cannot be read or written
IPAM_FAILURE = 103  # the delegated IPAM plugin failed
CHECK_FAILED = 104  # CHECK found the attachment differs from what ADD made
NOT_SUPPORTED = 105  # asked for something netplumb-cni does not do
FAILED = 106  # any other failure netplumb reports (the message says what and why)
INTERNAL = 199  # a bug: an exception netplumb did not expect

CODE_NAMES = {
    INCOMPATIBLE_VERSION: "incompatible CNI version",
    UNSUPPORTED_FIELD: "unsupported field in network configuration",
    UNKNOWN_CONTAINER: "container unknown or does not exist",
    INVALID_ENVIRONMENT: "invalid necessary environment variables",
    IO_FAILURE: "I/O failure",
    DECODING_FAILURE: "failed to decode content",
    INVALID_NETWORK_CONFIG: "invalid network config",
    TRY_AGAIN_LATER: "try again later",
    NOT_AVAILABLE: "plugin not available",
    CONFLICT: "conflict",
    KERNEL_FAILURE: "kernel operation failed",
    STATE_FAILURE: "netplumb state error",
    IPAM_FAILURE: "IPAM plugin failed",
    CHECK_FAILED: "check failed",
    NOT_SUPPORTED: "not supported",
    FAILED: "operation failed",
    INTERNAL: "internal error",
}


class CniError(Exception):
    """An error to report as a CNI error object."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, version: str) -> dict[str, object]:
        out: dict[str, object] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


def from_netplumb(exc: NetplumbError) -> CniError:
    """netplumb's exception tree mapped onto CNI codes; the message is netplumb's own."""
    code = FAILED
    if isinstance(exc, InvalidValue):
        code = INVALID_NETWORK_CONFIG
    elif isinstance(exc, GuestNotFound):
        code = UNKNOWN_CONTAINER
    elif isinstance(exc, Conflict):
        code = CONFLICT
    elif isinstance(exc, KernelError):
        code = KERNEL_FAILURE
    elif isinstance(exc, StateError):
        code = STATE_FAILURE
    elif isinstance(exc, NotSupported):
        code = NOT_SUPPORTED
    return CniError(code, str(exc))


def _key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


def at_least(version: str, minimum: str) -> bool:
    return _key(version) >= _key(minimum)


def check_version(version: object) -> str:
    """The config's ``cniVersion``, if this plugin speaks it."""
    if not isinstance(version, str) or not version:
        raise CniError(DECODING_FAILURE, "the network config has no cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            f'incompatible CNI versions: config is "{version}", '
            f"plugin supports {', '.join(SUPPORTED_VERSIONS)}",
        )
    return version


def version_info() -> dict[str, object]:
    """VERSION's answer."""
    return {"cniVersion": SPEC_VERSION, "supportedVersions": list(SUPPORTED_VERSIONS)}


# -- results ------------------------------------------------------------------------------------


class IPConfig:
    """One address of the result: ``address`` as ``ip/prefix``; ``interface`` an index into the
    result's interfaces."""

    __slots__ = ("address", "gateway", "interface")

    def __init__(self, address: str, gateway: str | None, interface: int | None) -> None:
        self.address = address
        self.gateway = gateway
        self.interface = interface


def _dicts(result: dict[str, object] | None, key: str) -> list[dict[str, object]]:
    """The objects of a list field of a (previous) result; anything else left out."""
    items = (result or {}).get(key)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def result_json(
    version: str,
    interfaces: list[dict[str, object]],
    ips: list[IPConfig],
    routes: list[dict[str, object]],
    dns: dict[str, object] | None,
    prev: dict[str, object] | None = None,
) -> dict[str, object]:
    """An ADD result in the format of ``version``; with ``prev`` (a chained plugin's result),
    its interfaces, addresses and routes come first and this plugin's are added after them."""
    prev_ifs = _dicts(prev, "interfaces")
    prev_ips = _dicts(prev, "ips")
    prev_routes = _dicts(prev, "routes")
    shift = len(prev_ifs)
    legacy = not at_least(version, "1.0.0")  # 0.3.x and 0.4.0 carry a "version" per address
    out_ips: list[dict[str, object]] = [dict(i) for i in prev_ips]
    for ip in ips:
        entry: dict[str, object] = {}
        if legacy:
            entry["version"] = "6" if ":" in ip.address else "4"
        if ip.interface is not None:
            entry["interface"] = ip.interface + shift
        entry["address"] = ip.address
        if ip.gateway:
            entry["gateway"] = ip.gateway
        out_ips.append(entry)
    if legacy:
        for entry in out_ips:
            entry.setdefault("version", "6" if ":" in str(entry.get("address", "")) else "4")
    else:
        for entry in out_ips:
            entry.pop("version", None)
    out: dict[str, object] = {"cniVersion": version}
    out["interfaces"] = [*prev_ifs, *interfaces]
    out["ips"] = out_ips
    out["routes"] = [*prev_routes, *routes]
    prev_dns = (prev or {}).get("dns")
    out["dns"] = dns if dns else prev_dns if isinstance(prev_dns, dict) else {}
    return out
