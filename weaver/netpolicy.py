"""Where datasource connections may point: the guard against reaching internal networks.

Judged on resolved addresses, so `2130706433`, `0x7f.1` and `[::ffff:127.0.0.1]` are
all recognised as loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

from weaver.errors import Unprocessable
from weaver.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _refusal(host: str, why: str) -> Unprocessable:
    return Unprocessable(
        f"connection target {host!r} is not allowed: {why}",
        errors=[{"loc": ["body", "connection", "host"], "msg": why, "type": "target_refused"}],
    )


def _normalise(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_internal(address: IPAddress) -> bool:
    address = _normalise(address)
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
    )


async def resolve(host: str, port: int | None) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _refusal(host, "the host name does not resolve") from None
    # The address may carry an IPv6 zone (`fe80::1%eth0`), which ip_address refuses.
    return [_normalise(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in infos]


def _split_allowed(entries: Iterable[str]) -> tuple[set[str], list[Network]]:
    names: set[str] = set()
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return names, networks


async def check_targets(targets: Iterable[tuple[str, int | None]], settings: Settings) -> None:
    """Raise `Unprocessable` for the first target the policy refuses."""
    allowed = settings.datasource_allowed_hosts
    if not allowed and not settings.is_production:
        return
    names, networks = _split_allowed(allowed)
    for host, port in targets:
        if not host:
            raise _refusal(host, "the host is empty")
        if allowed:
            if host.lower().rstrip(".") in names:
                continue
            addresses = await resolve(host, port)
            if not all(any(a in net for net in networks) for a in addresses):
                raise _refusal(host, "it is not in WEAVER_DATASOURCE_ALLOWED_HOSTS")
        else:
            for address in await resolve(host, port):
                if is_internal(address):
                    raise _refusal(host, "it resolves to an internal address")
