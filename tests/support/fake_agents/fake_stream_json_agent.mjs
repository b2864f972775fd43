#!/usr/bin/env node
// A scripted agent speaking Claude Code's stream-json on stdio, for the gateway's tests. Each
// `user` line is a turn; what it does depends on the text:
//   hello        an assistant message "Hello, world", then a result (end_turn)
//   echo TEXT    an assistant message TEXT, then a result
//   write NAME   a Write tool_use that asks permission (control_request can_use_tool); allowed:
//                writes NAME in its working directory; denied: does not
//   slow         an assistant message, then waits for a control_request interrupt
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const send = (message) => process.stdout.write(JSON.stringify(message) + '\n');
const sessionId = `fake-stream-${process.pid}`;
let initialized = false;
let messages = 0;
let pendingPermission = null; // resolves with the control_response's decision
let interrupted = null;

const assistant = (content) =>
  send({
    type: 'assistant',
    session_id: sessionId,
    message: { id: `msg_${++messages}`, role: 'assistant', content },
  });
const result = (stopReason, subtype = 'success') =>
  send({
    type: 'result',
    subtype,
    is_error: subtype !== 'success',
    stop_reason: stopReason,
    session_id: sessionId,
    usage: { input_tokens: 10, output_tokens: 5 },
    total_cost_usd: 0.0001,
  });

async function turn(text) {
  if (!initialized) {
    initialized = true;
    send({ type: 'system', subtype: 'init', session_id: sessionId, cwd: process.cwd(), tools: ['Write'] });
  }
  if (text === 'hello') {
    assistant([{ type: 'text', text: 'Hello, world' }]);
    return result('end_turn');
  }
  if (text.startsWith('echo ')) {
    assistant([{ type: 'text', text: text.slice(5) }]);
    return result('end_turn');
  }
  if (text.startsWith('write ')) {
    const name = text.slice(6).trim();
    const input = { file_path: join(process.cwd(), name), content: 'written by the fake agent\n' };
    assistant([{ type: 'tool_use', id: 'toolu_1', name: 'Write', input }]);
    send({
      type: 'control_request',
      request_id: 'perm-1',
      request: { subtype: 'can_use_tool', tool_name: 'Write', input, tool_use_id: 'toolu_1' },
    });
    const decision = await new Promise((resolve) => (pendingPermission = resolve));
    pendingPermission = null;
    const allowed = decision?.behavior === 'allow';
    if (allowed) writeFileSync(decision.updatedInput.file_path, decision.updatedInput.content);
    send({
      type: 'user',
      session_id: sessionId,
      message: {
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: 'toolu_1', is_error: !allowed, content: allowed ? 'ok' : 'denied' }],
      },
    });
    assistant([{ type: 'text', text: allowed ? `wrote ${name}` : 'not allowed' }]);
    return result('end_turn');
  }
  if (text === 'slow') {
    assistant([{ type: 'text', text: 'working' }]);
    await new Promise((resolve) => (interrupted = resolve));
    interrupted = null;
    return result(null, 'error_during_execution');
  }
  assistant([{ type: 'text', text: `unknown prompt: ${text}` }]);
  return result('end_turn');
}

let queue = Promise.resolve();
createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  const message = JSON.parse(line);
  if (message.type === 'user') {
    const text = message.message.content.map((block) => block.text || '').join('');
    queue = queue.then(() => turn(text));
  } else if (message.type === 'control_response') {
    if (pendingPermission) pendingPermission(message.response.response);
  } else if (message.type === 'control_request' && message.request?.subtype === 'interrupt') {
    send({ type: 'control_response', response: { subtype: 'success', request_id: message.request_id } });
    if (interrupted) interrupted();
  }
});
