// tau-gateway dashboard. Plain JavaScript with no framework and no build step: the gateway embeds
// this file as it is, and the page must work offline on a machine that has nothing but the binary.
// Everything the API returns is untrusted text, so it reaches the page through textContent and
// DOM nodes only, never innerHTML.
'use strict';

const API = '/gateway/external-coding-agent';
const SESSIONS = `${API}/sessions`;
const STATUS = '/gateway/status';
const AUTH_SESSION = '/gateway/auth/session';
const CREDENTIALS_KEY = 'tau-gateway.dashboard.credentials';

// The list and the counters are polled; an open session is live over its stream. Every request
// counts against the token's rate limit, which in token mode is shared with every agent using the
// same token (120 per minute by default): two requests every 3 s stay at a third of that.
const REFRESH_MS = 3000;
const PAGE_SIZE = 50;
// Retry delay after a stream the browser gave up on (refused, not merely cut).
const STREAM_RETRY_MS = 5000;
// A chatty worker must not grow the page without bound.
const MAX_EVENTS_SHOWN = 2000;

const STATUSES = ['running', 'completed', 'failed', 'timed_out', 'closed'];
const EVENT_TYPES = ['progress', 'followup', 'subprocess.stdout', 'subprocess.stderr',
  'subprocess.exit', 'subprocess.stdin_error', 'gateway.restart'];
// Worker event types are long; the badge shows the part that matters (the title has the type).
const TYPE_LABELS = {
  'subprocess.stdout': 'stdout',
  'subprocess.stderr': 'stderr',
  'subprocess.exit': 'exit',
  'subprocess.stdin_error': 'stdin error',
  'gateway.restart': 'restart',
};
// The gateway names every event frame external_coding_agent.progress (event_type in the data tells
// them apart). EventSource cannot listen to "any name", so the per-type names are listened to as
// well, in case a gateway ever names frames by type; duplicates are dropped by sequence id anyway.
const EVENT_FRAME_NAMES = ['external_coding_agent.progress',
  ...EVENT_TYPES.filter((type) => type !== 'progress').map((type) => `external_coding_agent.${type}`),
  ...EVENT_TYPES.filter((type) => type.includes('.'))];

// ---------------------------------------------------------------------------------------------
// Small helpers

const $ = (id) => document.getElementById(id);

// Creates an element. String children become text nodes, so data can never become markup.
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function show(node, visible = true) {
  node.hidden = !visible;
}

function formatAge(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function formatDuration(ms) {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const clockFormat = new Intl.DateTimeFormat(undefined,
  { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined,
  { dateStyle: 'medium', timeStyle: 'medium', hourCycle: 'h23' });

function formatClock(ms) {
  return `${clockFormat.format(ms)}.${String(new Date(ms).getMilliseconds()).padStart(3, '0')}`;
}

function formatDateTime(ms) {
  return dateTimeFormat.format(ms);
}

// Today's times need no date.
function formatWhen(ms) {
  return new Date(ms).toDateString() === new Date().toDateString() ? clockFormat.format(ms) : formatDateTime(ms);
}

// eca_ + 32 hex digits is too wide for a table cell; the full id is in the title and the link.
function shortId(id) {
  return id.length > 16 ? `${id.slice(0, 12)}…` : id;
}

function sessionPath(id) {
  return `${SESSIONS}/${encodeURIComponent(id)}`;
}

// An element whose text is the age of a timestamp, kept current by tickAges().
function ageNode(tag, sinceMs, suffix = '', props = {}) {
  const node = el(tag, { ...props, dataset: { since: String(sinceMs), suffix } });
  node.textContent = formatAge(Date.now() - sinceMs) + suffix;
  return node;
}

function tickAges() {
  const now = Date.now();
  for (const node of document.querySelectorAll('[data-since]')) {
    node.textContent = formatAge(now - Number(node.dataset.since)) + (node.dataset.suffix ?? '');
  }
}

function statusBadge(status, props = {}) {
  const known = STATUSES.includes(status) ? status : 'unknown';
  return el('span', { ...props, class: `badge status-${known}` }, status);
}

// ---------------------------------------------------------------------------------------------
// Credentials: {kind: 'token' | 'password' | 'none', token, expires_unix_ms?}, in sessionStorage
// so they live as long as this tab and never reach disk or other tabs.

let credentials = null;

function loadCredentials() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(CREDENTIALS_KEY) ?? 'null');
    return stored && typeof stored.token === 'string' ? stored : null;
  } catch {
    return null;
  }
}

function saveCredentials(value) {
  credentials = value;
  sessionStorage.setItem(CREDENTIALS_KEY, JSON.stringify(value));
}

// ---------------------------------------------------------------------------------------------
// API calls

class ApiError extends Error {
  constructor(status, code, message, retryAfterSeconds = 0) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  describe() {
    return this.status ? `${this.message} (${this.status} ${this.code})` : this.message;
  }
}

// Calls the API with the bearer token and returns the parsed JSON. Errors are thrown as ApiError
// with the code and message of the gateway's error envelope. A 401 signs out (the token is wrong
// or expired, nothing else will work) unless `signOutOn401` is false, as while signing in.
async function api(method, path, { body, token = credentials?.token, signOutOn401 = true } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  let text;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
    text = await response.text();
  } catch {
    setConnection('offline');
    throw new ApiError(0, 'network_error', 'Cannot reach the gateway.');
  }
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (e.g. a proxy's error page): reported by status below.
  }
  if (response.ok) {
    setConnection('ok');
    return data;
  }
  const envelope = data?.error ?? {};
  const error = new ApiError(response.status, envelope.code ?? `http_${response.status}`,
    envelope.message ?? (response.statusText || 'request failed'),
    Number(response.headers.get('Retry-After')) || 0);
  if (response.status === 429) setConnection('limited', error.retryAfterSeconds);
  if (response.status === 401 && signOutOn401) {
    signOut(`The gateway answered 401 (${error.code}): your token is wrong or has expired. ` +
      'Sign in again.');
  }
  throw error;
}

function setConnection(state, retryAfterSeconds = 0) {
  const node = $('connection');
  node.className = `connection ${state}`;
  node.textContent = {
    ok: 'Connected',
    offline: 'Gateway unreachable',
    limited: `Rate limited${retryAfterSeconds ? ` (retry in ${retryAfterSeconds} s)` : ''}`,
  }[state];
  show(node, credentials !== null);
}

// ---------------------------------------------------------------------------------------------
// Sign-in and sign-out

function showSignIn(message = '') {
  show($('app-view'), false);
  show($('signin-view'));
  show($('sign-out'), false);
  show($('auth-summary'), false);
  show($('connection'), false);
  const note = $('signin-message');
  note.textContent = message;
  show(note, message !== '');
  $('token-input').focus();
}

