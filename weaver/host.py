"""The typed facade through which the core calls plugins.

Handlers never touch ``pm.hook``: they call one method here per hook, which applies the
rule the hookspec names (owner or each), awaits async implementations and opens a
tracing span per call.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar, cast

import pluggy
from opentelemetry import trace

from weaver.context import WeaverContext
from weaver.errors import EngineFailed
from weaver.observability import tracing_active
from weaver.plugins import PluginInfo
from weaver.sql import internal_to_public
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

log = logging.getLogger(__name__)
tracer = trace.get_tracer("weaver.host")
T = TypeVar("T")

_UNKNOWN = object()

# Hooks where every implementation is called; every other hook has a single owner.
EACH_HOOKS = frozenset({"weaver_startup", "weaver_shutdown", "check_health", "delete_metadata"})


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
        self, pm: pluggy.PluginManager, context: WeaverContext, plugins: dict[str, PluginInfo]
    ) -> None:
        self.pm = pm
        self.context = context
        context.host = self
        self.plugins = plugins
        self.startup_errors: dict[str, str] = {}
        # Even a non-recording span costs a context switch per hook; skip them unless an
        # SDK provider (and so an exporter) is installed.
        self.traced = tracing_active()
        # Plugins do not change once the manager is built, so owners are resolved once.
        self._owners: dict[str, pluggy.HookImpl] = {}
        self._dialect: object = _UNKNOWN
        for name in pm.hook.__dict__:
            caller = getattr(pm.hook, name)
            if isinstance(caller, pluggy.HookCaller) and name not in EACH_HOOKS:
                impls = caller.get_hookimpls()
                if impls:
                    self._owners[name] = impls[-1]

    # --- dispatch ------------------------------------------------------------------

    def owner_of(self, hook: str) -> str | None:
        impl = self._owners.get(hook)
        return impl.plugin_name if impl else None

    async def _call_owner(self, hook: str, **kwargs: Any) -> Any:
        impl = self._owners.get(hook)
        if impl is None:
            raise RuntimeError(f"no plugin implements {hook}")
        if not self.traced:
            # Every request makes several hook calls: one coroutine fewer on each.
            return await self._invoke(impl, kwargs)
        return await self._call_one(impl, hook, **kwargs)

    def _each(self, hook: str) -> list[pluggy.HookImpl]:
        # pluggy lists implementations in reverse call order.
        return list(reversed(getattr(self.pm.hook, hook).get_hookimpls()))

    async def _call_one(self, impl: pluggy.HookImpl, hook: str, **kwargs: Any) -> Any:
        if not self.traced:
            return await self._invoke(impl, kwargs)
        with tracer.start_as_current_span(
            f"hook {hook}", attributes={"weaver.hook": hook, "weaver.plugin": impl.plugin_name}
        ):
            return await self._invoke(impl, kwargs)

    async def _invoke(self, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        kwargs["context"] = self.context
        try:
            return await await_me_maybe(impl.function(*[kwargs[a] for a in impl.argnames]))
        except EngineFailed as failure:
            # Plugins clean their messages; this is the one place that makes sure no
            # internal datasource name reaches a caller, whatever the hook.
            failure.detail = internal_to_public(failure.detail, _datasources_in(kwargs))
            raise

    # --- lifecycle -----------------------------------------------------------------

    async def startup(self) -> None:
        # Lowest priority first: the embedded defaults are open before the plugins that
        # build on them start (a query engine reconciling with the registry, say).
        for impl in reversed(self._each("weaver_startup")):
            try:
                await self._call_one(impl, "weaver_startup")
            except Exception as error:
                if self.context.settings.plugins_strict:
                    raise
                log.exception("plugin %s failed to start", impl.plugin_name)
                self.startup_errors[impl.plugin_name] = f"failed to start: {error}"

    async def shutdown(self) -> None:
        for impl in self._each("weaver_shutdown"):
            try:
                await self._call_one(impl, "weaver_shutdown")
            except Exception:
                log.exception("plugin %s failed to shut down", impl.plugin_name)

    async def check_health(self, only: str | None = None) -> dict[str, HealthCheck]:
        """Every known plugin's status (or just plugin ``only``'s); the checks run
        concurrently, each bounded by the health-check timeout."""
        timeout = self.context.settings.health_check_timeout
        checks: dict[str, HealthCheck] = {}
        for name, info in self.plugins.items():
            if info.load_status != "loaded":
                checks[name] = HealthCheck(info.load_status, info.detail)
            elif name in self.startup_errors:
                checks[name] = HealthCheck("down", self.startup_errors[name])
            else:
                checks[name] = HealthCheck("up")

        async def one(impl: pluggy.HookImpl) -> tuple[str, HealthCheck]:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    result = await self._call_one(impl, "check_health")
            except TimeoutError:
                return impl.plugin_name, HealthCheck("down", f"no answer within {timeout:g}s")
            except Exception as error:
                return impl.plugin_name, HealthCheck("down", str(error) or type(error).__name__)
            latency = round((time.perf_counter() - started) * 1000, 2)
            check = cast(HealthCheck, result) if result is not None else HealthCheck("up")
            return impl.plugin_name, HealthCheck(
                check.status, check.detail, check.latency_ms or latency, check.extra
            )

        impls = [i for i in self._each("check_health") if i.plugin_name not in self.startup_errors]
        if only is not None:
            impls = [i for i in impls if i.plugin_name == only]
            checks = {only: checks[only]} if only in checks else {}
        for name, check in await asyncio.gather(*(one(i) for i in impls)):
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
    def query_engine(self) -> str | None:
        """The plugin that runs queries."""
        return self.owner_of("execute_query")

    def sql_dialect(self) -> str | None:
        # Asked on every query; the owner and so its answer never change.
        if self._dialect is _UNKNOWN:
            impl = self._owners.get("sql_dialect")
            kwargs = {"context": self.context}
            self._dialect = (
                None if impl is None else impl.function(*[kwargs[a] for a in impl.argnames])
            )
        return cast("str | None", self._dialect)

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

    async def execute_query(self, principal: Principal, query: PreparedQuery) -> QueryResult | None:
        return cast(
            "QueryResult | None",
            await self._call_owner("execute_query", principal=principal, query=query),
        )

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

    async def delete_metadata(self, datasource: Datasource) -> None:
        # Every store forgets what it holds; one failing must not keep the others' data.
        failures = []
        for impl in self._each("delete_metadata"):
            try:
                await self._call_one(impl, "delete_metadata", datasource=datasource)
            except Exception as error:
                log.exception("plugin %s failed to delete metadata", impl.plugin_name)
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

    async def save_statistics(
        self, datasource: Datasource, statistics: DatasourceStatistics
    ) -> None:
        await self._call_owner("save_statistics", datasource=datasource, statistics=statistics)

    async def load_statistics(self, datasource: Datasource) -> DatasourceStatistics | None:
        return cast(
            "DatasourceStatistics | None",
            await self._call_owner("load_statistics", datasource=datasource),
        )

    # --- request guard -------------------------------------------------------------

    async def guard_request(self, request: GuardRequest) -> GuardDecision:
        return cast(GuardDecision, await self._call_owner("guard_request", request=request))

    async def guard_response(
        self, request: GuardRequest, claim: IdempotencyClaim, response: StoredResponse | None
    ) -> None:
        await self._call_owner("guard_response", request=request, claim=claim, response=response)
