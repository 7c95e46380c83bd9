"""A CNI request, from the environment and the network config on stdin (pure).

Raw first, then resolved: the JSON as the runtime wrote it becomes a ``NetConf`` with every
field checked and defaulted; an error names the field (``ipam.type: ...``) and carries the CNI
code the specification gives it (4 for the environment, 6 for undecodable input, 7 for an
invalid network config, 1 for a version this plugin does not speak).
"""

from __future__ import annotations

from netplumb.cni import jsonlite
from netplumb.cni.types import (
    DECODING_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_ENVIRONMENT,
    INVALID_NETWORK_CONFIG,
    CniError,
    at_least,
    check_version,
)
from netplumb.errors import InvalidValue
from netplumb.model.ip import IP, Interface
from netplumb.model.mac import Mac
from netplumb.model.names import check_ifname
from netplumb.model.network import Network, make_network
from netplumb.model.value import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")
MODES = ("bridge", "macvlan")
OWN_IPAM = ("", "netplumb")
# CNI_ARGS keys netplumb-cni reads or that runtimes are known to send
KNOWN_ARGS = (
    "IgnoreUnknown",
    "IP",
    "MAC",
    "K8S_POD_NAME",
    "K8S_POD_NAMESPACE",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
)
VALID_ATTACHMENTS = "cni.dev/valid-attachments"


def _invalid(msg: str) -> CniError:
    return CniError(INVALID_NETWORK_CONFIG, f"invalid network config: {msg}")


class Env(Value):
    """The ``CNI_*`` environment of one call."""

    __slots__ = ("args", "command", "container_id", "ifname", "netns", "path")
    command: str
    container_id: str
    netns: str
    ifname: str
    args: tuple[tuple[str, str], ...]
    path: tuple[str, ...]

    def __init__(
        self,
        command: str,
        container_id: str = "",
        netns: str = "",
        ifname: str = "",
        args: tuple[tuple[str, str], ...] = (),
        path: tuple[str, ...] = (),
    ) -> None:
        self.command = command
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args = args
        self.path = path
        self._freeze()

    def arg(self, key: str) -> str | None:
        return next((v for k, v in self.args if k == key), None)


def _container_id_ok(cid: str) -> bool:
    # the specification's rule: alphanumeric first, then alphanumerics, '_', '.', '-'
    return (
        bool(cid)
        and cid[0].isascii()
        and cid[0].isalnum()
        and all(c.isascii() and (c.isalnum() or c in "_.-") for c in cid)
    )


def parse_args(text: str) -> tuple[tuple[str, str], ...]:
    """``CNI_ARGS``: ``K=V;K=V``; unknown keys are an error unless ``IgnoreUnknown`` is set."""
    pairs: list[tuple[str, str]] = []
    for item in text.split(";"):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise CniError(INVALID_ENVIRONMENT, f"CNI_ARGS: invalid argument {item!r}: not K=V")
        pairs.append((key, value))
    ignore = any(k == "IgnoreUnknown" and v.lower() in ("1", "true") for k, v in pairs)
    unknown = [k for k, _ in pairs if k not in KNOWN_ARGS]
    if unknown and not ignore:
        raise CniError(
            INVALID_ENVIRONMENT,
            f"CNI_ARGS: unknown argument {unknown[0]} (IgnoreUnknown=1 lets it pass)",
        )
    return tuple(pairs)


def parse_env(environ: Mapping[str, str]) -> Env:
    """The environment; the variables a command needs must be there and valid (code 4)."""
    command = environ.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        what = f"unknown command {command!r}" if command else "not set"
        raise CniError(INVALID_ENVIRONMENT, f"CNI_COMMAND: {what} (one of {', '.join(COMMANDS)})")
    cid = environ.get("CNI_CONTAINERID", "")
    netns = environ.get("CNI_NETNS", "")
    ifname = environ.get("CNI_IFNAME", "")
    if command in ("ADD", "DEL", "CHECK"):
        needed = ["CNI_CONTAINERID", "CNI_IFNAME"] + (["CNI_NETNS"] if command != "DEL" else [])
        missing = [k for k in needed if not environ.get(k)]
        if missing:
            raise CniError(
                INVALID_ENVIRONMENT, f"{command} needs {', '.join(missing)}: not set or empty"
            )
        if not _container_id_ok(cid):
            raise CniError(
                INVALID_ENVIRONMENT,
                f"CNI_CONTAINERID: invalid {cid!r}: letters, digits, '_', '.' and '-' only",
            )
        try:
            check_ifname(ifname, "interface name")
        except InvalidValue as exc:
            raise CniError(INVALID_ENVIRONMENT, f"CNI_IFNAME: {exc}") from None
    args = parse_args(environ.get("CNI_ARGS", ""))
    path = tuple(p for p in environ.get("CNI_PATH", "").split(":") if p)
    return Env(command, cid, netns, ifname, args, path)