// Tries the credentials on GET /gateway/status; only credentials that work are kept.
async function signIn(candidate) {
  const note = $('signin-message');
  show(note, false);
  let status;
  try {
    status = await api('GET', STATUS, { token: candidate.token, signOutOn401: false });
  } catch (error) {
    note.textContent = error.status === 401
      ? (candidate.kind === 'none'
        ? 'This gateway needs credentials (401 unauthorized): it is not in localhost-dev mode.'
        : 'The gateway rejected this token (401 unauthorized).')
      : `Sign-in failed: ${error.describe()}`;
    show(note);
    return;
  }
  saveCredentials(candidate);
  $('token-input').value = '';
  $('password-input').value = '';
  enterApp(status);
}

async function signInWithPassword(password) {
  const note = $('signin-message');
  show(note, false);
  try {
    const answer = await api('POST', AUTH_SESSION, { body: { password }, token: '', signOutOn401: false });
    await signIn({ kind: 'password', token: answer.access_token, expires_unix_ms: answer.expires_unix_ms });
  } catch (error) {
    note.textContent = {
      invalid_credentials: 'Wrong password (401 invalid_credentials).',
      auth_mode_mismatch: 'This gateway is not in password-session mode: sign in with its bearer token.',
    }[error.code] ?? `Sign-in failed: ${error.describe()}`;
    show(note);
  }
}

function signOut(message = '') {
  credentials = null;
  sessionStorage.removeItem(CREDENTIALS_KEY);
  clearTimeout(refreshTimer);
  closeSessionView();
  // Nothing the signed-in operator saw stays on the page.
  $('counters').replaceChildren();
  $('sessions-body').replaceChildren();
  state.sessions = [];
  showSignIn(message);
}

function enterApp(status) {
  show($('signin-view'), false);
  show($('app-view'));
  show($('sign-out'));
  const summary = $('auth-summary');
  summary.textContent = {
    token: 'Bearer token',
    password: `Password session, expires ${credentials.expires_unix_ms
      ? clockFormat.format(credentials.expires_unix_ms) : '?'}`,
    none: 'No credentials (localhost-dev)',
  }[credentials.kind] ?? '';
  show(summary);
  setConnection('ok');
  if (status) renderCounters(status);
  refresh();
  route();
}

// ---------------------------------------------------------------------------------------------
// Polling: the gateway counters and one page of the session list

const state = {
  sessions: [],
  pageCursors: [null], // cursor of each page visited; [0] is the newest page
  pageIndex: 0,
  nextCursor: null,
};
let refreshTimer = null;
let refreshing = null;
let workerMode = false; // the gateway runs a worker process per session (runtime.worker)
let refreshAgain = false;

function scheduleRefresh(ms) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, ms);
}

// Loads the counters and the list now, then again every REFRESH_MS (while the tab is visible,
// so a forgotten background tab does not eat the rate limit). A 429 waits out its Retry-After.
function refresh() {
  clearTimeout(refreshTimer);
  if (!credentials || document.hidden) return Promise.resolve();
  // A filter changed while a refresh is in flight: its answer is stale, so load once more.
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    let delay = REFRESH_MS;
    const results = await Promise.allSettled([loadStatus(), loadSessions()]);
    const failure = results.find((result) => result.status === 'rejected')?.reason;
    if (failure) {
      if (failure.status === 429) delay = Math.max(1000, failure.retryAfterSeconds * 1000);
      if (failure.status !== 401) showBanner(`Could not refresh: ${failure.describe?.() ?? failure}`);
    } else {
      showBanner('');
    }
    refreshing = null;
    if (credentials) scheduleRefresh(refreshAgain && !failure ? 0 : delay);
    refreshAgain = false;
  })();
  return refreshing;
}

function showBanner(text) {
  const banner = $('banner');
  banner.textContent = text;
  show(banner, text !== '');
}

// Answers that arrive after a sign-out (or a sign-in as someone else) are dropped, so nothing
// reappears on a page that was cleared.
async function loadStatus() {
  const signedIn = credentials;
  const status = await api('GET', STATUS);
  if (credentials === signedIn) renderCounters(status);
}

async function loadSessions() {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  const status = $('status-filter').value;
  const workspace = $('workspace-filter').value.trim();
  const cursor = state.pageCursors[state.pageIndex];
  if (status) params.set('status', status);
  if (workspace) params.set('workspace_id', workspace);
  if (cursor) params.set('cursor', cursor);
  const signedIn = credentials;
  const mark = agentMark();
  const answer = await api('GET', `${SESSIONS}?${params}`);
  if (credentials !== signedIn) return;
  state.sessions = answer.sessions ?? [];
  state.nextCursor = answer.next_cursor ?? null;
  renderSessions();
  $('sessions-updated').textContent = `updated ${clockFormat.format(Date.now())}`;

  // The open session's snapshot: from this page if it is on it, else asked for by id.
  if (view.id) {
    const listed = state.sessions.find((session) => session.session_id === view.id);
    if (listed) {
      updateSnapshot(listed, mark);
    } else if (!view.missing) {
      try {
        const detailMark = agentMark();
        updateSnapshot((await api('GET', sessionPath(view.id))).session, detailMark);
      } catch (error) {
        if (error.status !== 404) throw error; // a deleted session: its view says so already
      }
    }
  }
}

function resetPages() {
  state.pageCursors = [null];
  state.pageIndex = 0;
}

// One card per counter. Optional chaining: a field missing from an older gateway shows as "–".
function renderCounters(status) {
  const auth = status?.auth ?? {};
  const runtime = status?.gateway?.external_coding_agent?.runtime ?? {};
  const store = runtime.store;
  const worker = runtime.worker;
  workerMode = Boolean(worker);
  const storeDetail = !store ? ''
    : store.kind === 'memory' ? 'in memory: lost on restart'
      : [formatBytes(store.database_bytes ?? 0), `${store.commits} commits`,
        store.pending_writes ? `${store.pending_writes} pending` : null].filter(Boolean).join(' · ');
  const cards = [
    {
      key: 'active-sessions', label: 'Active sessions',
      value: `${runtime.active_sessions ?? '–'} / ${runtime.max_active_sessions ?? '–'}`,
      detail: runtime.inactivity_timeout_ms ? `idle timeout ${formatDuration(runtime.inactivity_timeout_ms)}` : '',
    },
    { key: 'open-streams', label: 'Open streams', value: runtime.open_streams ?? '–', detail: 'SSE responses being written' },
    {
      key: 'auth-failures', label: 'Auth failures', value: auth.auth_failures ?? '–',
      detail: auth.mode === 'password-session'
        ? `${auth.active_sessions} live login token${auth.active_sessions === 1 ? '' : 's'}`
        : `${auth.mode ?? '?'} mode`,
      tone: auth.auth_failures > 0 ? 'warn' : '',
    },
    {
      key: 'rate-limited', label: 'Rate limited', value: auth.rate_limited_requests ?? '–',
      detail: `limit ${auth.rate_limit_max_requests} per ${auth.rate_limit_window_seconds} s`,
      tone: auth.rate_limited_requests > 0 ? 'warn' : '',
    },
    {
      key: 'store', label: 'Store',
      value: !store ? '–' : store.failed ? 'failed' : store.kind === 'sqlite' ? `sqlite · ${store.durability}` : store.kind,
      detail: store?.failed ? 'changes are refused; see the gateway log' : storeDetail,
      title: store?.path ? `database ${store.path}` : '',
      tone: store?.failed ? 'bad' : '',
    },
    {
      key: 'worker', label: 'Workers', value: worker ? `${worker.running} running` : 'off',
      detail: worker ? `${worker.exited} exited · ${worker.failed_to_start} failed to start`
        : 'no --worker-command',
      tone: worker?.failed_to_start > 0 ? 'warn' : '',
    },
  ];
  $('counters').replaceChildren(...cards.map((card) => el('li',
    { class: `counter ${card.tone ?? ''}`, 'data-testid': `counter-${card.key}`, title: card.title || null },
    el('span', { class: 'counter-label' }, card.label),
    el('span', { class: 'counter-value', 'data-testid': `counter-${card.key}-value` }, String(card.value)),
    el('span', { class: 'counter-detail' }, card.detail))));
}

