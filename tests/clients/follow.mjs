// The scenario both real-client tests run: a client follows a session while events are posted;
// the gateway's stream cap (--sse-stream-max-ms) ends the stream several times mid-flight, the
// client reconnects on its own with Last-Event-ID, and in the end it must hold every event exactly
// once and in order, then see the session's terminal snapshot and `done`.

import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';

import { SESSIONS_PATH, gatewayApi, startGateway } from './gateway.mjs';

const TOKEN = 'real-client-test-token';
const EVENT_COUNT = 300;

// Short retry and stream cap so that a ~2 s run is cut several times; nothing is dropped by
// retention; the rate limit is out of the way (every post and every reconnect counts).
const GATEWAY_ARGS = [
  '--auth-token', TOKEN,
  '--sse-retry-ms', '50',
  '--sse-stream-max-ms', '300',
  '--max-events-per-session', '100000',
  '--rate-limit-max-requests', '1000000',
];

// How long a client may follow before it gives up and reports what it has (below node:test's
// 60 s timeout, so a hang ends in a readable assertion failure).
export const FOLLOW_TIMEOUT_MS = 40_000;

// Follows `url` with an EventSource until the `done` event, then closes it. Runs unchanged under
// Node (with the npm package's EventSource) and inside Chromium (with the page's own): it uses
// nothing but its arguments, so it can be sent to the page as source text.
// Resolves to {end, opens, errors, progress, snapshots, gaps, done}; `end` is 'done' on success.
export function followUntilDone(EventSourceImpl, url, { init, timeoutMs, onFirstSnapshot, abortSignal }) {
  return new Promise((resolve) => {
    const result = { end: null, opens: 0, errors: 0, progress: [], snapshots: [], gaps: [], done: null };
    let lastSequenceId = null;
    let connectionStarted = false;
    const source = new EventSourceImpl(url, init);
    const finish = (end) => {
      if (result.end !== null) return;
      clearTimeout(timer);
      source.close();
      result.end = end;
      resolve(result);
    };
    const timer = setTimeout(() => finish(`timed out after ${timeoutMs} ms`), timeoutMs);
    if (abortSignal) abortSignal.addEventListener('abort', () => finish('aborted'));
    const parse = (event) => {
      try {
        return JSON.parse(event.data);
      } catch {
        finish(`unparsable data in a ${event.type} event: ${event.data}`);
        return null;
      }
    };

    source.addEventListener('open', () => {
      result.opens += 1;
      connectionStarted = true;
    });
    source.addEventListener('error', () => {
      result.errors += 1;
      // CONNECTING means the client will reconnect by itself; CLOSED means it gave up.
      if (source.readyState === 2) finish(`the client gave up after an error (connection ${result.opens})`);
    });
    source.addEventListener('external_coding_agent.snapshot', (event) => {
      const data = parse(event);
      if (data === null) return;
      // `opening`: the snapshot that starts a connection, as opposed to the final one.
      result.snapshots.push({
        data,
        opening: connectionStarted,
        lastSequenceIdBefore: lastSequenceId,
        progressCountBefore: result.progress.length,
      });
      connectionStarted = false;
      if (result.snapshots.length === 1 && onFirstSnapshot) onFirstSnapshot();
    });
    source.addEventListener('external_coding_agent.gap', (event) => {
      result.gaps.push(event.data);
    });
    source.addEventListener('external_coding_agent.progress', (event) => {
      const data = parse(event);
      if (data === null) return;
      result.progress.push({
        sequenceId: data.sequence_id,
        lastEventId: event.lastEventId,
        eventType: data.event_type,
        message: data.message,
      });
      lastSequenceId = data.sequence_id;
    });
    source.addEventListener('done', (event) => {
      result.done = event.data;
      finish('done');
    });
  });
}

