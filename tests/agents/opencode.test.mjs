// OpenCode (`opencode acp`, pinned in package-lock.json) run by the gateway over ACP against the
// fake model server on loopback: every scenario of scenarios.mjs, then a resume across a gateway
// restart. The scenarios share one gateway, each in its own workspace, one after the other: an
// OpenCode start costs seconds of CPU (about 3 s to initialize alone here), and three at once on
// two cores took 12 s each, so side by side the file ran longer (49 s) than in turn (31 s).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { HELLO_TEXT } from './fake_model_server.mjs';
import { messageText, startAgentGateway } from './harness.mjs';
import * as scenarios from './scenarios.mjs';

const AGENT = 'opencode';
const TIMEOUT = { timeout: 90_000 };

describe('OpenCode through the gateway', { concurrency: 1 }, () => {
  let h;
  before(async () => {
    h = await startAgentGateway([AGENT]);
  });
  after(() => h?.stop());

  it('answers a plain turn', TIMEOUT, () => scenarios.plainTurn(h, AGENT, 'oc-plain'));
  it('runs a tool call whose permission the API grants', TIMEOUT, () =>
    scenarios.approvedToolCall(h, AGENT, 'oc-approve'));
  it('does not run a tool call whose permission the API refuses', TIMEOUT, () =>
    scenarios.rejectedToolCall(h, AGENT, 'oc-reject'));
  it('cancels a slow turn', TIMEOUT, async () => {
    const ended = await scenarios.cancelledSlowTurn(h, AGENT, 'oc-cancel');
    assert.equal(ended.data.stop_reason, 'cancelled');
  });
  it('delivers follow-ups posted during a turn as the next turns, in order', TIMEOUT, () =>
    scenarios.followupsInOrder(h, AGENT, 'oc-followups'));
});

// The gateway stops (SIGTERM) in the middle of a turn with a follow-up queued; a new gateway on
// the same state dir reloads the OpenCode session (session/load), says so with agent.resumed,
// and delivers the queued follow-up.
describe('OpenCode across a gateway restart', () => {
  let h;
  before(async () => {
    h = await startAgentGateway([AGENT]);
  });
  after(() => h?.stop());

  it('resumes the session and answers the queued follow-up', TIMEOUT, async () => {
    const { session_id: id } = await h.api.open('oc-restart', AGENT, 'say hello');
    await h.api.waitForTurnEnd(id, 1);
    await h.api.followup(id, 'be slow');
    await h.api.waitFor(id, 'the slow model request', () => h.model.requests.some((r) => r.kind === 'slow'));
    await h.api.followup(id, 'say hello after the restart');

    await h.restart();
    const resumed = await h.api.waitForEvent(id, 'agent.resumed');
    const started = await h.api.waitForEvent(id, 'agent.turn_started', (d) => d.prompt === 'say hello after the restart');
    assert.ok(started.sequence_id > resumed.sequence_id);
    await h.api.waitForTurnEnd(id, started.data.turn);
    assert.ok(messageText(await h.api.events(id), started.data.turn).includes(HELLO_TEXT));
    const session = await h.api.session(id);
    assert.equal(session.agent.state, 'idle');
    await h.api.close(id);
  });
});
