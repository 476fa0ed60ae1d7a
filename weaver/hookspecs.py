"""The plugin contract.

Every backend of Weaver is a pluggy plugin implementing some of these hooks. Plugins are
found through the entry-point group ``weaver``; an entry point names a module of hook
functions or a class, of which the core builds one instance per app with the app's
settings (``cls(settings)``), so that two apps in one process never share a pool. The
embedded defaults in ``weaver.builtin`` are plugins too, registered ``trylast`` so an
installed plugin wins.

How results combine is data beside each spec (``@hookspec("owner")``), read once when
the plugin manager is built; ``weaver.host.Host`` applies it, calling each
implementation through pluggy (so ``add_hookcall_monitoring`` and tracing see it) and
awaiting async ones itself — never with pluggy's ``firstresult``, since a coroutine is
never ``None``:

* **owner** — one implementation answers: the installed plugin's, else the embedded
  default's. Its answer is the answer: ``None`` means "no such record", not "ask the next
  plugin". This is how one plugin takes over a kind of record (the Neo4j plugin the schema
  graph, the pg plugin snapshots) while the defaults keep the rest. Two installed plugins
  implementing one owner hook are a *conflict*: both are reported ``down`` with the hooks
  they contend for (``WEAVER_PLUGINS_STRICT`` refuses to start), never resolved by name
  order.
* **each** — every implementation is called, one by one, each under its own try/except
  (and timeout, for health), so one broken plugin cannot hide another.

Wrappers (``@hookimpl(wrapper=True)`` or ``hookwrapper=True``) are refused on every hook:
the core calls one implementation at a time and awaits it, so a wrapper would only ever
see a coroutine. A plugin declaring one is reported ``down`` and not registered.

Every hook receives ``context`` (`weaver.context.WeaverContext`) and implementations may
take any subset of the arguments; never give a parameter a default (pluggy does not pass
it). The same argument name always has the same type: ``tenant_id: str``,
``datasource: Datasource``, ``page: Page``, ``principal: Principal``,
``query: PreparedQuery``.

Errors. Raise the ``weaver.errors`` problems: ``NotFound``, ``Conflict``,
``Unprocessable`` (bad input, 422, with ``errors`` from ``weaver.errors.field_error``),
``EngineFailed`` (backend refused, 502, with a message free of credentials; the core
replaces internal datasource names by public ones), ``EngineTimeout`` (504),
``Unavailable`` (backend unreachable, 503), ``GuardUnavailable`` (guard backend down).
Anything else is a bug: it is logged and answered 500 without details.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Literal, TypeVar

import pluggy

from weaver.context import WeaverContext
from weaver.types import (
    ConnectionSpec,
    Datasource,
    DatasourceStatistics,
    GlossaryLink,
    GlossaryTerm,
    GuardDecision,
    GuardRequest,
    HealthCheck,
    IdempotencyClaim,
    JoinPath,
    JoinPathRequest,
    Page,
    PreparedQuery,
    Principal,
    QueryRecord,
    QuerySweep,
    Repair,
    RowStream,
    SchemaGraph,
    SearchHit,
    SearchKind,
    Snapshot,
    SnapshotSummary,
    SqlDialect,
    StoredResponse,
)

PROJECT = "weaver"
Combine = Literal["owner", "each"]
COMBINE_ATTRIBUTE = "weaver_combine"
F = TypeVar("F", bound=Callable[..., object])
_spec_marker = pluggy.HookspecMarker(PROJECT)


def hookspec(combine: Combine) -> Callable[[F], F]:
    """Declare a hook and how its implementations' results combine."""

    def mark(function: F) -> F:
        setattr(function, COMBINE_ATTRIBUTE, combine)
        return _spec_marker(function)

    return mark


def combine_rules(module: ModuleType) -> dict[str, Combine]:
    """Every hook of ``module`` with its rule; a spec without one is a bug in the core."""
    rules: dict[str, Combine] = {}
    for name, value in vars(module).items():
        if callable(value) and hasattr(value, f"{PROJECT}_spec"):
            combine = getattr(value, COMBINE_ATTRIBUTE, None)
            if combine not in ("owner", "each"):
                raise TypeError(f"hook {name} does not say how its results combine")
            rules[name] = combine
    return rules


# --- lifecycle -----------------------------------------------------------------------


