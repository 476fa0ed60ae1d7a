"""Weaver's query engine on a Trino cluster (entry point ``trino``, ``WEAVER_TRINO_MODE``)."""