function renderSessions() {
  // Rebuilding the rows would drop keyboard focus from a row's link: put it back afterwards.
  const focusedId = document.activeElement?.closest?.('tr[data-session-id]')?.dataset.sessionId;
  const rows = state.sessions.map((session) => {
    const id = session.session_id;
    const href = `#/sessions/${encodeURIComponent(id)}`;
    return el('tr', {
      'data-testid': 'session-row',
      'data-session-id': id,
      class: id === view.id ? 'selected' : '',
      'aria-current': id === view.id ? 'true' : null,
      // The whole row opens the session; the link inside keeps it keyboard-accessible.
      onclick: (event) => {
        if (event.target.closest('a')) return;
        location.hash = href;
      },
    },
    el('td', {}, el('a', { href, class: 'mono', title: id, 'data-testid': 'open-session' }, shortId(id))),
    el('td', { class: 'workspace' }, session.workspace_id),
    el('td', {}, statusBadge(session.status, { 'data-testid': 'row-status' })),
    el('td', { title: formatDateTime(session.started_unix_ms) }, ageNode('span', session.started_unix_ms)),
    el('td', { title: formatDateTime(session.last_activity_unix_ms) },
      ageNode('span', session.last_activity_unix_ms, ' ago')),
    el('td', { class: `num ${session.queued_followups > 0 ? 'queued' : ''}`, 'data-testid': 'row-queued' },
      String(session.queued_followups)));
  });
  $('sessions-body').replaceChildren(...rows);
  const filtered = $('status-filter').value || $('workspace-filter').value.trim();
  $('sessions-empty').textContent = filtered ? 'No sessions match these filters.' : 'No sessions yet.';
  show($('sessions-empty'), rows.length === 0);
  if (focusedId) $('sessions-body').querySelector(`tr[data-session-id="${CSS.escape(focusedId)}"] a`)?.focus();

  $('page-newer').disabled = state.pageIndex === 0;
  $('page-older').disabled = state.nextCursor === null;
  $('page-label').textContent = state.pageIndex === 0 && state.nextCursor === null
    ? `${rows.length} session${rows.length === 1 ? '' : 's'}`
    : `page ${state.pageIndex + 1}`;
}

// ---------------------------------------------------------------------------------------------
// Session view: details, live events over EventSource, and the operator's actions

function freshView(id = null) {
  return {
    id,
    source: null,         // the EventSource, while the stream is wanted
    snapshot: null,       // newest known session snapshot
    lastSequenceId: 0,    // newest event shown: anything at or below it is a duplicate
    connected: false,     // the stream has opened at least once
    reconnects: 0,        // times it opened again after a drop
    ended: false,         // `done` arrived: the session ended and the stream is complete
    retryTimer: null,
    replay: null,         // a replay-only EventSource looking for late worker events
    lateTimers: [],
    workerExited: false,  // subprocess.exit shown: no later event will come
    missing: false,       // the gateway answered 404 for this id
    eventsShown: 0,
    // Agent sessions (the snapshot's `agent` is an object, or agent.* events arrive).
    isAgent: false,
    plain: false,         // a snapshot said `"agent": null`: no conversation to build
    agent: null,          // newest known agent object: fetched, or moved on by the events since
    stateEvents: 0,       // events seen that change the agent's state (see agentMark())
    agentFetch: { busy: false, again: false },
    conversation: freshConversation(),
    tab: 'conversation',
  };
}
let view = freshView();

function route() {
  if (!credentials) return;
  const match = /^#\/sessions\/([^/]+)$/.exec(location.hash);
  if (match) openSessionView(decodeURIComponent(match[1]));
  else closeSessionView();
}

function openSessionView(id) {
  if (view.id === id) return;
  closeSessionView();
  view = freshView(id);
  show($('session-placeholder'), false);
  show($('session-detail'));
  $('session-id').textContent = id;
  $('event-list').replaceChildren();
  $('conversation').replaceChildren();
  renderAgentMode();
  for (const note of ['action-error', 'drain-result']) show($(note), false);
  $('followup-input').value = '';
  const listed = state.sessions.find((session) => session.session_id === id);
  if (listed) updateSnapshot(listed);
  else renderSnapshotPlaceholder();
  renderEventCount();
  markSelectedRow();
  connectStream();
  // The stream's snapshot does not say whether the session runs an agent: the detail does.
  if (!listed || listed.agent === undefined) refreshAgent();
}

function closeSessionView() {
  if (view.source) view.source.close();
  if (view.replay) view.replay.close();
  clearTimeout(view.retryTimer);
  view.lateTimers.forEach(clearTimeout);
  view = freshView();
  show($('session-detail'), false);
  show($('session-placeholder'));
  markSelectedRow();
}

function markSelectedRow() {
  for (const row of $('sessions-body').querySelectorAll('tr[data-session-id]')) {
    const selected = row.dataset.sessionId === view.id;
    row.classList.toggle('selected', selected);
    if (selected) row.setAttribute('aria-current', 'true');
    else row.removeAttribute('aria-current');
  }
}

// Until the first snapshot (loading: '…') or for an unknown session id ('not found'): nothing to
// show and no action to offer.
function renderSnapshotPlaceholder(label = '…') {
  $('session-status').replaceWith(statusBadge(label, { id: 'session-status', 'data-testid': 'session-status' }));
  for (const id of ['session-workspace', 'session-started', 'session-activity', 'session-queued']) {
    $(id).textContent = label === '…' ? '…' : '—';
  }
  for (const id of ['followup-input', 'followup-send', 'drain', 'close-session', 'cancel-turn']) $(id).disabled = true;
}

