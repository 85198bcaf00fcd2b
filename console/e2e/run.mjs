// End-to-end test of the console in a real browser against a real server: it starts
// `weir serve` (WEIR_BIN), drives headless Chromium through the SQL workspace, streams,
// queries and dashboards, restarts the server, and checks the dashboard survived.
// Fails on any browser console error or page error. Screenshots go to test-results/.
//
//   WEIR_BIN=../target/release/weir [WEIR_E2E_CONSOLE_DIR=1] [CHROMIUM=/usr/bin/chromium] npm run e2e

import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startWeir, weirBin } from './weir.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const results = resolve(here, '..', 'test-results');
const started = Date.now();
weirBin(); // Fails early, with instructions, when WEIR_BIN is unset.
mkdirSync(results, { recursive: true });
rmSync(join(results, 'failure.png'), { force: true });

const dataDir = mkdtempSync(join(tmpdir(), 'weir-e2e-data-'));
const profile = mkdtempSync(join(tmpdir(), 'weir-e2e-chromium-'));
let server = await startWeir(dataDir);
let browser;
let page;
let passed = 0;
let skipped = 0;

/** Thrown by a step that cannot run against this server build. */
class Skip extends Error {}

// Console errors fail the test, except the few HTTP errors a step provokes on purpose
// (Chromium logs every 4xx response as a console error).
const consoleErrors = [];
let allowedHttpErrors = 0;
function watch(p) {
  p.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (allowedHttpErrors > 0 && /Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) {
      allowedHttpErrors--;
      return;
    }
    consoleErrors.push(`console error: ${m.text()} (${m.location()?.url ?? ''})`);
  });
  p.on('pageerror', (e) => consoleErrors.push(`page error: ${e.stack ?? e.message}`));
}

async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
    if (consoleErrors.length) throw new Error(consoleErrors.join('\n'));
    passed++;
    console.log(`ok ${passed} - ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    if (e instanceof Skip && consoleErrors.length === 0) {
      skipped++;
      console.log(`ok - ${name} # SKIP ${e.message}`);
      return;
    }
    console.log(`not ok - ${name}\n${e.stack ?? e}`);
    if (page) await page.screenshot({ path: join(results, 'failure.png'), fullPage: true }).catch(() => {});
    console.log(`--- weir output (tail) ---\n${server.log().split('\n').slice(-30).join('\n')}`);
    console.log(`e2e: ${passed} passed, 1 failed`);
    await cleanup();
    process.exit(1);
  }
}

async function cleanup() {
  await browser?.close().catch(() => {});
  await server?.stop().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true });
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

async function shot(name) {
  await page.screenshot({ path: join(results, `${name}.png`), fullPage: true });
}

/** Replaces the workspace editor's text and runs it with Ctrl+Enter. */
async function runSql(sql) {
  const editor = page.locator('.work .cm-content');
  await editor.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await editor.fill(sql);
  await page.keyboard.press('Escape'); // Close a completion popup, if any.
  await page.keyboard.press('Control+Enter');
  await page.locator('.toolbar .btn.primary:not([disabled])').waitFor();
}

async function http(path, init) {
  const r = await fetch(server.url + path, init);
  const text = await r.text();
  if (!r.ok) throw new Error(`${init?.method ?? 'GET'} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

const ingest = (rows) =>
  http('/v1/streams/clicks/records', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-ndjson' },
    body: rows.map((r) => JSON.stringify(r)).join('\n'),
  });
const sql = (text) => http('/v1/sql', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ sql: text }) });

// Chromium now and then crashes while starting on a loaded machine (SIGSEGV before any
// page exists); that is not the console's doing, so a start is tried up to three times,
// each in an emptied profile.
async function launch() {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launchIn(profile);
    } catch (e) {
      if (attempt >= 3) throw e;
      console.log(`# chromium did not start (attempt ${attempt}): ${String(e.message).split('\n')[0]}; retrying`);
      rmSync(profile, { recursive: true, force: true });
      mkdirSync(profile, { recursive: true });
    }
  }
}

await step('browser starts', async () => {
  browser = await launch();
  browser.setDefaultTimeout(10000);
  page = browser.pages()[0] ?? (await browser.newPage());
  watch(page);
});

function launchIn(dir) {
  return chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

await step('the console opens on the SQL workspace', async () => {
  await page.goto(server.url + '/');
  await page.locator('.work .cm-content').waitFor();
  for (const label of ['SQL', 'Streams', 'Queries', 'Dashboards']) {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).waitFor();
  }
  assert((await page.locator('main').getAttribute('data-page')) === 'workspace', 'not on the workspace');
});

