// The web dashboard at GET /dashboard, in Debian's Chromium driven headless by playwright-core:
// an operator signs in with the token, opens a session created through the API, sees an event
// posted afterwards arrive over the stream the page has open, posts a follow-up, drains it and
// closes the session, with the page fetching nothing from anywhere but the gateway. A second test
// has the gateway cut the page's stream every half second and checks that the page's EventSource
// resumes and shows every event exactly once, in order.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

import { SESSIONS_PATH, gatewayApi, importClientPackage, launchChromium, startGateway } from './gateway.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const TOKEN = 'dashboard-test-token';
// Generous waits (page loads, the 3 s list refresh, live events): they only bound a hang, so a
// slow machine passes as a fast one does.
const WAIT_MS = 10_000;

// The CTest run passes the build directory; by hand the screenshot goes to build/.
const SCREENSHOT_DIR = process.env.TAU_SCREENSHOT_DIR || join(here, '..', '..', 'build');

// A browser page on the dashboard of a fresh gateway, recording what the page requests and
// what goes wrong in it. Everything is closed and stopped when the test ends.
async function openDashboard(t, gatewayArgs) {
  const gateway = await startGateway(['--auth-token', TOKEN, ...gatewayArgs]);
  t.after(() => gateway.stop());
  const { chromium } = await importClientPackage('playwright-core');
  const browser = await launchChromium(chromium);
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const requests = [];
  const pageErrors = [];
  const consoleErrors = [];
  // allHeaders(), unlike headers(), includes Last-Event-ID; it is read when a test needs it.
  page.on('request', (request) => requests.push({ url: request.url(), headers: () => request.allHeaders() }));
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  await page.goto(`${gateway.baseUrl}/dashboard`);
  return { gateway, api: gatewayApi(gateway.baseUrl, TOKEN), page, requests, pageErrors, consoleErrors };
}

async function signIn(page) {
  await page.getByLabel('Bearer token').fill(TOKEN);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByTestId('counter-active-sessions').waitFor({ timeout: WAIT_MS });
}

// Opens the session from the list and waits for its stream. The Refresh button saves waiting
// for the list's periodic refresh.
async function openSessionInPage(page, sessionId) {
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.locator(`tr[data-session-id="${sessionId}"]`).getByTestId('open-session').click({ timeout: WAIT_MS });
  await page.locator('[data-testid="stream-state"][data-state="live"]').waitFor({ timeout: WAIT_MS });
}

// The events the page shows, as [sequence id, type, message], in page order.
function shownEvents(page) {
  return page.getByTestId('event').evaluateAll((rows) => rows.map((row) => [
    Number(row.dataset.seq),
    row.dataset.type,
    row.querySelector('.event-message').textContent,
  ]));
}

// Waits until the page has resumed its stream at least `count` times.
function reconnectsReach(page, count) {
  return page.waitForFunction(
    (n) => Number(document.querySelector('[data-testid="stream-state"]').dataset.reconnects) >= n,
    count,
    { timeout: WAIT_MS },
  );
}

function eventRow(page, type, message) {
  return page.locator(`[data-testid="event"][data-type="${type}"]`, { hasText: message });
}

