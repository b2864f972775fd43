// The gateway-level agent tests' harness: one fake model server, one sandbox (HOME, workspace
// root), a --config file with the real agents' profiles, the real tau-gateway binary (started as
// tests/clients/gateway.mjs does, in localhost-dev auth mode), and the session API the tests
// speak. Every wait polls the session's replay for a condition under a generous deadline; none
// sleeps for a fixed time.

import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { SESSIONS_PATH, startGateway } from '../clients/gateway.mjs';
import { CLAUDE_ARGS, agentBinary, agentSandbox, claudeAgent, opencodeAgent } from './agents.mjs';
import { startFakeModelServer } from './fake_model_server.mjs';

// Generous: an OpenCode start alone takes seconds of CPU, and `make test` runs other tests beside.
export const WAIT_MS = 60_000;

const toml = (value) => JSON.stringify(value); // a TOML basic string is a JSON string
const tomlTable = (object) =>
  `{ ${Object.entries(object)
    .map(([key, value]) => `${key} = ${toml(value)}`)
    .join(', ')} }`;

// The config file: workspace-root and one profile per agent in `agents` (opencode, claude).
async function writeConfig(path, { workspaceRoot, agents, defaultAgent }) {
  const lines = [`workspace-root = ${toml(workspaceRoot)}`, `default_agent = ${toml(defaultAgent)}`, ''];
  for (const [name, { protocol, command, args, env }] of Object.entries(agents)) {
    lines.push(
      `[agents.${name}]`,
      `protocol = ${toml(protocol)}`,
      `command = ${toml(command)}`,
      `args = [${args.map(toml).join(', ')}]`,
      `env = ${tomlTable(env)}`,
      'permission = "ask"',
      '',
    );
  }
  await writeFile(path, lines.join('\n'));
}

// Starts everything for the agents named (`opencode`, `claude`). Resolves to
// {api, model, box, configPath, stateDir, workspaceDir(id), restart(), stop()}.
export async function startAgentGateway(names) {
  const model = await startFakeModelServer();
  const box = await agentSandbox();
  const agents = {};
  for (const name of names) {
    if (name === 'opencode') {
      agents.opencode = { protocol: 'acp', ...(await opencodeAgent({ home: box.home, modelBaseUrl: model.baseUrl })) };
    } else if (name === 'claude') {
      agents.claude = {
        protocol: 'claude-stream-json',
        ...(await claudeAgent({ home: box.home, modelBaseUrl: model.baseUrl })),
      };
    }
  }
  const configPath = join(box.root, 'gateway.toml');
  await writeConfig(configPath, { workspaceRoot: box.workspaceRoot, agents, defaultAgent: names[0] });
  const stateDir = await mkdtemp(join(tmpdir(), 'tau-agents-state-'));
  // The waits poll the replay: the rate limit is out of their way.
  const args = ['--config', configPath, '--auth-mode', 'localhost-dev', '--rate-limit-max-requests', '1000000'];

  let gateway = await startGateway(args, { stateDir });
  const harness = {
    model,
    box,
    configPath,
    stateDir,
    get gateway() {
      return gateway;
    },
    api: null,
    workspaceDir: (workspaceId) => join(box.workspaceRoot, workspaceId),
    // SIGTERM, then a new gateway on the same state dir and config.
    async restart() {
      await gateway.stop();
      gateway = await startGateway(args, { stateDir });
      harness.api = sessionApi(harness);
    },
    async stop() {
      await gateway.stop();
      await model.close();
      await rm(stateDir, { recursive: true, force: true });
      await rm(box.root, { recursive: true, force: true });
    },
  };
  harness.api = sessionApi(harness);
  return harness;
}

