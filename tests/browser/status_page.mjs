// Drives headless Chromium (Debian's /usr/bin/chromium, never a downloaded
// one) through the status page for tests/integration/browser.rs:
//
//  1. opens --url and waits until every backend of --up shows "up";
//  2. marks the document (to tell a reload from an in-place update), writes
//     HANDSHAKE/loaded and waits for HANDSHAKE/stopped: the Rust test has
//     then SIGSTOPped the table server behind --down;
//  3. waits, without reloading, until --down shows "down" and the others
//     still "up"; checks the document is the same one;
//  4. saves a full-page screenshot to --screenshot.
//
// Console messages, page errors, failed requests and HTTP errors are
// collected all along. The result is one JSON object on stdout (also when a
// step fails: then `error` says which, and the exit code is 1). The test, not
// this script, decides what passes.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    profile: { type: 'string' },
    screenshot: { type: 'string' },
    handshake: { type: 'string' },
    up: { type: 'string' },
    down: { type: 'string' },
    'down-within-ms': { type: 'string', default: '8000' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
  strict: true,
});
for (const key of ['url', 'profile', 'screenshot', 'handshake', 'up', 'down']) {
  if (!opt[key]) {
    console.error(`status_page.mjs: --${key} is required`);
    process.exit(2);
  }
}
const upNames = opt.up.split(',');
const downName = opt.down;
const downWithin = Number(opt['down-within-ms']);

// The whole run may take this long; a hung browser must not hang the test.
const WATCHDOG_MS = 60_000;
// How long the Rust side may take to stop the table server.
const HANDSHAKE_MS = 30_000;

const result = {
  error: null,
  before: null,
  after: null,
  down_after_ms: null,
  same_document: null,
  navigations_after_load: null,
  console: [],
  page_errors: [],
  failed_requests: [],
  http_errors: [],
  screenshot: null,
};

function finish(code) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

const watchdog = setTimeout(() => {
  result.error = `watchdog: not done within ${WATCHDOG_MS} ms`;
  finish(1);
}, WATCHDOG_MS);

/** The state ("up", "down") of each backend row on the page, by name. */
function states(page) {
  return page.evaluate(() => {
    const out = {};
    for (const row of document.querySelectorAll('#backends tr[data-backend]')) {
      out[row.dataset.backend] = row.querySelector('.pill')?.textContent ?? null;
    }
    return out;
  });
}

/** Waits until `want` (name -> state) holds on the page, without reloading. */
async function waitForStates(page, want, timeout) {
  await page.waitForFunction(
    (want) =>
      Object.entries(want).every(
        ([name, state]) =>
          document.querySelector(`#backends tr[data-backend="${name}"] .pill`)?.textContent ===
          state,
      ),
    want,
    { timeout, polling: 50 },
  );
}

async function waitForFile(path, timeout) {
  const deadline = Date.now() + timeout;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`${path} did not appear within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let context;
let step = 'launch chromium';
try {
  context = await chromium.launchPersistentContext(opt.profile, {
    executablePath: opt.chromium,
    headless: true,
    chromiumSandbox: false,
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
    viewport: { width: 1200, height: 800 },
    deviceScaleFactor: 1,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => result.console.push({ type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => result.page_errors.push(String(e)));
  page.on('requestfailed', (r) =>
    result.failed_requests.push({ url: r.url(), failure: r.failure()?.errorText ?? null }),
  );
  page.on('response', (r) => {
    if (r.status() >= 400) result.http_errors.push({ url: r.url(), status: r.status() });
  });
  let navigations = 0;
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) navigations += 1;
  });

  step = `open ${opt.url}`;
  await page.goto(opt.url, { waitUntil: 'load', timeout: 15_000 });
  step = `wait for ${upNames.join(', ')} up`;
  await waitForStates(page, Object.fromEntries(upNames.map((n) => [n, 'up'])), 15_000);
  result.before = await states(page);

  // A reload would make a new document without this mark, and count a navigation.
  await page.evaluate(() => {
    window.__dnslbSameDocument = true;
  });
  navigations = 0;

  step = 'handshake: wait for the table server to be stopped';
  writeFileSync(join(opt.handshake, 'loaded'), 'loaded\n');
  await waitForFile(join(opt.handshake, 'stopped'), HANDSHAKE_MS);
  const stoppedAt = Date.now();

  step = `wait for ${downName} down without a reload`;
  const want = Object.fromEntries(upNames.map((n) => [n, n === downName ? 'down' : 'up']));
  await waitForStates(page, want, downWithin);
  result.down_after_ms = Date.now() - stoppedAt;
  result.after = await states(page);
  result.same_document = await page.evaluate(() => window.__dnslbSameDocument === true);
  result.navigations_after_load = navigations;

  step = 'screenshot';
  await page.screenshot({ path: opt.screenshot, fullPage: true });
  result.screenshot = opt.screenshot;
  step = 'close';
  await context.close();
  context = null;
} catch (e) {
  result.error = `${step}: ${e?.message ?? e}`;
}
if (context) await context.close().catch(() => {});
clearTimeout(watchdog);
finish(result.error ? 1 : 0);
