// The console in a real browser: Debian's Chromium driven by playwright-core, against a real
// `sluice serve` in front of two fake coordinators. Screenshots go to $ARTIFACTS (default
// tests/browser/artifacts). Run by tests/browser/run (which tests/run calls).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const BIN = process.env.SLUICE_BIN;
const ARTIFACTS = process.env.ARTIFACTS || new URL("./artifacts", import.meta.url).pathname;
const ADMIN = "browser-admin-token-0123456789";
const VIEWER = "browser-viewer-token-0123456789";
const procs = [];
let browser;
let admin; // the admin listener's base URL
let proxy;
const work = mkdtempSync(join(tmpdir(), "sluice-browser-"));

/** Start `args` and read its first stdout line as JSON (the bound addresses). */
function startJson(args) {
  const p = spawn(BIN, args, { stdio: ["ignore", "pipe", "inherit"] });
  procs.push(p);
  return new Promise((resolve, reject) => {
    p.on("exit", (code) => reject(new Error(`${args[0]} exited (${code})`)));
    createInterface({ input: p.stdout }).once("line", (line) => resolve(JSON.parse(line)));
  });
}

async function until(what, check, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const submitted = [];

async function submit(user, sql) {
  const resp = await fetch(`${proxy}/v1/statement`, { method: "POST", body: sql, headers: { "X-Trino-User": user } });
  assert.equal(resp.status, 200);
  submitted.push({ user, answer: await resp.json() });
}

/** Poll every submitted query to its end, as a client would. */
async function finishAll() {
  for (const { user, answer } of submitted.splice(0)) {
    let next = answer.nextUri;
    while (next) {
      const resp = await fetch(next, { headers: { "X-Trino-User": user } });
      assert.equal(resp.status, 200);
      next = (await resp.json()).nextUri;
    }
  }
}

before(async () => {
  assert.ok(BIN, "SLUICE_BIN names the sluice binary");
  mkdirSync(ARTIFACTS, { recursive: true });
  const [a, b] = await Promise.all(["c1", "c2"].map((name) =>
    startJson(["fake-trino", "--listen", "127.0.0.1:0", "--name", name])));
  writeFileSync(join(work, "sluice.yaml"), `
listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
  tokens:
    - { token: ${ADMIN}, role: admin }
    - { token: ${VIEWER}, role: viewer }
backends:
  - { name: c1, url: 'http://${a.addr}', group: adhoc, stats: ui_api }
  - { name: c2, url: 'http://${b.addr}', group: adhoc, stats: ui_api }
health: { interval_ms: 200 }
store: { url: 'sqlite://${join(work, "sluice.db")}' }
routing: { chain: [{ slot: balance, module: 'builtin:query-count' }] }
log: { level: warn }
`);
  const addrs = await startJson(["serve", "--config", join(work, "sluice.yaml"), "--print-addrs"]);
  admin = `http://${addrs.admin}`;
  proxy = `http://${addrs.proxy}`;
  await until("readiness", async () => (await fetch(`${admin}/readyz`).catch(() => ({ ok: false }))).ok);
  // more than a page of history (50 a page), with the query the dashboard test adds: 55
  for (const [user, n] of [["alice", 3], ["bob", 2], ["carol", 49]]) {
    for (let i = 0; i < n; i++) await submit(user, `SELECT ${i} -- by ${user}`);
  }
  for (const name of ["stochastic", "query-count"]) {
    execFileSync(BIN, ["filter", "builtin", name, join(work, `${name}.wasm`)]);
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
  });
});

after(async () => {
  await browser?.close();
  for (const p of procs) p.kill("SIGTERM");
});

async function loggedIn(token, width = 1280) {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${admin}/`);
  await page.getByLabel("Admin or viewer token").fill(token);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
  return { context, page, errors };
}

const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

test("a wrong token is refused and the session cookie is HttpOnly and strict", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${admin}/`);
  await page.getByLabel("Admin or viewer token").fill("not-a-token");
  await page.keyboard.press("Enter");
  await page.getByText("Unknown token.").waitFor();
  await page.getByLabel("Admin or viewer token").fill(VIEWER);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
  const [cookie] = await context.cookies();
  assert.equal(cookie.name, "sluice_console");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.ok(!cookie.value.includes(VIEWER));
  // the page's own script cannot read it
  assert.equal(await page.evaluate(() => document.cookie), "");
  await context.close();
});