test('the dashboard follows a session live and runs its actions', { timeout: 60_000 }, async (t) => {
  const { gateway, api, page, requests, pageErrors, consoleErrors } = await openDashboard(t, []);

  // Before sign-in nothing but the page itself is loaded; a wrong token is refused clearly.
  await page.getByLabel('Bearer token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByTestId('signin-message').filter({ hasText: '401' }).waitFor({ timeout: WAIT_MS });
  await signIn(page);
  consoleErrors.length = 0; // Chromium logs the refused status request; that one is expected
  assert.equal(await page.evaluate(() => Object.keys(sessionStorage).length), 1, 'credentials kept in sessionStorage');

  const sessionId = await api.openSession('dashboard-demo');
  await api.postProgress(sessionId, 'cloned the repository');
  await openSessionInPage(page, sessionId);
  await eventRow(page, 'progress', 'cloned the repository').waitFor({ timeout: WAIT_MS });
  assert.equal(await page.getByTestId('session-workspace').textContent(), 'dashboard-demo');
  assert.equal(await page.getByTestId('session-status').textContent(), 'running');

  // Posted after the view opened: it arrives live, over the follow stream the page has open, with
  // no new request for it (events reach the page only through streams). How soon is reported.
  const streamRequests = () => requests.filter((request) => new URL(request.url).pathname.endsWith('/stream')).length;
  const streamsBefore = streamRequests();
  await api.postProgress(sessionId, 'running the test suite <b>42</b> & more');
  const answered = Date.now();
  await eventRow(page, 'progress', 'running the test suite <b>42</b> & more').waitFor({ timeout: WAIT_MS });
  t.diagnostic(`live progress event shown ${Date.now() - answered} ms after the POST answered`);
  assert.equal(streamRequests(), streamsBefore, 'the live event came over the open stream, not a new request');
  assert.equal(await page.getByTestId('stream-state').getAttribute('data-state'), 'live');
  assert.equal(await page.locator('.event-message b').count(), 0, 'messages are text, never markup');

  // A follow-up through the page's form: its event arrives over the stream, and it is queued.
  await page.getByLabel('Follow-up message').fill('please also update the changelog');
  await page.getByRole('button', { name: 'Send follow-up' }).click();
  await eventRow(page, 'followup', 'please also update the changelog').waitFor({ timeout: WAIT_MS });
  await page.getByTestId('session-queued').filter({ hasText: /^1$/ }).waitFor({ timeout: WAIT_MS });

  // Drain shows what it took from the queue.
  await page.getByRole('button', { name: 'Drain follow-ups' }).click();
  await page.getByTestId('drain-result').filter({ hasText: 'please also update the changelog' })
    .waitFor({ timeout: WAIT_MS });
  await page.getByTestId('session-queued').filter({ hasText: /^0$/ }).waitFor({ timeout: WAIT_MS });

  // An action the gateway refuses shows its error envelope: a follow-up to an unknown session.
  // (Asked from the page's own fetch with its token, so the envelope is the gateway's.)
  const refused = await page.evaluate(async (path) => {
    const { token } = JSON.parse(sessionStorage.getItem('tau-gateway.dashboard.credentials'));
    const response = await fetch(path, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: '{"message":"x"}',
    });
    return { status: response.status, body: await response.json() };
  }, `${SESSIONS_PATH}/eca_00000000000000000000000000000000/followups`);
  assert.equal(refused.status, 404);
  assert.equal(refused.body.error.code, 'external_coding_agent_session_not_found');
  consoleErrors.length = 0; // the deliberate 404 above

  // Close: the status becomes closed, the stream ends with its final snapshot and `done`.
  await page.getByRole('button', { name: 'Close session' }).click();
  await page.getByTestId('session-status').filter({ hasText: /^closed$/ }).waitFor({ timeout: WAIT_MS });
  await page.locator('[data-testid="stream-state"][data-state="ended"]').waitFor({ timeout: WAIT_MS });
  assert.ok(await page.getByRole('button', { name: 'Send follow-up' }).isDisabled());
  await page.locator(`tr[data-session-id="${sessionId}"] [data-testid="row-status"]`)
    .filter({ hasText: 'closed' }).waitFor({ timeout: WAIT_MS });
  // Progress, progress, follow-up: each once and in order.
  assert.deepEqual((await shownEvents(page)).map(([seq, type]) => [seq, type]),
    [[1, 'progress'], [2, 'progress'], [3, 'followup']]);

  // The counters come from GET /gateway/status.
  assert.match(await page.getByTestId('counter-auth-failures-value').textContent(), /^\d+$/);
  assert.match(await page.getByTestId('counter-store').textContent(), /sqlite/);

  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const screenshot = join(SCREENSHOT_DIR, 'dashboard.png');
  await page.screenshot({ path: screenshot });
  t.diagnostic(`screenshot: ${screenshot}`);

  // Sign out forgets the token; a rejected token sends the operator back to sign in.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Bearer token').waitFor({ timeout: WAIT_MS });
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'sign out clears the credentials');
  await page.evaluate(() => sessionStorage.setItem('tau-gateway.dashboard.credentials',
    JSON.stringify({ kind: 'token', token: 'expired-or-wrong' })));
  await page.reload();
  await page.getByTestId('signin-message').filter({ hasText: '401' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a 401 clears the credentials');
  consoleErrors.length = 0; // the expected 401s

  // Same origin only: no CDN, no fonts, no favicon fetched elsewhere.
  const origins = new Set(requests.map(({ url }) => new URL(url).origin));
  assert.deepEqual([...origins], [gateway.baseUrl], `requests: ${requests.map(({ url }) => url).join('\n')}`);
  // The token travels in the stream URL only, never in any other URL.
  const tokenUrls = requests.filter(({ url }) => url.includes(TOKEN)).map(({ url }) => new URL(url).pathname);
  assert.deepEqual([...new Set(tokenUrls)], [`${SESSIONS_PATH}/${sessionId}/stream`]);
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);
});