await step('several statements: create a stream, insert, a windowed view, FLUSH, SELECT', async () => {
  await runSql(
    [
      "CREATE STREAM clicks (page TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (partitions = 2);",
      "INSERT INTO clicks VALUES ('/home', '2024-01-01 00:00:01'), ('/cart', '2024-01-01 00:00:04'), ('/home', '2024-01-01 00:00:07'), ('/home', '2024-01-01 00:00:12');",
      'CREATE MATERIALIZED VIEW per_page AS SELECT window_start, window_end, page, count(*) AS n',
      "  FROM TUMBLE(clicks, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end, page;",
      'FLUSH;',
      'SELECT * FROM per_page ORDER BY window_start, page;',
    ].join('\n'),
  );
  const cards = page.locator('.results .result');
  assert((await cards.count()) === 5, `expected 5 results, got ${await cards.count()}`);
  const last = cards.nth(4);
  assert((await last.getAttribute('data-rows')) === '3', `expected 3 rows, got ${await last.getAttribute('data-rows')}`);
  const grid = await last.locator('table.grid').innerText();
  for (const want of ['window_start', 'TIMESTAMP', '/home', '/cart', '2024-01-01 00:00:10']) {
    assert(grid.includes(want), `grid lacks ${want}:\n${grid}`);
  }
  assert((await cards.nth(0).innerText()).includes('created stream clicks'), 'no CREATE message');
  await page.locator('.side').getByText('per_page', { exact: true }).waitFor();
  await shot('workspace');
  // Completion knows the new stream and its columns now.
  await page.keyboard.press('Control+End');
  await page.keyboard.type('\nSELECT pa');
  await page.locator('.cm-tooltip-autocomplete', { hasText: 'page' }).waitFor();
  await page.keyboard.press('Escape');
  await page.keyboard.type(' FROM cli');
  await page.locator('.cm-tooltip-autocomplete', { hasText: 'clicks' }).waitFor();
  await page.keyboard.press('Escape');
});

await step('an error is shown with its position and marked in the editor', async () => {
  allowedHttpErrors = 1;
  await runSql('SELECT 1;\nSELECT nope FROM clicks');
  const err = page.locator('.result.error');
  await err.waitFor();
  const text = await err.innerText();
  assert(/Line 2, column 1/.test(text), `no position in: ${text}`);
  assert(/No field named nope/.test(text), `no message in: ${text}`);
  await page.locator('.cm-error-line').waitFor();
  await page.locator('.cm-error-mark', { hasText: 'SELECT' }).waitFor();
  assert(allowedHttpErrors === 0, 'the failing request did not show as expected');
  await shot('workspace-error');
});

await step('a push query shows rows live until Stop', async () => {
  await runSql('SELECT page, ts FROM clicks EMIT CHANGES');
  await page.locator('.live[data-status="live"]').waitFor();
  await ingest([
    { page: '/live', ts: '2024-01-01T00:00:13Z' },
    { page: '/live', ts: '2024-01-01T00:00:14Z' },
  ]);
  await page.locator('.live[data-rows="2"]').waitFor();
  assert((await page.locator('.live table.grid').innerText()).includes('/live'), 'live rows missing');
  await page.locator('.live').getByRole('button', { name: 'Stop' }).click();
  await page.locator('.live[data-status="stopped"]').waitFor();
});

await step('a push query with EMIT CHANGES applies retractions', async () => {
  allowedHttpErrors = 1; // An older server refuses updating push queries with a 400.
  await runSql('SELECT page, count(*) AS n FROM clicks GROUP BY page EMIT CHANGES');
  const outcome = await Promise.race([
    page.locator('.live[data-status="live"]').waitFor().then(() => 'live'),
    page.locator('.result.error').waitFor().then(() => 'error'),
  ]);
  if (outcome === 'error') {
    const text = await page.locator('.result.error').innerText();
    if (/do not stream yet/.test(text)) throw new Skip('this weir build does not stream updating push queries');
    throw new Error(`push query failed: ${text}`);
  }
  allowedHttpErrors = 0;
  // Two separate requests: the second retracts ('/x', 1) and adds ('/x', 2).
  await ingest([{ page: '/x', ts: '2024-01-01T00:00:15Z' }]);
  await page.locator('.live[data-rows="1"]').waitFor();
  await ingest([{ page: '/x', ts: '2024-01-01T00:00:16Z' }]);
  await page.locator('.live-bar', { hasText: '1 retracted' }).waitFor();
  const grid = await page.locator('.live table.grid tbody').innerText();
  assert(/\/x\s+2/.test(grid) && !/\/x\s+1\b/.test(grid), `expected one row (/x, 2), got:\n${grid}`);
  await page.locator('.live').getByRole('button', { name: 'Stop' }).click();
});

