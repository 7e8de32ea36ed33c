"""Which hosts a teacher or judge URL may name: the outbound policy.

Teacher and judge URLs come from requests, so a caller could point the service at
the cloud's metadata endpoint or another internal address and have it call it
(server-side request forgery). Every such URL is checked here twice: when the
request is validated (`OutboundPolicy.check_url`, a clear INVALID_ARGUMENT), and
again on every new connection (`guarded_transport`), which connects to the very
address it checked, so a name that resolves elsewhere later cannot slip past.

The rules, in order:
1. a host named by a deny entry (exact, or `.suffix` / `*.suffix`) is refused;
2. with an allow list, the host must be named by an allow entry or every address
   it resolves to must lie in an allow network;
3. every address the host resolves to must lie outside every deny network.
The deny list is the built-in DEFAULT_DENY plus what the setting adds; an allow
list only narrows, it never lets a denied address through. Loopback and private
addresses pass by default (a laptop's vLLM is http://127.0.0.1:8000); the Helm
chart adds the private ranges to the deny list.

vLLM targets the serving proxy is configured with are not checked here: an
operator named them, a request did not.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore
import httpx
from pydantic import BaseModel, Field, field_validator

from synthtune.errors import InvalidArgument
from synthtune.settings import env_alias

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_VARIABLE = "SYNTHTUNE_OUTBOUND_ALLOW"
DENY_VARIABLE = "SYNTHTUNE_OUTBOUND_DENY"

# Link-local and the clouds' instance-metadata services: never a teacher, always a credential store.
DEFAULT_DENY: tuple[str, ...] = (
    "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local host on Linux
    "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, OCI, DigitalOcean metadata at 169.254.169.254
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "::/128",  # IPv6 unspecified, the same trick as 0.0.0.0
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "metadata.google.internal",
    "metadata",  # GCP's short name, found through the search domain
    "instance-data",  # AWS's names for the metadata service
    "instance-data.ec2.internal",
)

_HOSTNAME_RE = re.compile(r"^(\*\.|\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")


class OutboundRefused(Exception):
    """A connection the policy refused; `str()` names the host, the address and the rule."""


@dataclass(frozen=True)
class Rules:
    """One parsed list: networks and host names (a leading '.' means the name and its subdomains)."""

    networks: tuple[IPNetwork, ...] = ()
    names: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.networks or self.names)

    def network_of(self, address: IPAddress) -> IPNetwork | None:
        for network in self.networks:
            if address.version == network.version and address in network:
                return network
        return None

    def name_of(self, host: str) -> str | None:
        for name in self.names:
            if host == name or (name.startswith(".") and (host.endswith(name) or host == name[1:])):
                return name
        return None


def parse_rules(text: str | Iterable[str], *, variable: str) -> Rules:
    """`text` (comma-separated, or a list) as Rules; ValueError naming `variable` and the bad entry.

    Entries are IP addresses, CIDR networks (no host bits: 10.0.0.0/8, not 10.0.0.1/8), or host
    names, where `.example.com` and `*.example.com` also match every subdomain.
    """
    entries = text.split(",") if isinstance(text, str) else list(text)
    networks: list[IPNetwork] = []
    names: list[str] = []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]")))
            continue
        except ValueError as exc:
            if "/" in entry or ":" in entry or re.fullmatch(r"[0-9./]+", entry):
                raise ValueError(f"{variable} holds {raw.strip()!r}, which is not an IP network ({exc})") from None
        if not _HOSTNAME_RE.match(entry):
            raise ValueError(
                f"{variable} holds {raw.strip()!r}, which is neither an IP network (10.0.0.0/8) nor a host name "
                "(api.example.com, or .example.com for every subdomain)"
            )
        names.append("." + entry[2:] if entry.startswith("*.") else entry)
    return Rules(networks=tuple(dict.fromkeys(networks)), names=tuple(dict.fromkeys(names)))


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    # ::ffff:169.254.169.254 reaches 169.254.169.254: judge the IPv4 address.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (one for an IP literal); empty when the name doesn't resolve."""
    literal = _address(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(a for info in infos if (a := _address(str(info[4][0]))) is not None))