test("the dashboard shows each cluster and refreshes; a viewer changes nothing", async () => {
  const { context, page, errors } = await loggedIn(VIEWER);
  for (const name of ["c1", "c2"]) {
    await page.locator(`section[data-backend="${name}"]`).waitFor();
  }
  await page.getByText("Cache tiers").waitFor();
  await shot(page, "dashboard");
  // live: a new query shows without a reload
  const tracked = () => page.getByText(/queries tracked in L1/).textContent();
  const before = await tracked();
  await submit("dave", "SELECT 42");
  await until("the dashboard to refresh", async () => (await tracked()) !== before);
  await page.getByRole("link", { name: "Backends" }).click();
  await page.locator('tr[data-backend="c1"]').waitFor();
  assert.equal(await page.getByRole("button", { name: "Drain" }).count(), 0, "no change buttons for a viewer");
  // the API refuses a viewer's change even when the page is bypassed
  const status = await page.evaluate(async () => (await fetch("/api/v1/backends/c1/drain", { method: "POST" })).status);
  assert.equal(status, 403);
  assert.deepEqual(errors, []);
  await context.close();
});

test("an admin drains a backend and watches it become drained", async () => {
  const { context, page, errors } = await loggedIn(ADMIN);
  await page.getByRole("link", { name: "Backends" }).click();
  const row = page.locator('tr[data-backend="c2"]');
  await row.getByRole("button", { name: "Drain" }).click();
  await row.locator("td.state", { hasText: /^draining$/ }).waitFor();
  await shot(page, "backend-draining");
  // its queries run to their end (their follow-ups still reach it); then it is drained
  await finishAll();
  await row.locator("td.state", { hasText: /^drained$/ }).waitFor({ timeout: 15000 });
  await shot(page, "backend-drained");
  // and it is drained for the API too
  const api = await page.evaluate(async () => (await (await fetch("/api/v1/backends/c2")).json()).state);
  assert.equal(api, "drained");
  assert.deepEqual(errors, []);
  await context.close();
});

test("query history is searched by user and opens nothing it should not", async () => {
  const { context, page, errors } = await loggedIn(VIEWER);
  await page.getByRole("link", { name: "Query history" }).click();
  await page.getByLabel("User").fill("alice");
  await page.getByRole("button", { name: "Search" }).click();
  const rows = page.locator("table.history tbody tr");
  await until("alice's rows", async () => (await rows.count()) === 3);
  for (const text of await rows.allTextContents()) assert.match(text, /alice/);
  await shot(page, "history-alice");
  await page.getByLabel("User").fill("nobody");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText("No query matches.").waitFor();
  assert.deepEqual(errors, []);
  await context.close();
});

test("history pages back to the oldest query", async () => {
  const { context, page, errors } = await loggedIn(VIEWER);
  await page.getByRole("link", { name: "Query history" }).click();
  const rows = page.locator("table.history tbody tr");
  await until("a full first page", async () => (await rows.count()) === 50);
  const first = await rows.first().textContent();
  await page.getByRole("button", { name: "Older queries" }).click();
  await until("the second page", async () => (await rows.count()) === 5);
  assert.notEqual(await rows.first().textContent(), first);
  assert.equal(await page.getByRole("button", { name: "Older queries" }).count(), 0, "no page after the last");
  assert.deepEqual(errors, []);
  await context.close();
});

test("an admin adds a backend, edits it and removes it", async () => {
  const { context, page, errors } = await loggedIn(ADMIN);
  await page.getByRole("link", { name: "Backends" }).click();
  await page.getByLabel("Name").fill("c3");
  await page.getByLabel("URL").fill("http://127.0.0.1:9");
  await page.getByLabel("Group").fill("etl");
  await page.getByRole("button", { name: "Add", exact: true }).click();
  const row = page.locator('tr[data-backend="c3"]');
  await row.waitFor();
  assert.match(await row.textContent(), /etl/);
  await page.getByLabel("Name").fill("c3");
  await page.getByLabel("Group").fill("adhoc");
  await page.getByRole("button", { name: "Save changes to this name" }).click();
  await until("the edit", async () => /adhoc/.test(await row.textContent()));
  page.once("dialog", (d) => d.accept());
  await row.getByRole("button", { name: "Remove" }).click();
  await row.waitFor({ state: "detached" });
  const names = await page.evaluate(async () => (await (await fetch("/api/v1/backends")).json()).map((b) => b.name));
  assert.deepEqual(names.sort(), ["c1", "c2"]);
  assert.deepEqual(errors, []);
  await context.close();
});