await step('history keeps past runs; a click puts one back', async () => {
  const items = page.locator('.history-item');
  assert((await items.count()) >= 3, `expected 3 history items, got ${await items.count()}`);
  await items.filter({ hasText: 'CREATE STREAM clicks' }).first().click();
  const text = await page.locator('.work .cm-content').innerText();
  assert(text.includes('CREATE MATERIALIZED VIEW per_page'), 'history item not restored');
});

await step('streams: list with sizes, a stream page, producing a record and a bad one', async () => {
  await page.getByRole('link', { name: 'Streams', exact: true }).click();
  const row = page.locator('table.table tbody tr', { hasText: 'clicks' });
  await row.waitFor();
  assert(/\d+ (B|KiB)/.test(await row.innerText()), 'no size in the streams list');
  await shot('streams');
  await row.getByRole('link', { name: 'clicks' }).click();
  await page.getByRole('heading', { name: 'Partitions' }).waitFor();
  const partitions = page.locator('section.card', { has: page.getByRole('heading', { name: 'Partitions' }) }).locator('tbody tr');
  assert((await partitions.count()) === 2, 'expected 2 partitions');
  const textarea = page.locator('#produce-text');
  assert((await textarea.inputValue()).includes('"page"'), 'no example row');
  await textarea.fill('{"page": "/produced", "ts": "2024-01-01T00:00:15"}');
  await page.getByRole('button', { name: 'Produce' }).click();
  await page.locator('.ok-text', { hasText: 'Accepted 1 record' }).waitFor();
  await page.locator('.tail table.grid', { hasText: '/produced' }).waitFor();
  await shot('stream');
  allowedHttpErrors = 1;
  await textarea.fill('{"page": "/ok", "ts": "2024-01-01T00:00:16"}\n{"page": "/bad", "ts": "not a time"}');
  await page.getByRole('button', { name: 'Produce' }).click();
  const error = page.locator('.produce .error-box');
  await error.waitFor();
  assert(/line 2/i.test(await error.innerText()), `error does not name the line: ${await error.innerText()}`);
  await shot('stream-produce-error');
});

await step('queries: list, the view\'s page with its plan graph and "why no output"', async () => {
  await page.getByRole('link', { name: 'Queries', exact: true }).click();
  const row = page.locator('table.table tbody tr', { hasText: 'per_page' }).first();
  await row.waitFor();
  assert(/running/.test(await row.innerText()), 'view is not running');
  await shot('queries');
  await row.getByRole('link', { name: 'per_page' }).click();
  await page.locator('.plan .plan-node').first().waitFor();
  const nodes = await page.locator('.plan .plan-node').count();
  assert(nodes >= 2, `plan has ${nodes} nodes`);
  assert((await page.locator('.plan').innerText()).includes('Source'), 'plan lacks its source');
  await page.getByRole('heading', { name: 'Why no output yet?' }).waitFor();
  await page.locator('.card', { hasText: 'Current rows' }).locator('table.grid', { hasText: '/home' }).waitFor();
  await shot('query');
});

await step('a query with two inputs: its plan graph shows both sources meeting', async () => {
  await sql(
    "CREATE STREAM taps (page TEXT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND); " +
      'CREATE MATERIALIZED VIEW both_pages AS SELECT page, count(*) AS n FROM ' +
      '(SELECT page FROM clicks UNION ALL SELECT page FROM taps) GROUP BY page',
  );
  await page.goto(server.url + '/#/queries/both_pages');
  await page.locator('.plan .plan-node').first().waitFor();
  const sources = await page.locator('.plan .plan-node.kind-source').count();
  assert(sources === 2, `plan has ${sources} sources`);
  const meeting = await page.locator('.plan .plan-node[data-inputs="2"]').count();
  assert(meeting >= 1, 'no node of the plan has two inputs');
  const text = await page.locator('.plan').innerText();
  assert(text.includes('taps') && text.includes('clicks'), `plan lacks a source: ${text}`);
  const lede = await page.locator('p.lede').innerText();
  assert(lede.includes('clicks and taps'), `the page does not name both inputs: ${lede}`);
  await shot('query-two-inputs');
  await sql('DROP MATERIALIZED VIEW both_pages; DROP STREAM taps');
});

