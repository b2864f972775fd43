// docs/openapi.yaml against an OpenAPI 3.1 validator nobody here wrote
// (@seriousme/openapi-schema-validator, which checks the document against the official 3.1
// schema), against itself (references, operation ids, error codes), against the codes the C++
// source can answer, and against the real binary: the gateway serves the same document at
// GET /gateway/openapi.json, and what its endpoints answer fits the statuses, media types,
// headers, schemas and error codes the document gives them.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

import { importClientPackage, startGateway } from './gateway.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = join(here, '..', '..');
const OPENAPI_PATH = join(repoRoot, 'docs', 'openapi.yaml');
const OPENAPI_ROUTE = '/gateway/openapi.json';
const TOKEN = 'openapi-test-token';
const SESSIONS = '/gateway/external-coding-agent/sessions';
const SESSION = `${SESSIONS}/{session_id}`;
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const FAKE_AGENTS = join(here, '..', 'support', 'fake_agents');

// A config file with two scripted fake agents. Two, and no default_agent, so that a session
// whose open names no agent runs none (with one profile it would be the default); max_events 3
// keeps the retention the test sets with --max-events-per-session.
function fakeAgentsConfig() {
  const dir = mkdtempSync(join(tmpdir(), 'tau-gateway-openapi-'));
  const profile = (name, protocol, script) =>
    `[agents.${name}]\nprotocol = "${protocol}"\ncommand = ${JSON.stringify(process.execPath)}\n` +
    `args = [${JSON.stringify(join(FAKE_AGENTS, script))}]\nmax_events = 3\n`;
  const path = join(dir, 'gateway.toml');
  writeFileSync(
    path,
    profile('fake', 'acp', 'fake_acp_agent.mjs') +
      profile('fake-claude', 'claude-stream-json', 'fake_stream_json_agent.mjs'),
  );
  return path;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function loadDocument() {
  const { parse } = await importClientPackage('yaml');
  return parse(readFileSync(OPENAPI_PATH, 'utf8'));
}

function* operations(doc) {
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      if (item[method]) yield { path, method, operation: item[method], item };
    }
  }
}

