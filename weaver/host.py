"""The typed facade through which the core calls plugins.

Handlers never touch ``pm.hook``: they call one method here per hook, which applies the
hook's combine rule (`weaver.hookspecs`), calls the implementation through pluggy (so
pluggy's monitoring and tracing see the call), awaits it when it is a coroutine and
opens a tracing span. Who answers is resolved again whenever a plugin is registered or
unregistered, so a plugin added after the host was built takes part like the others.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeVar, cast

import pluggy
from opentelemetry import trace

from weaver import hookspecs
from weaver.context import WeaverContext
from weaver.errors import Problem, Unavailable
from weaver.naming import public_names
from weaver.observability import tracing_active
from weaver.plugins import (
    Dispatch,
    PluginConflict,
    PluginInfo,
    PluginLoadError,
    WeaverPluginManager,
    resolve,
    wrapper_hooks,
)
from weaver.secrets import SecretBox
from weaver.settings import Settings
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

log = logging.getLogger(__name__)
tracer = trace.get_tracer("weaver.host")
T = TypeVar("T")

_UNKNOWN = object()


async def await_me_maybe(value: T | Awaitable[T]) -> T:
    """The one place where a hook's result is awaited when it is a coroutine."""
    if inspect.isawaitable(value):
        return await value
    return value


def _datasources_in(kwargs: dict[str, Any]) -> list[Datasource]:
    found = [v for v in kwargs.values() if isinstance(v, Datasource)]
    query = kwargs.get("query")
    if isinstance(query, PreparedQuery):
        found.extend(query.datasources.values())
    return found


