// Debian's Chromium, driven headless by playwright-core, follows a session with the page's own
// EventSource across several connections that the gateway ends mid-stream, and resumes each time
// with Last-Event-ID.

import test from 'node:test';

import { importClientPackage, launchChromium } from './gateway.mjs';
import { FOLLOW_TIMEOUT_MS, followUntilDone, runResumeScenario } from './follow.mjs';


const TITLE = 'Chromium EventSource resumes a followed session with every event exactly once';

test(TITLE, { timeout: 60_000 }, async (t) => {
  const { chromium } = await importClientPackage('playwright-core');
  const browser = await launchChromium(chromium);
  t.after(() => browser.close());
  const page = await browser.newPage();
  const pageLog = [];
  page.on('console', (message) => pageLog.push(`console.${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => pageLog.push(`page error: ${error.message}`));

  await runResumeScenario(t, async (url) => {
    // The Last-Event-ID header of each stream request, as Chromium sent it.
    const streamPath = new URL(url).pathname;
    const requestHeaders = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname === streamPath) requestHeaders.push(request.allHeaders());
    });

    let started;
    const startedPromise = new Promise((resolve) => {
      started = resolve;
    });
    await page.exposeFunction('tauStreamStarted', () => started());

    // The page must be same-origin with the gateway, so that the stream needs no CORS. The status
    // route answers 401 without a bearer token; only the page's origin matters.
    await page.goto(`${new URL(url).origin}/gateway/status`);

    // The same collector as under Node, sent to the page as source and run there with its own
    // EventSource; the page resolves with what it received once `done` arrives.
    const finished = page.evaluate(
      `(${followUntilDone})(EventSource, ${JSON.stringify(url)}, {
        timeoutMs: ${FOLLOW_TIMEOUT_MS},
        onFirstSnapshot: () => window.tauStreamStarted(),
      })`,
    );
    let streamRequests = [];
    const finishedAndRecorded = finished.then(async (result) => {
      const headers = await Promise.all(requestHeaders);
      streamRequests = headers.map((h) => h['last-event-id'] ?? null);
      return result;
    });
    return { started: startedPromise, finished: finishedAndRecorded, streamRequests: () => streamRequests };
  }, { diagnostics: () => `Chromium page log:\n${pageLog.join('\n')}` });
});