// The object a local reference ("#/a/b") points at, or undefined.
function resolvePointer(doc, ref) {
  if (!ref.startsWith('#/')) return undefined;
  let node = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

const deref = (doc, node) => (node && typeof node.$ref === 'string' ? deref(doc, resolvePointer(doc, node.$ref)) : node);

function* refs(node, where = '#') {
  if (Array.isArray(node)) {
    for (const [i, child] of node.entries()) yield* refs(child, `${where}/${i}`);
  } else if (node !== null && typeof node === 'object') {
    for (const [key, child] of Object.entries(node)) {
      if (key === '$ref' && typeof child === 'string') yield { ref: child, where };
      else yield* refs(child, `${where}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`);
    }
  }
}

// JSON Schema 2020-12 validation of values against the document's schemas, with Ajv (strict:
// unknown keywords are errors). Component references are rewritten to one registered schema.
async function schemaChecker(doc) {
  await importClientPackage('ajv');
  const module = await import('ajv/dist/2020.js');
  const Ajv2020 = module.default.default ?? module.default;
  const ajv = new Ajv2020({ strict: true, strictTypes: false, validateFormats: false, allErrors: true });
  const rewrite = (node) =>
    JSON.parse(
      JSON.stringify(node).replaceAll('"#/components/schemas/', '"urn:tau-gateway:schemas#/$defs/'),
    );
  ajv.addSchema({ $id: 'urn:tau-gateway:schemas', $defs: rewrite(doc.components.schemas) });
  const compiled = new Map();
  const validator = (schema) => {
    const key = JSON.stringify(schema);
    if (!compiled.has(key)) compiled.set(key, ajv.compile(rewrite(schema)));
    return compiled.get(key);
  };
  return {
    compile: (schema) => validator(schema),
    // Asserts that `value` fits `schema`, naming `what` and Ajv's errors otherwise.
    check(schema, value, what) {
      const validate = validator(schema);
      assert.ok(
        validate(value),
        `${what} does not fit its schema: ${ajv.errorsText(validate.errors)}\nvalue: ${JSON.stringify(value)}`,
      );
    },
  };
}

test('docs/openapi.yaml is a valid OpenAPI 3.1 document', async () => {
  const { Validator } = await importClientPackage('@seriousme/openapi-schema-validator');
  assert.ok(Validator.supportedVersions.has('3.1'), 'the pinned validator must support OpenAPI 3.1');
  const validator = new Validator();
  const result = await validator.validate(OPENAPI_PATH);
  assert.ok(result.valid, `the validator refuses docs/openapi.yaml:\n${JSON.stringify(result.errors, null, 2)}`);
  assert.equal(validator.version, '3.1');
  assert.match(validator.specification.openapi, /^3\.1\.\d+$/);
});

test('every reference resolves, every operation has an id and documents its errors', async () => {
  const doc = await loadDocument();
  const unresolved = [...refs(doc)].filter(({ ref }) => resolvePointer(doc, ref) === undefined);
  assert.deepEqual(unresolved, [], 'references that point nowhere');

  const ids = new Set();
  const codes = new Set(doc.components.schemas.ErrorCode.enum);
  for (const { path, method, operation } of operations(doc)) {
    const name = `${method.toUpperCase()} ${path}`;
    assert.match(operation.operationId ?? '', /^[a-zA-Z][a-zA-Z0-9]*$/, `${name} has no operationId`);
    assert.ok(!ids.has(operation.operationId), `${name}: operationId ${operation.operationId} is used twice`);
    ids.add(operation.operationId);
    assert.ok(operation.responses['200'], `${name} documents no 200`);

    const isPublic = Array.isArray(operation.security) && operation.security.length === 0;
    if (!isPublic) assert.ok(operation.responses['401'], `${name} needs credentials but documents no 401`);
    if (operation.requestBody) {
      for (const status of ['400', '413', '429']) {
        assert.ok(operation.responses[status], `${name} takes a body but documents no ${status}`);
      }
    }
    for (const [status, reference] of Object.entries(operation.responses)) {
      if (Number(status) < 400) continue;
      const response = deref(doc, reference);
      const listed = response['x-error-codes'];
      assert.ok(Array.isArray(listed) && listed.length > 0, `${name} ${status} lists no x-error-codes`);
      for (const code of listed) assert.ok(codes.has(code), `${name} ${status}: ${code} is not in ErrorCode`);
      assert.ok(response.content?.['application/json']?.schema, `${name} ${status} has no JSON error schema`);
    }
  }

  // Every code is answered somewhere: by an operation, or by one of the responses any request
  // may get before it reaches one (invalid_target, not_found, method_not_allowed).
  const answered = new Set();
  for (const response of Object.values(doc.components.responses)) {
    for (const code of response['x-error-codes'] ?? []) answered.add(code);
  }
  for (const { operation } of operations(doc)) {
    for (const reference of Object.values(operation.responses)) {
      for (const code of deref(doc, reference)['x-error-codes'] ?? []) answered.add(code);
    }
  }
  assert.deepEqual([...codes].filter((code) => !answered.has(code)), [], 'codes no response lists');
});

test('schemas and examples are JSON Schema 2020-12 and agree with each other', async () => {
  const doc = await loadDocument();
  const checker = await schemaChecker(doc);
  for (const name of Object.keys(doc.components.schemas)) {
    checker.compile({ $ref: `#/components/schemas/${name}` });
  }
  // And every schema written inline: parameters, headers, bodies, SSE event data.
  const inline = [];
  const findSchemas = (node, where) => {
    if (Array.isArray(node)) node.forEach((child, i) => findSchemas(child, `${where}/${i}`));
    else if (node !== null && typeof node === 'object') {
      for (const [key, child] of Object.entries(node)) {
        if ((key === 'schema' || (key === 'data' && where.includes('x-sse-events'))) && child && typeof child === 'object') {
          inline.push({ where: `${where}/${key}`, schema: child });
        } else if (key !== 'schemas') {
          findSchemas(child, `${where}/${key}`);
        }
      }
    }
  };
  findSchemas({ paths: doc.paths, components: doc.components }, '#');
  assert.ok(inline.length > 50, `only ${inline.length} inline schemas found`);
  for (const { where, schema } of inline) {
    try {
      checker.compile(schema);
    } catch (error) {
      assert.fail(`the schema at ${where} is not valid JSON Schema 2020-12: ${error.message}`);
    }
  }
  // Each response's error codes are exactly those its schema allows.
  for (const [name, response] of Object.entries(doc.components.responses)) {
    const schema = response.content['application/json'].schema;
    for (const code of doc.components.schemas.ErrorCode.enum) {
      const envelope = { error: { type: 'invalid_request_error', code, message: 'm' } };
      const serverEnvelope = { error: { ...envelope.error, type: 'server_error' } };
      const validate = checker.compile(schema);
      const fits = validate(envelope) || validate(serverEnvelope);
      assert.equal(fits, response['x-error-codes'].includes(code), `response ${name}, code ${code}`);
    }
  }
  // Every example fits the schema beside it.
  const mediaTypes = [];
  for (const { path, method, operation } of operations(doc)) {
    for (const [status, reference] of Object.entries(operation.responses)) {
      for (const [type, media] of Object.entries(deref(doc, reference).content ?? {})) {
        mediaTypes.push({ what: `${method.toUpperCase()} ${path} ${status} ${type}`, media });
      }
    }
    for (const [type, media] of Object.entries(operation.requestBody?.content ?? {})) {
      mediaTypes.push({ what: `${method.toUpperCase()} ${path} request ${type}`, media });
    }
  }
  for (const [name, response] of Object.entries(doc.components.responses)) {
    for (const [type, media] of Object.entries(response.content ?? {})) {
      mediaTypes.push({ what: `response ${name} ${type}`, media });
    }
  }
  let examples = 0;
  for (const { what, media } of mediaTypes) {
    if (media.example !== undefined) {
      checker.check(media.schema, media.example, `the example of ${what}`);
      examples += 1;
    }
  }
  assert.ok(examples >= 10, `only ${examples} examples checked`);
});

// Error codes the C++ source answers with a literal status, and the codes of the bridge's and the
// authenticator's errors, must all be in the document, under a response of that status.
test('every error code in the source is documented with its status', async () => {
  const doc = await loadDocument();
  const sources = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.(cpp|h)$/.test(name)) sources.push(readFileSync(path, 'utf8'));
    }
  };
  walk(join(repoRoot, 'src'));
  const text = sources.join('\n');

  const byStatus = new Map();
  const note = (status, code) => byStatus.set(code, new Set([...(byStatus.get(code) ?? []), status]));
  for (const [, status, code] of text.matchAll(/(?:ApiError|error_response)\(\s*(\d{3}),\s*"([a-z_]+)"/g)) {
    note(status, code);
  }
  // The HTTP server's own refusals (before any route): refuse(stream, version, status, "code", ...).
  for (const [, status, code] of text.matchAll(/refuse\([^,]+,[^,]+,\s*(\d{3}),\s*"([a-z_]+)"/g)) {
    note(status, code);
  }
  // Errors of the session core get their status in one place (gateway/api_error.cpp,
  // http_status_of: `case core::ErrorCode::x:` lines, then `return NNN;`) and their code where
  // core::to_string names it (`case ErrorCode::x: return "code";`).
  const coreCodes = new Map(
    [...text.matchAll(/case ErrorCode::(\w+):\s*return "([a-z_]+)";/g)].map((match) => [match[1], match[2]]),
  );
  let statusedCoreErrors = 0;
  for (const [, cases, status] of text.matchAll(/((?:case core::ErrorCode::\w+:\s*)+)return (\d{3});/g)) {
    for (const [, name] of cases.matchAll(/core::ErrorCode::(\w+)/g)) {
      assert.ok(coreCodes.has(name), `core::ErrorCode::${name} has a status but no code`);
      note(status, coreCodes.get(name));
      statusedCoreErrors += 1;
    }
  }
  assert.ok(statusedCoreErrors >= 7, 'the source scan found too few statuses of core errors');
  const unstatused = [...text.matchAll(/case (?:ErrorCode|AuthFailure)::\w+:\s*return "([a-z_]+)";/g)].map(
    (match) => match[1],
  );
  assert.ok(byStatus.size >= 10 && unstatused.length >= 5, 'the source scan found too few error codes');

  const documented = new Map(); // code -> statuses whose responses list it
  const collect = (status, response) => {
    for (const code of deref(doc, response)['x-error-codes'] ?? []) {
      documented.set(code, new Set([...(documented.get(code) ?? []), status]));
    }
  };
  for (const { operation } of operations(doc)) {
    for (const [status, response] of Object.entries(operation.responses)) collect(status, response);
  }
  for (const response of Object.values(doc.components.responses)) {
    const status = /^(\d{3}) /.exec(response.description)?.[1];
    if (status) collect(status, response);
  }
  const enumCodes = new Set(doc.components.schemas.ErrorCode.enum);
  for (const [code, statuses] of byStatus) {
    assert.ok(enumCodes.has(code), `${code} is answered by the source but not in ErrorCode`);
    for (const status of statuses) {
      assert.ok(documented.get(code)?.has(status), `the source answers ${status} ${code}; no ${status} response lists it`);
    }
  }
  for (const code of unstatused) {
    assert.ok(enumCodes.has(code) && documented.has(code), `${code} (bridge or auth error) is not documented`);
  }
});

