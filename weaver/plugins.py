"""Building the plugin manager: embedded defaults, entry points, mode flags, ownership.

A plugin is a module of hook functions or a class; a class is instantiated once per
manager (so once per app) with the app's settings. Plugins load one by one: a plugin
whose flag is off is blocked before import; one that fails to import, to be built, or
that declares a wrapper is reported ``down`` with the reason. Then ownership is settled
from the hookspecs' combine rules: two installed plugins implementing one owner hook
are both reported ``down`` as a conflict. ``WEAVER_PLUGINS_STRICT`` turns each of these
into a start-up failure.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

import pluggy

from weaver import __version__, hookspecs
from weaver.settings import SEED_MODE_FLAGS, Settings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "weaver"

# The embedded defaults, by plugin name, as "module:class". Their hooks are all
# `trylast`, and any installed plugin that implements a hook takes it over.
BUILTIN_PLUGINS: dict[str, str] = {
    "embedded_store": "weaver.builtin.store:EmbeddedStore",
    "embedded_engine": "weaver.builtin.engine:EmbeddedEngine",
    "embedded_guard": "weaver.builtin.guard:EmbeddedGuardPlugin",
}

LoadStatus = Literal["loaded", "down", "disabled"]
_TRUTHY = {"1", "true", "yes", "on"}


@dataclass
class PluginInfo:
    name: str
    version: str | None
    builtin: bool
    flag: str | None
    load_status: LoadStatus
    detail: str | None = None
    # Hooks this plugin contends for with other plugins, by hook: the other plugins.
    conflicts: dict[str, list[str]] = field(default_factory=dict)


class PluginLoadError(RuntimeError):
    """A plugin could not be loaded and ``WEAVER_PLUGINS_STRICT`` is on."""


class PluginConflict(RuntimeError):
    """Two installed plugins implement the same owner hook."""


class WeaverPluginManager(pluggy.PluginManager):
    """pluggy's manager, counting (un)registrations so that the host re-resolves owners
    when a plugin is added after it was built."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.generation = 0

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        self.generation += 1
        return registered

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        removed = super().unregister(plugin, name)
        self.generation += 1
        return removed


@dataclass(frozen=True)
class Dispatch:
    """Who answers each hook, as of one generation of the manager.

    ``owners`` maps an owner hook to its single implementation's plugin and a caller of
    only that implementation; ``each`` maps an each-hook to its implementations' plugins
    and callers, highest priority first; ``conflicts`` maps an owner hook to the
    installed plugins that all implement it (calling it is refused).
    """

    owners: Mapping[str, tuple[str, pluggy.HookCaller]]
    each: Mapping[str, tuple[tuple[str, pluggy.HookCaller], ...]]
    conflicts: Mapping[str, tuple[str, ...]]


def mode_flag(name: str) -> str:
    """The environment variable that enables plugin `name`."""
    return SEED_MODE_FLAGS.get(name, f"WEAVER_{name.upper()}_MODE")


def is_enabled(name: str, settings: Settings, environ: Mapping[str, str]) -> bool:
    seed_flags = settings.mode_flags()
    if name in seed_flags:
        return seed_flags[name]
    return environ.get(mode_flag(name), "").strip().lower() in _TRUTHY


def instantiate(target: object, settings: Settings) -> object:
    """A class becomes one instance built with the settings; a module stays itself."""
    if inspect.isclass(target):
        factory: Callable[[Settings], object] = target
        return factory(settings)
    return target


def _load_builtin(spec: str) -> object:
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def wrapper_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """The hooks ``plugin`` implements as a wrapper, which Weaver does not honour."""
    return sorted(
        caller.name
        for caller in pm.get_hookcallers(plugin) or ()
        for impl in caller.get_hookimpls()
        if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper)
    )


def resolve(
    pm: pluggy.PluginManager, rules: Mapping[str, hookspecs.Combine], builtin: Iterable[str]
) -> Dispatch:
    """The dispatch table for the plugins registered now."""
    builtin = set(builtin)
    owners: dict[str, tuple[str, pluggy.HookCaller]] = {}
    each: dict[str, tuple[tuple[str, pluggy.HookCaller], ...]] = {}
    conflicts: dict[str, tuple[str, ...]] = {}
    plugins = pm.get_plugins()
    for hook, combine in rules.items():
        # pluggy lists implementations in reverse call order: highest priority last.
        impls = list(reversed(getattr(pm.hook, hook).get_hookimpls()))

        def only(impl: pluggy.HookImpl, hook: str = hook) -> pluggy.HookCaller:
            return pm.subset_hook_caller(hook, [p for p in plugins if p is not impl.plugin])

        if combine == "each":
            each[hook] = tuple((impl.plugin_name, only(impl)) for impl in impls)
            continue
        installed = [impl for impl in impls if impl.plugin_name not in builtin]
        if len(installed) > 1:
            conflicts[hook] = tuple(sorted(impl.plugin_name for impl in installed))
            continue
        chosen = installed or impls
        if chosen:
            owners[hook] = (chosen[0].plugin_name, only(chosen[0]))
    return Dispatch(owners, each, conflicts)


