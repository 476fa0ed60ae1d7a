"""The embedded query engine: SQLite files under ``WEAVER_SQLITE_ROOT``.

``paths`` keeps files inside the root, ``connections`` opens read-only connections and
pools idle ones, ``runs`` bounds blocking work on the engine's threads, ``queries`` runs
tenant statements, ``introspection`` reads catalogs and statistics, and ``plugin`` holds
the hooks.
"""

from weaver.builtin.engine.plugin import EmbeddedEngine

__all__ = ["EmbeddedEngine"]
