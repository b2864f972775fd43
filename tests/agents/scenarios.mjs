// The scenarios every real agent goes through the gateway, each in its own workspace (so they
// may run side by side on one gateway): a plain turn, a tool call whose permission the API
// grants, one it refuses, a cancelled slow turn, and follow-ups queued behind a turn that waits
// for a permission.

import assert from 'node:assert/strict';

import { FINAL_TEXT, HELLO_TEXT } from './fake_model_server.mjs';
import { fileIn, messageText, turnPrompts } from './harness.mjs';

const STATES = ['starting', 'idle', 'prompting', 'awaiting_permission', 'exited'];

// Every scenario ends here: the real agent said nothing the client took for a protocol error,
// then the session is closed.
async function closeClean(h, id) {
  const errors = (await h.api.events(id)).filter((e) => e.event_type === 'agent.protocol_error');
  assert.deepEqual(errors.map((e) => e.message), [], 'the agent client reported protocol errors');
  await h.api.close(id);
}

// The snapshot's agent.pending_permissions: the pending requests (a count, if it ever is one).
const pendingCount = (agent) =>
  Array.isArray(agent.pending_permissions) ? agent.pending_permissions.length : agent.pending_permissions;

export async function plainTurn(h, agent, workspaceId) {
  const session = await h.api.open(workspaceId, agent, 'say hello');
  assert.equal(session.agent?.name, agent, JSON.stringify(session));
  assert.ok(STATES.includes(session.agent.state), `state ${session.agent.state}`);
  const id = session.session_id;
  await h.api.waitForTurnEnd(id, 1);
  const events = await h.api.events(id);
  assert.deepEqual(turnPrompts(events), ['say hello']);
  assert.ok(messageText(events, 1).includes(HELLO_TEXT), `turn 1 said ${JSON.stringify(messageText(events, 1))}`);
  const ended = events.find((e) => e.event_type === 'agent.turn_ended');
  assert.equal(typeof ended.data.stop_reason, 'string');
  const after = await h.api.session(id);
  assert.equal(after.agent.turns_completed, 1);
  assert.equal(after.agent.state, 'idle');
  await closeClean(h, id);
}

// Waits for the session's first permission request and answers it with the option of `kind`
// (allow_once or reject_once) through the API; resolves to the request as listed.
async function answerPermission(h, id, kind) {
  const requested = await h.api.waitForEvent(id, 'agent.permission_requested');
  const { permissions, session } = await h.api.permissions(id);
  assert.equal(session.agent.state, 'awaiting_permission');
  assert.equal(pendingCount(session.agent), 1);
  assert.equal(permissions.length, 1, JSON.stringify(permissions));
  const [request] = permissions;
  assert.equal(request.request_id, requested.data.request_id);
  const option = request.options.find((o) => o.kind === kind);
  assert.ok(option, `no ${kind} option among ${JSON.stringify(request.options)}`);
  const answer = await h.api.answer(id, request.request_id, option.option_id);
  assert.equal(answer.outcome, 'selected');
  assert.equal(answer.option_id, option.option_id);
  const resolved = await h.api.waitForEvent(id, 'agent.permission_resolved', (d) => d.request_id === request.request_id);
  assert.equal(resolved.data.outcome, 'selected');
  assert.equal(resolved.data.by, 'api');
  return request;
}

export async function approvedToolCall(h, agent, workspaceId) {
  const { session_id: id } = await h.api.open(workspaceId, agent, 'write the file approved.txt');
  const request = await answerPermission(h, id, 'allow_once');
  assert.equal(request.tool_call.kind, 'execute', JSON.stringify(request.tool_call));
  await h.api.waitForTurnEnd(id, 1);
  assert.ok(fileIn(h, workspaceId, 'approved.txt'), 'the approved command did not create approved.txt');
  const events = await h.api.events(id);
  assert.ok(events.some((e) => e.event_type === 'agent.tool_call'), 'no agent.tool_call event');
  assert.ok(
    events.some((e) => e.event_type === 'agent.tool_call_update' && e.data?.status === 'completed'),
    'no completed agent.tool_call_update',
  );
  assert.ok(messageText(events, 1).includes(FINAL_TEXT), `turn 1 said ${JSON.stringify(messageText(events, 1))}`);
  await closeClean(h, id);
}

export async function rejectedToolCall(h, agent, workspaceId) {
  const { session_id: id } = await h.api.open(workspaceId, agent, 'write the file rejected.txt');
  await answerPermission(h, id, 'reject_once');
  await h.api.waitForTurnEnd(id, 1);
  assert.ok(!fileIn(h, workspaceId, 'rejected.txt'), 'the rejected command ran: rejected.txt exists');
  const session = await h.api.session(id);
  assert.equal(pendingCount(session.agent), 0);
  await closeClean(h, id);
}

// Cancels a turn whose model streams a little and then stalls; resolves to its agent.turn_ended.
export async function cancelledSlowTurn(h, agent, workspaceId) {
  const { session_id: id } = await h.api.open(workspaceId, agent, 'be slow');
  // The model has answered (and stalls): the turn is under way in the agent.
  await h.api.waitFor(id, 'the slow model request', () =>
    h.model.requests.some((r) => r.kind === 'slow' && r.lastUserText.includes('be slow')),
  );
  await h.api.waitForEvent(id, 'agent.turn_started');
  const answer = await h.api.cancel(id);
  assert.equal(answer.cancelled, true, JSON.stringify(answer));
  const ended = await h.api.waitForTurnEnd(id, 1);
  const session = await h.api.session(id);
  assert.notEqual(session.agent.state, 'prompting');
  // The agent still works: the next turn is answered.
  await h.api.followup(id, 'say hello');
  await h.api.waitForTurnEnd(id, 2);
  assert.ok(messageText(await h.api.events(id), 2).includes(HELLO_TEXT));
  await closeClean(h, id);
  return ended;
}

// Two follow-ups posted while turn 1 waits for a permission run as turns 2 and 3, in order.
export async function followupsInOrder(h, agent, workspaceId) {
  const { session_id: id } = await h.api.open(workspaceId, agent, 'write the file blocker.txt');
  await h.api.waitForEvent(id, 'agent.permission_requested');
  await h.api.followup(id, 'say hello first');
  await h.api.followup(id, 'say hello second');
  const session = await h.api.session(id);
  assert.equal(session.queued_followups, 2, JSON.stringify(session));
  await answerPermission(h, id, 'allow_once');
  await h.api.waitForTurnEnd(id, 3);
  const events = await h.api.events(id);
  assert.deepEqual(turnPrompts(events), ['write the file blocker.txt', 'say hello first', 'say hello second']);
  assert.ok(messageText(events, 2).includes(HELLO_TEXT));
  assert.ok(messageText(events, 3).includes(HELLO_TEXT));
  // Each turn starts after the previous one ended.
  const order = events
    .filter((e) => e.event_type === 'agent.turn_started' || e.event_type === 'agent.turn_ended')
    .map((e) => `${e.event_type === 'agent.turn_started' ? 'start' : 'end'}:${e.data.turn}`);
  assert.deepEqual(order, ['start:1', 'end:1', 'start:2', 'end:2', 'start:3', 'end:3']);
  await closeClean(h, id);
}
