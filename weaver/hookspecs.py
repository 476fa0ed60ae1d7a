"""The plugin contract.

Every backend of Weaver is a pluggy plugin implementing some of these hooks. Plugins are
found through the entry-point group ``weaver``; the embedded defaults in
``weaver.builtin`` are plugins too, registered ``trylast`` so an installed plugin wins.

How results combine. pluggy itself is synchronous and every hook here may be an
``async def``; the core never uses pluggy's ``firstresult`` (a coroutine is never
``None``). Instead ``weaver.host.Host`` applies one of two rules, named in each spec:

* **owner** — only the highest-priority implementation is called (an installed plugin
  before the embedded defaults; ``tryfirst``/``trylast`` as usual). Its answer is the
  answer: ``None`` means "no such record", not "ask the next plugin". This is how one
  plugin takes over a kind of record (the Neo4j plugin the schema graph, the pg plugin
  snapshots) while the defaults keep the rest.
* **each** — every implementation is called, one by one, each under its own try/except
  (and timeout, for health), so one broken plugin cannot hide another.

Every hook receives ``context`` (`weaver.context.WeaverContext`) and implementations may
take any subset of the arguments. The same argument name always has the same type:
``tenant_id: str``, ``datasource: Datasource``, ``page: Page``, ``principal: Principal``.

Errors. Raise the ``weaver.errors`` problems: ``NotFound``, ``Conflict``,
``Unprocessable`` (bad input, 422), ``EngineFailed`` (backend refused, 502, with a
message already free of credentials and internal names), ``EngineTimeout`` (504),
``Unavailable`` (backend unreachable, 503), ``GuardUnavailable`` (guard backend down).
Anything else is a bug: it is logged and answered 500 without details.
"""

from __future__ import annotations

import pluggy

from weaver.context import WeaverContext
from weaver.types import (
    ConnectionSpec,
    Datasource,
    DatasourceStatistics,
    GlossaryTerm,
    GuardDecision,
    GuardRequest,
    HealthCheck,
    IdempotencyClaim,
    Page,
    PreparedQuery,
    Principal,
    QueryResult,
    SchemaGraph,
    SearchHit,
    SearchKind,
    Snapshot,
    SnapshotSummary,
    StoredResponse,
)

PROJECT = "weaver"
hookspec = pluggy.HookspecMarker(PROJECT)


# --- lifecycle -----------------------------------------------------------------------


@hookspec
def weaver_startup(context: WeaverContext) -> None:
    """Open connections and pools; called once when the app starts, before it serves.

    Rule: each, lowest priority first: the embedded defaults start before installed
    plugins, so a plugin may already use the hooks they own (``context.host``). Async
    allowed. Keep what you open in ``context.state[<your name>]``.
    Raising marks this plugin ``down`` (with the message) and the gateway still serves
    what it can; do not fail start-up merely because a server is not reachable yet —
    connect lazily and let ``check_health`` report it, so the plugin recovers by itself.
    """


@hookspec
def weaver_shutdown(context: WeaverContext) -> None:
    """Close what ``weaver_startup`` opened; called once when the app stops.

    Rule: each, highest priority first (the reverse of start-up). Async allowed. Errors
    are logged and do not stop the other plugins.
    """


@hookspec
def check_health(context: WeaverContext) -> HealthCheck | None:
    """Report whether this plugin's backend answers right now (a real round trip).

    Rule: each, concurrently, each under ``WEAVER_HEALTH_CHECK_TIMEOUT_SECONDS``; a
    timeout or an exception counts as ``down``. Async allowed. ``None`` means the plugin
    has nothing to check and is reported ``up``.
    """


# --- datasource registry --------------------------------------------------------------


@hookspec
def save_datasource(context: WeaverContext, datasource: Datasource, create: bool) -> None:
    """Insert (``create=True``) or replace a datasource record.

    Rule: owner. Async allowed. Raise ``Conflict`` when creating a name the tenant already
    has, ``NotFound`` when replacing one it does not. Must be atomic across processes
    sharing the store.
    """