let points = 0;
/** Adds a panel through the dashboard's form and waits for the form to close. */
async function addPanel(title, sqlText, chart, screenshot) {
  await page.getByRole('button', { name: 'Add panel' }).first().click();
  const form = page.locator('form.panel-form');
  await form.getByLabel('Title').fill(title);
  await form.locator('.cm-content').fill(sqlText);
  await form.getByLabel('Show as').selectOption(chart);
  if (screenshot) await shot(screenshot);
  await form.getByRole('button', { name: 'Add panel' }).click();
  await form.waitFor({ state: 'detached' });
}

await step('dashboards: create one, add chart, number and live table panels', async () => {
  await page.getByRole('link', { name: 'Dashboards', exact: true }).click();
  await page.getByText('No dashboards yet.').waitFor();
  await page.getByRole('textbox', { name: 'New dashboard' }).fill('Clicks overview');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/#\/dashboards\/clicks-overview$/);
  await addPanel('Clicks per page, per 10 s', 'SELECT window_start, page, n FROM per_page ORDER BY window_start', 'line', 'dashboard-add-panel');
  await addPanel('Clicks so far', 'SELECT count(*) AS clicks FROM clicks', 'number');
  await addPanel('All clicks per 10 s', 'SELECT window_start, sum(n) AS clicks FROM per_page GROUP BY window_start ORDER BY window_start', 'bar');
  await addPanel('Latest clicks (push query)', 'SELECT page, ts FROM clicks EMIT CHANGES', 'table');
  const chart = page.locator('.panel[data-chart="line"] .chart');
  await chart.waitFor();
  await page.waitForFunction(() => Number(document.querySelector('.panel[data-chart="line"] .chart')?.getAttribute('data-points')) > 0);
  points = Number(await chart.getAttribute('data-points'));
  await page.locator('.panel[data-chart="number"] .big-value').waitFor();
  await page.locator('.panel[data-chart="bar"] .chart[data-points]').waitFor();
  await page.locator('.panel[data-chart="table"] .panel-mode', { hasText: 'live' }).waitFor();
});

await step('the chart updates when rows arrive over HTTP', async () => {
  await ingest([
    { page: '/home', ts: '2024-01-01T00:00:21Z' },
    { page: '/cart', ts: '2024-01-01T00:00:25Z' },
    { page: '/home', ts: '2024-01-01T00:00:33Z' },
    { page: '/home', ts: '2024-01-01T00:00:41Z' },
  ]);
  await sql('FLUSH');
  await page.waitForFunction(
    (before) => Number(document.querySelector('.panel[data-chart="line"] .chart')?.getAttribute('data-points')) > before,
    points,
    { timeout: 8000 },
  );
  const after = Number(await page.locator('.panel[data-chart="line"] .chart').getAttribute('data-points'));
  const total = (await sql('SELECT count(*) AS n FROM clicks')).rows[0][0];
  await page.locator('.panel[data-chart="number"] .big-value', { hasText: String(total) }).waitFor();
  // Windows 00:00, :10, :20, :30 and :40 now have clicks.
  await page.waitForFunction(() => Number(document.querySelector('.panel[data-chart="bar"] .chart')?.getAttribute('data-points')) === 5);
  // The push-query panel started before these rows, so it holds exactly them.
  await page.locator('.panel[data-chart="table"][data-rows="4"]').waitFor();
  console.log(`  chart points ${points} → ${after}; number panel shows ${total}`);
  await shot('dashboard');
});

await step('the dashboard is still there after a reload', async () => {
  await page.reload();
  await page.locator('.panel h2', { hasText: 'Clicks per page, per 10 s' }).waitFor();
  assert((await page.locator('.panel').count()) === 4, 'expected 4 panels after the reload');
});

await step('...and after the server restarts on the same data directory', async () => {
  // Leave the page first, so its polling does not hit a stopped server.
  await page.goto('about:blank');
  const exit = await server.stop();
  assert(exit.code === 0, `weir exited with ${JSON.stringify(exit)} on SIGTERM`);
  server = await startWeir(dataDir);
  await page.goto(server.url + '/#/dashboards');
  await page.getByRole('link', { name: /Clicks overview/ }).waitFor();
  await shot('dashboards');
  await page.getByRole('link', { name: /Clicks overview/ }).click();
  await page.locator('.panel h2', { hasText: 'Clicks per page, per 10 s' }).waitFor();
  assert((await page.locator('.panel').count()) === 4, 'expected 4 panels after the restart');
  await page.waitForFunction(() => Number(document.querySelector('.panel[data-chart="line"] .chart')?.getAttribute('data-points')) > 0);
  await shot('dashboard-after-restart');
});

