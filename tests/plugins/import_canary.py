"""Importing this module is itself the observable effect."""

IMPORTED = True
