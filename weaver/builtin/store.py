"""Embedded store (placeholder until implemented)."""
