// How the real agents are run offline against the fake model server: their binaries (pinned in
// package-lock.json, installed by `make test-deps`), a fresh HOME each, and the environment that
// keeps them on loopback.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

export function agentBinary(name) {
  const binary = join(here, 'node_modules', '.bin', name);
  if (!existsSync(binary)) {
    throw new Error(
      `${binary} is not installed: run \`make test-deps\` ` +
        '(it runs scripts/install-node-deps.sh tests/agents --platform-binaries)',
    );
  }
  return binary;
}

// Nothing of the caller's environment that could point an agent elsewhere: only PATH and LANG
// are kept, the rest is set here.
function baseEnv(home) {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    LANG: process.env.LANG ?? 'C.UTF-8',
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_DATA_HOME: join(home, '.local', 'share'),
    XDG_CACHE_HOME: join(home, '.cache'),
    XDG_STATE_HOME: join(home, '.local', 'state'),
    // Any npm or package fetch goes to a closed port on loopback, never to the internet.
    npm_config_registry: 'http://127.0.0.1:9/',
    NO_PROXY: '127.0.0.1,localhost',
    no_proxy: '127.0.0.1,localhost',
  };
}

// A fresh directory for one test: {root, home, workspaceRoot}.
export async function agentSandbox(prefix = 'tau-agents-') {
  const root = await mkdtemp(join(tmpdir(), prefix));
  const home = join(root, 'home');
  const workspaceRoot = join(root, 'workspaces');
  await mkdir(home, { recursive: true });
  await mkdir(workspaceRoot, { recursive: true });
  return { root, home, workspaceRoot };
}

// OpenCode: `opencode acp` with an OPENCODE_CONFIG naming one openai-compatible provider on the
// fake server, bash asking permission. Resolves to {command, args, env}.
export async function opencodeAgent({ home, modelBaseUrl }) {
  const configPath = join(home, 'opencode.json');
  const config = {
    $schema: 'https://opencode.ai/config.json',
    autoupdate: false,
    share: 'disabled',
    provider: {
      fake: {
        npm: '@ai-sdk/openai-compatible',
        name: 'Fake model server',
        options: { baseURL: `${modelBaseUrl}/v1`, apiKey: 'test' },
        models: { 'fake-model': { name: 'Fake model', tool_call: true } },
      },
    },
    model: 'fake/fake-model',
    small_model: 'fake/fake-model',
    permission: { bash: 'ask', edit: 'ask', webfetch: 'deny' },
  };
  await writeFile(configPath, JSON.stringify(config, null, 2));
  return {
    command: agentBinary('opencode'),
    args: ['acp'],
    env: {
      ...baseEnv(home),
      OPENCODE_CONFIG: configPath,
      OPENCODE_DISABLE_AUTOUPDATE: '1',
      OPENCODE_DISABLE_MODELS_FETCH: '1',
      OPENCODE_DISABLE_LSP_DOWNLOAD: '1',
      OPENCODE_DISABLE_DEFAULT_PLUGINS: '1',
      OPENCODE_DISABLE_CLAUDE_CODE: '1',
      OPENCODE_DISABLE_SHARE: '1',
    },
  };
}

// Claude Code: print mode speaking stream-json both ways, permission prompts over stdio.
export const CLAUDE_ARGS = [
  '-p',
  '--input-format',
  'stream-json',
  '--output-format',
  'stream-json',
  '--verbose',
  '--permission-prompt-tool',
  'stdio',
];

export async function claudeAgent({ home, modelBaseUrl }) {
  return {
    command: agentBinary('claude'),
    args: CLAUDE_ARGS,
    env: {
      ...baseEnv(home),
      ANTHROPIC_BASE_URL: modelBaseUrl,
      ANTHROPIC_API_KEY: 'test',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      DISABLE_AUTOUPDATER: '1',
      DISABLE_TELEMETRY: '1',
      DISABLE_ERROR_REPORTING: '1',
    },
  };
}