# -- the network config ---------------------------------------------------------------------------


class PortMap(Value):
    """One entry of ``runtimeConfig.portMappings``, and the Docker ``-p`` text it means."""

    __slots__ = ("container_port", "host_ip", "host_port", "protocol")
    host_port: int
    container_port: int
    protocol: str
    host_ip: str | None

    def __init__(
        self, host_port: int, container_port: int, protocol: str, host_ip: str | None
    ) -> None:
        self.host_port = host_port
        self.container_port = container_port
        self.protocol = protocol
        self.host_ip = host_ip
        self._freeze()

    def spec(self) -> str:
        ip = self.host_ip or ""
        if ":" in ip:
            ip = f"[{ip}]"
        head = f"{ip}:" if ip else ""
        return f"{head}{self.host_port}:{self.container_port}/{self.protocol}"


class NetConf(Value):
    """The resolved network config.

    ``network`` is the netplumb network (bridge mode); ``pool`` the subnet's gateway interface
    for netplumb's own addresses in macvlan mode; ``ipam_type`` None means netplumb's own IPAM,
    else the plugin IPAM is delegated to.
    """

    __slots__ = (
        "default_route",
        "dns",
        "ifname_mac",
        "ipam_type",
        "ips",
        "master",
        "mode",
        "name",
        "network",
        "pool",
        "port_maps",
        "prev_result",
        "raw",
        "valid",
        "version",
    )
    version: str
    name: str
    mode: str
    network: Network | None
    master: str | None
    pool: Interface | None
    ipam_type: str | None
    default_route: bool
    ips: tuple[IP, ...]
    ifname_mac: Mac | None
    port_maps: tuple[PortMap, ...]
    dns: dict[str, object]
    prev_result: dict[str, object] | None
    valid: tuple[tuple[str, str], ...] | None
    raw: str

    def __init__(self, **fields: object) -> None:
        for name in self.__slots__:
            if name != "_frozen":
                setattr(self, name, fields[name])
        self._freeze()