class Host:
    def __init__(
        self,
        pm: WeaverPluginManager,
        settings: Settings,
        secrets: SecretBox,
        plugins: dict[str, PluginInfo],
    ) -> None:
        self.pm = pm
        # The host is the registry plugins may read through their context.
        self.context = WeaverContext(settings=settings, secrets=secrets, registry=self)
        self.plugins = plugins
        self.startup_errors: dict[str, str] = {}
        self._rules = hookspecs.combine_rules(hookspecs)
        self._builtin = frozenset(name for name, info in plugins.items() if info.builtin)
        # Even a non-recording span costs a context switch per hook; skip them unless an
        # SDK provider (and so an exporter) is installed.
        self.traced = tracing_active()
        self._generation = -1
        self._table = Dispatch({}, {}, {})
        self._dialect: object = _UNKNOWN

    # --- dispatch ------------------------------------------------------------------

    def _dispatch(self) -> Dispatch:
        if self._generation != self.pm.generation:
            self._table = resolve(self.pm, self._rules, self._builtin)
            self._generation = self.pm.generation
            self._dialect = _UNKNOWN
        return self._table

    def register_plugin(self, plugin: object, name: str) -> None:
        """Add a plugin to a built host, with the checks start-up applies: wrappers are
        refused, and so is a second owner of a hook."""
        self.pm.register(plugin, name=name)
        wrapped = wrapper_hooks(self.pm, plugin)
        conflicts = {
            hook: names for hook, names in self._dispatch().conflicts.items() if name in names
        }
        if wrapped or conflicts:
            self.pm.unregister(plugin)
            if wrapped:
                raise PluginLoadError(f"plugin {name!r} declares wrappers on {', '.join(wrapped)}")
            raise PluginConflict(
                "; ".join(f"{' and '.join(n)} both implement {h}" for h, n in conflicts.items())
            )
        self.plugins[name] = PluginInfo(name, None, False, None, "loaded")

    def owner_of(self, hook: str) -> str | None:
        owner = self._dispatch().owners.get(hook)
        return owner[0] if owner else None

    async def _call_owner(self, hook: str, **kwargs: Any) -> Any:
        table = self._dispatch()
        owner = table.owners.get(hook)
        if owner is None:
            contenders = table.conflicts.get(hook)
            if contenders:
                raise Unavailable(
                    f"plugins {' and '.join(contenders)} both implement {hook}; "
                    "enable only one of them"
                )
            raise RuntimeError(f"no plugin implements {hook}")
        return await self._call(owner, hook, kwargs)

    def _each(self, hook: str) -> tuple[tuple[str, pluggy.HookCaller], ...]:
        return self._dispatch().each.get(hook, ())

    async def _call(
        self, implementation: tuple[str, pluggy.HookCaller], hook: str, kwargs: dict[str, Any]
    ) -> Any:
        plugin, caller = implementation
        if not self.traced:
            return await self._invoke(caller, kwargs)
        with tracer.start_as_current_span(
            f"hook {hook}", attributes={"weaver.hook": hook, "weaver.plugin": plugin}
        ):
            return await self._invoke(caller, kwargs)

    async def _invoke(self, caller: pluggy.HookCaller, kwargs: dict[str, Any]) -> Any:
        kwargs["context"] = self.context
        try:
            # A caller of one implementation: pluggy drops a None answer from the list.
            results = caller(**kwargs)
            return await await_me_maybe(results[0]) if results else None
        except Problem as problem:
            # Plugins clean their messages of credentials; this is the one place that
            # makes sure no internal datasource name reaches a caller, whatever the hook
            # and whatever the problem.
            problem.detail = public_names(problem.detail, _datasources_in(kwargs))
            raise

    # --- lifecycle -----------------------------------------------------------------

    async def startup(self) -> None:
        # Lowest priority first: the embedded defaults are open before the plugins that
        # build on them start (a query engine reconciling with the registry, say).
        for implementation in reversed(self._each("weaver_startup")):
            try:
                await self._call(implementation, "weaver_startup", {})
            except Exception as error:
                if self.context.settings.plugins_strict:
                    raise
                log.exception("plugin %s failed to start", implementation[0])
                self.startup_errors[implementation[0]] = f"failed to start: {error}"

    async def shutdown(self) -> None:
        for implementation in self._each("weaver_shutdown"):
            try:
                await self._call(implementation, "weaver_shutdown", {})
            except Exception:
                log.exception("plugin %s failed to shut down", implementation[0])

    async def check_health(self, only: str | None = None) -> dict[str, HealthCheck]:
        """Every known plugin's status (or just plugin ``only``'s); the checks run
        concurrently, each bounded by the health-check timeout."""
        timeout = self.context.settings.health_check_timeout
        checks: dict[str, HealthCheck] = {}
        for name, info in self.plugins.items():
            if info.load_status != "loaded":
                extra = {"conflicts": info.conflicts} if info.conflicts else {}
                checks[name] = HealthCheck(info.load_status, info.detail, extra=extra)
            elif name in self.startup_errors:
                checks[name] = HealthCheck("down", self.startup_errors[name])
            else:
                checks[name] = HealthCheck("up")

        async def one(implementation: tuple[str, pluggy.HookCaller]) -> tuple[str, HealthCheck]:
            name = implementation[0]
            started = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    result = await self._call(implementation, "check_health", {})
            except TimeoutError:
                return name, HealthCheck("down", f"no answer within {timeout:g}s")
            except Exception as error:
                return name, HealthCheck("down", str(error) or type(error).__name__)
            latency = round((time.perf_counter() - started) * 1000, 2)
            check = cast(HealthCheck, result) if result is not None else HealthCheck("up")
            return name, HealthCheck(
                check.status, check.detail, check.latency_ms or latency, check.extra
            )

        implementations = [i for i in self._each("check_health") if i[0] not in self.startup_errors]
        if only is not None:
            implementations = [i for i in implementations if i[0] == only]
            checks = {only: checks[only]} if only in checks else {}
        for name, check in await asyncio.gather(*(one(i) for i in implementations)):
            checks[name] = check
        return checks

    # --- datasource registry -------------------------------------------------------

    async def save_datasource(self, datasource: Datasource, *, create: bool) -> None:
        await self._call_owner("save_datasource", datasource=datasource, create=create)

    async def get_datasource(self, tenant_id: str, name: str) -> Datasource | None:
        return cast(
            "Datasource | None",
            await self._call_owner("get_datasource", tenant_id=tenant_id, name=name),
        )

    async def list_datasources(self, tenant_id: str, page: Page) -> list[Datasource]:
        return cast(
            "list[Datasource]",
            await self._call_owner("list_datasources", tenant_id=tenant_id, page=page),
        )

    async def all_datasources(self) -> list[Datasource]:
        return cast("list[Datasource]", await self._call_owner("all_datasources"))

    async def delete_datasource(self, tenant_id: str, name: str) -> bool:
        return bool(await self._call_owner("delete_datasource", tenant_id=tenant_id, name=name))

    # --- query engine --------------------------------------------------------------

    @property
    def query_plugin(self) -> str | None:
        """The plugin that runs queries (not to be confused with a datasource's engine)."""
        return self.owner_of("execute_query")

    def sql_dialect(self) -> SqlDialect:
        """How the query plugin reads SQL; asked once per owner, the answer kept."""
        table = self._dispatch()
        if self._dialect is _UNKNOWN:
            owner = table.owners.get("sql_dialect")
            results = owner[1](context=self.context) if owner is not None else []
            answer = results[0] if results else None
            if inspect.isawaitable(answer):
                raise TypeError("sql_dialect must answer synchronously")
            self._dialect = answer if answer is not None else SqlDialect(None)
        return cast(SqlDialect, self._dialect)

    async def validate_connection(
        self, engine: str, connection: dict[str, object]
    ) -> ConnectionSpec | None:
        return cast(
            "ConnectionSpec | None",
            await self._call_owner("validate_connection", engine=engine, connection=connection),
        )

    async def register_datasource(
        self, datasource: Datasource, connection: dict[str, object], *, replace: bool
    ) -> None:
        await self._call_owner(
            "register_datasource", datasource=datasource, connection=connection, replace=replace
        )

    async def unregister_datasource(self, datasource: Datasource) -> None:
        await self._call_owner("unregister_datasource", datasource=datasource)

    async def execute_query(self, principal: Principal, query: PreparedQuery) -> RowStream | None:
        return cast(
            "RowStream | None",
            await self._call_owner("execute_query", principal=principal, query=query),
        )

    async def cancel_query(self, query: PreparedQuery) -> bool:
        return bool(await self._call_owner("cancel_query", query=query))

    async def introspect_datasource(self, datasource: Datasource) -> SchemaGraph:
        return cast(
            SchemaGraph, await self._call_owner("introspect_datasource", datasource=datasource)
        )

    async def compute_statistics(
        self, datasource: Datasource, graph: SchemaGraph
    ) -> DatasourceStatistics:
        return cast(
            DatasourceStatistics,
            await self._call_owner("compute_statistics", datasource=datasource, graph=graph),
        )

    # --- metadata catalog ----------------------------------------------------------

    async def store_metadata(self, datasource: Datasource, graph: SchemaGraph) -> None:
        await self._call_owner("store_metadata", datasource=datasource, graph=graph)

    async def load_metadata(self, datasource: Datasource) -> SchemaGraph | None:
        return cast(
            "SchemaGraph | None", await self._call_owner("load_metadata", datasource=datasource)
        )

    async def search_metadata(
        self, tenant_id: str, text: str, kind: SearchKind, page: Page
    ) -> list[SearchHit]:
        return cast(
            "list[SearchHit]",
            await self._call_owner(
                "search_metadata", tenant_id=tenant_id, text=text, kind=kind, page=page
            ),
        )

    async def find_join_paths(self, request: JoinPathRequest) -> list[JoinPath]:
        return cast("list[JoinPath]", await self._call_owner("find_join_paths", request=request))

    async def delete_metadata(self, datasource: Datasource) -> None:
        # Every store forgets what it holds; one failing must not keep the others' data.
        failures = []
        for implementation in self._each("delete_metadata"):
            try:
                await self._call(implementation, "delete_metadata", {"datasource": datasource})
            except Exception as error:
                log.exception("plugin %s failed to delete metadata", implementation[0])
                failures.append(error)
        if failures:
            raise failures[0]

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._call_owner("save_snapshot", snapshot=snapshot)

    async def list_snapshots(self, datasource: Datasource, page: Page) -> list[SnapshotSummary]:
        return cast(
            "list[SnapshotSummary]",
            await self._call_owner("list_snapshots", datasource=datasource, page=page),
        )

    async def get_snapshot(self, datasource: Datasource, snapshot_id: str) -> Snapshot | None:
        return cast(
            "Snapshot | None",
            await self._call_owner("get_snapshot", datasource=datasource, snapshot_id=snapshot_id),
        )

    async def save_glossary_term(self, term: GlossaryTerm, *, create: bool) -> None:
        await self._call_owner("save_glossary_term", term=term, create=create)

    async def get_glossary_term(self, tenant_id: str, term_id: str) -> GlossaryTerm | None:
        return cast(
            "GlossaryTerm | None",
            await self._call_owner("get_glossary_term", tenant_id=tenant_id, term_id=term_id),
        )

    async def list_glossary_terms(
        self, tenant_id: str, text: str | None, page: Page
    ) -> list[GlossaryTerm]:
        return cast(
            "list[GlossaryTerm]",
            await self._call_owner(
                "list_glossary_terms", tenant_id=tenant_id, text=text, page=page
            ),
        )

    async def delete_glossary_term(self, tenant_id: str, term_id: str) -> bool:
        return bool(
            await self._call_owner("delete_glossary_term", tenant_id=tenant_id, term_id=term_id)
        )

    async def store_glossary_links(self, term: GlossaryTerm) -> None:
        await self._call_owner("store_glossary_links", term=term)

    async def delete_glossary_links(self, tenant_id: str, term_id: str) -> None:
        await self._call_owner("delete_glossary_links", tenant_id=tenant_id, term_id=term_id)

    async def load_glossary_links(self, datasource: Datasource) -> list[GlossaryLink]:
        return cast(
            "list[GlossaryLink]",
            await self._call_owner("load_glossary_links", datasource=datasource),
        )

    async def save_statistics(
        self, datasource: Datasource, statistics: DatasourceStatistics
    ) -> None:
        await self._call_owner("save_statistics", datasource=datasource, statistics=statistics)

    async def load_statistics(self, datasource: Datasource) -> DatasourceStatistics | None:
        return cast(
            "DatasourceStatistics | None",
            await self._call_owner("load_statistics", datasource=datasource),
        )

    # --- operations across backends ------------------------------------------------

    async def save_repair(self, repair: Repair) -> None:
        await self._call_owner("save_repair", repair=repair)

    async def list_repairs(self, due_before: datetime | None, key: str | None) -> list[Repair]:
        return cast(
            "list[Repair]",
            await self._call_owner("list_repairs", due_before=due_before, key=key),
        )

    async def delete_repair(self, kind: str, key: str) -> None:
        await self._call_owner("delete_repair", kind=kind, key=key)

    # --- query records and results -------------------------------------------------

    async def save_query(self, record: QueryRecord, *, create: bool) -> None:
        await self._call_owner("save_query", record=record, create=create)

    async def get_query(self, tenant_id: str, query_id: str) -> QueryRecord | None:
        return cast(
            "QueryRecord | None",
            await self._call_owner("get_query", tenant_id=tenant_id, query_id=query_id),
        )

    async def list_queries(
        self, tenant_id: str, subject: str | None, status: str | None, page: Page
    ) -> list[QueryRecord]:
        return cast(
            "list[QueryRecord]",
            await self._call_owner(
                "list_queries", tenant_id=tenant_id, subject=subject, status=status, page=page
            ),
        )

    async def request_query_cancel(self, tenant_id: str, query_id: str) -> bool:
        return bool(
            await self._call_owner("request_query_cancel", tenant_id=tenant_id, query_id=query_id)
        )

    async def poll_queries(self, owner: str, lease_until: datetime | None) -> list[str]:
        return cast(
            "list[str]",
            await self._call_owner("poll_queries", owner=owner, lease_until=lease_until),
        )

    async def sweep_queries(self, now: datetime, history_before: datetime) -> QuerySweep:
        return cast(
            QuerySweep,
            await self._call_owner("sweep_queries", now=now, history_before=history_before),
        )

    async def save_result_chunk(
        self, tenant_id: str, query_id: str, index: int, rows: bytes, max_tenant_bytes: int
    ) -> None:
        await self._call_owner(
            "save_result_chunk",
            tenant_id=tenant_id,
            query_id=query_id,
            index=index,
            rows=rows,
            max_tenant_bytes=max_tenant_bytes,
        )

    async def load_result_chunks(
        self, tenant_id: str, query_id: str, first: int, last: int
    ) -> list[bytes]:
        return cast(
            "list[bytes]",
            await self._call_owner(
                "load_result_chunks", tenant_id=tenant_id, query_id=query_id, first=first, last=last
            ),
        )

    async def delete_results(self, tenant_id: str, query_id: str) -> None:
        await self._call_owner("delete_results", tenant_id=tenant_id, query_id=query_id)

    # --- request guard -------------------------------------------------------------

    async def guard_request(self, request: GuardRequest) -> GuardDecision:
        return cast(GuardDecision, await self._call_owner("guard_request", request=request))

    async def guard_response(
        self, request: GuardRequest, claim: IdempotencyClaim, response: StoredResponse | None
    ) -> None:
        await self._call_owner("guard_response", request=request, claim=claim, response=response)

    async def acquire_query_slot(
        self, tenant_id: str, query_id: str, limit: int, lease_seconds: float
    ) -> bool:
        return bool(
            await self._call_owner(
                "acquire_query_slot",
                tenant_id=tenant_id,
                query_id=query_id,
                limit=limit,
                lease_seconds=lease_seconds,
            )
        )

    async def release_query_slot(self, tenant_id: str, query_id: str) -> None:
        await self._call_owner("release_query_slot", tenant_id=tenant_id, query_id=query_id)