test('the gateway serves the document at GET /gateway/openapi.json, without credentials', async (t) => {
  const doc = await loadDocument();
  const gateway = await startGateway(['--auth-token', TOKEN, '--store', 'memory']);
  t.after(() => gateway.stop());
  const response = await fetch(`${gateway.baseUrl}${OPENAPI_ROUTE}`);
  const body = await response.text();
  assert.equal(response.status, 200, `GET ${OPENAPI_ROUTE} answered ${response.status}: ${body.slice(0, 300)}`);
  assert.equal(response.headers.get('content-type'), 'application/json');
  const served = JSON.parse(body);
  const difference = firstDifference(served, doc);
  assert.equal(
    difference,
    null,
    `the served document differs from docs/openapi.yaml at ${difference} (a binary built from an older YAML?)`,
  );
  assert.deepEqual(served, doc);
});

// The JSON pointer of the first place where two JSON values differ, or null.
function firstDifference(a, b, where = '') {
  if (a === b) return null;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(a) !== Array.isArray(b)) {
    return where || '/';
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    const at = `${where}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`;
    if (!Object.hasOwn(a, key) || !Object.hasOwn(b, key)) return at;
    const inner = firstDifference(a[key], b[key], at);
    if (inner !== null) return inner;
  }
  return null;
}