@hookspec("each")
def weaver_startup(context: WeaverContext) -> None:
    """Open connections and pools; called once when the app starts, before it serves.

    Rule: each, lowest priority first: the embedded defaults start before installed
    plugins, so a plugin may already read the registry (``context.registry``). Async
    allowed. A class plugin keeps what it opens on ``self``; a module plugin in
    ``context.state[<its name>]``.
    Raising marks this plugin ``down`` (with the message) and the gateway still serves
    what it can; do not fail start-up merely because a server is not reachable yet —
    connect lazily and let ``check_health`` report it, so the plugin recovers by itself.
    """


@hookspec("each")
def weaver_shutdown(context: WeaverContext) -> None:
    """Close what ``weaver_startup`` opened; called once when the app stops.

    Rule: each, highest priority first (the reverse of start-up). Async allowed. Errors
    are logged and do not stop the other plugins.
    """


@hookspec("each")
def check_health(context: WeaverContext) -> HealthCheck | None:
    """Report whether this plugin's backend answers right now (a real round trip).

    Rule: each, concurrently, each under ``WEAVER_HEALTH_CHECK_TIMEOUT_SECONDS``; a
    timeout or an exception counts as ``down``. Async allowed. ``None`` means the plugin
    has nothing to check and is reported ``up``.
    """


# --- datasource registry --------------------------------------------------------------


@hookspec("owner")
def save_datasource(context: WeaverContext, datasource: Datasource, create: bool) -> None:
    """Insert (``create=True``) or replace a datasource record.

    Rule: owner. Async allowed. Raise ``Conflict`` when creating a name the tenant already
    has, ``NotFound`` when replacing one it does not. Must be atomic across processes
    sharing the store.
    """


@hookspec("owner")
def get_datasource(context: WeaverContext, tenant_id: str, name: str) -> Datasource | None:
    """One datasource of the tenant. Rule: owner. Async allowed. ``None``: not found.
    The record may be shared with other callers (a store may keep it); it is frozen, and
    a change is a copy (`dataclasses.replace`)."""


@hookspec("owner")
def list_datasources(context: WeaverContext, tenant_id: str, page: Page) -> list[Datasource]:
    """The tenant's datasources ordered by name, names greater than ``page.after``, at
    most ``page.limit``. Rule: owner. Async allowed."""


@hookspec("owner")
def all_datasources(context: WeaverContext) -> list[Datasource]:
    """Every tenant's datasources, for start-up reconciliation with a query engine.

    Rule: owner. Async allowed. Never exposed through the API.
    """


@hookspec("owner")
def delete_datasource(context: WeaverContext, tenant_id: str, name: str) -> bool:
    """Remove the record. Rule: owner. Async allowed. Returns whether it existed."""


# --- query engine ---------------------------------------------------------------------


@hookspec("owner")
def sql_dialect(context: WeaverContext) -> SqlDialect | None:
    """How the query engine reads SQL: the sqlglot dialect the core parses tenant SQL in
    and renders it to, and how datasource names map onto the engine's (`SqlDialect`).

    Rule: owner (the query engine). Sync only; asked once per app, when the first query
    is prepared. ``None``: the generic dialect, datasources with schemas.
    """


@hookspec("owner")
def validate_connection(
    context: WeaverContext, engine: str, connection: dict[str, object]
) -> ConnectionSpec | None:
    """Check a connection for ``engine`` before anything is stored or sent.

    Rule: owner (the query engine). Async allowed. Keep only the parameters the engine
    documents, split secret from public, name the network targets. Raise
    ``Unprocessable`` (with ``errors``) for a bad connection. ``None``: this engine name
    is not supported here (the core answers 422).
    """


@hookspec("owner")
def register_datasource(
    context: WeaverContext, datasource: Datasource, connection: dict[str, object], replace: bool
) -> None:
    """Create the datasource in the query engine under ``datasource.internal_name``,
    letting the engine prove the connection works; ``replace`` for a changed connection.

    Rule: owner. Async allowed. Raise ``EngineFailed`` if the engine refuses; leave
    nothing half-created (on a failed replace, the previous definition must still work).
    ``connection`` is every parameter, secrets included (`weaver.connections.full`, the
    same shape as `WeaverContext.reveal_connection` gives for a stored record): never
    log it.
    """


@hookspec("owner")
def unregister_datasource(context: WeaverContext, datasource: Datasource) -> None:
    """Drop the datasource from the query engine. Rule: owner. Async allowed.
    Idempotent: dropping one the engine does not have is not an error (a removal is
    retried until every backend has done its part)."""


