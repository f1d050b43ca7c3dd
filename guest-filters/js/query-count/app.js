// Query-count routing in JavaScript: the same policy as the Rust `guest-filters/query-count`.
//
// Among the healthy backends of the group, prefer the one where this user has the fewest queued
// queries, then the fewest queued queries overall, then the fewest running. Between two stats
// polls the counts are stale, so every decision is also counted in the shared cache (one key per
// backend, one per backend and user, in time windows of `window_seconds`); the next decision, on
// this gateway instance or another, adds those counts, so a burst spreads instead of herding.
//
// Config (optional): {"window_seconds": 3}. Build: ../build (componentize-js).
import { getMany, increment } from "sluice:filter/cache@0.1.0";
import { backends } from "sluice:filter/cluster@0.1.0";

let windowSeconds = 3;

/** A counter the cache holds as decimal text (0 when absent). */
const counter = (value) => (value === undefined ? 0 : Number(new TextDecoder().decode(value)) || 0);

export function init(config) {
  const parsed = config.trim() === "" || config.trim() === "null" ? {} : JSON.parse(config);
  const unknown = Object.keys(parsed).filter((k) => k !== "window_seconds");
  if (unknown.length) throw `query-count config: unknown field(s) ${unknown.join(", ")}`;
  windowSeconds = parsed.window_seconds ?? 3;
  if (!(windowSeconds >= 1)) throw "query-count config: window_seconds must be at least 1";
  return { wantsSqlObjects: false };
}

export function route(req, group) {
  const ok = backends(group).filter((b) => b.active && b.health === "healthy");
  if (ok.length === 0) return { tag: "pass" };
  const window = Math.floor(Date.now() / 1000 / windowSeconds);
  const keys = ok.map((b) => `routed:${window}:${b.name}`);
  if (req.user !== undefined) keys.push(...ok.map((b) => `routed:${window}:${b.name}:${req.user}`));
  const counts = getMany(keys).map(counter);
  const n = ok.length;
  const load = (i) => [
    ok[i].userQueuedQueries + (req.user !== undefined ? counts[n + i] : 0),
    ok[i].queuedQueries + counts[i],
    ok[i].runningQueries,
  ];
  const before = (a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
  let best = 0;
  for (let i = 1; i < n; i++) if (before(load(i), load(best)) < 0) best = i;
  // the key outlives its window a little, so a read at the boundary still finds it
  increment(keys[best], 1n, windowSeconds * 2);
  if (req.user !== undefined) increment(keys[n + best], 1n, windowSeconds * 2);
  return { tag: "route-to", val: ok[best].name };
}