// Starts a gateway, opens a session, lets `follow` attach a client to the session's follow
// stream, posts EVENT_COUNT progress events spread over about two seconds, closes the session and
// checks what the client received.
//
// `follow(url, abortSignal)` must start the client and return {started, finished,
// streamRequests}: `started` resolves once the first snapshot arrived, `finished` to
// followUntilDone's result, and `streamRequests()` (optional) returns the Last-Event-ID header
// (or null) of each stream request the client made, as seen on the wire. When the test ends
// early, abortSignal fires so that the client stops reconnecting.
export async function runResumeScenario(t, follow, { diagnostics = () => '' } = {}) {
  const abort = new AbortController();
  t.after(() => abort.abort());
  const gateway = await startGateway(GATEWAY_ARGS);
  t.after(() => gateway.stop());
  const api = gatewayApi(gateway.baseUrl, TOKEN);
  const sessionId = await api.openSession('real-client-resume');

  const url =
    `${gateway.baseUrl}${SESSIONS_PATH}/${encodeURIComponent(sessionId)}/stream` +
    `?follow=true&access_token=${encodeURIComponent(TOKEN)}`;
  const client = await follow(url, abort.signal);
  await Promise.race([client.started, client.finished]);

  // 60 batches of 5, a pause after each: ~2 s, so the 300 ms stream cap hits several times.
  for (let n = 1; n <= EVENT_COUNT; n += 1) {
    assert.equal(await api.postProgress(sessionId, `event ${n}`), n);
    if (n % 5 === 0) await delay(30);
  }
  const closed = await api.closeSession(sessionId);
  assert.equal(closed.status, 'closed');

  const result = await client.finished;
  const streamRequests = client.streamRequests ? client.streamRequests() : null;
  checkResumedExactly(result, streamRequests, () => `${gateway.stderr()}\n${diagnostics()}`);
  t.diagnostic(`${result.opens} connections delivered events 1..${EVENT_COUNT} exactly once`);

  const exit = await gateway.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `gateway did not exit cleanly; stderr:\n${gateway.stderr()}`);
  return result;
}

function summary(result, streamRequests) {
  const ids = result.progress.map((event) => event.sequenceId);
  return JSON.stringify({
    end: result.end,
    opens: result.opens,
    errors: result.errors,
    progress_count: ids.length,
    first_ids: ids.slice(0, 10),
    last_ids: ids.slice(-10),
    snapshots: result.snapshots.map((snapshot) => ({
      opening: snapshot.opening,
      status: snapshot.data?.session?.status,
      replay_after_sequence_id: snapshot.data?.replay_after_sequence_id,
      last_id_before: snapshot.lastSequenceIdBefore,
    })),
    gaps: result.gaps,
    done: result.done,
    stream_requests_last_event_id: streamRequests,
  });
}

function checkResumedExactly(result, streamRequests, diagnostics) {
  const context = `\nclient saw: ${summary(result, streamRequests)}\ngateway stderr:\n${diagnostics()}`;

  assert.equal(result.end, 'done', `the stream did not end with done${context}`);
  assert.equal(result.done, '[DONE]', `done event data${context}`);

  // Every event exactly once, in order, and the EventSource's lastEventId is the sequence id.
  const ids = result.progress.map((event) => event.sequenceId);
  const expected = Array.from({ length: EVENT_COUNT }, (_, i) => i + 1);
  assert.deepEqual(ids, expected, `progress sequence ids are not exactly 1..${EVENT_COUNT} in order${context}`);
  result.progress.forEach((event, i) => {
    assert.equal(event.lastEventId, String(i + 1), `lastEventId of event ${i + 1}${context}`);
    assert.equal(event.eventType, 'progress', `event_type of event ${i + 1}${context}`);
    assert.equal(event.message, `event ${i + 1}`, `message of event ${i + 1}${context}`);
  });
  assert.deepEqual(result.gaps, [], `unexpected gap frames${context}`);

  // Every (re)connection starts with a snapshot; the cap must have cut the stream at least twice,
  // and the client must have reconnected each time by itself.
  const opening = result.snapshots.filter((snapshot) => snapshot.opening);
  assert.equal(opening.length, result.opens, `every connection starts with a snapshot${context}`);
  assert.ok(result.opens >= 3, `expected at least 2 reconnections${context}`);

  // Each connection resumed exactly where the previous one stopped: the cursor the gateway used
  // is the last id the client had received (null before the first event), and that is the
  // Last-Event-ID the client sent.
  opening.forEach((snapshot, i) => {
    assert.equal(
      snapshot.data.replay_after_sequence_id,
      snapshot.lastSequenceIdBefore,
      `connection ${i + 1} resumed from the wrong cursor${context}`,
    );
  });
  if (streamRequests) {
    assert.equal(streamRequests.length, opening.length, `one stream request per connection${context}`);
    streamRequests.forEach((lastEventId, i) => {
      const before = opening[i].lastSequenceIdBefore;
      assert.equal(
        lastEventId,
        before === null ? null : String(before),
        `Last-Event-ID header of stream request ${i + 1}${context}`,
      );
    });
  }

  // The stream ends with the session's terminal snapshot, after the last event and right before
  // `done`; no other snapshot comes in the middle of a connection.
  const last = result.snapshots.at(-1);
  assert.equal(last.data.session.status, 'closed', `final snapshot status${context}`);
  assert.equal(last.progressCountBefore, EVENT_COUNT, `final snapshot comes after every event${context}`);
  result.snapshots.slice(0, -1).forEach((snapshot, i) => {
    assert.ok(snapshot.opening, `snapshot ${i + 1} came in the middle of a connection${context}`);
  });
}