@hookspec("owner")
def execute_query(
    context: WeaverContext, principal: Principal, query: PreparedQuery
) -> RowStream | None:
    """Start ``query.sql``, the core's rendering of a checked read-only statement, and
    return its rows as a `RowStream` once the columns are known.

    Rule: owner. Async allowed, and expected: never run a statement on the event loop,
    however short (one SQLite expression is one VM step no progress handler interrupts).
    Run the text as it is (the core has put in internal names and ``LIMIT limit + 1``);
    the core pulls batches, truncates to ``query.limit``, converts values, names columns,
    and bounds every wait by ``query.timeout_seconds``: on a timeout, a cancel or a
    client that went away it calls `cancel_query` and then the stream's ``aclose``. Tag
    the statement with ``query.query_id`` at the source where a layer allows it (a
    comment, ``application_name``, the engine's own query id). Raise ``QueryFailed`` (400)
    for what the caller caused that only the engine can see (an unknown table or
    column, a type mismatch) and ``EngineFailed`` for the engine's own failures.
    ``None``: this engine cannot run the statement (the core answers 400).
    """


@hookspec("owner")
def cancel_query(context: WeaverContext, query: PreparedQuery) -> bool | None:
    """Stop ``query``'s statement at the source: this process started it with
    `execute_query` and it may still be running there.

    Rule: owner (the query engine). Async allowed. Called once per cancellation, whatever
    its cause (``DELETE /api/query/{id}``, a client that went away, a timeout), possibly
    while `execute_query` is still waiting for the engine. Return whether something was
    stopped; ``None`` or ``False`` when the statement had already finished or the engine
    cannot stop it (say which engines can in the plugin's README). Never raise for a
    statement that is gone.
    """


@hookspec("owner")
def introspect_datasource(context: WeaverContext, datasource: Datasource) -> SchemaGraph:
    """Read the datasource's schemas, tables, columns, primary and foreign keys.

    Rule: owner (the query engine). Async allowed.
    """


@hookspec("owner")
def compute_statistics(
    context: WeaverContext, datasource: Datasource, graph: SchemaGraph
) -> DatasourceStatistics:
    """Row counts per table; null and distinct counts, and min/max where cheap, per
    column of ``graph``'s tables. Rule: owner (the query engine). Async allowed."""


# --- metadata catalog -----------------------------------------------------------------


@hookspec("owner")
def store_metadata(context: WeaverContext, datasource: Datasource, graph: SchemaGraph) -> None:
    """Replace the datasource's schema graph with ``graph`` (after a sync).

    Rule: owner. Async allowed. Readers see either the old graph or the new one, never a
    mix. Called after the sync's snapshot was saved, and called again with the same
    graph when an earlier call failed: storing the same graph twice must leave one.
    """


@hookspec("owner")
def load_metadata(context: WeaverContext, datasource: Datasource) -> SchemaGraph | None:
    """The datasource's current schema graph. Rule: owner. Async allowed. ``None``: it
    was never synced."""


@hookspec("owner")
def search_metadata(
    context: WeaverContext, tenant_id: str, text: str, kind: SearchKind, page: Page
) -> list[SearchHit]:
    """Tables or columns of the tenant whose name contains ``text`` (case-insensitive),
    ordered by datasource, schema, table, column; ``page.after`` is the previous page's
    last hit as ``datasource.schema.table[.column]``. Rule: owner. Async allowed."""


@hookspec("owner")
def find_join_paths(context: WeaverContext, request: JoinPathRequest) -> list[JoinPath]:
    """The shortest ways of joining ``request.start`` to ``request.end`` of the tenant,
    over the foreign keys of its stored schema graphs and the ``bridges``.

    Rule: owner (the store of the schema graph). Async allowed. Walk the graph breadth
    first with `weaver.joins.PathSearch`, reading the foreign keys that touch each
    level's tables (both ways: the referencing and the referenced side) from the graph of
    the tenant only; the search decides the rest. ``bridges`` are joins between tables of
    two datasources that the core derived from glossary terms (the store does not read
    the glossary, which another plugin may own); they count as hops like foreign keys.
    Returns at most ``limit`` paths, in the order the search lists them; an empty list
    when none is within ``max_hops`` (1 to 6), or a table is not in the graph.
    """


@hookspec("each")
def delete_metadata(context: WeaverContext, datasource: Datasource) -> None:
    """Forget everything kept about the datasource: graph, snapshots, statistics.

    Rule: each (every store removes what it holds). Async allowed. Called after the
    datasource left the registry (it answers 404 from then on) and retried until every
    store succeeded, so it must be idempotent: forgetting what is already gone is not an
    error.
    """


@hookspec("owner")
def save_snapshot(context: WeaverContext, snapshot: Snapshot) -> None:
    """Record an immutable snapshot. Rule: owner. Async allowed."""