// Shows a snapshot of the open session (from the stream, the list, or an action's answer).
// `mark` is agentMark() from when the snapshot was asked for (see applyAgent).
function updateSnapshot(session, mark = null) {
  if (!session || session.session_id !== view.id) return;
  // Shown again (after an action): its agent may be older than what the events have shown since.
  const again = session === view.snapshot;
  view.snapshot = session;
  if (session.agent && !again) applyAgent(session.agent, mark);
  if (session.agent === null) view.plain = true;
  $('session-status').replaceWith(statusBadge(session.status, { id: 'session-status', 'data-testid': 'session-status' }));
  $('session-workspace').textContent = session.workspace_id;
  $('session-started').replaceChildren(formatWhen(session.started_unix_ms), ' (',
    ageNode('span', session.started_unix_ms, ' ago'), ')');
  $('session-started').title = formatDateTime(session.started_unix_ms);
  $('session-activity').replaceChildren(ageNode('span', session.last_activity_unix_ms, ' ago'));
  $('session-activity').title = formatDateTime(session.last_activity_unix_ms);
  $('session-queued').textContent = String(session.queued_followups);

  // Progress and follow-ups need a running session (else 409); draining works on any session.
  const running = session.status === 'running';
  $('followup-input').disabled = !running;
  $('followup-send').disabled = !running;
  $('close-session').disabled = !running;
  $('drain').disabled = false;
  $('followup-input').placeholder = running
    ? 'Queue a message for the agent (Ctrl+Enter sends)'
    : `The session is ${session.status}: it takes no more follow-ups.`;
  if (view.isAgent) renderAgentControls();

  // Keep the list row in step without waiting for the next poll.
  const row = $('sessions-body').querySelector(`tr[data-session-id="${CSS.escape(session.session_id)}"]`);
  if (row) {
    row.querySelector('[data-testid="row-status"]')?.replaceWith(statusBadge(session.status, { 'data-testid': 'row-status' }));
    const queued = row.querySelector('[data-testid="row-queued"]');
    if (queued) {
      queued.textContent = String(session.queued_followups);
      queued.classList.toggle('queued', session.queued_followups > 0);
    }
  }
}

function setStreamState(kind, detail = '') {
  const node = $('stream-state');
  node.className = `stream-state ${kind}`;
  node.dataset.state = kind;
  node.dataset.reconnects = String(view.reconnects);
  const label = {
    connecting: 'Connecting…',
    live: 'Live',
    reconnecting: 'Reconnecting…',
    failed: 'Disconnected',
    ended: 'Stream ended',
  }[kind];
  const resumed = view.reconnects > 0 && kind === 'live' ? ` · resumed ${view.reconnects}×` : '';
  node.textContent = label + resumed + (detail ? ` — ${detail}` : '');
  show($('stream-retry'), kind === 'failed');
}

// Follows the session with EventSource. The browser reconnects by itself after a drop and sends
// Last-Event-ID, so the gateway resumes right after the last event this page received. The URL
// carries no cursor on purpose: a query cursor would win over Last-Event-ID on every reconnect.
function connectStream() {
  clearTimeout(view.retryTimer);
  if (view.source) view.source.close();
  const source = new EventSource(streamUrl({ follow: 'true' }));
  view.source = source;
  setStreamState('connecting');
  const current = listen(source, () => {
    view.ended = true;
    setStreamState('ended');
    scheduleLateReplays();
  });
  source.addEventListener('open', current(() => {
    if (view.connected) view.reconnects += 1;
    view.connected = true;
    setStreamState('live');
  }));
  source.addEventListener('error', current(() => {
    // CONNECTING: the stream was cut or dropped and the browser is reconnecting by itself.
    // CLOSED: the browser gave up (the gateway refused the stream): find out why, retry later.
    if (source.readyState === EventSource.CONNECTING) setStreamState('reconnecting');
    else diagnoseStreamFailure();
  }));
}

function streamUrl(query) {
  const params = new URLSearchParams(query);
  // EventSource cannot send an Authorization header; the stream route accepts the token here.
  if (credentials?.token) params.set('access_token', credentials.token);
  return `${sessionPath(view.id)}/stream?${params}`;
}

// Shows the snapshot, gap and event frames of `source` while it is one of this view's streams,
// and closes it at `done` (without close() the browser would reconnect to an ended session
// forever). Returns the wrapper that ignores frames of a stream the view has since dropped.
function listen(source, onDone) {
  const current = (handler) => (event) => {
    if (view.source === source || view.replay === source) handler(event);
  };
  source.addEventListener('external_coding_agent.snapshot', current((event) => {
    const data = parseFrame(event);
    if (data?.session) updateSnapshot(data.session);
  }));
  source.addEventListener('external_coding_agent.gap', current((event) => {
    const gap = parseFrame(event);
    if (gap) showGap(gap.requested_after_sequence_id + 1, gap.first_available_sequence_id - 1);
  }));
  for (const name of EVENT_FRAME_NAMES) source.addEventListener(name, current(onEventFrame));
  source.onmessage = current(onEventFrame); // unnamed frames, should a gateway send any
  source.addEventListener('done', current(() => {
    source.close();
    onDone();
  }));
  return current;
}

// With workers and agents, a session's last events (the process's final output and its
// subprocess.exit) are recorded after the session ended, so its follow stream, which ends with
// the session, may miss them. A few replays from the last shown event pick them up while the
// process is being stopped.
const LATE_REPLAY_DELAYS_MS = [1000, 3000, 8000];

function scheduleLateReplays() {
  if (!(workerMode || view.isAgent) || view.workerExited) return;
  const { id } = view;
  view.lateTimers = LATE_REPLAY_DELAYS_MS.map((ms) => setTimeout(() => {
    if (view.id === id && !view.workerExited) replayOnce();
  }, ms));
}

// A replay-only stream: it sends what is there after the cursor, then `done`. The cursor in the
// URL is right here, since this EventSource never reconnects: any error closes it.
function replayOnce() {
  if (view.replay) view.replay.close();
  const source = new EventSource(streamUrl({ after_sequence_id: String(view.lastSequenceId) }));
  view.replay = source;
  const current = listen(source, () => {});
  source.addEventListener('error', current(() => source.close()));
}

function parseFrame(event) {
  try {
    return JSON.parse(event.data);
  } catch {
    console.warn(`unparsable ${event.type} frame`, event.data);
    return null;
  }
}

function onEventFrame(frame) {
  const event = parseFrame(frame);
  const sequenceId = Number(event?.sequence_id);
  if (!Number.isSafeInteger(sequenceId)) return;
  // A replay after a reconnect or a retry may repeat what is shown: each event appears once.
  if (sequenceId <= view.lastSequenceId) return;
  // Events the gateway no longer keeps (retention) leave a visible hole, not a silent one.
  if (sequenceId > view.lastSequenceId + 1) showGap(view.lastSequenceId + 1, sequenceId - 1);
  view.lastSequenceId = sequenceId;
  if (event.event_type === 'subprocess.exit') view.workerExited = true;
  const time = Number(event.timestamp_unix_ms);
  const timeKnown = Number.isFinite(time) && Math.abs(time) < 8.64e15;
  appendEventRow(el('li', {
    class: `event type-${EVENT_TYPES.includes(event.event_type) ? event.event_type.replace(/[._]/g, '-') : 'other'}`,
    'data-testid': 'event',
    'data-seq': String(sequenceId),
    'data-type': String(event.event_type),
  },
  el('span', { class: 'event-seq', title: 'sequence id' }, `#${sequenceId}`),
  el('time', { class: 'event-time', datetime: timeKnown ? new Date(time).toISOString() : null,
    title: timeKnown ? formatDateTime(time) : null }, timeKnown ? formatClock(time) : '?'),
  el('span', { class: 'event-type', title: String(event.event_type) },
    TYPE_LABELS[event.event_type] ?? String(event.event_type)),
  el('p', { class: 'event-message' }, String(event.message))));
  view.eventsShown += 1;
  renderEventCount();
  onConversationEvent(event);
}

