// Sluice console: a thin client of the admin API. Every page reads /api/v1/*; every change goes
// through the same endpoints the CLI uses, with the session's CSRF token. Text from the API is
// only ever set as textContent (no HTML is built from data).

const state = { role: null, csrf: "", open: false, timer: null, metrics: null };

// --- DOM helpers -----------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const main = () => document.getElementById("main");

function show(...nodes) {
  main().replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

function toast(text, bad = false) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = bad ? "bad" : "good";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.textContent = ""; t.className = ""; }, 5000);
}

const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : "—");
const pct = (hits, misses) => (hits + misses ? `${((100 * hits) / (hits + misses)).toFixed(1)}%` : "—");

// --- API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body, contentType) {
  const headers = {};
  if (method !== "GET") headers["X-Sluice-CSRF"] = state.csrf;
  if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  } else if (contentType) {
    headers["Content-Type"] = contentType;
  }
  const resp = await fetch(path, { method, headers, body, credentials: "same-origin" });
  const text = await resp.text();
  let data = text;
  try { data = JSON.parse(text); } catch { /* metrics, plain text */ }
  if (resp.status === 401 && !path.startsWith("/console/login")) {
    loginPage("Your session has ended: log in again.");
    throw new ApiError(401, "not logged in");
  }
  if (!resp.ok) throw new ApiError(resp.status, (data && data.error) || text || resp.statusText);
  return data;
}

async function change(what, method, path, body, contentType) {
  try {
    await api(method, path, body, contentType);
    toast(`${what}: done`);
    return true;
  } catch (e) {
    if (e.status !== 401) toast(`${what}: ${e.message}`, true);
    return false;
  }
}

const canChange = () => state.role === "admin";

// --- login -----------------------------------------------------------------------------------

function loginPage(message) {
  stopRefresh();
  state.role = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true });
  const form = h("form", { class: "login", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", "/console/login", { token: input.value });
      input.value = "";
      await start();
    } catch (e) {
      toast(e.status === 401 ? "Unknown token." : e.message, true);
    }
  } },
  h("h1", {}, "Log in"),
  message ? h("p", {}, message) : null,
  h("label", { for: "token" }, "Admin or viewer token"),
  input,
  h("button", { type: "submit" }, "Log in"));
  show(form);
  input.focus();
}

async function logout() {
  await api("POST", "/console/logout").catch(() => {});
  loginPage("Logged out.");
}

// --- pages -----------------------------------------------------------------------------------

function stopRefresh() {
  clearInterval(state.timer);
  state.timer = null;
}

function refreshEvery(ms, fn) {
  stopRefresh();
  fn();
  state.timer = setInterval(fn, ms);
}

/** New queries per second per backend, from two readings of /metrics. */
function queryRates(text) {
  const now = Date.now();
  const counts = {};
  const re = /^sluice_requests_total\{([^}]*)\} (\d+(?:\.\d+)?)/gm;
  for (const m of text.matchAll(re)) {
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (labels.kind !== "new") continue;
    counts[labels.backend] = (counts[labels.backend] || 0) + Number(m[2]);
  }
  const prev = state.metrics;
  state.metrics = { at: now, counts };
  if (!prev) return {};
  const secs = (now - prev.at) / 1000;
  return Object.fromEntries(Object.entries(counts).map(([b, c]) => [b, (c - (prev.counts[b] || 0)) / secs]));
}