@hookspec("owner")
def list_snapshots(
    context: WeaverContext, datasource: Datasource, page: Page
) -> list[SnapshotSummary]:
    """The datasource's snapshots newest first; ``page.after`` is the id of the last one of
    the previous page. Rule: owner. Async allowed."""


@hookspec("owner")
def get_snapshot(
    context: WeaverContext, datasource: Datasource, snapshot_id: str
) -> Snapshot | None:
    """One snapshot of the datasource. Rule: owner. Async allowed. ``None``: not found."""


@hookspec("owner")
def save_glossary_term(context: WeaverContext, term: GlossaryTerm, create: bool) -> None:
    """Insert (``create=True``) or replace a glossary term.

    Rule: owner. Async allowed. Raise ``Conflict`` when another term of the tenant has the
    same ``term`` (case-insensitive), ``NotFound`` when replacing a missing id.
    """


@hookspec("owner")
def get_glossary_term(context: WeaverContext, tenant_id: str, term_id: str) -> GlossaryTerm | None:
    """One term. Rule: owner. Async allowed. ``None``: not found."""


@hookspec("owner")
def list_glossary_terms(
    context: WeaverContext, tenant_id: str, text: str | None, page: Page
) -> list[GlossaryTerm]:
    """The tenant's terms ordered by lower-cased term, after ``page.after`` (a lower-cased
    term); with ``text``, only those whose term, synonyms or definition contain it
    (case-insensitive). Rule: owner. Async allowed."""


@hookspec("owner")
def delete_glossary_term(context: WeaverContext, tenant_id: str, term_id: str) -> bool:
    """Remove a term. Rule: owner. Async allowed. Returns whether it existed."""


@hookspec("owner")
def store_glossary_links(context: WeaverContext, term: GlossaryTerm) -> None:
    """Make ``term.columns`` (``datasource.schema.table.column`` paths) the term's links
    in the schema graph, replacing the ones it had; called after the term was saved by
    `save_glossary_term` (created or replaced).

    Rule: owner: the plugin that owns the schema graph (``store_metadata``), since links
    are edges of that graph wherever it lives, whichever store keeps the terms. Async
    allowed. The term record stays the truth; the graph keeps the term's id, name and
    paths beside its edges, so calling this again with the current term repairs the
    links. A path to a column the graph lacks (not synced yet, or gone) is kept and
    becomes a link when a sync brings that column; links follow their columns across
    syncs. Only datasources of ``term.tenant_id`` are linked.
    """


@hookspec("owner")
def delete_glossary_links(context: WeaverContext, tenant_id: str, term_id: str) -> None:
    """Forget every link of a term; called after `delete_glossary_term` removed it.

    Rule: owner (the schema graph's, as `store_glossary_links`). Async allowed. A term
    the graph has no links for is not an error.
    """


@hookspec("owner")
def load_glossary_links(context: WeaverContext, datasource: Datasource) -> list[GlossaryLink]:
    """The glossary links to columns of the datasource's current schema graph, ordered by
    schema, table, column, then lower-cased term; a path to a column the graph lacks is
    not among them.

    Rule: owner (the schema graph's, as `store_glossary_links`). Async allowed. Read from
    one version of the graph, never a mix of two syncs (as `load_metadata`). An empty
    list: no links, or never synced.
    """


@hookspec("owner")
def save_statistics(
    context: WeaverContext, datasource: Datasource, statistics: DatasourceStatistics
) -> None:
    """Replace the datasource's statistics. Rule: owner. Async allowed."""


@hookspec("owner")
def load_statistics(context: WeaverContext, datasource: Datasource) -> DatasourceStatistics | None:
    """The datasource's latest statistics. Rule: owner. Async allowed. ``None``: never
    computed."""


# --- operations across backends --------------------------------------------------------


@hookspec("owner")
def save_repair(context: WeaverContext, repair: Repair) -> None:
    """Keep ``repair`` (an operation across backends not yet finished everywhere),
    replacing the one of the same ``(kind, key)``. Rule: owner (the store of the
    datasource registry: the core writes a repair before the operation's first step).
    Async allowed."""


@hookspec("owner")
def list_repairs(
    context: WeaverContext, due_before: datetime | None, key: str | None
) -> list[Repair]:
    """Repairs oldest first: those whose ``next_attempt_at`` is unset or before
    ``due_before`` (every one when ``due_before`` is None), only those of ``key`` when
    given. Rule: owner. Async allowed."""


@hookspec("owner")
def delete_repair(context: WeaverContext, kind: str, key: str) -> None:
    """Forget the repair of ``(kind, key)``: the operation finished everywhere. Rule:
    owner. Async allowed. Forgetting one that is gone is not an error."""