function showGap(from, to) {
  if (to < from) return;
  view.lastSequenceId = Math.max(view.lastSequenceId, to);
  const range = from === to ? `Event ${from} is` : `Events ${from}–${to} are`;
  const text = `${range} no longer kept by the gateway (retention) and cannot be shown.`;
  appendEventRow(el('li', { class: 'event gap', 'data-testid': 'event-gap' }, text));
  appendConversation(el('li', { class: 'conv note gap', 'data-testid': 'conversation-gap' }, text));
}

// Appends to the event list, keeping it scrolled to the newest event if it was there already.
function appendEventRow(row) {
  const list = $('event-list');
  stickToEnd(list);
  list.append(row);
  while (list.childElementCount > MAX_EVENTS_SHOWN) list.firstElementChild.remove();
}

// Call before adding to `list`: if it shows its end now, it will show the new end afterwards.
const stickScheduled = new WeakSet();
function stickToEnd(list) {
  if (stickScheduled.has(list)) return;
  if (list.scrollHeight - list.scrollTop - list.clientHeight >= 48) return;
  stickScheduled.add(list);
  requestAnimationFrame(() => {
    stickScheduled.delete(list);
    list.scrollTop = list.scrollHeight;
  });
}

function renderEventCount() {
  const shown = Math.min(view.eventsShown, MAX_EVENTS_SHOWN);
  $('event-count').textContent = view.eventsShown > MAX_EVENTS_SHOWN
    ? `newest ${shown} of ${view.eventsShown} received`
    : `${view.eventsShown} event${view.eventsShown === 1 ? '' : 's'}`;
}

// ---------------------------------------------------------------------------------------------
// Agent sessions: the agent's state, and its events as a conversation. Everything the agent
// says, names or asks is hostile input: it reaches the page as text nodes only.

const AGENT_STATES = ['starting', 'idle', 'prompting', 'awaiting_permission', 'exited'];
const AGENT_STATE_LABELS = { awaiting_permission: 'awaiting permission' };
// A turn runs in these states: Cancel applies to it.
const CANCELLABLE_STATES = ['prompting', 'awaiting_permission'];
// Events after which the agent's state (in the session detail) may differ.
const AGENT_STATE_EVENTS = ['followup', 'agent.turn_started', 'agent.turn_ended',
  'agent.permission_requested', 'agent.permission_resolved', 'subprocess.exit'];
const TOOL_STATUSES = ['pending', 'in_progress', 'completed', 'failed'];
const PERMISSION_OUTCOMES = { cancelled: 'Cancelled', timed_out: 'Timed out: refused' };
const MAX_STDERR_LINES = 200;

function freshConversation() {
  return {
    last: null,          // {kind, key, body} of the newest item, which text may continue
    tools: new Map(),    // `${turn}:${tool_call_id}` and tool_call_id -> row
    permissions: new Map(), // request_id -> card
    plan: null,          // {turn, node}: the current turn's plan, updated in place
    turn: 0,
  };
}

