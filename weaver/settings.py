"""Settings read from the environment, with the deployment document's names and defaults."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_JWT_SECRET = "weaver-dev-secret-change-me"
DEFAULT_NEO4J_PASSWORDS = frozenset({"", "neo4j", "password", "weaver_dev_password"})
MIN_SECRET_BYTES = 32
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Settings whose values never appear in an error message, whatever is wrong with them.
_SECRET_NAME = re.compile(r"secret|password|key|dsn|token", re.IGNORECASE)

# The mode flags of the deployment document, by the entry-point name they enable.
SEED_MODE_FLAGS: dict[str, str] = {
    "mindsdb": "WEAVER_EXTERNAL_MODE",
    "neo4j": "WEAVER_METADATA_EXTERNAL_MODE",
    "pg": "WEAVER_METADATA_PG_MODE",
    "redis_guard": "WEAVER_REQUEST_GUARD_REDIS_MODE",
}

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class RateLimit:
    """`<requests>/<seconds>s`, e.g. `600/60s`."""

    _PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*s?\s*$")

    def __init__(self, requests: int, window_seconds: int) -> None:
        self.requests = requests
        self.window_seconds = window_seconds

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        match = cls._PATTERN.match(text)
        if not match or int(match[1]) < 1 or int(match[2]) < 1:
            raise ValueError("expected <requests>/<seconds>s, such as 600/60s")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.requests}/{self.window_seconds}s"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, populate_by_name=True
    )

    app_env: Literal["development", "staging", "production", "test"] = "development"
    log_level: str = "INFO"

    jwt_secret_key: str = DEFAULT_JWT_SECRET
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_leeway_seconds: int = Field(30, validation_alias="WEAVER_JWT_LEEWAY_SECONDS")

    encryption_key: str = ""
    encryption_key_previous: CommaList = Field(default_factory=list)

    mindsdb_url: str = "http://localhost:47334"
    # The gateway's one bound on work sent to a query engine (a query's largest
    # `timeout_seconds`, and introspection or statistics), whichever engine runs it; the
    # variable keeps the deployment document's name.
    query_timeout_seconds: float = Field(15.0, gt=0, validation_alias="MINDSDB_TIMEOUT")
    mindsdb_user: str = ""
    mindsdb_password: str = ""

    external_mode: bool = Field(False, validation_alias="WEAVER_EXTERNAL_MODE")
    metadata_external_mode: bool = Field(False, validation_alias="WEAVER_METADATA_EXTERNAL_MODE")
    metadata_pg_mode: bool = Field(False, validation_alias="WEAVER_METADATA_PG_MODE")
    request_guard_redis_mode: bool = Field(
        False, validation_alias="WEAVER_REQUEST_GUARD_REDIS_MODE"
    )

    redis_url: str = "redis://localhost:6379/0"
    idempotency_ttl_seconds: int = Field(
        600, ge=1, validation_alias="WEAVER_REQUEST_GUARD_IDEMPOTENCY_TTL_SECONDS"
    )
    guard_fail_open: bool = Field(False, validation_alias="WEAVER_REQUEST_GUARD_FAIL_OPEN")
    rate_limit_text: str = Field("600/60s", validation_alias="WEAVER_RATE_LIMIT")

    postgres_dsn: str = ""
    neo4j_uri: str = "bolt://localhost:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: str = ""

    cors_allowed_origins: CommaList = Field(
        default_factory=lambda: ["https://app.axiom.kr", "https://canvas.axiom.kr"],
        validation_alias="WEAVER_CORS_ALLOWED_ORIGINS",
    )
    cors_allowed_methods: CommaList = Field(
        default_factory=lambda: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        validation_alias="WEAVER_CORS_ALLOWED_METHODS",
    )
    cors_allowed_headers: CommaList = Field(
        default_factory=lambda: [
            "Authorization",
            "Content-Type",
            "X-Request-Id",
            "Idempotency-Key",
            "Prefer",
            "X-Weaver-Client",
        ],
        validation_alias="WEAVER_CORS_ALLOWED_HEADERS",
    )

    sentry_dsn: str = ""
    # One INFO line per request (method, route, status, duration, request id, tenant).
    access_log: bool = Field(True, validation_alias="WEAVER_ACCESS_LOG")

    data_dir: Path = Field(Path("var"), validation_alias="WEAVER_DATA_DIR")
    sqlite_root: Path | None = Field(None, validation_alias="WEAVER_SQLITE_ROOT")
    max_body_bytes: int = Field(1024 * 1024, ge=1, validation_alias="WEAVER_MAX_BODY_BYTES")
    query_max_rows: int = Field(100_000, ge=1, validation_alias="WEAVER_QUERY_MAX_ROWS")
    export_max_rows: int = Field(10_000_000, ge=1, validation_alias="WEAVER_EXPORT_MAX_ROWS")
    query_concurrency: int = Field(8, ge=1, validation_alias="WEAVER_QUERY_CONCURRENCY")
    query_queue_length: int = Field(100, ge=0, validation_alias="WEAVER_QUERY_QUEUE_LENGTH")
    async_query_timeout_seconds: float = Field(
        900.0, gt=0, validation_alias="WEAVER_ASYNC_QUERY_TIMEOUT_SECONDS"
    )
    query_result_ttl_seconds: int = Field(
        3600, ge=1, validation_alias="WEAVER_QUERY_RESULT_TTL_SECONDS"
    )
    # What a tenant's stored async results may take in all; the oldest are evicted first.
    query_result_max_bytes: int = Field(
        512 * 1024 * 1024, ge=1, validation_alias="WEAVER_QUERY_RESULT_MAX_BYTES"
    )
    query_history_days: int = Field(30, ge=1, validation_alias="WEAVER_QUERY_HISTORY_DAYS")
    # How long a gateway process's claim on the queries it runs lasts unrenewed: when the
    # process dies, any other marks them failed within this plus one sweep (15 s).
    query_lease_seconds: float = Field(20.0, ge=1, validation_alias="WEAVER_QUERY_LEASE_SECONDS")
    datasource_allowed_hosts: CommaList = Field(
        default_factory=list, validation_alias="WEAVER_DATASOURCE_ALLOWED_HOSTS"
    )
    health_check_timeout: float = Field(
        2.0, gt=0, validation_alias="WEAVER_HEALTH_CHECK_TIMEOUT_SECONDS"
    )
    # CI sets this so that a plugin that fails to load fails the run instead of being
    # reported down.
    plugins_strict: bool = Field(
        False, validation_alias=AliasChoices("WEAVER_PLUGINS_STRICT", "weaver_plugins_strict")
    )

    _split = field_validator(
        "encryption_key_previous",
        "cors_allowed_origins",
        "cors_allowed_methods",
        "cors_allowed_headers",
        "datasource_allowed_hosts",
        mode="before",
    )(_split_commas)

    @field_validator("cors_allowed_origins", "cors_allowed_methods", "cors_allowed_headers")
    @classmethod
    def _no_wildcards(cls, value: list[str]) -> list[str]:
        # The deployment document: `*` is ignored, never a blanket allow.
        return [item for item in value if item != "*"]

    @field_validator("rate_limit_text")
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        RateLimit.parse(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
        return value

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The environment variable a field is read from (its first alias)."""
        info = cls.model_fields.get(field_name)
        alias = info.validation_alias if info is not None else None
        if isinstance(alias, AliasChoices):
            alias = alias.choices[0]
        return str(alias or field_name).upper()

    @classmethod
    def from_env_names(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from a mapping keyed like the environment (``APP_ENV=...``)."""
        by_env_name: dict[str, str] = {}
        for field_name, info in cls.model_fields.items():
            alias = info.validation_alias
            names = alias.choices if isinstance(alias, AliasChoices) else [alias or field_name]
            for env_name in names:
                by_env_name[str(env_name).upper()] = field_name
        unknown = [k for k in values if k.upper() not in by_env_name]
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        return cls.model_validate({by_env_name[k.upper()]: v for k, v in values.items()})

    @classmethod
    def load(cls) -> Settings:
        """Settings from the environment; `SettingsError` names every bad variable."""
        try:
            return cls()
        except ValidationError as error:
            raise SettingsError(describe_invalid(error)) from None

    @cached_property
    def rate_limit(self) -> RateLimit:
        return RateLimit.parse(self.rate_limit_text)

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def sqlite_root_path(self) -> Path:
        return (self.sqlite_root or self.data_dir / "sqlite").resolve()

    def mode_flags(self) -> dict[str, bool]:
        """The four seed flags by plugin name."""
        return {
            "mindsdb": self.external_mode,
            "neo4j": self.metadata_external_mode,
            "pg": self.metadata_pg_mode,
            "redis_guard": self.request_guard_redis_mode,
        }

    def production_problems(self, *, neo4j_enabled: bool) -> list[str]:
        """Why this configuration may not serve production; empty when it may."""
        if not self.is_production:
            return []
        problems = []
        if self.jwt_secret_key == DEFAULT_JWT_SECRET:
            problems.append("JWT_SECRET_KEY is the development default")
        elif len(self.jwt_secret_key.encode()) < MIN_SECRET_BYTES:
            problems.append(f"JWT_SECRET_KEY is shorter than {MIN_SECRET_BYTES} bytes")
        if not self.encryption_key:
            problems.append("ENCRYPTION_KEY is not set")
        elif len(self.encryption_key.encode()) < MIN_SECRET_BYTES:
            problems.append(f"ENCRYPTION_KEY is shorter than {MIN_SECRET_BYTES} bytes")
        if neo4j_enabled and self.neo4j_password in DEFAULT_NEO4J_PASSWORDS:
            problems.append("NEO4J_PASSWORD is empty or a well-known default")
        return problems


class SettingsError(ValueError):
    """The environment holds settings that do not validate; one line per variable."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def describe_invalid(error: ValidationError) -> list[str]:
    """One line per bad setting: the variable, its value (never a secret's) and what is
    expected, instead of pydantic's multi-line report with a link per error."""
    lines = []
    for problem in error.errors(include_url=False):
        location = problem["loc"][0] if problem["loc"] else ""
        field = next(
            (f for f in Settings.model_fields if location in (f, Settings.env_name(f))), None
        )
        name = Settings.env_name(field) if field else str(location).upper()
        value = problem.get("input")
        expected = str(problem["msg"]).removeprefix("Value error, ")
        expected = expected[:1].lower() + expected[1:]
        if _is_secret(name, value):
            shown = "(hidden)"
            if str(value):
                expected = expected.replace(str(value), "***")
        else:
            shown = repr(value)
        lines.append(f"{name}={shown} is invalid: {expected}")
    return lines


def _is_secret(name: str, value: object) -> bool:
    # A URL with a user part (redis://:pw@host) carries a password whatever its name.
    text = str(value)
    return bool(_SECRET_NAME.search(name)) or ("://" in text and "@" in text)