# --- query records and results --------------------------------------------------------


@hookspec("owner")
def save_query(context: WeaverContext, record: QueryRecord, create: bool) -> None:
    """Insert (``create=True``) or replace a query record.

    Rule: owner (a metadata store; every gateway process sharing it sees every query).
    Async allowed. Only the process running a query replaces its record; a replacement
    never clears ``cancel_requested``, which another process may have set meanwhile
    (`request_query_cancel`). Raise ``Conflict`` when creating an id that exists.
    """


@hookspec("owner")
def get_query(context: WeaverContext, tenant_id: str, query_id: str) -> QueryRecord | None:
    """One query of the tenant, with its current ``cancel_requested``. Rule: owner. Async
    allowed. ``None``: not found (another tenant's query included)."""


@hookspec("owner")
def list_queries(
    context: WeaverContext,
    tenant_id: str,
    subject: str | None,
    status: str | None,
    page: Page,
) -> list[QueryRecord]:
    """The tenant's queries newest first (by ``submitted_at``, then ``query_id``), only
    ``subject``'s when given, only those in ``status`` when given; ``page.after`` is the
    ``query_id`` of the previous page's last record. Rule: owner. Async allowed."""


@hookspec("owner")
def request_query_cancel(context: WeaverContext, tenant_id: str, query_id: str) -> bool:
    """Mark a queued or running query for cancellation by whichever process runs it
    (that process sees the mark through `poll_queries`). Rule: owner. Async allowed.
    Returns whether the query exists and had not finished."""


@hookspec("owner")
def poll_queries(context: WeaverContext, owner: str, lease_until: datetime | None) -> list[str]:
    """The ids of ``owner``'s unfinished queries that were marked for cancellation; with
    ``lease_until``, first extend the lease of every unfinished query of ``owner`` to it.

    Rule: owner. Async allowed. Called every half second or so by each gateway process
    that runs queries, so it must be cheap (an indexed read; a write only with
    ``lease_until``).
    """


@hookspec("owner")
def sweep_queries(context: WeaverContext, now: datetime, history_before: datetime) -> QuerySweep:
    """Housekeeping any gateway process may do at any time: mark every queued or running
    query whose lease lapsed before ``now`` as ``failed`` (its process is gone; error
    type ``.../gateway-lost``), drop stored results whose ``result_expires_at`` passed,
    and delete records submitted before ``history_before``. Rule: owner. Async allowed.
    Idempotent: several processes sweeping at once must agree."""


@hookspec("owner")
def save_result_chunk(
    context: WeaverContext,
    tenant_id: str,
    query_id: str,
    index: int,
    rows: bytes,
    max_tenant_bytes: int,
) -> None:
    """Keep chunk ``index`` (0, 1, …) of an async query's result: ``rows`` is a JSON array
    of rows of JSON-native values. Rule: owner. Async allowed. The tenant's stored results
    may not exceed ``max_tenant_bytes`` in all: evict whole results of the tenant's other
    queries, oldest first, to make room (their records get ``result_expires_at`` now, so
    they answer 410), and raise ``PayloadTooLarge`` when this query's result alone does not
    fit."""


@hookspec("owner")
def load_result_chunks(
    context: WeaverContext, tenant_id: str, query_id: str, first: int, last: int
) -> list[bytes]:
    """Chunks ``first`` to ``last`` (inclusive) of a stored result, those that exist, in
    order. Rule: owner. Async allowed. An empty list: the result is gone."""


@hookspec("owner")
def delete_results(context: WeaverContext, tenant_id: str, query_id: str) -> None:
    """Drop a query's stored result, if any. Rule: owner. Async allowed."""


# --- request guard --------------------------------------------------------------------


@hookspec("owner")
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


@hookspec("owner")
def acquire_query_slot(
    context: WeaverContext, tenant_id: str, query_id: str, limit: int, lease_seconds: float
) -> bool:
    """Take one of the tenant's ``limit`` query slots for ``query_id`` until
    ``lease_seconds`` from now, if one is free; calling it again for a slot the query
    holds extends the lease (and returns ``True``). Rule: owner (the guard: exact across
    the processes sharing its backend). Async allowed. A slot whose lease lapsed is free
    again, so a process that died frees its slots by itself. Raise ``GuardUnavailable``
    when the backend cannot answer."""


@hookspec("owner")
def release_query_slot(context: WeaverContext, tenant_id: str, query_id: str) -> None:
    """Give back ``query_id``'s slot (none held is not an error). Rule: owner. Async
    allowed."""


@hookspec("owner")
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
