// Shared helpers of the real-client tests: start the real tau-gateway binary on a free loopback
// port, speak its JSON API with Node's fetch, and load the pinned npm packages with a clear
// message when `make test` (make test-deps) has not installed them.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

export const SESSIONS_PATH = '/gateway/external-coding-agent/sessions';

// The binary under test: CTest passes TAU_GATEWAY_BINARY; by hand it defaults to build/.
export function gatewayBinary() {
  const binary = process.env.TAU_GATEWAY_BINARY || join(here, '..', '..', 'build', 'tau-gateway');
  if (!existsSync(binary)) {
    throw new Error(`tau-gateway binary not found at ${binary}: build it (make build) or set TAU_GATEWAY_BINARY`);
  }
  return binary;
}

// Imports one of the npm packages pinned in package-lock.json, failing with a hint to install
// them when node_modules is missing.
export async function importClientPackage(name) {
  if (!existsSync(join(here, 'node_modules', name, 'package.json'))) {
    throw new Error(
      `npm package '${name}' is not installed in ${join(here, 'node_modules')}: run \`make test-deps\` ` +
        '(it runs `npm ci` on tests/clients/package-lock.json)',
    );
  }
  return import(name);
}

// Starts the gateway with `--bind 127.0.0.1:0 --state-dir <fresh tmp dir>` and `args`, waits for
// its `listening on http://127.0.0.1:PORT` line and returns
// {port, baseUrl, stderr(), stop()}. stop() sends SIGTERM, waits for the exit and resolves to
// {code, signal}; it may be called more than once. With `stateDir` the gateway uses that
// directory and stop() leaves it in place (a restart test starts the next gateway on it).
export async function startGateway(args = [], { startupTimeoutMs = 10_000, stateDir: givenStateDir } = {}) {
  const binary = gatewayBinary();
  const stateDir = givenStateDir ?? (await mkdtemp(join(tmpdir(), 'tau-gateway-clients-')));

  // Only the flags given here configure the gateway: no TAU_GATEWAY_* from the caller's environment.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('TAU_GATEWAY_')),
  );
  const child = spawn(binary, ['--bind', '127.0.0.1:0', '--state-dir', stateDir, ...args], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // A test runner that dies must not leave the gateway behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
  }).finally(() => process.removeListener('exit', killOnExit));

  // Keep draining stderr for the whole run (a full pipe would block the gateway's logging), and
  // keep its last lines for failure messages.
  const lines = [];
  const stderr = () => lines.join('\n');
  const listening = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`gateway did not announce its port within ${startupTimeoutMs} ms; stderr:\n${stderr()}`)),
      startupTimeoutMs,
    );
    createInterface({ input: child.stderr }).on('line', (line) => {
      lines.push(line);
      if (lines.length > 200) lines.shift();
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    exited.then(({ code, signal, error }) => {
      clearTimeout(timer);
      const why = error ? `could not be started (${error.message})` : `exited (code ${code}, signal ${signal})`;
      reject(new Error(`gateway ${why} before listening; stderr:\n${stderr()}`));
    });
  });

  let stopping;
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      const status = await exited;
      clearTimeout(timer);
      if (!givenStateDir) await rm(stateDir, { recursive: true, force: true });
      return status;
    })();
    return stopping;
  };

  let port;
  try {
    port = await listening;
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, baseUrl: `http://127.0.0.1:${port}`, stderr, stop };
}

// The JSON API of one gateway, authenticated with a bearer token.
export function gatewayApi(baseUrl, token) {
  const call = async (method, path, body) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
    return JSON.parse(text);
  };
  const sessionPath = (sessionId) => `${SESSIONS_PATH}/${encodeURIComponent(sessionId)}`;

  return {
    // Opens (or reuses) the session of a workspace; resolves to its session id.
    async openSession(workspaceId) {
      const { session } = await call('POST', SESSIONS_PATH, { workspace_id: workspaceId });
      return session.session_id;
    },
    // Appends a progress event; resolves to its sequence id.
    async postProgress(sessionId, message) {
      const { event } = await call('POST', `${sessionPath(sessionId)}/progress`, { message });
      return event.sequence_id;
    },
    // Ends the session as closed; resolves to its snapshot.
    async closeSession(sessionId) {
      const { session } = await call('POST', `${sessionPath(sessionId)}/close`);
      return session;
    },
  };
}

// Debian's Chromium, headless, with the flags this machine's closed network needs (without the
// background-networking ones it keeps trying to reach Google's hosts).
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

// Launches it through playwright-core's `chromium` browser type.
export function launchChromium(chromium) {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}