await step('a derived stream is stopped from its query page', async () => {
  await sql("CREATE STREAM home_clicks AS SELECT page, ts FROM clicks WHERE page = '/home'");
  await page.goto(server.url + '/#/queries/home_clicks');
  await page.locator('.plan .plan-node').first().waitFor();
  const stop = page.getByRole('button', { name: 'Stop query' });
  await stop.click();
  await page.getByRole('button', { name: /Click again/ }).click();
  await page.waitForURL(/#\/queries$/);
  await page.locator('table.table tbody tr', { hasText: 'per_page' }).first().waitFor();
  assert((await page.locator('table.table tbody tr', { hasText: 'home_clicks' }).count()) === 0, 'home_clicks still listed');
  // A derived stream keeps its rows: it is still a stream.
  await page.getByRole('link', { name: 'Streams', exact: true }).click();
  await page.locator('table.table tbody tr', { hasText: 'home_clicks' }).waitFor();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-rate]')].every((td) => td.textContent !== '—'));
  await shot('streams');
});

await step('panels and dashboards can be deleted', async () => {
  await page.goto(server.url + '/#/dashboards/clicks-overview');
  const panel = page.locator('.panel', { has: page.locator('h2', { hasText: 'Latest clicks (push query)' }) });
  await panel.getByRole('button', { name: 'Delete' }).click();
  await panel.getByRole('button', { name: 'Delete?' }).click();
  await panel.waitFor({ state: 'detached' });
  await page.reload();
  await page.locator('.panel').first().waitFor();
  assert((await page.locator('.panel').count()) === 3, 'the deleted panel came back');
  const dashboards = await http('/v1/dashboards');
  assert(dashboards.dashboards[0].panels.length === 3, 'the server still has 4 panels');
  // A second dashboard, deleted from its page.
  await http('/v1/dashboards/scratch', { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ title: 'Scratch', panels: [] }) });
  await page.goto(server.url + '/#/dashboards/scratch');
  await page.getByRole('button', { name: 'Delete dashboard' }).click();
  await page.getByRole('button', { name: /Click again/ }).click();
  await page.waitForURL(/#\/dashboards$/);
  await page.getByRole('link', { name: /Clicks overview/ }).waitFor();
  assert((await page.getByRole('link', { name: /Scratch/ }).count()) === 0, 'Scratch is still listed');
});

await step('works at phone width', async () => {
  await page.setViewportSize({ width: 375, height: 800 });
  await page.goto(server.url + '/#/');
  await page.locator('.work .cm-content').waitFor();
  await shot('phone-workspace');
  await page.goto(server.url + '/#/dashboards/clicks-overview');
  await page.locator('.panel[data-chart="line"] .chart').waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  await shot('phone-dashboard');
});

await step('with a token: the login page, a wrong token, then the console through its session cookie', async () => {
  const secret = 'e2e-secret-0123456789';
  const securedDir = mkdtempSync(join(tmpdir(), 'weir-e2e-secured-'));
  const secured = await startWeir(securedDir, { extraArgs: ['--pg-listen', 'off', '--auth-token', `ops:admin:${secret}`] });
  try {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(secured.url + '/');
    const login = page.locator('form.login-card');
    await login.waitFor();
    await shot('login');
    allowedHttpErrors += 1; // the wrong token's 401
    await login.getByLabel('Token').fill('not-the-token-at-all');
    await login.getByRole('button', { name: 'Log in' }).click();
    await login.locator('.error-box').getByText('not valid').waitFor();
    await login.getByLabel('Token').fill(secret);
    await login.getByRole('button', { name: 'Log in' }).click();
    await page.locator('.work .cm-content').waitFor();
    const who = await page.locator('.who').innerText();
    assert(who.includes('ops') && who.includes('admin'), `the header says ${who}`);
    // The session cookie is HttpOnly: no script of the page can read it.
    const visible = await page.evaluate(() => document.cookie);
    assert(!visible.includes('weir_session'), `document.cookie shows ${visible}`);
    const cookies = await page.context().cookies(secured.url);
    assert(cookies.some((c) => c.name === 'weir_session' && c.httpOnly && c.sameSite === 'Strict'), 'no HttpOnly SameSite=Strict session cookie');
    await page.getByRole('button', { name: 'Log out' }).click();
    await login.waitFor();
  } finally {
    await secured.stop().catch(() => {});
    rmSync(securedDir, { recursive: true, force: true });
  }
});

await step('no browser console errors', async () => {
  assert(consoleErrors.length === 0, consoleErrors.join('\n'));
});

await cleanup();
console.log(`e2e: ${passed} passed, 0 failed${skipped ? `, ${skipped} skipped` : ''} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
