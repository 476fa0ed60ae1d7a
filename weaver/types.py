"""Domain records shared by the core and every plugin.

These are the values hooks receive and return. They are plain dataclasses so that a
plugin needs nothing but the standard library to build them; `weaver.codec` turns them
into JSON and back with pydantic when a store persists them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

Role = Literal["viewer", "editor", "admin"]
HealthStatus = Literal["up", "down", "disabled"]
SearchKind = Literal["table", "column"]
QueryStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
QueryVia = Literal["api", "mcp", "console"]
QueryMode = Literal["sync", "async"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

# Role inheritance: every role may do what the roles after it may do.
ROLE_RANK: dict[str, int] = {"viewer": 1, "editor": 2, "admin": 3}


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, built only from a verified token."""

    subject: str
    tenant_id: str
    roles: frozenset[str]

    def can(self, role: Role) -> bool:
        needed = ROLE_RANK[role]
        return any(ROLE_RANK.get(r, 0) >= needed for r in self.roles)


@dataclass(frozen=True, slots=True)
class Datasource:
    """A registered datasource as stores keep it; shared by callers, so never changed
    (make a changed copy with `dataclasses.replace`).

    ``engine`` is the datasource's kind (``postgres``, ``sqlite``, …), never the plugin
    that runs queries. ``connection`` holds only the non-secret parameters; the secret
    ones are encrypted in ``sealed_secrets`` and opened only by
    `weaver.connections.reveal` for handing to a backend.
    """

    tenant_id: str
    name: str
    engine: str
    internal_name: str
    connection: Mapping[str, Any]
    sealed_secrets: str
    secret_keys: tuple[str, ...]
    description: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ConnectionSpec:
    """A connection checked by the query engine, split into what may be shown and what not.

    `targets` are the network endpoints the engine would contact; the core checks them
    against `WEAVER_DATASOURCE_ALLOWED_HOSTS` before anything is sent to the engine.
    """

    public: dict[str, Any]
    secret: dict[str, Any]
    targets: tuple[tuple[str, int | None], ...] = ()


@dataclass(frozen=True, slots=True)
class ColumnRef:
    schema: str
    table: str
    column: str


@dataclass(slots=True)
class Column:
    name: str
    data_type: str
    nullable: bool
    ordinal: int
    primary_key: bool = False
    references: ColumnRef | None = None


@dataclass(slots=True)
class Table:
    schema: str
    name: str
    columns: list[Column]
    row_count: int | None = None


@dataclass(slots=True)
class SchemaGraph:
    """One datasource's schemas, tables, columns and foreign keys."""

    schemas: list[str]
    tables: list[Table]

    @property
    def column_count(self) -> int:
        return sum(len(t.columns) for t in self.tables)

    @property
    def foreign_key_count(self) -> int:
        return sum(1 for t in self.tables for c in t.columns if c.references is not None)


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: str
    tenant_id: str
    datasource_name: str
    created_at: datetime
    graph: SchemaGraph


@dataclass(frozen=True, slots=True)
class SnapshotSummary:
    id: str
    created_at: datetime
    tables: int
    columns: int


@dataclass(frozen=True, slots=True)
class GlossaryTerm:
    """A business term; ``columns`` are ``datasource.schema.table.column`` paths."""

    id: str
    tenant_id: str
    term: str
    definition: str
    synonyms: tuple[str, ...]
    columns: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    def column_keys(self) -> list[tuple[str, str, str, str]]:
        """``columns`` as (datasource, schema, table, column); the API admits no dot
        inside a name, so a path of another shape names no column."""
        keys = []
        for path in self.columns:
            parts = path.split(".")
            if len(parts) == 4:
                keys.append((parts[0], parts[1], parts[2], parts[3]))
        return keys


@dataclass(frozen=True, slots=True)
class GlossaryLink:
    """A glossary term linked to a column of the datasource's current schema graph."""

    term_id: str
    term: str
    schema: str
    table: str
    column: str


@dataclass(slots=True)
class ColumnStatistics:
    name: str
    null_count: int
    distinct_count: int
    min: Any = None
    max: Any = None


