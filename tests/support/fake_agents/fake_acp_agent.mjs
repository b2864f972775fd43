#!/usr/bin/env node
// A scripted ACP agent for the gateway's tests: JSON-RPC 2.0, one message per line on stdio.
// What it does in a turn depends on the prompt's text:
//   hello        streams "Hello, world" in three chunks, ends the turn (end_turn)
//   echo TEXT    answers TEXT, ends the turn
//   write NAME   a tool call that asks permission (request id 0); allowed: writes NAME in its
//                working directory; refused or cancelled: does not
//   slow         streams one chunk, then waits for session/cancel (stopReason cancelled)
//   garbage      a line that is not JSON, a response to an id nobody asked, a line of
//                FAKE_LONG_LINE_BYTES (default 200000) bytes, a request of an unknown method
//                (expects -32601), then ends the turn
//   exit         exits with code 3 in the middle of the turn
// Environment: FAKE_ACP_NO_INITIALIZE=1 never answers initialize; FAKE_ACP_LOAD_SESSION=1
// advertises loadSession and accepts session/load (replaying "old history" first).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const send = (message) => process.stdout.write(JSON.stringify({ jsonrpc: '2.0', ...message }) + '\n');
const update = (sessionId, update) =>
  send({ method: 'session/update', params: { sessionId, update } });
const chunk = (sessionId, text) =>
  update(sessionId, { sessionUpdate: 'agent_message_chunk', content: { type: 'text', text } });

let cwd = process.cwd();
let nextOwnId = 100;
const waiting = new Map(); // our request id -> resolve(response)
let cancelTurn = null; // resolves when session/cancel arrives during a slow turn

function request(method, params, id = nextOwnId++) {
  return new Promise((resolve) => {
    waiting.set(JSON.stringify(id), resolve);
    send({ id, method, params });
  });
}

async function prompt(id, params) {
  const sessionId = params.sessionId;
  const text = (params.prompt || []).map((block) => block.text || '').join('');
  const end = (stopReason) => send({ id, result: { stopReason } });
  if (text === 'hello') {
    for (const piece of ['Hel', 'lo, ', 'world']) chunk(sessionId, piece);
    return end('end_turn');
  }
  if (text.startsWith('echo ')) {
    chunk(sessionId, text.slice(5));
    return end('end_turn');
  }
  if (text.startsWith('write ')) {
    const name = text.slice(6).trim();
    const toolCall = { toolCallId: 'call-1', title: `Write ${name}`, kind: 'edit', status: 'pending' };
    update(sessionId, { sessionUpdate: 'tool_call', ...toolCall });
    const response = await request(
      'session/request_permission',
      {
        sessionId,
        toolCall,
        options: [
          { optionId: 'allow', name: 'Allow once', kind: 'allow_once' },
          { optionId: 'reject', name: 'Reject', kind: 'reject_once' },
        ],
      },
      0,
    );
    const outcome = response.result?.outcome;
    if (outcome?.outcome === 'selected' && outcome.optionId === 'allow') {
      writeFileSync(join(cwd, name), 'written by the fake agent\n');
      update(sessionId, { sessionUpdate: 'tool_call_update', toolCallId: 'call-1', status: 'completed' });
      chunk(sessionId, `wrote ${name}`);
      return end('end_turn');
    }
    update(sessionId, { sessionUpdate: 'tool_call_update', toolCallId: 'call-1', status: 'failed' });
    return end(outcome?.outcome === 'cancelled' ? 'cancelled' : 'end_turn');
  }
  if (text === 'slow') {
    chunk(sessionId, 'working');
    await new Promise((resolve) => (cancelTurn = resolve));
    cancelTurn = null;
    return end('cancelled');
  }
  if (text === 'garbage') {
    process.stdout.write('this is not json\n');
    send({ id: 999, result: {} });
    process.stdout.write('x'.repeat(Number(process.env.FAKE_LONG_LINE_BYTES || 200000)) + '\n');
    const answer = await request('fs/unknown_method', { sessionId }, 'x');
    chunk(sessionId, `error ${answer.error?.code}`);
    return end('end_turn');
  }
  if (text === 'exit') {
    chunk(sessionId, 'leaving');
    setTimeout(() => process.exit(3), 10);
    return;
  }
  chunk(sessionId, `unknown prompt: ${text}`);
  return end('end_turn');
}

function onMessage(message) {
  if (message.method === undefined) {
    const resolve = waiting.get(JSON.stringify(message.id));
    if (resolve) {
      waiting.delete(JSON.stringify(message.id));
      resolve(message);
    }
    return;
  }
  const { id, method, params = {} } = message;
  switch (method) {
    case 'initialize':
      if (process.env.FAKE_ACP_NO_INITIALIZE === '1') return;
      return send({
        id,
        result: {
          protocolVersion: 1,
          agentCapabilities: { loadSession: process.env.FAKE_ACP_LOAD_SESSION === '1' },
          authMethods: [],
        },
      });
    case 'session/new':
      cwd = params.cwd || cwd;
      return send({ id, result: { sessionId: `fake-${process.pid}` } });
    case 'session/load':
      cwd = params.cwd || cwd;
      // As ACP asks: the conversation so far is replayed before the answer.
      update(params.sessionId, { sessionUpdate: 'user_message_chunk', content: { type: 'text', text: 'old prompt' } });
      chunk(params.sessionId, 'old history');
      return send({ id, result: {} });
    case 'session/prompt':
      prompt(id, params);
      return;
    case 'session/cancel':
      if (cancelTurn) cancelTurn();
      return;
    default:
      if (id !== undefined) send({ id, error: { code: -32601, message: `no method ${method}` } });
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim()) onMessage(JSON.parse(line));
});
