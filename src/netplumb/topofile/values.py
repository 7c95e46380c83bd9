"""The values of a topology file: netplumb's parsers as pydantic validators, short forms.

Each check reuses netplumb's own parser, and its words: a bad ``ports`` entry is refused with
the very message ``netplumb run -p`` gives. Short forms are expanded by ``BeforeValidator``\\ s
whose ``json_schema_input_type`` keeps them in the JSON Schema; they are not unions, whose
failure pydantic would report once per member.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from netplumb.errors import InvalidValue
from netplumb.model import restart
from netplumb.model.addresses import AddressSpec, parse_address_spec
from netplumb.model.dnsnames import check_alias
from netplumb.model.ip import IP, Interface
from netplumb.model.links import parse_link
from netplumb.model.mac import Mac
from netplumb.model.names import check_ifname
from netplumb.model.ports import parse_expose, parse_port_spec

MAX_REPLICAS = 10_000  # a typo such as 30000 should not make `up` start thirty thousand hosts


def fail(message: str) -> PydanticCustomError:
    """A validation error whose text is ``message`` exactly (braces included)."""
    return PydanticCustomError("netplumb", "{message}", {"message": message})


def _got(value: object) -> str:
    """How a wrong value is named in "expected X, got Y"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return str(value)


def expected(what: str, value: object) -> PydanticCustomError:
    return fail(f"expected {what}, got {_got(value)}")


def _parsed_by(parse: Callable[[str], object]) -> Callable[[str], str]:
    """An after-validator: the text must parse; netplumb's own error text if it does not."""

    def check(text: str) -> str:
        try:
            parse(text)
        except InvalidValue as exc:
            raise fail(str(exc)) from None
        return text

    return check


def _port_text(value: object) -> object:
    """``8080`` may be written as a number; the grammar is that of a string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise expected("a port number or a string such as 8080/tcp", value)
    return value


def one_or_list(value: object) -> object:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise expected("a string or a list", value)
    return value


def _check_subnet(text: str) -> str:
    if "/" not in text:
        raise fail(f"invalid subnet {text}: it needs a prefix length")
    try:
        net = Interface.parse(text)
    except InvalidValue as exc:
        raise fail(str(exc)) from None
    if net.ip.as_int != net.network_int:  # make_network's words
        raise fail(f"invalid subnet {text}: host bits set")
    return text


def _ip_of(version: int) -> Callable[[str], str]:
    def check(text: str) -> str:
        try:
            ip = IP.parse(text)
        except InvalidValue as exc:
            raise fail(str(exc)) from None
        if ip.version != version:
            raise fail(f"invalid IP address: {text}: not an IPv{version} address")
        return text

    return check


def parse_addresses(text: str) -> tuple[AddressSpec, ...]:
    """pipework's ``ip/prefix[@gw]``, or several separated by commas (netplumb's extension)."""
    specs = tuple(parse_address_spec(part) for part in text.split(","))
    with_gateway = [s.gateway.version for s in specs if s.gateway is not None]
    if len(set(with_gateway)) != len(with_gateway):
        raise InvalidValue(f"invalid address list {text}: more than one gateway per family")
    return specs


def _command(value: object) -> object:
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:  # shlex: "No closing quotation", "No escaped character"
            raise fail(f"invalid command: {exc}") from None
    if value == []:
        raise fail("empty command")
    if not isinstance(value, list):
        raise expected("a command (a string or a list)", value)
    return value


def _env_value(key: str, value: object) -> object:
    if isinstance(value, bool):  # as Compose: YAML's true is the variable's "true"
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        raise fail(f"variable {key} has no value (netplumb does not copy its own environment)")
    return value


def _environment(value: object) -> object:
    if isinstance(value, dict):
        return {key: _env_value(key, v) for key, v in value.items()}
    if not isinstance(value, list):
        raise expected("a mapping or a list of KEY=VALUE", value)
    out: dict[str, str] = {}
    for item in value:
        if not isinstance(item, str):
            raise expected("KEY=VALUE", item)
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise fail(f"invalid environment variable: {item}")
        if key in out:
            raise fail(f"variable {key} is given twice")
        out[key] = text
    return out


def _env_key(key: str) -> str:
    if not key or "=" in key or "\0" in key:
        raise fail(f"invalid environment variable name: {key!r}")
    return key


def names_to_mapping(default: Callable[[], dict[str, Any]]) -> Callable[[object], object]:
    """``[a, b]`` means ``{a: DEFAULT, b: DEFAULT}``; a null value in a mapping means DEFAULT."""

    def expand(value: object) -> object:
        if isinstance(value, list):
            out: dict[object, object] = {}
            for item in value:
                if not isinstance(item, str):
                    raise expected("a name", item)
                if item in out:
                    raise fail(f"{item} is listed twice")
                out[item] = default()
            return out
        if isinstance(value, dict):
            return {k: default() if v is None else v for k, v in value.items()}
        raise expected("a list or a mapping", value)

    return expand


def parse_condition(text: str) -> tuple[str, int | None, str | None]:
    """``started``, ``tcp:PORT`` or ``command: CMD`` as (kind, port, command)."""
    kind, colon, rest = text.partition(":")
    if text == "started":
        return "started", None, None
    if kind == "tcp" and colon and rest.isascii() and rest.isdigit() and 0 < int(rest) < 65536:
        return "tcp", int(rest), None
    if kind == "command" and colon and rest.strip():
        return "command", None, rest.strip()
    raise InvalidValue(f"invalid condition {text!r}: expected started, tcp:PORT or command: CMD")


def _restart_text(value: object) -> object:
    """``restart: no`` unquoted is YAML's false: it means the policy no, as in Compose."""
    if value is False:
        return "no"
    if not isinstance(value, str):
        raise expected("a string", value)
    return value


Subnet = Annotated[str, AfterValidator(_check_subnet)]
Address = Annotated[str, AfterValidator(_ip_of(4))]
Address6 = Annotated[str, AfterValidator(_ip_of(6))]
IfName = Annotated[str, AfterValidator(_parsed_by(check_ifname))]
BridgeName = Annotated[str, AfterValidator(_parsed_by(lambda n: check_ifname(n, "bridge name")))]
HostIf = Annotated[
    str, AfterValidator(_parsed_by(lambda n: check_ifname(n, "host interface name")))
]
Expose = Annotated[
    str,
    BeforeValidator(_port_text, json_schema_input_type=int | str),
    AfterValidator(_parsed_by(parse_expose)),
]
PortSpec = Annotated[
    str,
    BeforeValidator(_port_text, json_schema_input_type=int | str),
    AfterValidator(_parsed_by(parse_port_spec)),
]
LinkSpec = Annotated[str, AfterValidator(_parsed_by(parse_link))]
NetworkAlias = Annotated[str, AfterValidator(_parsed_by(check_alias))]
RestartText = Annotated[
    str,
    BeforeValidator(_restart_text, json_schema_input_type=str),
    AfterValidator(_parsed_by(restart.parse)),
]
AddressList = Annotated[str, AfterValidator(_parsed_by(parse_addresses))]
MacText = Annotated[str, AfterValidator(_parsed_by(Mac.parse))]
ConditionText = Annotated[str, AfterValidator(_parsed_by(parse_condition))]
GatewayText = Annotated[str, AfterValidator(_parsed_by(IP.parse))]
Environment = Annotated[
    dict[Annotated[str, AfterValidator(_env_key)], str],
    BeforeValidator(
        _environment, json_schema_input_type=dict[str, str | int | float | bool] | list[str]
    ),
]
Command = Annotated[list[str], BeforeValidator(_command, json_schema_input_type=str | list[str])]