// Parses a replay-only SSE stream into its progress events' data objects.
function parseProgress(text) {
  const events = [];
  for (const frame of text.split('\n\n')) {
    let name = null;
    const data = [];
    for (const line of frame.split('\n')) {
      if (line.startsWith('event:')) name = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (name === 'external_coding_agent.progress' && data.length) events.push(JSON.parse(data.join('\n')));
  }
  return events;
}

function sessionApi(harness) {
  const call = async (method, path, body) => {
    const response = await fetch(`${harness.gateway.baseUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
    return response.headers.get('content-type')?.startsWith('text/event-stream') ? text : JSON.parse(text);
  };
  const at = (id) => `${SESSIONS_PATH}/${encodeURIComponent(id)}`;

  const api = {
    call,
    // Opens a session of `agent` in `workspaceId` whose first turn is `prompt`; resolves to its
    // snapshot.
    async open(workspaceId, agent, prompt) {
      const { session } = await call('POST', SESSIONS_PATH, { workspace_id: workspaceId, agent, prompt });
      return session;
    },
    session: async (id) => (await call('GET', at(id))).session,
    followup: (id, message) => call('POST', `${at(id)}/followups`, { message }),
    cancel: (id) => call('POST', `${at(id)}/cancel`, {}),
    permissions: (id) => call('GET', `${at(id)}/permissions`),
    answer: (id, requestId, optionId) =>
      call('POST', `${at(id)}/permissions/${encodeURIComponent(requestId)}`, { option_id: optionId }),
    close: (id) => call('POST', `${at(id)}/close`),
    events: async (id) => parseProgress(await call('GET', `${at(id)}/stream`)),

    // Polls the replay until `find(events)` returns something other than undefined/false, and
    // resolves to it; after `timeoutMs` fails with what the session, the gateway and the model
    // server did.
    // A session that has ended (its status no longer running) fails the wait at once.
    async waitFor(id, what, find, timeoutMs = WAIT_MS) {
      const deadline = Date.now() + timeoutMs;
      let events = [];
      for (;;) {
        events = await api.events(id);
        const found = find(events);
        if (found !== undefined && found !== false && found !== null) return found;
        const session = await api.session(id);
        if (session.status !== 'running') {
          throw new Error(`the session ended (${session.status}) while waiting for ${what}\n` +
            `snapshot: ${JSON.stringify(session)}\n${describe(harness, events)}`);
        }
        if (Date.now() > deadline) break;
        await delay(200);
      }
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${describe(harness, events)}`);
    },
    // The first event of `type` (matching `where`, if given).
    waitForEvent: (id, type, where = () => true, timeoutMs = WAIT_MS) =>
      api.waitFor(id, `a ${type} event`, (events) => events.find((e) => e.event_type === type && where(e.data ?? {}, e)), timeoutMs),
    // agent.turn_ended of turn `turn`.
    waitForTurnEnd: (id, turn, timeoutMs = WAIT_MS) =>
      api.waitForEvent(id, 'agent.turn_ended', (data) => data.turn === turn, timeoutMs),
  };
  return api;
}

// The text the agent said in `turn`, all agent.message pieces joined.
export function messageText(events, turn) {
  return events
    .filter((e) => e.event_type === 'agent.message' && (turn === undefined || e.data?.turn === turn))
    .map((e) => e.data?.text ?? '')
    .join('');
}

export const turnPrompts = (events) =>
  events.filter((e) => e.event_type === 'agent.turn_started').map((e) => e.data?.prompt);

// What to print when a wait times out: the session's events, the gateway's last stderr lines,
// the model server's requests.
export function describe(harness, events) {
  const lines = ['session events:'];
  for (const e of events) lines.push(`  #${e.sequence_id} ${e.event_type}: ${String(e.message).slice(0, 200)}`);
  // Without the access log, which the polling fills.
  const stderr = harness.gateway.stderr().split('\n').filter((l) => !l.includes('"log":"access"'));
  lines.push('gateway stderr (last lines, no access log):', ...stderr.slice(-30).map((l) => `  ${l}`));
  lines.push('model server requests:');
  for (const r of harness.model.requests) {
    lines.push(`  ${r.method} ${r.path} kind=${r.kind} last_user=${JSON.stringify((r.lastUserText ?? '').slice(-80))}`);
  }
  return lines.join('\n');
}

export const fileIn = (harness, workspaceId, name) => existsSync(join(harness.workspaceDir(workspaceId), name));

export { CLAUDE_ARGS, agentBinary };
