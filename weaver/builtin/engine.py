"""Embedded engine (placeholder until implemented)."""