@dataclass(slots=True)
class TableStatistics:
    schema: str
    table: str
    row_count: int
    columns: list[ColumnStatistics]


@dataclass(slots=True)
class DatasourceStatistics:
    tables: list[TableStatistics]
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class SearchHit:
    kind: SearchKind
    datasource_name: str
    schema: str
    table: str
    column: str | None = None
    data_type: str | None = None

    @property
    def key(self) -> str:
        """The paging key of ``search_metadata``: ``datasource.schema.table[.column]``."""
        parts = [self.datasource_name, self.schema, self.table]
        return ".".join([*parts, self.column] if self.column is not None else parts)


def parse_search_key(kind: SearchKind, key: str | None) -> tuple[str, str, str, str]:
    """A `SearchHit.key` as ``(datasource, schema, table, column)``, for stores to compare.

    ``None`` gives the key before every hit (datasource names are never empty). Datasource
    names hold no dot; a dotted schema or table name cannot be told apart, so the extra dots
    are taken to belong to the table. A malformed key is a cursor this API never issued.
    """
    if key is None:
        return ("", "", "", "")
    parts = key.split(".", 2)
    if len(parts) == 3:
        datasource, schema, rest = parts
        if kind == "table":
            return (datasource, schema, rest, "")
        table, dot, column = rest.rpartition(".")
        if dot:
            return (datasource, schema, table, column)
    raise ValueError("the cursor is not one this API issued")


@dataclass(frozen=True, slots=True, order=True)
class TableName:
    """A table as the tenant names it across datasources: ``datasource.schema.table``."""

    datasource: str
    schema: str
    table: str

    def __str__(self) -> str:
        return f"{self.datasource}.{self.schema}.{self.table}"


@dataclass(frozen=True, slots=True, order=True)
class JoinHop:
    """Two columns of two tables that join: a foreign key (``from`` is the referencing
    column, as stores report them), a bridge the glossary makes between datasources, or
    one step of a `JoinPath` (``from`` on the side the walk comes from)."""

    from_table: TableName
    from_column: str
    to_table: TableName
    to_column: str

    def reversed(self) -> JoinHop:
        return JoinHop(self.to_table, self.to_column, self.from_table, self.from_column)


@dataclass(frozen=True, slots=True)
class JoinPathRequest:
    """What `find_join_paths` is asked: at most ``limit`` of the shortest ways of joining
    table ``start`` to table ``end`` of the tenant, within ``max_hops``, over the foreign
    keys of its graphs and the ``bridges`` the core derived from its glossary."""

    tenant_id: str
    start: TableName
    end: TableName
    max_hops: int
    bridges: tuple[JoinHop, ...] = ()
    limit: int = 10


@dataclass(frozen=True, slots=True, order=True)
class JoinPath:
    """A walk from one table to another, each hop starting where the previous one ended."""

    hops: tuple[JoinHop, ...]


@dataclass(frozen=True, slots=True)
class ResultColumn:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class SqlDialect:
    """How a query engine reads SQL, for the core to render tenant statements in.

    ``name`` is the sqlglot dialect (``None``: the generic one). With ``schemas`` a
    datasource has schemas of its own, so ``ds.schema.table`` becomes
    ``internal.schema.table``; without, the datasource has one schema, ``single_schema``
    (SQLite's ``main``), so ``ds.<single_schema>.table`` becomes ``internal.table`` and
    any other schema is refused.

    ``default_schemas`` is for an engine that would read a two-part ``internal.table`` as
    ``schema.table`` of some session catalog (Trino): it names, by datasource engine
    (``("postgres", "public")``), the schema a two-part ``ds.table`` stands for, so it
    becomes ``internal.<schema>.table``; a datasource whose engine has none must be named
    with its schema. ``None`` (the default): two-part names become ``internal.table``.
    """

    name: str | None
    schemas: bool = True
    single_schema: str = "main"
    default_schemas: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class PreparedQuery:
    """A statement the core has parsed, checked and rendered for the query engine.

    ``sql`` is one read-only SELECT in the engine's dialect, every datasource qualifier
    already replaced by the datasource's internal name, asking for at most ``limit + 1``
    rows (one more tells the core whether there were more). ``datasources`` maps each
    public name the tenant used to its record. Engines run ``sql`` as it is.
    """

    query_id: str
    sql: str
    datasources: Mapping[str, Datasource]
    limit: int
    timeout_seconds: float


