"""Weaver's request guard in PostgreSQL (entry point ``pg_guard``)."""
