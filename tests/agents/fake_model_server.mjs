// A fake model server on loopback for the real-agent tests: OpenAI-compatible chat completions
// (what OpenCode's @ai-sdk/openai-compatible provider calls) and Anthropic messages (what Claude
// Code calls), both streamed, both driven by one scenario script keyed on the latest user text.
//
//   const model = await startFakeModelServer();     // DEFAULT_SCRIPT
//   model.baseUrl   // http://127.0.0.1:PORT  (OpenAI: baseUrl + '/v1', Anthropic: baseUrl)
//   model.requests  // every request: {path, api, model, kind, lastUserText, action, stream}
//   await model.close();
//
// A conversation turn is decided from the request's messages:
// - a request without tools is a side call (OpenCode's title, Claude Code's small-model calls):
//   a short plain answer;
// - a request whose last message carries a tool result: the short final text FINAL_TEXT;
// - otherwise the first rule of the script whose `match` (RegExp or substring) matches the
//   latest user text decides: {text} streams that text, {writeFile: NAME or fn(match) -> NAME}
//   asks the agent's shell tool to create NAME in its working directory, {slow: true} streams a
//   few pieces and then never finishes (until the client goes away).

import { createServer } from 'node:http';

export const HELLO_TEXT = 'hello from the fake model';
export const FINAL_TEXT = 'the fake model is done with the tool';
export const SIDE_TEXT = 'Fake title';
export const SLOW_TEXT = 'thinking slowly';

export const DEFAULT_SCRIPT = [
  { match: /say hello/i, text: HELLO_TEXT },
  { match: /write the file ([A-Za-z0-9._-]+)/i, writeFile: (m) => m[1] },
  { match: /be slow/i, slow: true },
  { match: /.*/, text: 'the fake model has nothing scripted for that' },
];

// The text of one message's content: a string, or an array of parts/blocks with `text`.
function contentText(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .filter((part) => part && (part.type === 'text' || part.type === 'input_text') && typeof part.text === 'string')
    .map((part) => part.text)
    .join('\n');
}

function hasToolResult(message) {
  if (!message) return false;
  if (message.role === 'tool') return true; // OpenAI
  return Array.isArray(message.content) && message.content.some((block) => block?.type === 'tool_result');
}

function toolResultText(message) {
  if (message.role === 'tool') return contentText(message.content);
  const block = message.content.find((b) => b?.type === 'tool_result');
  return typeof block.content === 'string' ? block.content : contentText(block.content);
}

// What a user message asks, without what the agent adds around it: Claude Code's
// <system-reminder> blocks and its "[Request interrupted by user]" notes, which it sends in the
// same message as the next prompt (and as a tool result).
function promptText(message) {
  if (!message || message.role !== 'user') return '';
  if (typeof message.content === 'string') return message.content;
  if (!Array.isArray(message.content)) return '';
  return message.content
    .filter((part) => part && (part.type === 'text' || part.type === 'input_text') && typeof part.text === 'string')
    .map((part) =>
      part.text
        .replace(/<system-reminder>[\s\S]*?<\/system-reminder>/g, '')
        .replace(/\[Request interrupted[^\]]*\]/g, '')
        .trim(),
    )
    .filter((text) => text !== '')
    .join('\n');
}

// What to answer: {kind, action, lastUserText}.
function decide(script, body) {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const prompts = messages.filter((m) => promptText(m).trim() !== '');
  const lastUserText = prompts.length ? promptText(prompts[prompts.length - 1]) : '';
  const last = messages[messages.length - 1];
  if (!Array.isArray(body.tools) || body.tools.length === 0) {
    return { kind: 'side', action: { text: SIDE_TEXT }, lastUserText };
  }
  if (hasToolResult(last) && promptText(last).trim() === '') {
    return { kind: 'after_tool', action: { text: FINAL_TEXT }, lastUserText, toolResult: toolResultText(last) };
  }
  for (const rule of script) {
    const match =
      rule.match instanceof RegExp ? rule.match.exec(lastUserText) : lastUserText.includes(rule.match) ? [rule.match] : null;
    if (!match) continue;
    if (rule.writeFile) {
      const file = typeof rule.writeFile === 'function' ? rule.writeFile(match) : rule.writeFile;
      return { kind: 'tool', action: { writeFile: file }, lastUserText };
    }
    return { kind: rule.slow ? 'slow' : 'text', action: rule, lastUserText };
  }
  return { kind: 'text', action: { text: '' }, lastUserText };
}

// The shell tool the agent offers and the arguments that create `file` in its cwd.
function shellCall(tools, file, api) {
  const names = tools.map((t) => (api === 'openai' ? t.function?.name : t.name));
  const command = `echo hi > ${file}`;
  for (const name of ['bash', 'Bash', 'shell']) {
    if (names.includes(name)) return { name, input: { command, description: `Create ${file}` } };
  }
  throw new Error(`no shell tool among ${names.join(', ')}`);
}