class RowStream(Protocol):
    """A running statement's result, as an engine hands it to the core: the columns are
    known, the rows come in batches as the engine reads them. The core pulls the next
    batch only when it has sent the previous one, so a slow client slows the engine and
    never fills memory. ``aclose`` stops reading, ends the statement if it still runs
    (the core closes early when the result is truncated or the client went away) and
    frees what the stream holds; it may be called more than once, and after the batches
    ran out. Stopping a statement the engine is still busy with, while the core waits, is
    `cancel_query`'s job."""

    @property
    def columns(self) -> Sequence[ResultColumn]: ...

    def __aiter__(self) -> AsyncIterator[Sequence[Sequence[Any]]]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """A query as a resource: who sent what, where it stands, what it answered.

    ``owner`` is the gateway process running it, which renews ``lease_until`` while it
    does; a query whose lease lapsed belongs to a process that is gone. ``error`` is the
    problem it ended with (``type``, ``title``, ``status``, ``detail``). ``bytes_sent`` is
    the size of the result body sent to the client. ``columns`` and ``result_expires_at``
    describe the stored result of an async query.
    """

    query_id: str
    tenant_id: str
    subject: str
    sql: str
    datasources: tuple[str, ...]
    status: QueryStatus
    mode: QueryMode
    via: QueryVia
    submitted_at: datetime
    limit: int
    timeout_seconds: float
    started_at: datetime | None = None
    finished_at: datetime | None = None
    row_count: int | None = None
    truncated: bool | None = None
    elapsed_ms: float | None = None
    bytes_sent: int | None = None
    error: Mapping[str, Any] | None = None
    owner: str | None = None
    lease_until: datetime | None = None
    cancel_requested: bool = False
    columns: tuple[ResultColumn, ...] = ()
    result_expires_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


RepairKind = Literal[
    "remove_datasource", "store_graph", "reapply_connection", "relink_glossary_term"
]


@dataclass(frozen=True, slots=True)
class Repair:
    """An operation across backends that has not finished everywhere yet.

    The core writes it to the registry's store *before* the operation's first step and
    deletes it after the last, so that whatever stopped the operation half-way (a backend
    down, a process killed) leaves this record behind, and any gateway process finishes
    the operation once the backend is back. ``key`` is what it works on (``tenant/name``
    of a datasource, ``tenant/id`` of a glossary term); ``payload`` what it needs to
    finish (a datasource record, a snapshot id). One repair per ``(kind, key)``: a
    newer intent replaces an older one.
    """

    kind: RepairKind
    key: str
    tenant_id: str
    payload: Mapping[str, Any]
    created_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class QuerySweep:
    """What one sweep of the query records did (`sweep_queries`)."""

    failed: int
    deleted: int
    result_bytes: int


@dataclass(frozen=True, slots=True)
class QueryResult:
    """A whole query answer, for callers that want rows in memory (MCP tools, the kits):
    at most ``limit`` rows, values JSON-native, column names as the tenant wrote them."""

    query_id: str
    columns: list[ResultColumn]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float


@dataclass(frozen=True, slots=True)
class Page:
    """Keyset paging for store listings: `after` is the last key of the previous page."""

    limit: int
    after: str | None = None


@dataclass(frozen=True, slots=True)
class HealthCheck:
    status: HealthStatus
    detail: str | None = None
    latency_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """What an idempotent request answered, kept so a repeat can be replayed."""

    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class GuardRequest:
    principal: Principal
    method: str
    path: str
    idempotency_key: str | None
    fingerprint: str


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """Proof that this request owns an idempotency key until `guard_response` is called."""

    key: str
    token: str


@dataclass(frozen=True, slots=True)
class GuardDecision:
    """A request the guard lets through: headers to add, and either a replay or a claim."""

    headers: dict[str, str]
    replay: StoredResponse | None = None
    claim: IdempotencyClaim | None = None
