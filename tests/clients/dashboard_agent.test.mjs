// The dashboard's view of an agent session, in Debian's Chromium driven headless by
// playwright-core, against the real gateway running the scripted ACP agent
// (tests/support/fake_agents/fake_acp_agent.mjs). The operator sees the agent's streamed answer
// as a conversation, answers a permission request with the agent's own option buttons (and the
// agent then writes the file), cancels a turn that would otherwise never end, and closes the
// session, after which the agent's exit still shows.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

import { SESSIONS_PATH, importClientPackage, launchChromium, startGateway } from './gateway.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const FAKE_ACP_AGENT = join(here, '..', 'support', 'fake_agents', 'fake_acp_agent.mjs');
const TOKEN = 'dashboard-agent-test-token';
// Bounds on a hang only: every wait ends as soon as its condition holds.
const WAIT_MS = 10_000;
const SCREENSHOT_DIR = process.env.TAU_SCREENSHOT_DIR || join(here, '..', '..', 'build');

// A gateway whose default agent is the fake ACP agent, with workspaces under a fresh directory.
async function startAgentGateway(t) {
  const dir = await mkdtemp(join(tmpdir(), 'tau-dashboard-agent-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const workspaceRoot = join(dir, 'ws');
  mkdirSync(workspaceRoot);
  const config = join(dir, 'gateway.toml');
  await writeFile(config, [
    `workspace-root = ${JSON.stringify(workspaceRoot)}`,
    'default_agent = "fake"',
    '[agents.fake]',
    'protocol = "acp"',
    `command = ${JSON.stringify(process.execPath)}`,
    `args = [${JSON.stringify(FAKE_ACP_AGENT)}]`,
    '',
  ].join('\n'));
  const gateway = await startGateway(['--auth-token', TOKEN, '--config', config]);
  t.after(() => gateway.stop());
  return { gateway, workspaceRoot };
}

async function openAgentSession(baseUrl, workspaceId, prompt) {
  const response = await fetch(`${baseUrl}${SESSIONS_PATH}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ workspace_id: workspaceId, prompt }),
  });
  const text = await response.text();
  assert.ok(response.ok, `open answered ${response.status}: ${text}`);
  const { session } = JSON.parse(text);
  assert.equal(session.agent?.name, 'fake', `an agent session: ${text}`);
  return session.session_id;
}

// Polls `condition` until it holds (for what the page cannot show, like a file on disk).
async function waitUntil(condition, what) {
  const deadline = Date.now() + WAIT_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

test('the dashboard shows an agent session as a conversation and answers it', { timeout: 60_000 }, async (t) => {
  const started = Date.now();
  const { gateway, workspaceRoot } = await startAgentGateway(t);
  const { chromium } = await importClientPackage('playwright-core');
  const browser = await launchChromium(chromium);
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const pageErrors = [];
  const consoleErrors = [];
  const detailRequests = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('request', (request) => {
    if (request.method() === 'GET' && /\/sessions\/eca_[0-9a-f]+$/.test(new URL(request.url()).pathname)) {
      detailRequests.push(Date.now());
    }
  });
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  await page.goto(`${gateway.baseUrl}/dashboard`);
  await page.getByLabel('Bearer token').fill(TOKEN);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByTestId('counter-active-sessions').waitFor({ timeout: WAIT_MS });

  // Opened with a prompt through the API; the page shows the agent and its answer.
  const sessionId = await openAgentSession(gateway.baseUrl, 'agent-demo', 'hello');
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.locator(`tr[data-session-id="${sessionId}"]`).getByTestId('open-session').click({ timeout: WAIT_MS });
  await page.locator('[data-testid="stream-state"][data-state="live"]').waitFor({ timeout: WAIT_MS });

  const conversation = page.getByTestId('conversation');
  const agentState = (state) => page.locator(`[data-testid="agent-state"][data-state="${state}"]`);
  const turnEnds = conversation.getByTestId('turn-end');
  await conversation.getByTestId('agent-message').filter({ hasText: 'Hello, world' })
    .waitFor({ timeout: WAIT_MS });
  assert.equal(await conversation.getByTestId('agent-message').locator('.bubble-text').first().textContent(), 'Hello, world');
  await turnEnds.filter({ hasText: 'end turn' }).first().waitFor({ timeout: WAIT_MS });
  await agentState('idle').waitFor({ timeout: WAIT_MS });
  assert.equal(await page.getByTestId('agent-name').textContent(), 'fake');
  assert.equal(await page.getByTestId('agent-protocol').textContent(), 'acp');
  // The prompt shows once, as the turn's (its follow-up event and the turn's start are one prompt).
  const prompts = conversation.getByTestId('user-prompt');
  assert.deepEqual(await prompts.locator('.bubble-text').allTextContents(), ['hello']);
  assert.equal(await prompts.first().getAttribute('data-state'), 'sent');
  assert.ok(await page.getByRole('button', { name: 'Cancel turn' }).isDisabled(), 'no turn to cancel');
  assert.ok(await page.getByRole('button', { name: 'Drain follow-ups' }).isHidden(), 'no draining the agent\'s prompts');

  // A prompt from the page: the agent asks permission to write; its options become buttons.
  await page.getByLabel('Prompt').fill('write a.txt');
  await page.getByRole('button', { name: 'Send prompt' }).click();
  const request = conversation.getByTestId('permission-request');
  await request.getByRole('button', { name: 'Allow once' }).waitFor({ timeout: WAIT_MS });
  assert.deepEqual(await request.getByRole('button').allTextContents(), ['Allow once', 'Reject']);
  assert.match(await request.textContent(), /Write a\.txt/);
  await agentState('awaiting_permission').waitFor({ timeout: WAIT_MS });
  assert.ok(await page.getByRole('button', { name: 'Cancel turn' }).isEnabled(), 'a running turn can be cancelled');
  const toolCall = conversation.locator('[data-testid="tool-call"][data-tool-call-id="call-1"]');
  assert.equal(await toolCall.getAttribute('data-status'), 'pending');
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, 'dashboard-agent-permission.png') });

  await request.getByRole('button', { name: 'Allow once' }).click();
  await request.getByRole('button').first().waitFor({ state: 'detached', timeout: WAIT_MS });
  await request.filter({ hasText: 'Answered: Allow once (by api)' }).waitFor({ timeout: WAIT_MS });
  await conversation.locator('[data-testid="tool-call"][data-status="completed"]').waitFor({ timeout: WAIT_MS });
  assert.equal(await toolCall.getByTestId('tool-status').textContent(), 'completed');
  await conversation.getByTestId('agent-message').filter({ hasText: 'wrote a.txt' }).waitFor({ timeout: WAIT_MS });
  await waitUntil(() => turnEnds.count().then((n) => n === 2), 'the second turn to end');
  await waitUntil(() => existsSync(join(workspaceRoot, 'agent-demo', 'a.txt')), 'ws/agent-demo/a.txt');

  // Agent text is text: markup in it stays characters on the page.
  await page.getByLabel('Prompt').fill('echo <img src=x data-hostile=1><b>bold</b>');
  await page.getByRole('button', { name: 'Send prompt' }).click();
  await conversation.getByTestId('agent-message').filter({ hasText: '<b>bold</b>' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await conversation.locator('img, b').count(), 0, 'no element made from the agent\'s text');

  // A turn that waits for a cancel: Cancel turn ends it.
  await page.getByLabel('Prompt').fill('slow');
  await page.getByRole('button', { name: 'Send prompt' }).click();
  await conversation.locator('[data-testid="agent-message"] .bubble-text', { hasText: /^working$/ }).waitFor({ timeout: WAIT_MS });
  await agentState('prompting').waitFor({ timeout: WAIT_MS });
  await page.getByRole('button', { name: 'Cancel turn' }).click();
  await turnEnds.filter({ hasText: 'Turn 4 ended: cancelled' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await turnEnds.last().getAttribute('data-stop-reason'), 'cancelled');
  await agentState('idle').waitFor({ timeout: WAIT_MS });
  await page.getByTestId('agent-turns').filter({ hasText: '4 turns completed · last stop: cancelled' })
    .waitFor({ timeout: WAIT_MS });
  await waitUntil(() => page.getByRole('button', { name: 'Cancel turn' }).isDisabled(), 'Cancel turn disabled');
  assert.deepEqual(await prompts.locator('.bubble-text').allTextContents(),
    ['hello', 'write a.txt', 'echo <img src=x data-hostile=1><b>bold</b>', 'slow']);
  assert.deepEqual(await turnEnds.evaluateAll((rows) => rows.map((row) => row.dataset.stopReason)),
    ['end_turn', 'end_turn', 'end_turn', 'cancelled']);

  const screenshot = join(SCREENSHOT_DIR, 'dashboard-agent.png');
  await page.screenshot({ path: screenshot });
  t.diagnostic(`screenshots: ${screenshot}, dashboard-agent-permission.png beside it`);

  // The raw events are one tab away.
  await page.getByRole('tab', { name: 'Events' }).click();
  await page.locator('[data-testid="event"][data-type="agent.permission_resolved"]').waitFor({ timeout: WAIT_MS });
  assert.ok(await conversation.isHidden());
  await page.getByRole('tab', { name: 'Conversation' }).click();
  await conversation.waitFor({ timeout: WAIT_MS });

  // Closing stops the agent; its exit is recorded after the stream's end, and still shown.
  await page.getByRole('button', { name: 'Close session' }).click();
  await page.getByTestId('session-status').filter({ hasText: /^closed$/ }).waitFor({ timeout: WAIT_MS });
  await conversation.getByTestId('conversation-note').filter({ hasText: 'Agent exited: killed by signal' })
    .waitFor({ timeout: WAIT_MS });
  await agentState('exited').waitFor({ timeout: WAIT_MS });
  assert.ok(await page.getByRole('button', { name: 'Send prompt' }).isDisabled());
  assert.ok(await page.getByRole('button', { name: 'Cancel turn' }).isDisabled());

  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);
  // The agent's state is kept live with the session detail, asked for after the events that
  // change it, one request at a time: a few per turn, not one per event (the rate limit).
  t.diagnostic(`scenario ran in ${Date.now() - started} ms; ${detailRequests.length} detail requests`);
  assert.ok(detailRequests.length <= 20, `${detailRequests.length} detail requests`);
});

test('the dashboard opened on an agent waiting for permission offers it once, and Reject refuses', { timeout: 60_000 }, async (t) => {
  const { gateway, workspaceRoot } = await startAgentGateway(t);
  const { chromium } = await importClientPackage('playwright-core');
  const browser = await launchChromium(chromium);
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));

  // The agent is already waiting when the page first sees the session: the request comes from
  // the replay and from the snapshot, and shows once.
  const sessionId = await openAgentSession(gateway.baseUrl, 'agent-waiting', 'write b.txt');
  await page.goto(`${gateway.baseUrl}/dashboard#/sessions/${sessionId}`);
  await page.getByLabel('Bearer token').fill(TOKEN);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  const conversation = page.getByTestId('conversation');
  const request = conversation.getByTestId('permission-request');
  await request.getByRole('button', { name: 'Reject' }).waitFor({ timeout: WAIT_MS });
  await page.locator('[data-testid="agent-state"][data-state="awaiting_permission"]').waitFor({ timeout: WAIT_MS });
  await page.getByTestId('agent-turns').filter({ hasText: '1 permission request waiting' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await request.count(), 1);
  // In conversation order: the prompt, the tool call, then the request.
  assert.deepEqual(await conversation.locator('> li').evaluateAll((items) => items.map((item) => item.dataset.testid)),
    ['user-prompt', 'tool-call', 'permission-request']);

  await request.getByRole('button', { name: 'Reject' }).click();
  await request.filter({ hasText: 'Answered: Reject (by api)' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await request.getByRole('button').count(), 0);
  await conversation.locator('[data-testid="tool-call"][data-status="failed"]').waitFor({ timeout: WAIT_MS });
  await conversation.locator('[data-testid="turn-end"][data-stop-reason="end_turn"]').waitFor({ timeout: WAIT_MS });
  assert.equal(existsSync(join(workspaceRoot, 'agent-waiting', 'b.txt')), false, 'a refused write is not done');
  assert.deepEqual(pageErrors, []);
});
