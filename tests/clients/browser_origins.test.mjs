// Debian's Chromium, driven by playwright-core, as the hostile page and as a dashboard hosted on
// another origin (docs/browser-protections.md). One small HTTP server on loopback serves a blank
// page under two origins: http://127.0.0.1:P, listed with --cors-origin, and http://localhost:P,
// which is another origin and is not listed. The gateway runs in localhost-dev mode, where
// nothing but these rules stands between a page and the sessions.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import test from 'node:test';

import { SESSIONS_PATH, importClientPackage, launchChromium, startGateway } from './gateway.mjs';

async function startPageServer() {
  const server = createServer((request, response) => {
    response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    response.end('<!doctype html><title>page</title>');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, close: () => new Promise((resolve) => server.close(resolve)) };
}

async function sessionCount(baseUrl) {
  const response = await fetch(`${baseUrl}${SESSIONS_PATH}`);
  assert.equal(response.status, 200);
  return (await response.json()).sessions.length;
}

test('pages of other origins cannot drive the gateway; a listed origin can', { timeout: 60_000 }, async (t) => {
  const pages = await startPageServer();
  t.after(() => pages.close());
  const listed = `http://127.0.0.1:${pages.port}`;
  const unlisted = `http://localhost:${pages.port}`;
  const gateway = await startGateway(['--auth-mode', 'localhost-dev', '--cors-origin', listed]);
  t.after(() => gateway.stop());

  const { chromium } = await importClientPackage('playwright-core');
  const browser = await launchChromium(chromium);
  t.after(() => browser.close());
  const page = await browser.newPage();

  // The hostile page: a "simple" cross-origin POST (no preflight; the page cannot read the
  // answer, but before the protections the gateway acted on it), and a read.
  await page.goto(`${unlisted}/`);
  const attack = await page.evaluate(async ({ api }) => {
    await fetch(`${api}/sessions`, {
      method: 'POST',
      mode: 'no-cors',
      headers: { 'Content-Type': 'text/plain' },
      body: JSON.stringify({ workspace_id: 'pwned' }),
    });
    try {
      await fetch(`${api}/sessions`);
      return 'read';
    } catch {
      return 'blocked';
    }
  }, { api: `${gateway.baseUrl}${SESSIONS_PATH.replace(/\/sessions$/, '')}` });
  assert.equal(attack, 'blocked', 'the unlisted page could read the session list');
  assert.equal(await sessionCount(gateway.baseUrl), 0, 'the cross-origin POST opened a session');

  // The dashboard elsewhere: a JSON POST (preflighted), then the session's stream through the
  // page's own EventSource, both across origins.
  await page.goto(`${listed}/`);
  const remote = await page.evaluate(async ({ api }) => {
    const response = await fetch(`${api}/sessions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ workspace_id: 'remote-dashboard' }),
    });
    const { session } = await response.json();
    const snapshot = await new Promise((resolve, reject) => {
      const source = new EventSource(`${api}/sessions/${session.session_id}/stream?follow=true`);
      source.addEventListener('external_coding_agent.snapshot', (event) => {
        source.close();
        resolve(JSON.parse(event.data));
      });
      source.onerror = () => {
        source.close();
        reject(new Error('the stream failed'));
      };
    });
    return { status: response.status, sessionId: session.session_id, snapshot };
  }, { api: `${gateway.baseUrl}${SESSIONS_PATH.replace(/\/sessions$/, '')}` });
  assert.equal(remote.status, 200);
  assert.equal(remote.snapshot.session.session_id, remote.sessionId);
  assert.equal(await sessionCount(gateway.baseUrl), 1);
});
