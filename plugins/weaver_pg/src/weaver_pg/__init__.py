"""Weaver's snapshots, glossary, statistics and queries in PostgreSQL (entry point ``pg``)."""
