"""The embedded metadata store: ``database`` owns the file (schema, connections, where
work runs), ``plugin`` the hooks that read and write records in it."""

from weaver.builtin.store.plugin import EmbeddedStore

__all__ = ["EmbeddedStore"]