@hookspec
def get_datasource(context: WeaverContext, tenant_id: str, name: str) -> Datasource | None:
    """One datasource of the tenant. Rule: owner. Async allowed. ``None``: not found.
    The record may be shared with other callers (a store may keep it): never change it,
    make a changed copy (`dataclasses.replace`)."""


@hookspec
def list_datasources(context: WeaverContext, tenant_id: str, page: Page) -> list[Datasource]:
    """The tenant's datasources ordered by name, names greater than ``page.after``, at
    most ``page.limit``. Rule: owner. Async allowed."""


@hookspec
def all_datasources(context: WeaverContext) -> list[Datasource]:
    """Every tenant's datasources, for start-up reconciliation with a query engine.

    Rule: owner. Async allowed. Never exposed through the API.
    """


@hookspec
def delete_datasource(context: WeaverContext, tenant_id: str, name: str) -> bool:
    """Remove the record. Rule: owner. Async allowed. Returns whether it existed."""


# --- query engine ---------------------------------------------------------------------


@hookspec
def sql_dialect(context: WeaverContext) -> str | None:
    """The sqlglot dialect the engine reads (``"sqlite"``, ``"mysql"``, …); the core
    parses tenant SQL with it. Rule: owner. Sync only, asked once. ``None``: the generic
    dialect."""


@hookspec
def validate_connection(
    context: WeaverContext, engine: str, connection: dict[str, object]
) -> ConnectionSpec | None:
    """Check a connection for ``engine`` before anything is stored or sent.

    Rule: owner (the query engine). Async allowed. Keep only the parameters the engine
    documents, split secret from public, name the network targets. Raise
    ``Unprocessable`` (with ``errors``) for a bad connection. ``None``: this engine name
    is not supported here (the core answers 422).
    """


@hookspec
def register_datasource(
    context: WeaverContext, datasource: Datasource, connection: dict[str, object], replace: bool
) -> None:
    """Create the datasource in the query engine under ``datasource.internal_name``,
    letting the engine prove the connection works; ``replace`` for a changed connection.

    Rule: owner. Async allowed. Raise ``EngineFailed`` if the engine refuses; leave
    nothing half-created (on a failed replace, the previous definition must still work).
    ``connection`` is the full connection, secrets included: never log it.
    """


@hookspec
def unregister_datasource(context: WeaverContext, datasource: Datasource) -> None:
    """Drop the datasource from the query engine. Rule: owner. Async allowed. Dropping
    one the engine does not have is not an error."""


@hookspec
def execute_query(
    context: WeaverContext, principal: Principal, query: PreparedQuery
) -> QueryResult | None:
    """Run a checked read-only statement.

    Rule: owner. Async allowed (and expected: never block the event loop). Return at most
    ``query.limit`` rows and ``truncated=True`` when there were more; stop waiting after
    ``query.timeout_seconds`` and raise ``EngineTimeout`` (cancel the statement where the
    engine allows). ``None``: this engine cannot run the statement (the core answers 400).
    """


@hookspec
def introspect_datasource(context: WeaverContext, datasource: Datasource) -> SchemaGraph:
    """Read the datasource's schemas, tables, columns, primary and foreign keys.

    Rule: owner (the query engine). Async allowed.
    """


@hookspec
def compute_statistics(
    context: WeaverContext, datasource: Datasource, graph: SchemaGraph
) -> DatasourceStatistics:
    """Row counts per table; null and distinct counts, and min/max where cheap, per
    column of ``graph``'s tables. Rule: owner (the query engine). Async allowed."""


# --- metadata catalog -----------------------------------------------------------------


@hookspec
def store_metadata(context: WeaverContext, datasource: Datasource, graph: SchemaGraph) -> None:
    """Replace the datasource's schema graph with ``graph`` (after a sync).

    Rule: owner. Async allowed. Readers see either the old graph or the new one, never a
    mix.
    """


@hookspec
def load_metadata(context: WeaverContext, datasource: Datasource) -> SchemaGraph | None:
    """The datasource's current schema graph. Rule: owner. Async allowed. ``None``: it
    was never synced."""


@hookspec
def search_metadata(
    context: WeaverContext, tenant_id: str, text: str, kind: SearchKind, page: Page
) -> list[SearchHit]:
    """Tables or columns of the tenant whose name contains ``text`` (case-insensitive),
    ordered by datasource, schema, table, column; ``page.after`` is the previous page's
    last hit as ``datasource.schema.table[.column]``. Rule: owner. Async allowed."""


