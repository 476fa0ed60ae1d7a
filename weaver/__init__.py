"""Weaver: one authenticated, multi-tenant REST API in front of many databases."""

import pluggy

__version__ = "0.1.0"

# Plugins mark their hook implementations with this.
hookimpl = pluggy.HookimplMarker("weaver")

__all__ = ["__version__", "hookimpl"]
