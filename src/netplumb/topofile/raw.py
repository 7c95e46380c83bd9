"""The topology file as written: stage 1 of 2 (DESIGN rule 2).

Pydantic models of exactly what the user wrote, short forms expanded to the long form
(``subnet: 10.2.0.0/16`` becomes a list of one, ``networks: [demo]`` a mapping, ``depends_on:
[db]`` a mapping with condition ``started``, a command string is split as a shell would). The
grammar of each value is checked here (``values.py``); names, defaults and cross references
are the resolver's business (``resolve.py``).

``extra="forbid"`` everywhere, so a typo is an error, and ``strict`` so that ``replicas: "3"``
is refused rather than guessed at. The attribute docstrings are the field descriptions of the
JSON Schema that editors show (``schema.py``).
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from netplumb.topofile.values import (
    MAX_REPLICAS,
    Address,
    Address6,
    AddressList,
    BridgeName,
    Command,
    ConditionText,
    Environment,
    Expose,
    GatewayText,
    HostIf,
    IfName,
    LinkSpec,
    MacText,
    NetworkAlias,
    PortSpec,
    RestartText,
    Subnet,
    fail,
    names_to_mapping,
    one_or_list,
)


class RawModel(BaseModel):
    """Every mapping of the file: no unknown key, no type coercion."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True
    )

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        return cls._check_keys(data)

    @classmethod
    def _check_keys(cls, data: Any) -> Any:
        # Before pydantic's own extra_forbidden check, to name the closest known key.
        if isinstance(data, dict):
            known = list(cls.model_fields)
            for key in data:
                if key not in known:
                    close = difflib.get_close_matches(str(key), known, n=1)
                    hint = f", did you mean {close[0]}?" if close else ""
                    raise PydanticCustomError(
                        "unknown_key", "unknown key{hint}", {"key": str(key), "hint": hint}
                    )
        return data


class RawNetwork(RawModel):
    """A bridge with one IPv4 and/or one IPv6 subnet (``networks.NAME``)."""

    bridge: BridgeName | None = None
    """The bridge's interface name (default: np-NAME, cut to 15 bytes)."""
    subnet: Annotated[
        list[Subnet],
        BeforeValidator(one_or_list, json_schema_input_type=str | list[str]),
        Field(min_length=1, max_length=2),
    ]
    """A subnet such as 10.2.0.0/16, or a list of one IPv4 and one IPv6 subnet."""
    gateway: (
        Annotated[
            list[GatewayText],
            BeforeValidator(one_or_list, json_schema_input_type=str | list[str]),
            Field(min_length=1, max_length=2),
        ]
        | None
    ) = None
    """The bridge's address in each subnet (default: the subnet's first address)."""
    isolation: bool = False
    """Docker's --icc=false: guests reach each other only on the exposed ports of links."""
    internal: bool = False
    """Docker's --internal: no way out (nothing routed to or from other interfaces, no
    masquerade; guests reach each other and the gateway), no outside names forwarded by DNS."""
    mtu: Annotated[int, Field(ge=68, le=65535)] = 1500
    """The bridge's MTU."""


class RawServiceNetwork(RawModel):
    """A service's place on a network; no address: one is allocated from the subnet."""

    ipv4_address: Address | None = None
    """A static IPv4 address in the network's subnet."""
    ipv6_address: Address6 | None = None
    """A static IPv6 address in the network's IPv6 subnet."""


class RawInterface(RawModel):
    """A pipework-style extra interface: a veth on a bridge, or a macvlan on a parent."""

    host_if: HostIf
    """The bridge (a veth is attached to it) or physical interface (a macvlan on it)."""
    ifname: IfName | None = None
    """The interface's name in the guest (default: eth1, or the next free ethN)."""
    address: AddressList | None = None
    """pipework's ip/prefix[@gateway], several separated by commas; 0/0 for none."""
    mac: MacText | None = None
    """A MAC address, or U:text for one derived from the text as pipework does."""
    dhcp: bool = False
    """Get the address by DHCP (and keep a client renewing it) instead of a static one."""

    @model_validator(mode="after")
    def _address_or_dhcp(self) -> RawInterface:
        if self.dhcp and self.address is not None:
            raise fail("address and dhcp exclude each other")
        if not self.dhcp and self.address is None:
            raise fail("give an address (0/0 for none) or dhcp: true")
        return self


