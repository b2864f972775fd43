// Minimal drivers for the real agents without the gateway: ACP (JSON-RPC 2.0, one object per
// line) to `opencode acp`, stream-json to `claude -p`. Every line both ways is kept in `log` (and
// printed with WIRE_LOG=1), which is how the wire shapes in README.md were recorded.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

function spawnAgent({ command, args, env }, cwd) {
  const started = Date.now();
  const child = spawn(command, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
  const log = [];
  const stderr = [];
  const print = !!process.env.WIRE_LOG;
  const record = (dir, line) => {
    log.push({ dir, t: Date.now() - started, line });
    if (print) console.error(`${dir} +${Date.now() - started}ms ${line}`);
  };
  createInterface({ input: child.stderr }).on('line', (line) => {
    stderr.push(line);
    if (print) console.error(`ERR ${line}`);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const send = (message) => {
    const line = JSON.stringify(message);
    record('>>', line);
    child.stdin.write(`${line}\n`);
  };
  const kill = async (signal = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    const status = await exited;
    clearTimeout(timer);
    return status;
  };
  return { child, log, stderr, record, send, exited, kill, started };
}

// ACP client: request(method, params) -> result; onRequest(method, handler); onNotification.
export function startAcp(agent, cwd) {
  const proc = spawnAgent(agent, cwd);
  let nextId = 1;
  const pending = new Map();
  const requestHandlers = new Map();
  const notifications = [];
  const waiters = [];
  createInterface({ input: proc.child.stdout }).on('line', async (line) => {
    proc.record('<<', line);
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      return;
    }
    if (message.id !== undefined && message.method === undefined) {
      const entry = pending.get(message.id);
      pending.delete(message.id);
      if (entry) (message.error ? entry.reject : entry.resolve)(message.error ?? message.result);
      if (message.error && entry) entry.error = message.error;
      return;
    }
    if (message.id !== undefined) {
      const handler = requestHandlers.get(message.method);
      if (!handler) {
        proc.send({ jsonrpc: '2.0', id: message.id, error: { code: -32601, message: 'Method not found' } });
        return;
      }
      const result = await handler(message.params, message);
      if (result !== undefined) proc.send({ jsonrpc: '2.0', id: message.id, result });
      return;
    }
    notifications.push(message);
    for (const w of [...waiters]) w();
  });
  const request = (method, params) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      proc.send({ jsonrpc: '2.0', id, method, params });
    });
  const notify = (method, params) => proc.send({ jsonrpc: '2.0', method, params });
  const waitFor = (predicate, timeoutMs = 30000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = notifications.find(predicate);
        if (found) {
          waiters.splice(waiters.indexOf(check), 1);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(check), 1);
        reject(new Error('timed out waiting for a notification'));
      }, timeoutMs);
      waiters.push(check);
      check();
    });
  return {
    ...proc,
    request,
    notify,
    notifications,
    waitFor,
    onRequest: (method, handler) => requestHandlers.set(method, handler),
    respond: (id, result) => proc.send({ jsonrpc: '2.0', id, result }),
  };
}

// stream-json client to `claude -p`: messages (every parsed output line), userMessage(text),
// waitFor(predicate), onControlRequest(handler) answering can_use_tool.
export function startClaude(agent, cwd) {
  const proc = spawnAgent(agent, cwd);
  const messages = [];
  const waiters = [];
  let controlHandler = null;
  createInterface({ input: proc.child.stdout }).on('line', async (line) => {
    proc.record('<<', line);
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      return;
    }
    messages.push(message);
    if (message.type === 'control_request' && controlHandler) {
      const response = await controlHandler(message.request, message);
      if (response !== undefined) {
        proc.send({
          type: 'control_response',
          response: { subtype: 'success', request_id: message.request_id, response },
        });
      }
    }
    for (const w of [...waiters]) w();
  });
  const waitFor = (predicate, timeoutMs = 30000, from = 0) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = messages.slice(from).find(predicate);
        if (found) {
          waiters.splice(waiters.indexOf(check), 1);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(check), 1);
        reject(new Error('timed out waiting for a message'));
      }, timeoutMs);
      waiters.push(check);
      check();
    });
  let controlId = 0;
  return {
    ...proc,
    messages,
    waitFor,
    userMessage: (text) =>
      proc.send({ type: 'user', message: { role: 'user', content: [{ type: 'text', text }] }, parent_tool_use_id: null, session_id: '' }),
    control: (request) => proc.send({ type: 'control_request', request_id: `req_${++controlId}`, request }),
    onControlRequest: (handler) => {
      controlHandler = handler;
    },
  };
}
