"""Weaver's request guard in Redis (entry point ``redis_guard``)."""
