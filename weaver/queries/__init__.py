"""Queries as resources: every query has an id, a record, a lease, a cause when it is
cancelled, and (when async) a stored result. ``pump`` moves one statement's rows from the
engine to wherever they go; ``service`` runs queries, synchronous or not, and keeps
their records; ``results`` stores and pages async results."""