def _get(conf: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    value = conf.get(key)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _invalid(f"{where}{key}: {jsonlite.dumps(value)} is not a {_json_type(names)}")
    return value


def _json_type(py: str) -> str:
    return {"str": "string", "int": "number", "bool": "boolean", "dict": "object"}.get(py, py)


def _ips(values: Sequence[object], where: str) -> tuple[IP, ...]:
    out = []
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise _invalid(f"{where}[{i}]: {jsonlite.dumps(v)} is not a string")
        try:
            out.append(Interface.parse(v).ip)
        except InvalidValue as exc:
            raise _invalid(f"{where}[{i}]: {exc}") from None
    return tuple(out)


def _port_maps(values: object) -> tuple[PortMap, ...]:
    where = "runtimeConfig.portMappings"
    if not isinstance(values, list):
        raise _invalid(f"{where}: not a list")
    out = []
    for i, m in enumerate(values):
        if not isinstance(m, dict):
            raise _invalid(f"{where}[{i}]: not an object")
        at = f"{where}[{i}]."
        host = _get(m, "hostPort", int, at)
        cont = _get(m, "containerPort", int, at)
        proto = (_get(m, "protocol", str, at) or "tcp").lower()
        host_ip = _get(m, "hostIP", str, at) or None
        for key, port in (("hostPort", host), ("containerPort", cont)):
            if port is None or not 1 <= port <= 65535:
                raise _invalid(f"{at}{key}: {port} is not a port number (1-65535)")
        if proto not in ("tcp", "udp", "sctp"):
            raise _invalid(f"{at}protocol: {jsonlite.dumps(proto)} is not tcp, udp or sctp")
        if host_ip is not None:
            try:
                IP.parse(host_ip)
            except InvalidValue as exc:
                raise _invalid(f"{at}hostIP: {exc}") from None
        out.append(PortMap(host, cont, proto, host_ip))
    return tuple(out)


def decode(stdin: str) -> dict[str, Any]:
    try:
        conf = jsonlite.loads(stdin)
    except jsonlite.DecodeError as exc:
        raise CniError(DECODING_FAILURE, f"cannot decode the network config: {exc}") from None
    if not isinstance(conf, dict):
        raise CniError(DECODING_FAILURE, "cannot decode the network config: not a JSON object")
    return conf


def parse_conf(stdin: str, env: Env) -> NetConf:
    """The network config of an ADD, DEL, CHECK, GC or STATUS call."""
    conf = decode(stdin)
    version = check_version(conf.get("cniVersion"))
    if env.command == "CHECK" and not at_least(version, "0.4.0"):
        raise CniError(INCOMPATIBLE_VERSION, f"config version {version} does not allow CHECK")
    if env.command in ("GC", "STATUS") and not at_least(version, "1.1.0"):
        raise CniError(
            INCOMPATIBLE_VERSION, f"config version {version} does not allow {env.command}"
        )
    name = _get(conf, "name", str)
    if not name:
        raise _invalid("name: missing")
    mode = _get(conf, "mode", str) or "bridge"
    if mode not in MODES:
        raise _invalid(f"mode: {jsonlite.dumps(mode)} is not bridge or macvlan")
    ipam = _get(conf, "ipam", dict) or {}
    ipam_type = _get(ipam, "type", str, "ipam.") or ""
    if "/" in ipam_type:
        raise _invalid(f"ipam.type: {jsonlite.dumps(ipam_type)} is not a plugin name")
    subnet = _get(conf, "subnet", str)
    gateway = _get(conf, "gateway", str)
    mtu = _get(conf, "mtu", int) or 1500
    isolation = bool(_get(conf, "isolation", bool))
    network = None
    master = None
    pool = None
    try:
        if mode == "bridge":
            if not subnet:
                raise _invalid(
                    'subnet: missing (bridge mode: the network\'s subnet, e.g. "10.88.0.0/16")'
                )
            bridge = _get(conf, "bridge", str) or f"np-{name}"[:15]
            network = make_network(name, bridge, subnet, gateway, isolation, mtu)
        else:
            master = _get(conf, "master", str)
            if not master:
                raise _invalid("master: missing (macvlan mode: the parent interface)")
            check_ifname(master, "master interface")
            if subnet:
                pool = make_network(name, master, subnet, gateway, mtu=mtu).gateway
            elif ipam_type in OWN_IPAM:
                raise _invalid("subnet: missing (macvlan mode without ipam.type needs it)")
    except InvalidValue as exc:
        raise _invalid(str(exc)) from None
    runtime = _get(conf, "runtimeConfig", dict) or {}
    ips = _ips(_get(runtime, "ips", list, "runtimeConfig.") or [], "runtimeConfig.ips")
    if not ips and env.arg("IP"):
        ips = _ips(str(env.arg("IP")).split(","), "CNI_ARGS IP")
    mac_text = _get(runtime, "mac", str, "runtimeConfig.") or env.arg("MAC")
    try:
        mac = Mac.parse(mac_text) if mac_text else None
    except InvalidValue as exc:
        raise _invalid(f"mac: {exc}") from None
    maps = _port_maps(runtime["portMappings"]) if runtime.get("portMappings") else ()
    if maps and mode == "macvlan":
        raise _invalid("runtimeConfig.portMappings: published ports need bridge mode")
    prev = _get(conf, "prevResult", dict)
    valid = None
    if env.command == "GC":
        entries = conf.get(VALID_ATTACHMENTS)
        if not isinstance(entries, list):
            raise _invalid(f"{VALID_ATTACHMENTS}: missing or not a list (GC needs it)")
        pairs = []
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or not isinstance(e.get("containerID"), str):
                raise _invalid(f"{VALID_ATTACHMENTS}[{i}]: no containerID")
            pairs.append((e["containerID"], str(e.get("ifname") or "")))
        valid = tuple(pairs)
    return NetConf(
        version=version,
        name=name,
        mode=mode,
        network=network,
        master=master,
        pool=pool,
        ipam_type=None if ipam_type in OWN_IPAM else ipam_type,
        default_route=_get(conf, "defaultRoute", bool) is not False,
        ips=ips,
        ifname_mac=mac,
        port_maps=maps,
        dns=_get(conf, "dns", dict) or {},
        prev_result=prev,
        valid=valid,
        raw=stdin,
    )
