"""Building the plugin manager: embedded defaults, entry points, mode flags."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Literal

import pluggy

from weaver import __version__, hookspecs
from weaver.settings import SEED_MODE_FLAGS, Settings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "weaver"

# The embedded defaults, by plugin name. They are ordinary plugins whose hooks are all
# `trylast`, so any installed plugin that implements a hook takes it over.
BUILTIN_PLUGINS: dict[str, str] = {
    "embedded_store": "weaver.builtin.store",
    "embedded_engine": "weaver.builtin.engine",
    "embedded_guard": "weaver.builtin.guard",
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


class PluginLoadError(RuntimeError):
    pass


def mode_flag(name: str) -> str:
    """The environment variable that enables plugin `name`."""
    return SEED_MODE_FLAGS.get(name, f"WEAVER_{name.upper()}_MODE")


def is_enabled(name: str, settings: Settings, environ: Mapping[str, str]) -> bool:
    seed_flags = settings.mode_flags()
    if name in seed_flags:
        return seed_flags[name]
    return environ.get(mode_flag(name), "").strip().lower() in _TRUTHY


def build_plugin_manager(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    discovered: Iterable[EntryPoint] | None = None,
) -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """Register the embedded defaults and every enabled entry-point plugin.

    A plugin whose flag is off is blocked before import; one that fails to import is
    reported ``down`` with the reason (or re-raised when ``WEAVER_PLUGINS_STRICT``).
    """
    environ = os.environ if environ is None else environ
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}

    for name, module_name in BUILTIN_PLUGINS.items():
        pm.register(importlib.import_module(module_name), name=name)
        infos[name] = PluginInfo(name, __version__, True, None, "loaded")

    found = {ep.name: ep for ep in (discovered if discovered is not None else _entry_points())}
    # The seed's plugins are known even when not installed, so that turning a flag on
    # without installing the package shows up as `down` rather than silence.
    for name in sorted(set(found) | set(SEED_MODE_FLAGS)):
        flag = mode_flag(name)
        ep = found.get(name)
        version = ep.dist.version if ep is not None and ep.dist is not None else None
        if not is_enabled(name, settings, environ):
            pm.set_blocked(name)
            infos[name] = PluginInfo(name, version, False, flag, "disabled")
            continue
        if ep is None:
            infos[name] = PluginInfo(
                name,
                None,
                False,
                flag,
                "down",
                f"{flag} is on but no plugin named {name!r} is installed",
            )
            if settings.plugins_strict:
                raise PluginLoadError(infos[name].detail)
            continue
        try:
            pm.register(ep.load(), name=name)
        except Exception as error:  # a broken plugin must not take the gateway down
            if settings.plugins_strict:
                raise PluginLoadError(f"plugin {name!r} failed to load: {error}") from error
            log.exception("plugin %s failed to load", name)
            infos[name] = PluginInfo(name, version, False, flag, "down", f"failed to load: {error}")
            continue
        infos[name] = PluginInfo(name, version, False, flag, "loaded")

    # A misspelt hook name in any plugin fails here, loudly, not at the first request.
    pm.check_pending()
    return pm, infos


def _entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))
