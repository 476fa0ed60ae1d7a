"""Where datasource connections may point: the guard against reaching internal networks.

Judged on resolved addresses, so `2130706433`, `0x7f.1` and `[::ffff:127.0.0.1]` are
all recognised as loopback, and an IPv6 address that carries an IPv4 one (mapped, NAT64's
well-known prefix, 6to4) is judged as that IPv4 address.

Cloud metadata services hand out credentials to whatever asks from inside the instance.
Most answer on a link-local address (refused with the rest of link-local), but several do
not; `METADATA_ADDRESSES` lists the well-known ones, refused whatever range they sit in,
even inside a network `WEAVER_DATASOURCE_ALLOWED_HOSTS` allows (no database lives there).
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


# Well-known cloud metadata and credential endpoints, by the range they sit in. The
# link-local ones are listed too, so the list is the whole answer to "which are refused".
METADATA_ADDRESSES: dict[str, str] = {
    # IPv4 link-local (169.254.0.0/16)
    "169.254.169.254": "AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack, Hetzner, Linode,"
    " Vultr, IBM Cloud, Huawei Cloud, Exoscale: instance metadata",
    "169.254.170.2": "AWS ECS task metadata and credentials",
    "169.254.170.23": "AWS EKS Pod Identity agent",
    "169.254.0.23": "Tencent Cloud metadata",
    "169.254.42.42": "Scaleway metadata",
    # IPv4 outside link-local
    "100.100.100.200": "Alibaba Cloud metadata (shared address space, 100.64.0.0/10)",
    "168.63.129.16": "Azure WireServer and host agent (a public address)",
    "192.0.0.192": "Oracle Cloud Classic metadata (IETF protocol assignments, 192.0.0.0/24)",
    # IPv6 unique-local (fc00::/7)
    "fd00:ec2::254": "AWS instance metadata (IPv6)",
    "fd00:ec2::23": "AWS EKS Pod Identity agent (IPv6)",
    "fd20:ce::254": "GCP metadata (IPv6)",
    "fd00:c1::a9fe:a9fe": "Oracle Cloud metadata (IPv6)",
    "fd00:100::100:200": "Alibaba Cloud metadata (IPv6)",
    "fd00:42::42": "Scaleway metadata (IPv6)",
    "fd00:a9fe:a9fe::1": "Akamai / Linode metadata (IPv6)",
    # IPv6 link-local (fe80::/10)
    "fe80::a9fe:a9fe": "OpenStack metadata (IPv6)",
}
_METADATA = frozenset(ipaddress.ip_address(address) for address in METADATA_ADDRESSES)
# RFC 6052's well-known prefix: 64:ff9b::a.b.c.d reaches a.b.c.d through a NAT64 gateway.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _refusal(host: str, why: str) -> Unprocessable:
    return Unprocessable(
        f"connection target {host!r} is not allowed: {why}",
        errors=[{"loc": ["body", "connection", "host"], "msg": why, "type": "target_refused"}],
    )


def _normalise(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries and reaches, else the address itself."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return address


def is_metadata(address: IPAddress) -> bool:
    return _normalise(address) in _METADATA


def is_internal(address: IPAddress) -> bool:
    address = _normalise(address)
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or address in _METADATA
    )


async def resolve(host: str, port: int | None) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _refusal(host, "the host name does not resolve") from None
    addresses = []
    for info in infos:
        # The address may carry an IPv6 zone (`fe80::1%eth0`), which ip_address refuses.
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        addresses.append(mapped or address)
    return addresses


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
        if allowed and host.lower().rstrip(".") in names:
            # A name the operator allowed may resolve only where the engine runs; where
            # it resolves here too, it may still not lead to a metadata service.
            try:
                resolved = await resolve(host, port)
            except Unprocessable:
                continue
            _refuse_metadata(host, resolved)
            continue
        addresses = await resolve(host, port)
        _refuse_metadata(host, addresses)
        if allowed:
            if not all(any(a in net for net in networks) for a in addresses):
                raise _refusal(host, "it is not in WEAVER_DATASOURCE_ALLOWED_HOSTS")
        elif any(is_internal(a) for a in addresses):
            raise _refusal(host, "it resolves to an internal address")


def _refuse_metadata(host: str, addresses: Iterable[IPAddress]) -> None:
    if any(is_metadata(a) for a in addresses):
        raise _refusal(host, "it resolves to a cloud metadata address")
