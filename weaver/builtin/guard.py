"""Embedded guard (placeholder until implemented)."""
