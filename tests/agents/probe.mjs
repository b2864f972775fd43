// Drives each real agent without the gateway through the scenarios the gateway tests use and
// dumps every wire line, to see what an agent version really sends (after upgrading one, say):
//   node tests/agents/probe.mjs [opencode|claude|both] [DUMP_DIR]   (WIRE_LOG=1: lines live)
// Not part of `make test`.

import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { agentSandbox, claudeAgent, opencodeAgent } from './agents.mjs';
import { startFakeModelServer } from './fake_model_server.mjs';
import { startAcp, startClaude } from './wire.mjs';

const which = process.argv[2] ?? 'both';
const dumpDir = process.argv[3] ?? '/tmp';
const model = await startFakeModelServer(undefined, { log: true });
const box = await agentSandbox('tau-agents-probe-');
const t0 = Date.now();
const lap = (s) => console.log(`[${Date.now() - t0}ms] ${s}`);
const dump = (name, log) => writeFile(join(dumpDir, name), log.map((e) => `${e.dir} +${e.t} ${e.line}`).join('\n') + '\n');
const INIT = { protocolVersion: 1, clientCapabilities: { fs: { readTextFile: false, writeTextFile: false }, terminal: false } };

async function probeOpencode() {
  const ws = join(box.workspaceRoot, 'opencode');
  await mkdir(ws);
  const agent = await opencodeAgent({ home: box.home, modelBaseUrl: model.baseUrl });
  let acp = startAcp(agent, ws);
  const init = await acp.request('initialize', INIT);
  lap(`opencode initialize: loadSession=${init.agentCapabilities?.loadSession}`);
  const { sessionId } = await acp.request('session/new', { cwd: ws, mcpServers: [] });
  lap(`opencode session ${sessionId}`);
  let decision = 'allow_once';
  acp.onRequest('session/request_permission', (params) => {
    lap(`opencode permission ${JSON.stringify(params)}`);
    return { outcome: { outcome: 'selected', optionId: params.options.find((o) => o.kind === decision).optionId } };
  });
  const prompt = (text) => acp.request('session/prompt', { sessionId, prompt: [{ type: 'text', text }] }).catch((error) => ({ error }));
  lap(`plain: ${JSON.stringify(await prompt('say hello'))}`);
  lap(`approved: ${JSON.stringify(await prompt('write the file approved.txt'))} file=${existsSync(join(ws, 'approved.txt'))}`);
  decision = 'reject_once';
  lap(`rejected: ${JSON.stringify(await prompt('write the file rejected.txt'))} file=${existsSync(join(ws, 'rejected.txt'))}`);
  const slow = prompt('be slow');
  await acp.waitFor((n) => n.params?.update?.content?.text?.startsWith('think'));
  acp.notify('session/cancel', { sessionId });
  lap(`cancelled: ${JSON.stringify(await slow)}`);
  lap(`after cancel: ${JSON.stringify(await prompt('say hello'))}`);
  await acp.kill('SIGKILL');
  const first = acp.log;
  acp = startAcp(agent, ws);
  await acp.request('initialize', INIT);
  const loaded = await acp.request('session/load', { sessionId, cwd: ws, mcpServers: [] }).catch((error) => ({ error }));
  lap(`session/load in a new process: ${loaded.error ? JSON.stringify(loaded.error) : 'ok'}, ${acp.notifications.length} updates replayed`);
  lap(`after load: ${JSON.stringify(await acp.request('session/prompt', { sessionId, prompt: [{ type: 'text', text: 'say hello' }] }))}`);
  await acp.kill();
  await dump('opencode-wire.log', [...first, { dir: '--', t: 0, line: 'new process' }, ...acp.log]);
}

async function probeClaude() {
  const ws = join(box.workspaceRoot, 'claude');
  await mkdir(ws);
  const cc = startClaude(await claudeAgent({ home: box.home, modelBaseUrl: model.baseUrl }), ws);
  let decision = 'allow';
  cc.onControlRequest((request) => {
    lap(`claude control_request ${JSON.stringify(request)}`);
    return decision === 'allow' ? { behavior: 'allow', updatedInput: request.input } : { behavior: 'deny', message: 'denied by the probe' };
  });
  const turn = async (text, during) => {
    const from = cc.messages.length;
    cc.send({ type: 'user', message: { role: 'user', content: [{ type: 'text', text }] } });
    if (during) await during(from);
    const r = await cc.waitFor((m) => m.type === 'result', 60000, from);
    return `subtype=${r.subtype} stop_reason=${r.stop_reason} terminal_reason=${r.terminal_reason} is_error=${r.is_error} result=${JSON.stringify(r.result)}`;
  };
  lap(`plain: ${await turn('say hello')}`);
  lap(`approved: ${await turn('write the file approved.txt')} file=${existsSync(join(ws, 'approved.txt'))}`);
  decision = 'deny';
  lap(`rejected: ${await turn('write the file rejected.txt')} file=${existsSync(join(ws, 'rejected.txt'))}`);
  lap(`cancelled: ${await turn('be slow', async (from) => {
    await cc.waitFor((m) => m.type === 'system', 30000, from);
    await new Promise((r) => setTimeout(r, 1000)); // the model has streamed its first pieces
    cc.control({ subtype: 'interrupt' });
  })}`);
  lap(`after cancel: ${await turn('say hello')}`);
  cc.child.stdin.end();
  lap(`claude exit on stdin EOF: ${JSON.stringify(await cc.exited)}`);
  await dump('claude-wire.log', cc.log);
}

try {
  if (which !== 'claude') await probeOpencode();
  if (which !== 'opencode') await probeClaude();
} finally {
  await model.close();
}