@dataclass(frozen=True)
class OutboundPolicy:
    """The allow and deny lists of one service; build with `from_settings` (deny includes DEFAULT_DENY)."""

    allow: Rules = field(default_factory=Rules)
    deny: Rules = field(default_factory=lambda: parse_rules(DEFAULT_DENY, variable=DENY_VARIABLE))

    @classmethod
    def from_settings(cls, *, allow: str = "", deny: str = "") -> OutboundPolicy:
        """The policy for the two settings' values; ValueError naming the variable when one is bad."""
        added = parse_rules(deny, variable=DENY_VARIABLE)
        builtin = parse_rules(DEFAULT_DENY, variable=DENY_VARIABLE)
        return cls(
            allow=parse_rules(allow, variable=ALLOW_VARIABLE),
            deny=Rules(networks=tuple(dict.fromkeys(builtin.networks + added.networks)),
                       names=tuple(dict.fromkeys(builtin.names + added.names))),
        )

    def name_refusal(self, host: str) -> str | None:
        """Why `host` is refused by name alone (asked before resolving it), or None."""
        name = host.strip("[]").lower().rstrip(".")
        if (rule := self.deny.name_of(name)) is not None:
            return f"host {name} matches the deny entry {rule}"
        return None

    def refusal(self, host: str, addresses: Sequence[IPAddress]) -> str | None:
        """Why `host` (resolving to `addresses`) is refused, or None when it may be called."""
        name = host.strip("[]").lower().rstrip(".")
        if (reason := self.name_refusal(name)) is not None:
            return reason
        if self.allow and self.allow.name_of(name) is None:
            outside = [a for a in addresses if self.allow.network_of(a) is None]
            if not addresses:
                return f"host {name} does not resolve, so no address can be matched against the allow list"
            if outside:
                shown = "" if str(outside[0]) == name else f" resolves to {outside[0]}, which"
                return f"host {name}{shown} is in no allow entry"
        for address in addresses:
            if (network := self.deny.network_of(address)) is not None:
                shown = "" if str(address) == name else f" resolves to {address}, which"
                return f"host {name}{shown} is in the denied network {network}"
        return None

    def check_url(self, url: str, *, field: str) -> None:
        """Raise InvalidArgument naming `field` when the policy refuses `url`'s host.

        A name that does not resolve now passes (unless an allow list is set): no connection can
        reach it yet, and every connection is checked again (`guarded_transport`).
        """
        try:
            parts = urlsplit(url.strip())
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise InvalidArgument(f"{field} {url[:200]!r} is not a valid URL (check the port).", field=field) from None
        host = parts.hostname or ""
        reason = self.name_refusal(host) or self.refusal(host, _resolve(host, port))
        if reason is not None:
            raise InvalidArgument(self.message(url, reason, field=field), field=field,
                                  extra={"outbound_rule": reason})

    @staticmethod
    def message(url: str, reason: str, *, field: str = "") -> str:
        where = f"{field} {url[:200]}" if field else url[:200]
        return (f"{where} is refused by the outbound policy: {reason}. Teacher and judge URLs must not "
                f"reach link-local, metadata or other denied addresses; an operator can change "
                f"{ALLOW_VARIABLE} / {DENY_VARIABLE} (outbound.allow / outbound.deny in the Helm chart).")


class OutboundSettings(BaseModel):
    """Mixin for a service's settings: SYNTHTUNE_OUTBOUND_ALLOW and SYNTHTUNE_OUTBOUND_DENY."""

    outbound_allow: str = Field(
        default="", validation_alias=env_alias(ALLOW_VARIABLE, "outbound_allow"),
        description="Comma-separated networks and host names teacher/judge URLs are limited to; empty: any.")
    outbound_deny: str = Field(
        default="", validation_alias=env_alias(DENY_VARIABLE, "outbound_deny"),
        description="Comma-separated networks and host names refused on top of DEFAULT_DENY.")

    @field_validator("outbound_allow", "outbound_deny")
    @classmethod
    def _rules(cls, value: str, info) -> str:
        variable = ALLOW_VARIABLE if info.field_name == "outbound_allow" else DENY_VARIABLE
        parse_rules(value, variable=variable)
        return ",".join(part.strip() for part in value.split(",") if part.strip())

    @property
    def outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy.from_settings(allow=self.outbound_allow, deny=self.outbound_deny)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves each new connection's host itself, checks every address, and connects to a checked one."""

    def __init__(self, policy: OutboundPolicy, inner: httpcore.AsyncNetworkBackend | None = None):
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.AsyncNetworkStream:
        if (reason := self._policy.name_refusal(host)) is not None:
            raise OutboundRefused(reason)
        addresses = [literal] if (literal := _address(host)) is not None else await _resolve_async(host, port)
        if not addresses:
            raise httpcore.ConnectError(f"{host} does not resolve")
        reason = self._policy.refusal(host, addresses)
        if reason is not None:
            raise OutboundRefused(reason)
        # Connect to the checked address, not the name: a second lookup could answer differently.
        # TLS still verifies the certificate against the URL's host (httpcore passes it as SNI).
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout=timeout, local_address=local_address,
                                                      socket_options=socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"could not connect to {host}")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[typing.Any] | None = None):
        raise OutboundRefused("unix sockets are not outbound endpoints")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve_async(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(a for info in infos if (a := _address(str(info[4][0]))) is not None))


def guarded_transport(policy: OutboundPolicy, *, verify: bool | ssl.SSLContext = True,
                      limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every new connection passes `policy` (raising OutboundRefused).

    Passing a transport also turns off HTTP(S)_PROXY from the environment, on purpose: through a
    proxy the policy would check the proxy's address, not the endpoint's.
    """
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    pool = transport._pool  # httpx builds the pool without a network_backend argument
    if not isinstance(pool, httpcore.AsyncConnectionPool):  # pragma: no cover - httpx changed shape
        raise RuntimeError("httpx.AsyncHTTPTransport no longer holds an httpcore.AsyncConnectionPool")
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=pool._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_GuardedBackend(policy, pool._network_backend),
    )
    return transport


__all__ = ["ALLOW_VARIABLE", "DEFAULT_DENY", "DENY_VARIABLE", "OutboundPolicy", "OutboundRefused", "OutboundSettings",
           "Rules",
           "guarded_transport", "parse_rules"]
