"""``netplumb inspect NAME``: a host as JSON, in the shape Docker users know from
``docker inspect`` (State, Config, HostConfig.Links, NetworkSettings.Networks and .Ports)."""

from __future__ import annotations

from netplumb import state
from netplumb.errors import NetplumbError
from netplumb.ops import networks, ports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netplumb.state import Record


def _mac_of(name: str, ifname: str) -> str:
    """The MAC of the host's interface, read from its namespace (empty when it cannot be)."""
    import os

    from netplumb.kernel import netns

    rec = state.read("hosts", name)
    if rec is None:
        return ""
    try:
        fd = os.open(str(rec["netns"]), os.O_RDONLY)
    except OSError:
        return ""
    try:
        with netns.socket_in(fd) as nl:
            link = nl.get_link(ifname)
            return link.mac.hex(":") if link else ""
    finally:
        os.close(fd)


def inspect(name: str) -> Record:
    from netplumb.hosts import runtime

    rec = state.read("hosts", name)
    if rec is None:
        raise NetplumbError(f"Error: No such object: {name}")
    now = runtime.current(rec)
    status = str(now["state"])
    restart = rec.get("restart") or ["no", 0]
    nets: dict[str, object] = {}
    for entry in rec.get("networks", []):
        net = networks.get(str(entry["network"]))
        nets[str(entry["network"])] = {
            "IPAddress": entry.get("ip", ""),
            "IPPrefixLen": net.gateway.prefixlen if net else 0,
            "Gateway": str(net.gateway.ip) if net else "",
            "GlobalIPv6Address": entry.get("ip6", ""),
            "GlobalIPv6PrefixLen": net.gateway6.prefixlen if net and net.gateway6 else 0,
            "IPv6Gateway": str(net.gateway6.ip) if net and net.gateway6 else "",
            "MacAddress": _mac_of(name, str(entry.get("ifname", "eth0"))),
            "Bridge": net.bridge if net else "",
            # --network-alias: netplumb's aliases hold on every network of the host
            "Aliases": [str(a) for a in rec.get("aliases", [])],
        }
    published: dict[str, list[dict[str, str]]] = {}
    for b in ports.bindings(f"host:{name}"):
        key = f"{b['container_port']}/{b['proto']}"
        host_ip = b.get("host_ip") or ("0.0.0.0" if int(b["family"]) == 4 else "::")
        published.setdefault(key, []).append({"HostIp": host_ip, "HostPort": str(b["host_port"])})
    attachments = []
    for aname in state.names("attach"):
        if aname.startswith(f"host:{name}@"):
            a = state.read("attach", aname) or {}
            attachments.append(
                {
                    "Interface": a.get("ifname"),
                    "Kind": a.get("kind"),
                    "HostInterface": a.get("host_name") or a.get("parent"),
                    "Bridge": a.get("bridge"),
                    "Addresses": (a.get("signature") or {}).get("addresses", []),
                }
            )
    return {
        "Name": f"/{name}",
        "State": {
            "Status": status,
            "Running": status == "running",
            "Restarting": status == "restarting",
            "Pid": now.get("pid") if status == "running" else 0,
            "ExitCode": now.get("exit_code") or 0,
            "Error": now.get("error") or "",
        },
        "RestartCount": now.get("restart_count") or 0,
        "Config": {
            "Hostname": rec.get("hostname"),
            "Env": [f"{k}={v}" for k, v in dict(rec.get("env", {})).items()],
            "Cmd": list(rec.get("argv", [])),
            "ExposedPorts": {
                (str(p) if "/" in str(p) else f"{p}/tcp"): {} for p in rec.get("expose", [])
            },
        },
        "HostConfig": {
            "Links": [f"/{t}:/{name}/{a}" for t, a in rec.get("links", [])],
            "LogPath": rec.get("log"),
            "RestartPolicy": {"Name": restart[0], "MaximumRetryCount": restart[1]},
        },
        "NetworkSettings": {"Networks": nets, "Ports": published, "Interfaces": attachments},
    }
