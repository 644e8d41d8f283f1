"""Keeping webhook URLs out of our own network (SSRF): checked when saved and when sent.

A URL must be http(s) and its host must resolve only to public addresses. Loopback, private,
link-local, multicast, reserved, unspecified and other non-global addresses are refused, also
when wrapped in IPv6 (IPv4-mapped `::ffff:a.b.c.d`, 6to4), unless they fall in one of
`CONVEYOR_WEBHOOK_ALLOWED_NETWORKS`. A delivery connects to the address checked here, so a DNS
answer that changes between the check and the connection (rebinding) cannot redirect it.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = {"http": 80, "https": 443}


class UnsafeURL(ValueError):
    """The URL may not receive webhooks; the message says why, for the person who gave it."""


class Unresolvable(UnsafeURL):
    """The host name did not resolve (now): refused when saved, retried when sending."""


@dataclass(frozen=True)
class Target:
    """Where a delivery goes: the URL's parts and the checked addresses to connect to."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if SCHEMES[self.scheme] == self.port else f"{host}:{self.port}"


def check_url(url: str) -> Target:
    """The URL's target with its resolved addresses; raises UnsafeURL if any is not allowed."""
    scheme, host, port, path = _split(url)
    addresses = resolve(host, port)
    for address in addresses:
        if not is_allowed(address):
            named = "" if host == str(address) else f"{host} resolves to {address}, "
            raise UnsafeURL(
                f"{named}{address} is a {describe(address)} address: webhooks may only be "
                "sent to public addresses."
            )
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses))


def _split(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UnsafeURL("Use an http:// or https:// URL.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("Leave credentials out of the URL: requests are signed instead.")
    try:
        host = (parts.hostname or "").encode("idna").decode("ascii")
        port = parts.port or SCHEMES[scheme]
    except (UnicodeError, ValueError):
        raise UnsafeURL("The host or port of the URL is not valid.") from None
    if not host:
        raise UnsafeURL("The URL has no host.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, path


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to: a literal, `CONVEYOR_WEBHOOK_STATIC_HOSTS`, or DNS."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    static = settings.CONVEYOR_WEBHOOK_STATIC_HOSTS.get(host.rstrip(".").lower())
    if static:
        return [ipaddress.ip_address(address) for address in static]
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Unresolvable(f"The host {host} could not be resolved.") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in answers:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolvable(f"The host {host} has no address.")
    return addresses


def is_allowed(address: IPAddress) -> bool:
    """Public, or inside one of the networks the settings allow."""
    if any(address in network for network in allowed_networks()):
        return True
    return describe(address) == "public"


def describe(address: IPAddress) -> str:
    """What kind of address this is: "public", or the reason it is refused."""
    address = embedded_ipv4(address) or address
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-public"
    return "public"


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped or 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    return address.ipv4_mapped or address.sixtofour


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [
        ipaddress.ip_network(network, strict=False)
        for network in settings.CONVEYOR_WEBHOOK_ALLOWED_NETWORKS
    ]