class RawDependency(RawModel):
    """Start after the named service (``depends_on.NAME``), once the condition holds."""

    condition: ConditionText = "started"
    """started; tcp:PORT (the port accepts connections); or command: CMD (CMD exits 0 in it)."""
    timeout: Annotated[float, Field(gt=0)] = 60.0
    """Seconds to wait for the condition."""

    @model_validator(mode="before")
    @classmethod
    def _timeout_number(cls, data: Any) -> Any:
        # strict floats refuse an int; `timeout: 30` is what everyone writes
        if isinstance(data, dict) and type(data.get("timeout")) is int:
            return {**data, "timeout": float(data["timeout"])}
        return data


ServiceNetworks = Annotated[
    dict[str, RawServiceNetwork],
    BeforeValidator(
        names_to_mapping(dict),
        json_schema_input_type=list[str] | dict[str, RawServiceNetwork | None],
    ),
]


class RawReplica(RawModel):
    """What one replica has in addition to its service's settings (``per_replica.NAME``)."""

    hostname: str | None = None
    """Replaces the service's hostname."""
    environment: Environment = {}
    """Merged over the service's environment (these win)."""
    networks: ServiceNetworks = {}
    """Merged over the service's networks: for a static address of this replica only."""
    interfaces: list[RawInterface] = []
    """Added to the service's interfaces."""
    ports: list[PortSpec] = []
    """Added to the service's published ports."""


class RawService(RawModel):
    """One guest, or ``replicas`` alike (``services.NAME``)."""

    command: Command | None = None
    """The command of a netplumb host (a string is split as a shell would, not run by one)."""
    image: str | None = None
    """The Docker image (runtime: docker); command then replaces its CMD."""
    runtime: Literal["host", "docker"] = "host"
    """host: a netplumb lightweight host; docker: a Docker container."""
    restart: RestartText | None = None
    """Restart policy: no (default), on-failure[:N], always or unless-stopped (Docker's)."""
    replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS)] = 1
    """How many guests alike."""
    replica_names: str | None = None
    """The replicas' names, {n} counting from 1 (default: NAME{n}; NAME for one replica)."""
    hostname: str | None = None
    """The guests' hostname, {n} as in replica_names (default: the replica's name)."""
    environment: Environment = {}
    """Variables: a mapping, or a list of KEY=VALUE."""
    expose: list[Expose] = []
    """Ports others may link to: 8080, 8080/udp, 9000-9002."""
    links: list[LinkSpec] = []
    """Docker links, TARGET or TARGET:ALIAS; a replicated target by replica name."""
    link_env: bool | None = None
    """Give links Docker 28's environment variables (default: the file's link_env, true);
    false: Docker 29's links, /etc/hosts lines and DNS names only."""
    aliases: list[NetworkAlias] = []
    """More DNS names of every replica on its networks (docker run --network-alias)."""
    ports: list[PortSpec] = []
    """Published ports, docker run -p's grammar; a host port range spreads over replicas."""
    networks: ServiceNetworks | None = None
    """Networks to join (default: the default network, netplumb); [] for none."""
    interfaces: list[RawInterface] = []
    """pipework-style extra interfaces."""
    depends_on: Annotated[
        dict[str, RawDependency],
        BeforeValidator(
            names_to_mapping(dict),
            json_schema_input_type=list[str] | dict[str, RawDependency | None],
        ),
    ] = {}
    """Services (or replicas) to start first, and when they count as ready."""
    per_replica: dict[str, RawReplica] = {}
    """Settings of single replicas, by replica name."""

    @model_validator(mode="after")
    def _replica_names(self) -> RawService:
        template = self.replica_names
        if template is not None and template.count("{n}") != 1:
            raise fail(f"invalid replica_names {template!r}: it needs {{n}} exactly once")
        return self


class RawTopology(RawModel):
    """A netplumb topology file. Top-level keys starting with x- are ignored (YAML anchors)."""

    model_config = ConfigDict(json_schema_extra={"patternProperties": {"^x-": {}}})

    name: str | None = None
    """The project's name (default: the file's name without its extension)."""
    link_env: bool = True
    """Links give Docker 28's environment variables (true, the default) or not (false: Docker
    29's links, /etc/hosts lines and DNS names only); a service's link_env overrides it."""
    networks: dict[str, RawNetwork] = {}
    """Networks of this project, by name."""
    services: dict[str, RawService] = {}
    """Services, by name, started in dependency order."""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:  # replaces RawModel's: x- keys go first
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
        return cls._check_keys(data)