// Sends one request and checks the answer against the operation the document gives for
// `method` + `template`: a documented status, media type, headers, body schema and error code.
function conformance(doc, checker, baseUrl) {
  const seen = new Set();
  const responseFor = (method, template, status) => {
    const operation = doc.paths[template]?.[method.toLowerCase()];
    if (operation?.responses[status]) return deref(doc, operation.responses[status]);
    // Answers any request may get before it reaches an operation.
    const general = {
      400: 'InvalidTarget',
      403: 'OriginNotAllowed',
      404: 'NotFound',
      405: 'MethodNotAllowed',
      415: 'UnsupportedMediaType',
      421: 'HostNotAllowed',
    }[status];
    assert.ok(operation || general, `${method} ${template} is not in the document`);
    assert.ok(general, `${method} ${template} answered ${status}, which it does not document`);
    return doc.components.responses[general];
  };

  const verify = async (method, template, status, response) => {
    const what = `${method} ${template} -> ${status}`;
    const documented = responseFor(method, template, status);
    const contentType = response.headers.get('content-type');
    const media = documented.content?.[contentType];
    assert.ok(media, `${what}: Content-Type ${contentType} is not documented (${Object.keys(documented.content ?? {})})`);
    for (const [name, reference] of Object.entries(documented.headers ?? {})) {
      const header = deref(doc, reference);
      const value = response.headers.get(name);
      if (header.required) assert.ok(value !== null, `${what}: header ${name} is missing`);
      if (value !== null && header.schema?.const !== undefined) {
        assert.equal(value, header.schema.const, `${what}: header ${name}`);
      }
      if (value !== null && header.schema?.type === 'integer') {
        checker.check(header.schema, Number(value), `${what}: header ${name} ${value}`);
      }
    }
    const text = await response.text();
    let body = text;
    if (contentType === 'application/json') {
      body = JSON.parse(text);
      checker.check(media.schema, body, what);
      if (status >= 400) {
        assert.ok(documented['x-error-codes'].includes(body.error.code), `${what}: ${body.error.code} is not listed`);
      }
    } else {
      checker.check(media.schema, text, what);
    }
    seen.add(`${method} ${template} ${status}`);
    return { body, text, response };
  };

  return {
    seen,
    verify,
    // `params` fill the template; `query` is appended as is; `body` is sent as JSON (a string as is).
    async call(method, template, { params = {}, query = '', body, headers = {}, token = TOKEN, expect } = {}) {
      const path = template.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(params[name]));
      const response = await fetch(`${baseUrl}${path}${query}`, {
        method,
        headers: {
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      if (expect !== undefined) {
        assert.equal(response.status, expect, `${method} ${path}${query} answered ${response.status}, expected ${expect}`);
      }
      return verify(method, template, response.status, response);
    },
  };
}

// SSE frames of a finished stream: [{id, event, data}] (comments skipped).
function parseFrames(text) {
  const frames = [];
  for (const block of text.split('\n\n')) {
    const frame = { id: null, event: null, data: [] };
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = line.slice(0, colon);
      const value = line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') frame.data.push(value);
      else if (field === 'id' || field === 'event') frame[field] = value;
    }
    if (frame.event !== null || frame.data.length > 0) frames.push({ ...frame, data: frame.data.join('\n') });
  }
  return frames;
}

// Sends raw bytes and resolves to the response head and body as text.
function rawRequest(port, request) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(request));
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      data += chunk;
    });
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

