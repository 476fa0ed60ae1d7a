"""Weaver's schema graph in Neo4j (entry point ``neo4j``, ``WEAVER_METADATA_EXTERNAL_MODE``)."""