test('the dashboard resumes a cut stream and shows each event once, in order', { timeout: 60_000 }, async (t) => {
  // Streams are cut every 0.5 s and the browser reconnects 0.1 s later; every reconnect and post
  // counts against the rate limit, so it is out of the way.
  const { api, page, requests, pageErrors } = await openDashboard(t, [
    '--sse-stream-max-ms', '500',
    '--sse-retry-ms', '100',
    '--rate-limit-max-requests', '100000',
  ]);
  await signIn(page);
  const sessionId = await api.openSession('resume-demo');
  await openSessionInPage(page, sessionId);

  // After every third post the page's stream is cut and resumed before the next post, so cuts
  // fall between posts (waiting for the page's reconnect count, not for time).
  const messages = Array.from({ length: 12 }, (_, i) => `step ${i + 1} of 12`);
  for (const [i, message] of messages.entries()) {
    await api.postProgress(sessionId, message);
    if (i % 3 === 2) await reconnectsReach(page, (i + 1) / 3);
  }
  await eventRow(page, 'progress', 'step 12 of 12').waitFor({ timeout: WAIT_MS });
  await api.closeSession(sessionId);
  await page.locator('[data-testid="stream-state"][data-state="ended"]').waitFor({ timeout: WAIT_MS });

  assert.deepEqual(await shownEvents(page), messages.map((message, i) => [i + 1, 'progress', message]));
  const streamPath = `${SESSIONS_PATH}/${sessionId}/stream`;
  const streams = requests.filter(({ url }) => new URL(url).pathname === streamPath);
  assert.ok(streams.length >= 4, `expected the stream to be cut and resumed several times, saw ${streams.length} requests`);
  // Every reconnect resumed from the last event the page had (none before the first event).
  const lastEventIds = (await Promise.all(streams.slice(1).map(({ headers }) => headers())))
    .map((headers) => headers['last-event-id']).filter(Boolean).map(Number);
  assert.ok(lastEventIds.length > 0, 'reconnects carried Last-Event-ID');
  assert.deepEqual(lastEventIds, [...lastEventIds].sort((a, b) => a - b), 'resume points only move forward');
  const reconnects = Number(await page.getByTestId('stream-state').getAttribute('data-reconnects'));
  assert.ok(reconnects >= 3, `page counted ${reconnects} reconnects`);
  assert.deepEqual(pageErrors, []);
});

test('the dashboard shows a worker session to its last event, after the session ended', { timeout: 60_000 }, async (t) => {
  // The worker's subprocess.exit is recorded after the close ended the session, when its follow
  // stream has already sent `done`: the page replays from its last event to show it anyway.
  const demoAgent = join(here, '..', '..', 'examples', 'workers', 'demo-agent.sh');
  const { api, page, pageErrors } = await openDashboard(t, ['--worker-command', demoAgent]);
  await signIn(page);
  const sessionId = await api.openSession('worker-demo');
  await openSessionInPage(page, sessionId);
  await eventRow(page, 'subprocess.stdout', 'demo agent ready').waitFor({ timeout: WAIT_MS });
  await page.getByLabel('Follow-up message').fill('hello agent');
  await page.getByRole('button', { name: 'Send follow-up' }).click();
  await eventRow(page, 'subprocess.stdout', 'received: hello agent').waitFor({ timeout: WAIT_MS });
  await page.getByRole('button', { name: 'Close session' }).click();
  await page.locator('[data-testid="stream-state"][data-state="ended"]').waitFor({ timeout: WAIT_MS });
  await eventRow(page, 'subprocess.exit', 'killed by signal').waitFor({ timeout: WAIT_MS });
  assert.deepEqual((await shownEvents(page)).map(([seq, type]) => [seq, type]), [
    [1, 'subprocess.stdout'], [2, 'followup'], [3, 'subprocess.stdout'], [4, 'subprocess.exit'],
  ]);
  assert.match(await page.getByTestId('counter-worker-value').textContent(), /running/);
  assert.deepEqual(pageErrors, []);
});