async function dashboard() {
  state.metrics = null;
  const render = async () => {
    const [status, cache, metrics, fleet] = await Promise.all([
      api("GET", "/api/v1/status"),
      api("GET", "/api/v1/cache"),
      api("GET", "/metrics"),
      api("GET", "/api/v1/fleet").catch(() => null),
    ]);
    const rates = queryRates(metrics);
    const cards = status.backends.map((b) => h("section", { class: `card health-${String(b.status.health).toLowerCase()}`, "data-backend": b.name },
      h("h2", {}, b.name),
      h("p", { class: "muted" }, `${b.group} · ${b.url}`),
      h("dl", {},
        h("dt", {}, "State"), h("dd", { class: "state" }, b.state),
        h("dt", {}, "Health"), h("dd", {}, b.status.health),
        h("dt", {}, "Running"), h("dd", {}, b.status.running_queries),
        h("dt", {}, "Queued"), h("dd", {}, b.status.queued_queries),
        h("dt", {}, "New queries/s"), h("dd", {}, rates[b.name] === undefined ? "—" : rates[b.name].toFixed(1)))));
    const tiers = ["l1", "l2", "l3", "search"].map((t) => h("tr", {},
      h("th", { scope: "row" }, t.toUpperCase()),
      h("td", {}, pct(cache[t].hits, cache[t].misses)),
      h("td", {}, cache[t].hits), h("td", {}, cache[t].misses), h("td", {}, cache[t].errors)));
    const instances = fleet ? fleet.instances.map((i) => h("tr", {},
      h("td", {}, i.instance_id), h("td", {}, i.stale ? "stale" : "live"),
      h("td", {}, i.slots.map((s) => `${s.slot} v${s.version}`).join(", ")),
      h("td", {}, fmtTime(i.updated_at)))) : [];
    show(
      h("h1", {}, "Dashboard"),
      h("p", { class: "muted" }, `Sluice ${status.version} · ${status.ready ? "ready" : "not ready"} · ${status.queries_tracked_l1} queries tracked in L1`),
      h("div", { class: "cards" }, cards),
      h("h2", {}, "Cache tiers"),
      h("table", {}, h("thead", {}, h("tr", {}, ["Tier", "Hit ratio", "Hits", "Misses", "Errors"].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, tiers)),
      h("p", { class: "muted" }, `L2 ${cache.l2_healthy ? "healthy" : "down or off"}; L3 ${cache.l3_store ? (cache.l3_store.healthy ? "healthy" : "down") : "off"}`),
      h("h2", {}, "Fleet"),
      fleet
        ? h("div", {}, h("p", {}, fleet.converged ? "Every instance runs the active filter versions." : "Instances are converging on the active filter versions."),
          h("table", {}, h("thead", {}, h("tr", {}, ["Instance", "", "Filters", "Updated"].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, instances)))
        : h("p", { class: "muted" }, "No fleet state (it needs a filter chain and a store)."));
  };
  refreshEvery(2000, () => render().catch((e) => e.status !== 401 && toast(e.message, true)));
}

async function backends() {
  stopRefresh();
  const render = async () => {
    const list = await api("GET", "/api/v1/backends");
    const act = (name, what) => async () => {
      if (await change(`${what} ${name}`, "POST", `/api/v1/backends/${encodeURIComponent(name)}/${what}`)) render();
    };
    const remove = (name) => async () => {
      if (!confirm(`Remove backend ${name}?`)) return;
      if (await change(`remove ${name}`, "DELETE", `/api/v1/backends/${encodeURIComponent(name)}`)) render();
    };
    const rows = list.map((b) => h("tr", { "data-backend": b.name },
      h("td", {}, b.name), h("td", {}, b.group), h("td", {}, b.url),
      h("td", { class: "state" }, b.state), h("td", {}, b.status.health),
      h("td", {}, `${b.status.running_queries} running, ${b.status.queued_queries} queued`),
      h("td", { class: "actions" }, canChange() ? [
        b.active ? null : h("button", { type: "button", onclick: act(b.name, "activate") }, "Activate"),
        b.active ? h("button", { type: "button", onclick: act(b.name, "deactivate") }, "Deactivate") : null,
        b.draining ? null : h("button", { type: "button", onclick: act(b.name, "drain") }, "Drain"),
        h("button", { type: "button", class: "danger", onclick: remove(b.name) }, "Remove"),
      ] : "—")));
    const add = canChange() ? backendForm(render) : null;
    show(h("h1", {}, "Backends"),
      h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Group", "URL", "State", "Health", "Load", ""].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows)),
      add);
  };
  await render();
  // drains progress by themselves: keep the states current
  state.timer = setInterval(() => render().catch(() => {}), 3000);
}

function backendForm(after) {
  const field = (name, label, attrs = {}) => [h("label", { for: `b-${name}` }, label), h("input", { id: `b-${name}`, name, ...attrs })];
  return h("form", { class: "inline", onsubmit: async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const body = { name: f.get("name"), url: f.get("url"), group: f.get("group") || "adhoc" };
    if (await change(`add ${body.name}`, "POST", "/api/v1/backends", body)) { ev.target.reset(); after(); }
  } },
  h("h2", {}, "Add or edit a backend"),
  field("name", "Name", { required: true }), field("url", "URL", { required: true, type: "url" }), field("group", "Group", { placeholder: "adhoc" }),
  h("button", { type: "submit" }, "Add"),
  h("button", { type: "button", onclick: async () => {
    const form = document.querySelector("form.inline");
    const f = new FormData(form);
    const patch = {};
    if (f.get("url")) patch.url = f.get("url");
    if (f.get("group")) patch.group = f.get("group");
    if (await change(`edit ${f.get("name")}`, "PATCH", `/api/v1/backends/${encodeURIComponent(f.get("name"))}`, patch)) after();
  } }, "Save changes to this name"));
}

async function history(params = new URLSearchParams(), cursor = null) {
  stopRefresh();
  const fields = [["user", "User"], ["source", "Source"], ["backend", "Backend"], ["group", "Group"], ["q", "Text"], ["since", "Since"], ["until", "Until"]];
  const form = h("form", { class: "inline search", onsubmit: (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(ev.target)) {
      if (!v) continue;
      p.set(k, k === "since" || k === "until" ? String(new Date(v).getTime()) : v);
    }
    history(p);
  } },
  fields.map(([k, label]) => [h("label", { for: `q-${k}` }, label),
    h("input", { id: `q-${k}`, name: k, type: k === "since" || k === "until" ? "datetime-local" : "search",
      value: k === "since" || k === "until" ? null : params.get(k) })]),
  h("button", { type: "submit" }, "Search"));
  const query = new URLSearchParams(params);
  query.set("limit", "50");
  if (cursor) query.set("cursor", cursor);
  let page;
  try {
    page = await api("GET", `/api/v1/queries?${query}`);
  } catch (e) {
    if (e.status !== 401) show(h("h1", {}, "Query history"), form, h("p", { class: "bad" }, e.message));
    return;
  }
  const rows = page.queries.map((r) => h("tr", {},
    h("td", {}, r.query_id), h("td", {}, fmtTime(r.created_at)), h("td", {}, r.user || "—"),
    h("td", {}, r.source || "—"), h("td", {}, r.routing_group), h("td", {}, r.backend),
    h("td", { class: "sql" }, r.query_text),
    h("td", {}, r.ui_url ? h("a", { href: r.ui_url, target: "_blank", rel: "noopener noreferrer" }, "Open") : "—")));
  show(h("h1", {}, "Query history"), form,
    h("table", { class: "history" }, h("thead", {}, h("tr", {}, ["Query", "Created", "User", "Source", "Group", "Backend", "SQL", "Cluster page"].map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows)),
    rows.length ? null : h("p", { class: "muted" }, "No query matches."),
    page.next_cursor ? h("button", { type: "button", onclick: () => history(params, page.next_cursor) }, "Older queries") : null);
}

async function filters() {
  stopRefresh();
  const [chain, slots, fleet] = await Promise.all([
    api("GET", "/api/v1/chain").catch(() => ({ order: [] })),
    api("GET", "/api/v1/filters"),
    api("GET", "/api/v1/fleet").catch(() => null),
  ]);
  const order = chain.order || slots.map((s) => s.slot);
  const move = (i, d) => async () => {
    const next = [...order];
    [next[i], next[i + d]] = [next[i + d], next[i]];
    if (await change("reorder", "PUT", "/api/v1/chain", { order: next })) filters();
  };
  const sections = await Promise.all(slots.map(async (s) => {
    const i = order.indexOf(s.slot);
    const versions = await api("GET", `/api/v1/filters/${encodeURIComponent(s.slot)}/versions`).catch(() => []);
    const slotPath = `/api/v1/filters/${encodeURIComponent(s.slot)}`;
    const upload = h("input", { type: "file", accept: ".wasm", "aria-label": `Upload a .wasm for ${s.slot}` });
    const config = h("textarea", { rows: 4, "aria-label": `Configuration of ${s.slot}` }, JSON.stringify(s.config, null, 2));
    return h("section", { class: "slot", "data-slot": s.slot },
      h("h2", {}, `${i + 1}. ${s.slot}`),
      h("p", { class: "muted" }, `${s.module} · version ${s.version} · loaded ${fmtTime(s.loaded_at)} · ${s.stats.calls} calls, ${s.stats.traps} traps, ${s.stats.timeouts} timeouts`),
      canChange() ? h("div", { class: "actions" },
        i > 0 ? h("button", { type: "button", onclick: move(i, -1) }, "Move up") : null,
        i >= 0 && i < order.length - 1 ? h("button", { type: "button", onclick: move(i, 1) }, "Move down") : null,
        h("button", { type: "button", onclick: async () => { if (await change(`roll back ${s.slot}`, "POST", `${slotPath}/rollback`)) filters(); } }, "Roll back"),
        upload,
        h("button", { type: "button", onclick: async () => {
          const file = upload.files[0];
          if (!file) return toast("Choose a .wasm file first.", true);
          if (await change(`upload to ${s.slot}`, "PUT", slotPath, file, "application/wasm")) filters();
        } }, "Upload")) : null,
      h("table", {}, h("thead", {}, h("tr", {}, ["Version", "sha256", "By", "When", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, versions.map((v) => h("tr", { class: v.active ? "active" : null },
          h("td", {}, v.version), h("td", { class: "mono" }, v.sha256.slice(0, 16)), h("td", {}, v.created_by || "—"),
          h("td", {}, fmtTime(v.created_at)),
          h("td", {}, v.active ? "active" : (canChange() ? h("button", { type: "button", onclick: async () => {
            if (await change(`activate v${v.version}`, "POST", `${slotPath}/activate/${v.version}`)) filters();
          } }, "Activate") : "")))))),
      canChange() ? h("form", { class: "inline", onsubmit: async (ev) => {
        ev.preventDefault();
        if (await change(`configure ${s.slot}`, "PUT", `${slotPath}/config`, config.value, "application/yaml")) filters();
      } }, config, h("button", { type: "submit" }, "Save configuration")) : null);
  }));
  show(h("h1", {}, "Filters"),
    fleet ? h("p", {}, fleet.converged ? "Fleet: every instance runs the active versions." : "Fleet: converging.") : null,
    slots.length ? sections : h("p", { class: "muted" }, "No filter chain is configured."));
}

async function queue() {
  const table = (cols, rows) => h("table", {}, h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows));
  const render = async () => {
    const q = await api("GET", "/api/v1/queue");
    const cancel = (id) => async () => {
      if (!confirm(`Cancel waiting query ${id}?`)) return;
      if (await change(`cancel ${id}`, "DELETE", `/api/v1/queue/${encodeURIComponent(id)}`)) render();
    };
    const now = Date.now();
    const waiting = q.waiting.map((w, i) => h("tr", { "data-query": w.id },
      h("td", {}, i + 1), h("td", {}, w.id), h("td", {}, w.group), h("td", {}, w.priority),
      h("td", {}, w.user || "—"), h("td", {}, w.source || "—"),
      h("td", {}, `${Math.max(0, Math.round((now - w.enqueued_ms) / 1000))} s`),
      h("td", { class: "sql" }, w.query_text),
      h("td", { class: "actions" }, canChange() ? h("button", { type: "button", class: "danger", onclick: cancel(w.id) }, "Cancel") : "—")));
    const limits = q.backends.map((b) => h("tr", { "data-backend": b.backend },
      h("td", {}, b.backend), h("td", {}, b.group), h("td", { class: "running" }, b.running),
      h("td", {}, b.max_queries === null || b.max_queries === undefined ? "no limit" : b.max_queries)));
    show(h("h1", {}, "Queue"),
      h("p", { class: "muted" }, `Queries wait here when every backend of their group runs its max_queries; they are admitted by priority, then in order of arrival (timeout ${Math.round(q.config.timeout_ms / 1000)} s).`),
      h("h2", {}, "Backends"),
      table(["Backend", "Group", "Running (slots)", "max_queries"], limits),
      h("h2", {}, `Waiting (${q.waiting.length})`),
      q.waiting.length
        ? table(["#", "Query", "Group", "Priority", "User", "Source", "Waited", "Text", ""], waiting)
        : h("p", { class: "muted", id: "queue-empty" }, "Nothing waits."));
  };
  refreshEvery(2000, () => render().catch((e) => e.status !== 401 && toast(e.message, true)));
}

// --- routing ---------------------------------------------------------------------------------

const pages = { "": dashboard, backends, queue, history: () => history(), filters };

async function route() {
  if (!state.role) return;
  const name = location.hash.replace(/^#\/?/, "");
  for (const a of document.querySelectorAll("#nav a")) {
    a.toggleAttribute("aria-current", a.getAttribute("href") === `#/${name}`);
  }
  try {
    await (pages[name] || dashboard)();
  } catch (e) {
    if (e.status !== 401) show(h("p", { class: "bad" }, e.message));
  }
  main().focus();
}

async function start() {
  try {
    const s = await api("GET", "/console/session");
    Object.assign(state, { role: s.role, csrf: s.csrf, open: s.open });
  } catch (e) {
    if (e.status !== 401) loginPage(e.message);
    return;
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = state.open;
  document.getElementById("who").textContent = state.open ? "read-only (no tokens configured)" : state.role;
  await route();
}

window.addEventListener("hashchange", route);
document.getElementById("logout").addEventListener("click", logout);
start();