// Text of a value from an event: strings as they are, anything else as JSON.
function asText(value) {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function asObject(value) {
  return value && typeof value === 'object' && !Array.isArray(value) ? value : {};
}

// What the page knew of the agent's state-changing events when it asked for a snapshot: a
// snapshot asked for before the newest of these events may predate it, and is not applied.
function agentMark() {
  return `${view.id}#${view.stateEvents}`;
}

function applyAgent(agent, mark) {
  enterAgentMode();
  if (mark !== null && mark !== agentMark()) return; // stale; a newer detail is on its way
  view.agent = { ...agent, pending_permissions: [...(agent.pending_permissions ?? [])] };
  renderAgent();
  // A request whose event is not shown (not replayed yet, or dropped by retention) still gets
  // its buttons; its event, when it comes, moves the card to its place.
  for (const request of view.agent.pending_permissions) {
    const requestId = asText(request?.request_id);
    if (requestId && !view.conversation.permissions.has(requestId)) addPermissionRequest(asObject(request));
  }
}

// Asks for the session detail, one request at a time: events arriving meanwhile ask once more.
function refreshAgent() {
  const current = view;
  const fetchState = current.agentFetch;
  if (!current.id || fetchState.busy) {
    fetchState.again = true;
    return;
  }
  fetchState.busy = true;
  fetchState.again = false;
  const mark = agentMark();
  api('GET', sessionPath(current.id))
    .then((answer) => updateSnapshot(answer.session, mark))
    .catch(() => {}) // the list's refresh reports what is wrong with the gateway
    .finally(() => {
      fetchState.busy = false;
      if (fetchState.again && view === current) setTimeout(refreshAgent, 100);
    });
}

function enterAgentMode() {
  if (view.isAgent) return;
  view.isAgent = true;
  renderAgentMode();
}

// Agent sessions show the agent and the conversation (the raw events one tab away); the others
// keep the event list and the follow-up form as they always were.
function renderAgentMode() {
  const agentMode = view.isAgent;
  show($('agent-bar'), agentMode);
  show($('view-tabs'), agentMode);
  show($('events-heading'), !agentMode);
  show($('cancel-turn'), agentMode);
  show($('drain'), !agentMode); // draining would take queued prompts away from the agent
  $('followup-label').textContent = agentMode ? 'Prompt' : 'Follow-up message';
  $('followup-send').textContent = agentMode ? 'Send prompt' : 'Send follow-up';
  selectTab(agentMode ? view.tab : 'events');
  if (agentMode) renderAgent();
}

function selectTab(tab) {
  const conversation = tab === 'conversation';
  if (view.isAgent) view.tab = tab;
  $('tab-conversation').setAttribute('aria-selected', String(conversation));
  $('tab-events').setAttribute('aria-selected', String(!conversation));
  show($('conversation'), conversation);
  show($('event-list'), !conversation);
  const list = conversation ? $('conversation') : $('event-list');
  list.scrollTop = list.scrollHeight;
}

function renderAgent() {
  const agent = view.agent;
  $('agent-name').textContent = agent ? asText(agent.name) : '…';
  $('agent-protocol').textContent = agent ? asText(agent.protocol) : '';
  show($('agent-protocol'), Boolean(agent));
  const stateName = agent ? asText(agent.state) : '…';
  const known = AGENT_STATES.includes(stateName) ? stateName : 'unknown';
  const badge = el('span', { id: 'agent-state', class: `badge agent-state state-${known}`,
    'data-testid': 'agent-state', 'data-state': stateName }, AGENT_STATE_LABELS[stateName] ?? stateName);
  $('agent-state').replaceWith(badge);
  const turns = Number(agent?.turns_completed ?? 0);
  const pending = agent?.pending_permissions?.length ?? 0;
  $('agent-turns').textContent = !agent ? '' : [
    `${turns} turn${turns === 1 ? '' : 's'} completed`,
    agent.last_stop_reason ? `last stop: ${asText(agent.last_stop_reason)}` : null,
    pending ? `${pending} permission request${pending === 1 ? '' : 's'} waiting` : null,
  ].filter(Boolean).join(' · ');
  renderAgentControls();
}

function renderAgentControls() {
  const running = view.snapshot?.status === 'running';
  const agentState = view.agent?.state;
  $('cancel-turn').disabled = !running || !CANCELLABLE_STATES.includes(agentState);
  const open = running && agentState !== 'exited';
  $('followup-input').disabled = !open;
  $('followup-send').disabled = !open;
  $('followup-input').placeholder = !running
    ? `The session is ${view.snapshot?.status ?? 'not running'}: it takes no more prompts.`
    : agentState === 'exited' ? 'The agent has exited: it takes no more prompts.'
      : CANCELLABLE_STATES.includes(agentState)
        ? 'Queue the next prompt: it starts when this turn ends (Ctrl+Enter sends)'
        : 'Ask the agent (Ctrl+Enter sends)';
}

// Moves the known agent state on with an event at once; the detail asked for next confirms it.
function advanceAgentState(event, data) {
  const agent = view.agent;
  if (!agent) return;
  switch (event.event_type) {
    case 'agent.turn_started':
      agent.state = 'prompting';
      break;
    case 'agent.permission_requested':
      agent.state = 'awaiting_permission';
      if (!agent.pending_permissions.some((request) => request?.request_id === data.request_id)) {
        agent.pending_permissions.push(data);
      }
      break;
    case 'agent.permission_resolved':
      agent.pending_permissions = agent.pending_permissions
        .filter((request) => request?.request_id !== data.request_id);
      if (agent.state === 'awaiting_permission' && agent.pending_permissions.length === 0) agent.state = 'prompting';
      break;
    case 'agent.turn_ended':
      agent.state = 'idle';
      agent.pending_permissions = [];
      agent.last_stop_reason = data.stop_reason ?? null;
      if (Number.isSafeInteger(data.turn)) agent.turns_completed = Math.max(agent.turns_completed ?? 0, data.turn);
      break;
    case 'subprocess.exit':
      agent.state = 'exited';
      break;
    default:
      return;
  }
  renderAgent();
}

// Every event also goes to the conversation (shown for agent sessions).
function onConversationEvent(event) {
  const type = String(event.event_type);
  const data = asObject(event.data);
  if (type.startsWith('agent.')) enterAgentMode();
  if (AGENT_STATE_EVENTS.includes(type)) {
    view.stateEvents += 1;
    advanceAgentState(event, data);
    if (view.isAgent) refreshAgent();
  }
  if (view.plain && !view.isAgent) return;
  switch (type) {
    case 'followup': return addUserPrompt(asText(event.message), null);
    case 'agent.turn_started': return startTurn(data);
    case 'agent.message': return addAgentText('message', data);
    case 'agent.thought': return addAgentText('thought', data);
    case 'agent.tool_call': return addToolCall(data);
    case 'agent.tool_call_update': return updateToolCall(data);
    case 'agent.plan': return showPlan(data);
    case 'agent.permission_requested': return addPermissionRequest(data);
    case 'agent.permission_resolved': return resolvePermission(data);
    case 'agent.turn_ended': return endTurn(data);
    // Bookkeeping for restarts (which profile, which agent session): in the Events tab only.
    case 'agent.started':
    case 'agent.ready':
      return undefined;
    case 'agent.lost': return addNote('error', 'Agent lost', asText(event.message));
    case 'agent.protocol_error':
      return addNote('error', 'Protocol error', asText(data.detail ?? event.message));
    case 'subprocess.stderr': return addStderr(asText(event.message));
    case 'subprocess.exit': return addNote('error', 'Agent exited', asText(event.message));
    default: return addNote('', TYPE_LABELS[type] ?? type, asText(event.message));
  }
}

// Appends an item to the conversation; `continues` is the text it may be continued with.
function appendConversation(node, continues = null) {
  const list = $('conversation');
  stickToEnd(list);
  list.append(node);
  while (list.childElementCount > MAX_EVENTS_SHOWN) list.firstElementChild.remove();
  view.conversation.last = continues;
}

function bubble(kind, head, text, props = {}) {
  const body = el('div', { class: 'bubble-text' }, text);
  const node = el('li', { ...props, class: `conv bubble ${kind}` },
    el('div', { class: 'bubble-head' }, ...head), body);
  return { node, body };
}

// A prompt: queued (a follow-up event) until a turn starts with it.
function addUserPrompt(text, turn) {
  const tag = el('span', { class: 'bubble-tag', 'data-testid': 'prompt-state' },
    turn === null ? 'queued' : `turn ${turn}`);
  const { node } = bubble('user', ['You', tag], text,
    { 'data-testid': 'user-prompt', 'data-state': turn === null ? 'queued' : 'sent' });
  appendConversation(node);
  return node;
}

function startTurn(data) {
  const prompt = asText(data.prompt);
  const turn = Number.isSafeInteger(data.turn) ? data.turn : view.conversation.turn + 1;
  view.conversation.turn = turn;
  // Turns take the queued prompts in order: the oldest queued one with this text is this turn's.
  const queued = [...$('conversation').querySelectorAll('[data-testid="user-prompt"][data-state="queued"]')];
  const match = queued.find((node) => node.querySelector('.bubble-text').textContent === prompt);
  if (match) {
    match.dataset.state = 'sent';
    match.querySelector('[data-testid="prompt-state"]').textContent = `turn ${turn}`;
    view.conversation.last = null;
  } else {
    addUserPrompt(prompt, turn);
  }
}

// Text pieces: consecutive ones of the same message (or run of thought) grow one bubble.
function addAgentText(kind, data) {
  const conversation = view.conversation;
  const key = kind === 'message' ? `message:${asText(data.message_id)}` : `thought:${asText(data.turn)}`;
  const text = asText(data.text);
  if (conversation.last?.key === key && conversation.last.body.isConnected) {
    stickToEnd($('conversation'));
    conversation.last.body.append(text);
    return;
  }
  const name = view.agent?.name ? asText(view.agent.name) : 'Agent';
  const { node, body } = kind === 'message'
    ? bubble('agent', [name], text, { 'data-testid': 'agent-message', 'data-message-id': asText(data.message_id) })
    : bubble('thought', ['Thinking'], text, { 'data-testid': 'agent-thought' });
  appendConversation(node, { key, body });
}

function toolStatusBadge(status) {
  const known = TOOL_STATUSES.includes(status) ? status : 'unknown';
  return el('span', { class: `badge tool-status tool-${known}`, 'data-testid': 'tool-status' },
    status ? status.replace('_', ' ') : '…');
}

function addToolCall(data) {
  const id = asText(data.tool_call_id);
  const status = asText(data.status);
  const row = el('li', { class: 'conv tool', 'data-testid': 'tool-call', 'data-tool-call-id': id, 'data-status': status },
    el('span', { class: 'chip mono', title: 'tool kind' }, asText(data.kind) || 'tool'),
    el('span', { class: 'tool-title', title: id }, asText(data.title) || id),
    toolStatusBadge(status));
  view.conversation.tools.set(`${asText(data.turn)}:${id}`, row);
  view.conversation.tools.set(id, row);
  appendConversation(row);
  return row;
}

function updateToolCall(data) {
  const id = asText(data.tool_call_id);
  const tools = view.conversation.tools;
  // An agent may reuse a tool call id in another turn: the turn's own call comes first.
  const row = tools.get(`${asText(data.turn)}:${id}`) ?? tools.get(id) ?? addToolCall({ ...data, status: null });
  if (data.status === null || data.status === undefined) return;
  const status = asText(data.status);
  row.dataset.status = status;
  row.querySelector('[data-testid="tool-status"]').replaceWith(toolStatusBadge(status));
}

function showPlan(data) {
  const entries = Array.isArray(data.entries) ? data.entries : [];
  const list = el('ol', { class: 'plan-entries' }, entries.map((entry) => {
    const item = asObject(entry);
    const status = asText(item.status);
    return el('li', { class: `plan-entry plan-${TOOL_STATUSES.includes(status) ? status : 'unknown'}`,
      title: [status, asText(item.priority)].filter(Boolean).join(', ') }, asText(item.content));
  }));
  const conversation = view.conversation;
  if (conversation.plan?.turn === conversation.turn && conversation.plan.node.isConnected) {
    conversation.plan.node.querySelector('.plan-entries').replaceWith(list);
    return;
  }
  const node = el('li', { class: 'conv plan', 'data-testid': 'agent-plan' },
    el('div', { class: 'bubble-head' }, 'Plan'), list);
  conversation.plan = { turn: conversation.turn, node };
  appendConversation(node);
}

function optionButtonClass(kind) {
  if (kind.startsWith('allow')) return 'button small primary';
  if (kind.startsWith('reject')) return 'button small danger';
  return 'button small';
}

function addPermissionRequest(data) {
  const requestId = asText(data.request_id);
  const shown = view.conversation.permissions.get(requestId);
  if (shown?.isConnected && !shown.dataset.outcome) {
    appendConversation(shown); // shown from a snapshot before its event: now in its place
    return;
  }
  const toolCall = asObject(data.tool_call);
  const options = Array.isArray(data.options) ? data.options.map(asObject) : [];
  const actions = el('div', { class: 'permission-actions', 'data-testid': 'permission-options' });
  const note = el('p', { class: 'permission-note', role: 'status' });
  const card = el('li', { class: 'conv permission', 'data-testid': 'permission-request', 'data-request-id': requestId },
    el('div', { class: 'bubble-head' }, 'Permission requested',
      toolCall.kind ? el('span', { class: 'chip mono' }, asText(toolCall.kind)) : null),
    el('p', { class: 'permission-title' }, asText(toolCall.title) || asText(toolCall.tool_call_id) || requestId),
    actions, note);
  for (const option of options) {
    actions.append(el('button', {
      type: 'button',
      class: optionButtonClass(asText(option.kind)),
      title: asText(option.kind),
      'data-option-id': asText(option.option_id),
      onclick: () => answerPermission(card, requestId, asText(option.option_id)),
    }, asText(option.name) || asText(option.option_id)));
  }
  view.conversation.permissions.set(requestId, card);
  appendConversation(card);
}

async function answerPermission(card, requestId, optionId) {
  const { id } = view;
  const mark = agentMark();
  const buttons = [...card.querySelectorAll('.permission-actions button')];
  const note = card.querySelector('.permission-note');
  for (const button of buttons) button.disabled = true;
  note.className = 'permission-note';
  note.textContent = 'Sending the answer…';
  try {
    const answer = await api('POST', `${sessionPath(id)}/permissions/${encodeURIComponent(requestId)}`,
      { body: { option_id: optionId } });
    updateSnapshot(answer.session, mark);
    if (!card.dataset.outcome) note.textContent = 'Answered; waiting for the agent…';
  } catch (error) {
    if (view.id !== id || card.dataset.outcome || error.status === 401) return;
    for (const button of buttons) button.disabled = false;
    note.className = 'permission-note error';
    note.textContent = `Not answered: ${error.describe()}`;
  }
}

function resolvePermission(data) {
  const requestId = asText(data.request_id);
  const outcome = asText(data.outcome);
  let card = view.conversation.permissions.get(requestId);
  if (!card?.isConnected) {
    addPermissionRequest({ request_id: requestId, tool_call: {}, options: [] }); // its request was not kept
    card = view.conversation.permissions.get(requestId);
  }
  const chosen = card.querySelector(`.permission-actions button[data-option-id="${CSS.escape(asText(data.option_id))}"]`);
  const by = data.by ? ` (by ${asText(data.by)})` : '';
  card.dataset.outcome = outcome;
  card.querySelector('.permission-actions').remove();
  const note = card.querySelector('.permission-note');
  note.className = `permission-note outcome-${outcome === 'selected' ? 'selected' : 'refused'}`;
  note.textContent = outcome === 'selected'
    ? `Answered: ${chosen?.textContent ?? asText(data.option_id)}${by}`
    : `${PERMISSION_OUTCOMES[outcome] ?? outcome}${by}`;
  view.conversation.last = null;
}

function formatUsage(data) {
  const usage = asObject(data.usage);
  const input = usage.input_tokens ?? usage.inputTokens;
  const output = usage.output_tokens ?? usage.outputTokens;
  return [
    Number.isFinite(input) ? `${input} in` : null,
    Number.isFinite(output) ? `${output} out` : null,
    Number.isFinite(data.total_cost_usd) ? `$${data.total_cost_usd.toFixed(4)}` : null,
  ].filter(Boolean).join(' · ');
}

function endTurn(data) {
  const reason = asText(data.stop_reason) || 'unknown';
  const failed = data.is_error === true || reason === 'error' || data.error !== undefined;
  const tone = failed ? 'bad' : reason === 'end_turn' || reason === 'success' ? 'good' : 'warn';
  const usage = formatUsage(data);
  const error = data.error === undefined ? '' : asText(asObject(data.error).message ?? data.error);
  appendConversation(el('li', { class: `conv turn-end ${tone}`, 'data-testid': 'turn-end', 'data-stop-reason': reason },
    el('span', { class: 'turn-end-label' },
      `Turn ${asText(data.turn)} ended: ${reason.replaceAll('_', ' ')}`,
      usage ? ` · ${usage}` : '', error ? ` · ${error}` : '')));
}

// Things that are not conversation (progress from the API, restarts, the agent's exit).
function addNote(tone, label, text) {
  appendConversation(el('li', { class: `conv note ${tone}`, 'data-testid': 'conversation-note' },
    el('strong', {}, label), text ? `: ${text}` : ''));
}

// The agent's stderr: consecutive lines share one block, which keeps its newest lines.
function addStderr(text) {
  const conversation = view.conversation;
  if (conversation.last?.key === 'stderr' && conversation.last.body.isConnected) {
    const { body } = conversation.last;
    stickToEnd($('conversation'));
    body.append(`${text}\n`);
    while (body.childNodes.length > MAX_STDERR_LINES) body.firstChild.remove();
    return;
  }
  const body = el('pre', { class: 'stderr-lines' }, `${text}\n`);
  appendConversation(el('li', { class: 'conv stderr', 'data-testid': 'agent-stderr' },
    el('div', { class: 'bubble-head' }, 'stderr'), body), { key: 'stderr', body });
}

// EventSource does not say why it gave up; the detail endpoint answers the same way the stream
// did (401, 404, 429) or works, in which case the refusal was transient (e.g. the stream limit).
async function diagnoseStreamFailure() {
  const { id } = view;
  setStreamState('failed');
  let retryMs = STREAM_RETRY_MS;
  try {
    updateSnapshot((await api('GET', sessionPath(id))).session);
    setStreamState('failed', `the gateway refused the stream; retrying in ${retryMs / 1000} s`);
  } catch (error) {
    if (view.id !== id || error.status === 401) return; // signed out, or another session open
    if (error.status === 404) {
      view.missing = true;
      setStreamState('failed', 'no such session (404)');
      show($('stream-retry'), false);
      renderSnapshotPlaceholder('not found');
      return;
    }
    if (error.status === 429) retryMs = Math.max(1000, error.retryAfterSeconds * 1000);
    setStreamState('failed', `${error.describe()}; retrying in ${Math.round(retryMs / 1000)} s`);
  }
  if (view.id !== id) return;
  clearTimeout(view.retryTimer);
  view.retryTimer = setTimeout(() => {
    if (view.id === id && !view.ended) connectStream();
  }, retryMs);
}

function showActionError(error) {
  const note = $('action-error');
  if (!error) {
    show(note, false);
    return;
  }
  note.replaceChildren(
    error.status ? el('strong', { class: 'mono' }, `${error.status} ${error.code}`) : null,
    error.status ? ': ' : null,
    error.message);
  show(note);
}

// Runs one action on the open session: disables its button meanwhile and shows its error.
async function sessionAction(button, action) {
  const id = view.id;
  const mark = agentMark();
  button.disabled = true;
  showActionError(null);
  try {
    await action(id, mark);
    refresh(); // the list and the counters change with it
  } catch (error) {
    if (error.status !== 401 && view.id === id) showActionError(error);
  } finally {
    if (view.id === id) {
      button.disabled = false;
      if (view.snapshot) updateSnapshot(view.snapshot); // re-applies what the status allows
    }
  }
}

function postFollowup() {
  const input = $('followup-input');
  const message = input.value;
  if (message.trim() === '') {
    showActionError(new ApiError(0, '', 'Write a message first.'));
    return;
  }
  sessionAction($('followup-send'), async (id, mark) => {
    const answer = await api('POST', `${sessionPath(id)}/followups`, { body: { message } });
    // The event itself arrives over the stream, like everyone else's.
    if (view.id === id) input.value = '';
    updateSnapshot(answer.session, mark);
  });
}

function drainFollowups() {
  sessionAction($('drain'), async (id, mark) => {
    const answer = await api('POST', `${sessionPath(id)}/followups/drain`, { body: {} });
    updateSnapshot(answer.session, mark);
    const result = $('drain-result');
    const count = answer.drained_count ?? answer.followups?.length ?? 0;
    result.replaceChildren(
      el('strong', {}, count === 0 ? 'No follow-ups were queued.'
        : `Drained ${count} follow-up${count === 1 ? '' : 's'}, oldest first:`),
      count === 0 ? null : el('ol', { class: 'drained' }, answer.followups.map((text) => el('li', {}, text))));
    show(result);
  });
}

function closeSession() {
  sessionAction($('close-session'), async (id, mark) => {
    const answer = await api('POST', `${sessionPath(id)}/close`);
    // The stream follows with the final snapshot and `done`.
    updateSnapshot(answer.session, mark);
  });
}

// Asks the agent to stop its turn; the turn's end arrives over the stream (stop reason
// `cancelled`), and every permission request still waiting is answered `cancelled`.
function cancelTurn() {
  sessionAction($('cancel-turn'), async (id, mark) => {
    const answer = await api('POST', `${sessionPath(id)}/cancel`);
    updateSnapshot(answer.session, mark);
  });
}

async function openWorkspace(workspaceId) {
  const note = $('open-error');
  show(note, false);
  try {
    const { session } = await api('POST', SESSIONS, { body: { workspace_id: workspaceId } });
    $('open-workspace').value = '';
    location.hash = `#/sessions/${encodeURIComponent(session.session_id)}`;
    refresh();
  } catch (error) {
    if (error.status === 401) return;
    note.textContent = `Could not open a session: ${error.describe()}`;
    show(note);
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function onSubmit(form, handler) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    handler();
  });
}