def build_plugin_manager(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    discovered: Iterable[EntryPoint] | None = None,
) -> tuple[WeaverPluginManager, dict[str, PluginInfo]]:
    """Register the embedded defaults and every enabled entry-point plugin, then settle
    ownership (see the module docstring)."""
    environ = os.environ if environ is None else environ
    pm = WeaverPluginManager()
    pm.add_hookspecs(hookspecs)
    rules = hookspecs.combine_rules(hookspecs)
    infos: dict[str, PluginInfo] = {}

    for name, spec in BUILTIN_PLUGINS.items():
        pm.register(instantiate(_load_builtin(spec), settings), name=name)
        infos[name] = PluginInfo(name, __version__, True, None, "loaded")

    def refuse(info: PluginInfo, detail: str, error: BaseException | None = None) -> None:
        if settings.plugins_strict:
            raise PluginLoadError(f"plugin {info.name!r}: {detail}") from error
        info.load_status, info.detail = "down", detail
        log.error("plugin %s is down: %s", info.name, detail)

    found = {ep.name: ep for ep in (discovered if discovered is not None else _entry_points())}
    # The seed's plugins are known even when not installed, so that turning a flag on
    # without installing the package shows up as `down` rather than silence.
    for name in sorted(set(found) | set(SEED_MODE_FLAGS)):
        flag = mode_flag(name)
        ep = found.get(name)
        version = ep.dist.version if ep is not None and ep.dist is not None else None
        info = infos[name] = PluginInfo(name, version, False, flag, "loaded")
        if not is_enabled(name, settings, environ):
            pm.set_blocked(name)
            info.load_status = "disabled"
            continue
        if ep is None:
            refuse(info, f"{flag} is on but no plugin named {name!r} is installed")
            continue
        try:
            plugin = instantiate(ep.load(), settings)
            pm.register(plugin, name=name)
        except Exception as error:  # a broken plugin must not take the gateway down
            if not settings.plugins_strict:
                log.exception("plugin %s failed to load", name)
            refuse(info, f"failed to load: {error}", error)
            continue
        wrapped = wrapper_hooks(pm, plugin)
        if wrapped:
            pm.unregister(plugin)
            refuse(
                info,
                f"it declares wrappers on {', '.join(wrapped)}: Weaver calls one "
                "implementation at a time and awaits it, so hook wrappers are not supported",
            )

    # A misspelt hook name in any plugin fails here, loudly, not at the first request.
    pm.check_pending()
    _settle_conflicts(pm, rules, infos, settings)
    return pm, infos


def _settle_conflicts(
    pm: WeaverPluginManager,
    rules: Mapping[str, hookspecs.Combine],
    infos: dict[str, PluginInfo],
    settings: Settings,
) -> None:
    """Take every plugin out that contends for an owner hook with another one: which of
    them should answer is a decision for the operator, not for the order of names."""
    builtin = [name for name, info in infos.items() if info.builtin]
    conflicts = resolve(pm, rules, builtin).conflicts
    if not conflicts:
        return
    by_plugin: dict[str, dict[str, list[str]]] = {}
    for hook, names in conflicts.items():
        for name in names:
            by_plugin.setdefault(name, {})[hook] = [n for n in names if n != name]
    summary = _conflict_summary(by_plugin)
    if settings.plugins_strict:
        raise PluginConflict("refusing to start: " + summary)
    log.error("plugin conflict, taking the plugins involved out: %s", summary)
    for name, hooks in by_plugin.items():
        pm.unregister(name=name)
        others = sorted({other for names in hooks.values() for other in names})
        info = infos[name]
        info.load_status = "down"
        info.conflicts = hooks
        info.detail = (
            f"conflict: {', '.join(others)} also implement{'s' if len(others) == 1 else ''} "
            f"{', '.join(sorted(hooks))}; enable only one of them"
        )


def _conflict_summary(by_plugin: Mapping[str, Mapping[str, list[str]]]) -> str:
    """One line: which plugins contend, and for how many hooks (named when few)."""
    groups: dict[tuple[str, ...], set[str]] = {}
    for name, hooks in by_plugin.items():
        for hook, others in hooks.items():
            groups.setdefault(tuple(sorted([name, *others])), set()).add(hook)
    parts = []
    for names, contended in sorted(groups.items()):
        listed = ", ".join(sorted(contended)) if len(contended) <= 3 else f"{len(contended)} hooks"
        parts.append(f"{' and '.join(names)} both own {listed} (enable only one of them)")
    return "; ".join(parts)


def _entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))