@hookspec
def delete_metadata(context: WeaverContext, datasource: Datasource) -> None:
    """Forget everything kept about the datasource: graph, snapshots, statistics.

    Rule: each (every store removes what it holds). Async allowed.
    """


@hookspec
def save_snapshot(context: WeaverContext, snapshot: Snapshot) -> None:
    """Record an immutable snapshot. Rule: owner. Async allowed."""


@hookspec
def list_snapshots(
    context: WeaverContext, datasource: Datasource, page: Page
) -> list[SnapshotSummary]:
    """The datasource's snapshots newest first; ``page.after`` is the id of the last one of
    the previous page. Rule: owner. Async allowed."""


@hookspec
def get_snapshot(
    context: WeaverContext, datasource: Datasource, snapshot_id: str
) -> Snapshot | None:
    """One snapshot of the datasource. Rule: owner. Async allowed. ``None``: not found."""


@hookspec
def save_glossary_term(context: WeaverContext, term: GlossaryTerm, create: bool) -> None:
    """Insert (``create=True``) or replace a glossary term.

    Rule: owner. Async allowed. Raise ``Conflict`` when another term of the tenant has the
    same ``term`` (case-insensitive), ``NotFound`` when replacing a missing id.
    """


@hookspec
def get_glossary_term(context: WeaverContext, tenant_id: str, term_id: str) -> GlossaryTerm | None:
    """One term. Rule: owner. Async allowed. ``None``: not found."""


@hookspec
def list_glossary_terms(
    context: WeaverContext, tenant_id: str, text: str | None, page: Page
) -> list[GlossaryTerm]:
    """The tenant's terms ordered by lower-cased term, after ``page.after`` (a lower-cased
    term); with ``text``, only those whose term, synonyms or definition contain it
    (case-insensitive). Rule: owner. Async allowed."""


@hookspec
def delete_glossary_term(context: WeaverContext, tenant_id: str, term_id: str) -> bool:
    """Remove a term. Rule: owner. Async allowed. Returns whether it existed."""


@hookspec
def save_statistics(
    context: WeaverContext, datasource: Datasource, statistics: DatasourceStatistics
) -> None:
    """Replace the datasource's statistics. Rule: owner. Async allowed."""


@hookspec
def load_statistics(context: WeaverContext, datasource: Datasource) -> DatasourceStatistics | None:
    """The datasource's latest statistics. Rule: owner. Async allowed. ``None``: never
    computed."""


# --- request guard --------------------------------------------------------------------


@hookspec
def guard_request(context: WeaverContext, request: GuardRequest) -> GuardDecision:
    """Admit or refuse an ``/api/*`` request before its handler runs.

    Rule: owner. Async allowed. Count the request against ``WEAVER_RATE_LIMIT`` for
    ``(tenant_id, subject)``, exactly even across processes sharing the guard's backend.
    With ``request.idempotency_key``: if a response is stored for the key and the same
    fingerprint, return it as ``replay`` (the handler is not run); if the key is held by a
    request still running, raise ``Conflict``; if it was used for another fingerprint,
    raise ``Unprocessable``; otherwise claim it and return the ``claim``.

    Raise ``RateLimited`` (with ``Retry-After`` and RateLimit headers) over the limit, and
    ``GuardUnavailable`` when the backend cannot answer (the core applies
    ``WEAVER_REQUEST_GUARD_FAIL_OPEN``). ``headers`` go on the response either way.
    """


@hookspec
def guard_response(
    context: WeaverContext,
    request: GuardRequest,
    claim: IdempotencyClaim,
    response: StoredResponse | None,
) -> None:
    """Settle a claim made by ``guard_request``: store ``response`` for replay for
    ``WEAVER_REQUEST_GUARD_IDEMPOTENCY_TTL_SECONDS``, or, when ``response`` is ``None``
    (a 5xx or a crash of the handler), release the key so the client may retry.

    Rule: owner. Async allowed. Errors are logged, never turned into the response.
    """
