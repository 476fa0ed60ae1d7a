"""Where datasource connections may point."""

from __future__ import annotations

import pytest

from weaver.errors import Unprocessable
from weaver.netpolicy import check_targets
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
