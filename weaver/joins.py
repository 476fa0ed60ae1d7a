"""Shortest join paths: the breadth-first search every graph store runs, level by level.

A store drives a `PathSearch`: it asks for the `frontier` (the tables reached last), reads
the foreign keys touching those tables from wherever its graph lives, and hands them to
`expand`; when the frontier is empty, `paths` lists every shortest path found. So the
walk — which tables count as reached, which hops lie on a shortest path, in what order
paths come — is this module's, once, and a store contributes only the one read it is
good at (an indexed range in SQLite, a Cypher pattern in Neo4j), one round trip per hop.

The graph is undirected: a foreign key joins its two tables whichever way the walk goes,
and each hop of a path is written with ``from`` on the side nearer the start. Two foreign
keys between the same tables (``billing_address_id`` and ``shipping_address_id``) are two
hops, so two paths. A table's key that refers to the table itself never shortens a path
and is passed over. ``bridges`` are extra edges between datasources, which the core
derives from glossary terms (`weaver.workflows.agents.glossary_bridges`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from weaver.types import JoinHop, JoinPath, JoinPathRequest, TableName

# At most this many hops: the API's bound, and what keeps a search of any schema a few
# round trips.
MAX_HOPS = 6


class PathSearch:
    """One search from ``start`` to ``end`` over at most ``max_hops`` hops."""

    def __init__(
        self, start: TableName, end: TableName, max_hops: int, bridges: Sequence[JoinHop] = ()
    ) -> None:
        if not 0 < max_hops <= MAX_HOPS:
            raise ValueError(f"max_hops must be between 1 and {MAX_HOPS}")
        self.start, self.end, self.max_hops = start, end, max_hops
        self._bridges: dict[TableName, list[JoinHop]] = {}
        for bridge in bridges:
            for end_table in (bridge.from_table, bridge.to_table):
                self._bridges.setdefault(end_table, []).append(bridge)
        self._depth: dict[TableName, int] = {start: 0}
        # Every hop into a table from a table one level nearer the start.
        self._arrivals: dict[TableName, set[JoinHop]] = {}
        self._frontier: list[TableName] = [start] if start != end else []
        self._level = 0

    @classmethod
    def asked(cls, request: JoinPathRequest) -> PathSearch:
        return cls(request.start, request.end, request.max_hops, request.bridges)

    @property
    def found(self) -> bool:
        return self.end in self._depth

    def frontier(self) -> list[TableName]:
        """The tables whose foreign keys the store reads next, sorted; empty once the end
        was reached, nothing new was reached, or ``max_hops`` were walked."""
        if self.found or self._level >= self.max_hops:
            return []
        return self._frontier

    def expand(self, foreign_keys: Iterable[JoinHop]) -> None:
        """Walk one hop further: ``foreign_keys`` holds every foreign key with either end
        in the `frontier` (more are ignored, duplicates do no harm)."""
        frontier = set(self._frontier)
        bridges = (bridge for table in self._frontier for bridge in self._bridges.get(table, ()))
        reached: dict[TableName, set[JoinHop]] = {}
        for edge in (*foreign_keys, *bridges):
            for hop in (edge, edge.reversed()):
                if hop.from_table not in frontier or hop.to_table in self._depth:
                    continue
                reached.setdefault(hop.to_table, set()).add(hop)
        self._level += 1
        for table, hops in reached.items():
            self._depth[table] = self._level
            self._arrivals[table] = hops
        self._frontier = sorted(reached)

    def paths(self, limit: int) -> list[JoinPath]:
        """Every shortest path (at most ``limit``, the first in the order of their hops),
        or none when the end is not within ``max_hops``."""
        if self.start == self.end:
            return [JoinPath(())]
        if not self.found:
            return []
        # The hops that lie on some shortest path, found walking back from the end; the
        # paths are then listed forwards, so that they come out sorted and the listing
        # stops at `limit` however many there are.
        onward: dict[TableName, list[JoinHop]] = {}
        pending, seen = [self.end], {self.end}
        while pending:
            table = pending.pop()
            for hop in self._arrivals.get(table, ()):
                onward.setdefault(hop.from_table, []).append(hop)
                if hop.from_table not in seen:
                    seen.add(hop.from_table)
                    pending.append(hop.from_table)
        for hops in onward.values():
            hops.sort()
        found: list[JoinPath] = []

        def walk(table: TableName, walked: list[JoinHop]) -> None:
            if table == self.end:
                found.append(JoinPath(tuple(walked)))
                return
            for hop in onward.get(table, ()):
                if len(found) >= limit:
                    return
                walk(hop.to_table, [*walked, hop])

        walk(self.start, [])
        return found
