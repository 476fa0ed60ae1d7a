"""Where datasource connections may point."""

from __future__ import annotations

from pathlib import Path

import pytest

from weaver.errors import Unprocessable
from weaver.netpolicy import METADATA_ADDRESSES, check_targets
from weaver.settings import Settings


def settings(**values: str) -> Settings:
    return Settings.from_env_names(values)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",  # 127.0.0.1 as one number
        "0x7f.1",
        "::1",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",  # cloud metadata
        "0.0.0.0",
        "224.0.0.1",
    ],
)
async def test_production_refuses_internal_addresses(host: str) -> None:
    with pytest.raises(Unprocessable):
        await check_targets([(host, 5432)], settings(APP_ENV="production"))


async def test_production_allows_a_public_address() -> None:
    await check_targets([("93.184.216.34", 5432)], settings(APP_ENV="production"))


async def test_development_allows_anything_without_a_list() -> None:
    await check_targets([("127.0.0.1", 5432)], settings(APP_ENV="development"))


async def test_allow_list_is_the_only_set_allowed_even_in_development() -> None:
    policy = settings(WEAVER_DATASOURCE_ALLOWED_HOSTS="db.example,10.0.0.0/8")
    await check_targets([("db.example", 5432), ("10.1.2.3", None)], policy)
    for host in ("127.0.0.1", "other.example", "11.0.0.1"):
        with pytest.raises(Unprocessable):
            await check_targets([(host, 5432)], policy)


async def test_unresolvable_host_is_refused_in_production() -> None:
    with pytest.raises(Unprocessable, match="does not resolve"):
        await check_targets([("no-such-host.invalid", 5432)], settings(APP_ENV="production"))


@pytest.mark.parametrize("address", sorted(METADATA_ADDRESSES))
async def test_production_refuses_every_listed_metadata_address(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(Unprocessable, match="cloud metadata"):
        await check_targets([(host, 80)], settings(APP_ENV="production"))


@pytest.mark.parametrize(
    "host",
    [
        "1684301000",  # 100.100.100.200 as one number
        "0x64.0x64.0x64.0xc8",
        "0250.0077.0201.0020",  # 168.63.129.16 in octal
        "[::ffff:192.0.0.192]",
        "[::ffff:a9fe:a9fe]",
        "[64:ff9b::6464:64c8]",  # through NAT64's well-known prefix
        "[2002:a83f:8110::1]",  # 6to4 around 168.63.129.16
        "[FD00:EC2:0::254]",
    ],
)
async def test_metadata_is_refused_whatever_the_notation(host: str) -> None:
    with pytest.raises(Unprocessable, match="cloud metadata"):
        await check_targets([(host, 80)], settings(APP_ENV="production"))


async def test_an_allowed_network_does_not_open_a_metadata_address() -> None:
    policy = settings(WEAVER_DATASOURCE_ALLOWED_HOSTS="100.64.0.0/10,fd00::/8")
    await check_targets([("100.100.100.1", 5432), ("[fd00:ec2::1]", 5432)], policy)
    for host in ("100.100.100.200", "[fd00:ec2::254]"):
        with pytest.raises(Unprocessable, match="cloud metadata"):
            await check_targets([(host, 80)], policy)


async def test_an_allowed_name_may_still_not_resolve_to_metadata() -> None:
    policy = settings(WEAVER_DATASOURCE_ALLOWED_HOSTS="localhost,engine-only.invalid")
    # A name the gateway cannot resolve is the operator's word (the engine may resolve it).
    await check_targets([("engine-only.invalid", 5432), ("localhost", 5432)], policy)


def test_the_list_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [address for address in METADATA_ADDRESSES if f"`{address}`" not in readme]
    assert missing == []


async def test_private_networks_stay_allowed_in_production() -> None:
    # Databases live there; only the metadata addresses inside them are refused.
    for host in ("10.0.0.5", "100.100.100.1", "[fd12:3456::1]", "192.0.0.10"):
        await check_targets([(host, 5432)], settings(APP_ENV="production"))
