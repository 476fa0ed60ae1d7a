"""Weaver's query engine on a MindsDB server (entry point ``mindsdb``)."""

__version__ = "0.1.0"
