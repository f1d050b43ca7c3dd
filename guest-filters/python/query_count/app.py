"""Query-count routing in Python: the same policy as the Rust `guest-filters/query-count`.

Among the healthy backends of the group, prefer the one where this user has the fewest queued
queries, then the fewest queued queries overall, then the fewest running. Between two stats
polls the counts are stale, so every decision is also counted in the shared cache (one key per
backend, one per backend and user, in time windows of `window_seconds`); the next decision, on
this gateway instance or another, adds those counts, so a burst spreads instead of herding.

Config (optional): `{"window_seconds": 3}`.

Build: `componentize-py -d ../../../wit -w router componentize app -o query_count.wasm`
"""
import json
import time

import wit_world
from componentize_py_types import Err
from wit_world.imports import cache, cluster, types

WINDOW = 3


def counter(value):
    """A counter the cache holds as decimal text (0 when absent)."""
    try:
        return int(bytes(value).decode()) if value is not None else 0
    except ValueError:
        return 0


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> types.InitInfo:
        global WINDOW
        parsed = json.loads(config) if config.strip() not in ("", "null") else {}
        unknown = set(parsed) - {"window_seconds"}
        if unknown:
            raise Err(f"query-count config: unknown field(s) {sorted(unknown)}")
        WINDOW = int(parsed.get("window_seconds", 3))
        if WINDOW < 1:
            raise Err("query-count config: window_seconds must be at least 1")
        return types.InitInfo(wants_sql_objects=False)

    def route(self, req: types.QueryRequest, group: str) -> types.Decision:
        backends = [b for b in cluster.backends(group)
                    if b.active and b.health == types.Health.HEALTHY]
        if not backends:
            return types.Decision_Pass()
        window = int(time.time()) // WINDOW
        keys = [f"routed:{window}:{b.name}" for b in backends]
        if req.user is not None:
            keys += [f"routed:{window}:{b.name}:{req.user}" for b in backends]
        counts = [counter(v) for v in cache.get_many(keys)]
        n = len(backends)

        def load(i):
            b = backends[i]
            user_routed = counts[n + i] if req.user is not None else 0
            return (b.user_queued_queries + user_routed, b.queued_queries + counts[i], b.running_queries)

        best = min(range(n), key=load)
        # the key outlives its window a little, so a read at the boundary still finds it
        cache.increment(keys[best], 1, WINDOW * 2)
        if req.user is not None:
            cache.increment(keys[n + best], 1, WINDOW * 2)
        return types.Decision_RouteTo(backends[best].name)