test("an admin uploads filter versions, rolls one back and activates it again", async () => {
  const { context, page, errors } = await loggedIn(ADMIN);
  await page.getByRole("link", { name: "Filters" }).click();
  const slot = () => page.locator('section[data-slot="balance"]');
  await slot().waitFor();
  const active = async () => (await slot().locator("tr.active td").first().textContent().catch(() => null));
  const upload = async (file) => {
    const was = await slot().locator("tbody tr").count();
    await slot().getByLabel("Upload a .wasm for balance").setInputFiles(join(work, file));
    await slot().getByRole("button", { name: "Upload", exact: true }).click();
    await until(`${file} stored`, async () => (await slot().locator("tbody tr").count()) === was + 1);
    return active();
  };
  const first = await upload("stochastic.wasm");
  const second = await upload("query-count.wasm");
  assert.equal(Number(second), Number(first) + 1, "the newest upload is the active version");
  await shot(page, "filter-uploaded");
  await slot().getByRole("button", { name: "Roll back" }).click();
  await until("the rollback", async () => (await active()) === first);
  const version = await page.evaluate(async () => (await (await fetch("/api/v1/filters")).json())[0].version);
  assert.equal(String(version), first, "the gateway runs the version rolled back to");
  await shot(page, "filter-rolled-back");
  // and forward again, by activating the stored version
  await slot().getByRole("button", { name: "Activate" }).click(); // only the other version has one
  await until("the activation", async () => (await active()) === second);
  assert.deepEqual(errors, []);
  await context.close();
});

test("the queue page shows waiting queries in order, and an admin cancels one", async () => {
  const auth = { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" };
  const limit = (name, max) => fetch(`${admin}/api/v1/backends/${name}`, { method: "PATCH", headers: auth, body: JSON.stringify({ max_queries: max }) });
  // c2 was drained by an earlier test: both take queries again, one at a time
  assert.equal((await fetch(`${admin}/api/v1/backends/c2/activate`, { method: "POST", headers: auth })).status, 200);
  for (const name of ["c1", "c2"]) assert.equal((await limit(name, 1)).status, 200);
  await until("the limits", async () => {
    const q = await (await fetch(`${admin}/api/v1/queue`, { headers: auth })).json();
    const b = await (await fetch(`${admin}/api/v1/backends/c2`, { headers: auth })).json();
    return q.backends.every((b) => b.max_queries === 1) && b.state === "active" && b.status.health === "HEALTHY";
  });
  // two queries whose clients never poll hold both slots; the next two wait
  const answers = [];
  for (const user of ["dave", "erin", "frank", "grace"]) {
    const resp = await fetch(`${proxy}/v1/statement`, { method: "POST", body: `SELECT 1 -- ${user}`, headers: { "X-Trino-User": user } });
    answers.push(await resp.json());
  }
  const waiting = answers.filter((a) => a.stats.state === "QUEUED" && /_lq/.test(a.id));
  assert.equal(waiting.length, 2, JSON.stringify(answers.map((a) => a.id)));
  const { context, page, errors } = await loggedIn(ADMIN);
  await page.getByRole("link", { name: "Queue" }).click();
  await page.getByRole("heading", { name: "Waiting (2)" }).waitFor();
  const rows = page.locator("tr[data-query]");
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.query)), waiting.map((a) => a.id));
  await page.locator('tr[data-backend="c1"] td.running', { hasText: /^1$/ }).waitFor();
  await shot(page, "queue");
  page.once("dialog", (d) => d.accept());
  await page.locator(`tr[data-query="${waiting[0].id}"]`).getByRole("button", { name: "Cancel" }).click();
  await page.getByRole("heading", { name: "Waiting (1)" }).waitFor();
  // its client reads Trino's cancellation on its next poll
  const polled = await (await fetch(waiting[0].nextUri, { headers: { "X-Trino-User": "frank" } })).json();
  assert.equal(polled.error.errorName, "USER_CANCELED");
  assert.deepEqual(errors, []);
  await context.close();
  for (const name of ["c1", "c2"]) assert.equal((await limit(name, null)).status, 200);
});

test("a narrow screen gets one column, and logout ends the session", async () => {
  const { context, page } = await loggedIn(ADMIN, 390);
  await shot(page, "dashboard-narrow");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByLabel("Admin or viewer token").waitFor();
  const status = await page.evaluate(async () => (await fetch("/api/v1/backends")).status);
  assert.equal(status, 401);
  await context.close();
});
