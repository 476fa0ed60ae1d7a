"""Weaver's snapshots, glossary and statistics in PostgreSQL (entry point ``pg``)."""