function chunks(text, n = 3) {
  const size = Math.max(1, Math.ceil(text.length / n));
  const out = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

let counter = 0;
const nextId = (prefix) => `${prefix}_${Date.now().toString(36)}${(++counter).toString(36)}`;

function startSse(res) {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
  res.flushHeaders();
}

// ---- OpenAI chat completions ----

function openaiStream(res, body, decision) {
  const id = nextId('chatcmpl');
  const model = body.model ?? 'fake';
  const send = (delta, finish = null, extra = {}) =>
    res.write(
      `data: ${JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created: Math.floor(Date.now() / 1000),
        model,
        choices: [{ index: 0, delta, finish_reason: finish }],
        ...extra,
      })}\n\n`,
    );
  const usage = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };
  startSse(res);
  send({ role: 'assistant', content: '' });
  const { action } = decision;
  if (action.writeFile) {
    const call = shellCall(body.tools, action.writeFile, 'openai');
    const args = JSON.stringify(call.input);
    send({ tool_calls: [{ index: 0, id: nextId('call'), type: 'function', function: { name: call.name, arguments: '' } }] });
    for (const piece of chunks(args)) send({ tool_calls: [{ index: 0, function: { arguments: piece } }] });
    send({}, 'tool_calls');
  } else if (action.slow) {
    for (const piece of chunks(SLOW_TEXT)) send({ content: piece });
    return; // never finishes: the response stays open until the client goes away
  } else {
    for (const piece of chunks(action.text)) send({ content: piece });
    send({}, 'stop');
  }
  res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', model, choices: [], usage })}\n\n`);
  res.end('data: [DONE]\n\n');
}

function openaiJson(res, body, decision) {
  const message = { role: 'assistant', content: decision.action.text ?? SIDE_TEXT };
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(
    JSON.stringify({
      id: nextId('chatcmpl'),
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model ?? 'fake',
      choices: [{ index: 0, message, finish_reason: 'stop' }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    }),
  );
}

// ---- Anthropic messages ----

function anthropicStream(res, body, decision) {
  const send = (type, data) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  startSse(res);
  send('message_start', {
    message: {
      id: nextId('msg'),
      type: 'message',
      role: 'assistant',
      model: body.model ?? 'fake',
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 10, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    },
  });
  const textBlock = (index, text) => {
    send('content_block_start', { index, content_block: { type: 'text', text: '' } });
    for (const piece of chunks(text)) send('content_block_delta', { index, delta: { type: 'text_delta', text: piece } });
  };
  const { action } = decision;
  let stopReason = 'end_turn';
  if (action.writeFile) {
    const call = shellCall(body.tools, action.writeFile, 'anthropic');
    send('content_block_start', { index: 0, content_block: { type: 'tool_use', id: nextId('toolu'), name: call.name, input: {} } });
    for (const piece of chunks(JSON.stringify(call.input)))
      send('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: piece } });
    send('content_block_stop', { index: 0 });
    stopReason = 'tool_use';
  } else if (action.slow) {
    textBlock(0, SLOW_TEXT);
    return; // never finishes
  } else {
    textBlock(0, action.text);
    send('content_block_stop', { index: 0 });
  }
  send('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: 5 } });
  send('message_stop', {});
  res.end();
}

function anthropicJson(res, body, decision) {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(
    JSON.stringify({
      id: nextId('msg'),
      type: 'message',
      role: 'assistant',
      model: body.model ?? 'fake',
      content: [{ type: 'text', text: decision.action.text ?? SIDE_TEXT }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: 10, output_tokens: 5 },
    }),
  );
}

// Starts the server on 127.0.0.1:0; resolves to {port, baseUrl, requests, close()}.
// Options: {log: true} (or FAKE_MODEL_LOG=1) prints each request on stderr.
export async function startFakeModelServer(script = DEFAULT_SCRIPT, { log = !!process.env.FAKE_MODEL_LOG } = {}) {
  const requests = [];
  const sockets = new Set();
  const server = createServer((req, res) => {
    const chunksIn = [];
    req.on('data', (c) => chunksIn.push(c));
    req.on('end', () => {
      const path = new URL(req.url, 'http://127.0.0.1').pathname;
      let body = {};
      try {
        body = chunksIn.length ? JSON.parse(Buffer.concat(chunksIn).toString('utf8')) : {};
      } catch {
        body = {};
      }
      const api = path.endsWith('/chat/completions') ? 'openai' : path.endsWith('/messages') ? 'anthropic' : null;
      const entry = { at: Date.now(), method: req.method, path, api, model: body.model, stream: !!body.stream };
      requests.push(entry);
      if (!api || req.method !== 'POST') {
        entry.kind = 'unknown';
        if (log) console.error(`[fake-model] ${req.method} ${req.url} -> 404`);
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { type: 'not_found_error', message: `no ${req.method} ${path} here` } }));
        return;
      }
      let decision;
      try {
        decision = decide(script, body);
        if (decision.action.writeFile) shellCall(body.tools, decision.action.writeFile, api); // throws when none
      } catch (error) {
        entry.kind = 'error';
        entry.error = error.message;
        res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { type: 'invalid_request_error', message: error.message } }));
        return;
      }
      Object.assign(entry, {
        kind: decision.kind,
        lastUserText: decision.lastUserText.slice(-300),
        toolResult: decision.toolResult?.slice(0, 300),
        tools: (body.tools ?? []).length,
      });
      if (log) {
        console.error(
          `[fake-model] ${path} model=${body.model} stream=${!!body.stream} tools=${entry.tools} kind=${decision.kind} ` +
            `last_user=${JSON.stringify(entry.lastUserText.slice(-120))}` +
            (entry.toolResult !== undefined ? ` tool_result=${JSON.stringify(entry.toolResult.slice(0, 120))}` : ''),
        );
      }
      res.on('close', () => {
        entry.closedAt = Date.now();
      });
      if (api === 'openai') (body.stream ? openaiStream : openaiJson)(res, body, decision);
      else (body.stream ? anthropicStream : anthropicJson)(res, body, decision);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

// By hand: `node fake_model_server.mjs` serves until interrupted, logging each request.
if (import.meta.url === `file://${process.argv[1]}`) {
  const model = await startFakeModelServer(DEFAULT_SCRIPT, { log: true });
  console.error(`fake model server on ${model.baseUrl}`);
}