test('what the gateway answers fits the document (token mode)', { timeout: 60_000 }, async (t) => {
  const doc = await loadDocument();
  const checker = await schemaChecker(doc);
  const gateway = await startGateway([
    '--auth-token', TOKEN,
    '--max-input-chars', '100',
    '--max-events-per-session', '3',
    '--rate-limit-max-requests', '100000',
    '--config', fakeAgentsConfig(),
  ]);
  t.after(() => gateway.stop());
  const { call, verify, seen } = conformance(doc, checker, gateway.baseUrl);

  await call('GET', '/healthz', { token: null, expect: 200 });
  await call('GET', '/readyz', { token: null, expect: 200 });
  await call('GET', '/gateway/status', { expect: 200 });
  await call('GET', '/gateway/status', { token: null, expect: 401 });
  await call('GET', '/gateway/status', { token: 'wrong', expect: 401 });
  await call('POST', '/gateway/auth/session', { token: null, body: { password: 'x' }, expect: 400 });

  const { body: opened } = await call('POST', SESSIONS, { body: { workspace_id: ' demo ' }, expect: 200 });
  const id = opened.session.session_id;
  const { body: other } = await call('POST', SESSIONS, { body: { workspace_id: 'other' }, expect: 200 });
  await call('POST', SESSIONS, { body: {}, expect: 400 });
  await call('POST', SESSIONS, { body: '[1]', expect: 400 });
  await call('POST', SESSIONS, { body: { workspace_id: ' \t' }, expect: 400 });
  await call('POST', SESSIONS, { body: { workspace_id: 'x'.repeat(1000) }, expect: 413 });

  const { body: page } = await call('GET', SESSIONS, { query: '?limit=1', expect: 200 });
  assert.notEqual(page.next_cursor, null);
  const { body: last } = await call('GET', SESSIONS, {
    query: `?limit=1&cursor=${encodeURIComponent(page.next_cursor)}`,
    expect: 200,
  });
  assert.equal(last.next_cursor, null);
  await call('GET', SESSIONS, { query: '?status=running&workspace_id=demo', expect: 200 });
  await call('GET', SESSIONS, { query: '?status=paused', expect: 400 });
  await call('GET', SESSIONS, { query: '?limit=1001', expect: 400 });
  await call('GET', SESSIONS, { query: '?cursor=nope', expect: 400 });

  await call('GET', SESSION, { params: { session_id: id }, expect: 200 });
  await call('GET', SESSION, { params: { session_id: 'eca_00000000000000000000000000000000' }, expect: 404 });

  for (const message of ['one', 'two', 'three', 'four']) {
    await call('POST', `${SESSION}/progress`, { params: { session_id: id }, body: { message }, expect: 200 });
  }
  await call('POST', `${SESSION}/progress`, { params: { session_id: id }, body: { message: '  ' }, expect: 400 });
  await call('POST', `${SESSION}/progress`, { params: { session_id: id }, body: { message: 5 }, expect: 400 });
  await call('POST', `${SESSION}/followups`, { params: { session_id: id }, body: { message: 'next' }, expect: 200 });
  await call('POST', `${SESSION}/followups`, { params: { session_id: 'unknown' }, body: { message: 'x' }, expect: 404 });
  await call('POST', `${SESSION}/followups/drain`, { params: { session_id: id }, body: { limit: 10 }, expect: 200 });
  await call('POST', `${SESSION}/followups/drain`, { params: { session_id: id }, expect: 200 });
  await call('POST', `${SESSION}/followups/drain`, { params: { session_id: id }, body: { limit: 1.5 }, expect: 400 });

  // Streams: a replay whose cursor fell out of retention (gap), with the token in the query.
  const stream = `${SESSION}/stream`;
  const { text } = await call('GET', stream, {
    params: { session_id: id },
    query: `?after_sequence_id=0&access_token=${TOKEN}`,
    token: null,
    expect: 200,
  });
  const frames = parseFrames(text);
  const sse = doc.paths[stream].get.responses['200'].content['text/event-stream']['x-sse-events'];
  const byName = new Map(sse.map((entry) => [entry.event, entry]));
  assert.deepEqual(
    frames.map((frame) => frame.event),
    ['external_coding_agent.snapshot', 'external_coding_agent.gap', ...Array(3).fill('external_coding_agent.progress'), 'done'],
  );
  for (const frame of frames) {
    const entry = byName.get(frame.event);
    assert.ok(entry, `undocumented SSE event ${frame.event}`);
    assert.equal(frame.id !== null, entry.id, `${frame.event}: id: line`);
    const data = frame.event === 'done' ? frame.data : JSON.parse(frame.data);
    checker.check(entry.data, data, `the data of ${frame.event}`);
    if (frame.id !== null) assert.equal(frame.id, String(data.sequence_id));
  }
  await call('GET', stream, { params: { session_id: id }, headers: { 'Last-Event-ID': '4' }, query: '?limit=5', expect: 200 });
  await call('GET', stream, { params: { session_id: id }, query: '?follow=yes', expect: 400 });
  await call('GET', stream, { params: { session_id: id }, query: '?after_sequence_id=-1', expect: 400 });
  await call('GET', stream, { params: { session_id: id }, query: '?limit=0', expect: 400 });
  await call('GET', stream, { params: { session_id: 'unknown' }, expect: 404 });
  await call('GET', stream, { params: { session_id: id }, token: null, expect: 401 });

  // An agent session (the scripted fake ACP agent): open with a prompt, answer its request for
  // permission, cancel a turn; and the errors of the agent endpoints.
  await call('POST', SESSIONS, { body: { workspace_id: 'agent', agent: 'nope' }, expect: 400 });
  await call('POST', SESSIONS, { body: { workspace_id: 'agent', agent: 'fake', prompt: ' ' }, expect: 400 });
  await call('POST', SESSIONS, { body: { workspace_id: 'agent', agent: 5 }, expect: 400 });
  const { body: agentOpened } = await call('POST', SESSIONS, {
    body: { workspace_id: 'agent', agent: 'fake', prompt: 'write notes.txt' },
    expect: 200,
  });
  const agentId = agentOpened.session.session_id;
  assert.equal(agentOpened.session.agent.name, 'fake');
  assert.equal(agentOpened.session.agent.protocol, 'acp');
  const permissions = `${SESSION}/permissions`;
  const answer = `${SESSION}/permissions/{request_id}`;
  let pending;
  for (let i = 0; i < 500 && !pending; i += 1) {
    const { body } = await call('GET', permissions, { params: { session_id: agentId }, expect: 200 });
    pending = body.permissions[0];
    if (!pending) await sleep(20);
  }
  assert.ok(pending, 'the fake agent asked for no permission');
  assert.equal(pending.request_id, 'perm-1');
  const perm = { session_id: agentId, request_id: pending.request_id };
  await call('POST', answer, { params: perm, body: { option_id: 'maybe' }, expect: 400 });
  await call('POST', answer, { params: perm, body: {}, expect: 400 });
  await call('POST', answer, { params: { ...perm, request_id: 'perm-99' }, body: { option_id: 'allow' }, expect: 404 });
  await call('POST', answer, { params: { ...perm, session_id: 'unknown' }, body: { option_id: 'allow' }, expect: 404 });
  await call('POST', answer, { params: { ...perm, session_id: id }, body: { option_id: 'allow' }, expect: 409 });
  const { body: answered } = await call('POST', answer, { params: perm, body: { option_id: 'allow' }, expect: 200 });
  assert.equal(answered.outcome, 'selected');
  await call('POST', answer, { params: perm, body: { option_id: 'allow' }, expect: 409 });
  await call('POST', `${SESSION}/followups`, { params: { session_id: agentId }, body: { message: 'slow' }, expect: 200 });
  let cancelled = false;
  for (let i = 0; i < 500 && !cancelled; i += 1) {
    ({ body: { cancelled } } = await call('POST', `${SESSION}/cancel`, { params: { session_id: agentId }, expect: 200 }));
    if (!cancelled) await sleep(20);
  }
  assert.ok(cancelled, 'no turn to cancel');
  await call('POST', `${SESSION}/cancel`, { params: { session_id: id }, expect: 409 });
  await call('POST', `${SESSION}/cancel`, { params: { session_id: 'unknown' }, expect: 404 });
  await call('GET', permissions, { params: { session_id: id }, expect: 409 });
  await call('GET', permissions, { params: { session_id: 'unknown' }, expect: 404 });
  const { body: agentClosed } = await call('POST', `${SESSION}/close`, { params: { session_id: agentId }, expect: 200 });
  assert.equal(agentClosed.session.status, 'closed');

  await call('POST', `${SESSION}/close`, { params: { session_id: id }, expect: 200 });
  await call('POST', `${SESSION}/close`, { params: { session_id: id }, expect: 200 });
  await call('POST', `${SESSION}/progress`, { params: { session_id: id }, body: { message: 'late' }, expect: 409 });
  // A follow stream of an ended session replays, sends the final snapshot and done at once.
  const { text: followed, response: followResponse } = await call('GET', stream, {
    params: { session_id: id },
    query: '?follow=true',
    expect: 200,
  });
  assert.equal(followResponse.headers.get('connection'), 'close');
  const finalFrames = parseFrames(followed);
  const finalSnapshot = JSON.parse(finalFrames.at(-2).data);
  checker.check(byName.get('external_coding_agent.snapshot').data, finalSnapshot, 'the final snapshot');
  assert.equal(finalSnapshot.session.status, 'closed');
  assert.ok(!('replay_after_sequence_id' in finalSnapshot));

  const { body: reaped } = await call('POST', '/gateway/external-coding-agent/reap', {
    body: { now_unix_ms: other.session.last_activity_unix_ms + 10 * 24 * 3600 * 1000 },
    expect: 200,
  });
  assert.equal(reaped.reaped_count, 1);
  await call('POST', '/gateway/external-coding-agent/reap', { expect: 200 });
  await call('POST', '/gateway/external-coding-agent/reap', { body: { now_unix_ms: '1' }, expect: 400 });

  // Metrics, this document and the dashboard.
  await call('GET', '/metrics', { expect: 200 });
  await call('GET', '/metrics', { token: null, expect: 401 });
  await call('GET', OPENAPI_ROUTE, { token: null, expect: 200 });
  for (const path of ['/dashboard', '/dashboard/app.js', '/dashboard/app.css']) {
    await call('GET', path, { token: null, expect: 200 });
  }

  // Answers before any route: unknown path, other method, a target that is not origin form.
  const notFound = await fetch(`${gateway.baseUrl}/gateway/nothing-here`);
  assert.equal(notFound.status, 404);
  // Neither is an operation: they are checked against the NotFound and MethodNotAllowed
  // responses, which no operation lists.
  await verify('GET', '/gateway/nothing-here', 404, notFound);
  const wrongMethod = await fetch(`${gateway.baseUrl}/healthz`, { method: 'DELETE' });
  assert.equal(wrongMethod.status, 405);
  await verify('DELETE', '/healthz', 405, wrongMethod);
  const raw = await rawRequest(gateway.port, `GET http://example.com/healthz HTTP/1.1\r\nHost: 127.0.0.1:${gateway.port}\r\nConnection: close\r\n\r\n`);
  assert.match(raw, /^HTTP\/1\.1 400 /);
  const envelope = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
  checker.check(doc.components.responses.InvalidTarget.content['application/json'].schema, envelope, 'invalid_target');

  // The browser protections answer before any route too (docs/browser-protections.md).
  await call('POST', '/gateway/external-coding-agent/sessions', {
    body: { workspace_id: 'from-a-page' },
    headers: { Origin: 'https://evil.example' },
    expect: 403,
  });
  await call('POST', '/gateway/external-coding-agent/sessions', {
    body: { workspace_id: 'from-a-form' },
    headers: { 'Content-Type': 'text/plain' },
    expect: 415,
  });
  const rebound = await rawRequest(gateway.port, 'GET /gateway/status HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n');
  assert.match(rebound, /^HTTP\/1\.1 421 /);
  checker.check(doc.components.responses.HostNotAllowed.content['application/json'].schema,
    JSON.parse(rebound.slice(rebound.indexOf('\r\n\r\n') + 4)), 'host_not_allowed');

  // Every operation was exercised with its 200 (the login in the password-session test below).
  for (const { path, method } of operations(doc)) {
    if (path === '/gateway/auth/session') continue;
    assert.ok(seen.has(`${method.toUpperCase()} ${path} 200`), `${method.toUpperCase()} ${path} was not exercised`);
  }
});

