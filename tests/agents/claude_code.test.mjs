// Claude Code (`claude -p` speaking stream-json, pinned in package-lock.json) run by the gateway
// against the fake model server on loopback: every scenario of scenarios.mjs. They share one
// gateway and run side by side, each in its own workspace.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startAgentGateway } from './harness.mjs';
import * as scenarios from './scenarios.mjs';

const AGENT = 'claude';
const TIMEOUT = { timeout: 90_000 };

describe('Claude Code through the gateway', { concurrency: 3 }, () => {
  let h;
  before(async () => {
    h = await startAgentGateway([AGENT]);
  });
  after(() => h?.stop());

  it('answers a plain turn', TIMEOUT, () => scenarios.plainTurn(h, AGENT, 'cc-plain'));
  it('runs a tool call whose permission the API grants', TIMEOUT, () =>
    scenarios.approvedToolCall(h, AGENT, 'cc-approve'));
  it('does not run a tool call whose permission the API refuses', TIMEOUT, () =>
    scenarios.rejectedToolCall(h, AGENT, 'cc-reject'));
  it('cancels a slow turn', TIMEOUT, async () => {
    const ended = await scenarios.cancelledSlowTurn(h, AGENT, 'cc-cancel');
    // Claude Code ends an interrupted turn with subtype error_during_execution (stop_reason
    // null); the gateway may report that or `cancelled`.
    assert.ok(['cancelled', 'error_during_execution'].includes(ended.data.stop_reason), ended.data.stop_reason);
  });
  it('delivers follow-ups posted during a turn as the next turns, in order', TIMEOUT, () =>
    scenarios.followupsInOrder(h, AGENT, 'cc-followups'));
});