function start() {
  onSubmit($('token-form'), () => signIn({ kind: 'token', token: $('token-input').value.trim() }));
  onSubmit($('password-form'), () => signInWithPassword($('password-input').value));
  $('no-credentials').addEventListener('click', () => signIn({ kind: 'none', token: '' }));
  $('sign-out').addEventListener('click', () => signOut('Signed out.'));

  $('refresh').addEventListener('click', () => refresh());
  $('status-filter').addEventListener('change', () => {
    resetPages();
    refresh();
  });
  let filterTimer = null;
  $('workspace-filter').addEventListener('input', () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      resetPages();
      refresh();
    }, 300);
  });
  $('page-older').addEventListener('click', () => {
    if (state.nextCursor === null) return;
    state.pageCursors[state.pageIndex + 1] = state.nextCursor;
    state.pageIndex += 1;
    refresh();
  });
  $('page-newer').addEventListener('click', () => {
    state.pageIndex = Math.max(0, state.pageIndex - 1);
    refresh();
  });
  onSubmit($('open-form'), () => openWorkspace($('open-workspace').value.trim()));

  onSubmit($('followup-form'), postFollowup);
  $('followup-input').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $('followup-form').requestSubmit();
    }
  });
  $('drain').addEventListener('click', drainFollowups);
  $('cancel-turn').addEventListener('click', cancelTurn);
  $('tab-conversation').addEventListener('click', () => selectTab('conversation'));
  $('tab-events').addEventListener('click', () => selectTab('events'));
  $('close-session').addEventListener('click', closeSession);
  $('stream-retry').addEventListener('click', () => connectStream());
  $('session-dismiss').addEventListener('click', () => {
    location.hash = '#/';
  });

  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refresh();
  });
  setInterval(tickAges, 1000);

  credentials = loadCredentials();
  if (credentials?.kind === 'password' && credentials.expires_unix_ms <= Date.now()) {
    signOut('Your password session has expired. Sign in again.');
  } else if (credentials) {
    enterApp(null);
  } else {
    showSignIn();
  }
}

start();