test('what the gateway answers fits the document (password-session mode, rate limit, public metrics)', { timeout: 30_000 }, async (t) => {
  const doc = await loadDocument();
  const checker = await schemaChecker(doc);
  const gateway = await startGateway([
    '--auth-mode', 'password-session',
    '--auth-password', 'correct horse',
    '--rate-limit-max-requests', '3',
    '--metrics-public',
  ]);
  t.after(() => gateway.stop());
  const { call } = conformance(doc, checker, gateway.baseUrl);
  const login = '/gateway/auth/session';

  await call('POST', login, { token: null, body: { password: 'wrong' }, expect: 401 });
  await call('POST', login, { token: null, body: {}, expect: 400 });
  const { body: issued } = await call('POST', login, { token: null, body: { password: 'correct horse' }, expect: 200 });
  // Logins are not counted by the request limit (failed guesses are throttled instead).
  await call('POST', login, { token: null, body: { password: 'correct horse' }, expect: 200 });

  const token = issued.access_token;
  await call('GET', '/gateway/status', { token, expect: 200 });
  await call('GET', '/gateway/status', { token: 'f'.repeat(64), expect: 401 });
  await call('GET', '/gateway/status', { token, expect: 200 });
  await call('GET', '/gateway/status', { token, expect: 200 });
  const { response } = await call('GET', '/gateway/status', { token, expect: 429 });
  assert.ok(Number(response.headers.get('retry-after')) >= 1);
  // Probes and metrics are never rate limited; with --metrics-public, metrics need no token.
  await call('GET', '/healthz', { token: null, expect: 200 });
  await call('GET', '/metrics', { token: null, expect: 200 });
});
