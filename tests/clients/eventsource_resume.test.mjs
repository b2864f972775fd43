// The npm package `eventsource` (a WHATWG EventSource for Node) follows a session across several
// connections that the gateway ends mid-stream, and resumes each time with Last-Event-ID.

import test from 'node:test';

import { importClientPackage } from './gateway.mjs';
import { FOLLOW_TIMEOUT_MS, followUntilDone, runResumeScenario } from './follow.mjs';

const TITLE = 'npm eventsource resumes a followed session with every event exactly once';

test(TITLE, { timeout: 60_000 }, async (t) => {
  const { EventSource } = await importClientPackage('eventsource');

  await runResumeScenario(t, async (url, abortSignal) => {
    // The package's `fetch` option only observes here: it records the Last-Event-ID header the
    // client sends on each (re)connection, then makes the request unchanged.
    const streamRequests = [];
    const init = {
      fetch: (input, requestInit) => {
        streamRequests.push(requestInit.headers?.['Last-Event-ID'] ?? null);
        return fetch(input, requestInit);
      },
    };
    let started;
    const startedPromise = new Promise((resolve) => {
      started = resolve;
    });
    const finished = followUntilDone(EventSource, url, {
      init,
      timeoutMs: FOLLOW_TIMEOUT_MS,
      onFirstSnapshot: started,
      abortSignal,
    });
    return { started: startedPromise, finished, streamRequests: () => streamRequests };
  });
});
