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
      updateSnapshot(listed);
    } else if (!view.missing) {
      try {
        updateSnapshot((await api('GET', sessionPath(view.id))).session);
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
    stickScheduled: false,
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
  for (const note of ['action-error', 'drain-result']) show($(note), false);
  $('followup-input').value = '';
  const listed = state.sessions.find((session) => session.session_id === id);
  if (listed) updateSnapshot(listed);
  else renderSnapshotPlaceholder();
  renderEventCount();
  markSelectedRow();
  connectStream();
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
  for (const id of ['followup-input', 'followup-send', 'drain', 'close-session']) $(id).disabled = true;
}

// Shows a snapshot of the open session (from the stream, the list, or an action's answer).
function updateSnapshot(session) {
  if (!session || session.session_id !== view.id) return;
  view.snapshot = session;
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

// With workers, a session's last events (the worker's final output and its subprocess.exit) are
// recorded after the session ended, so its follow stream, which ends with the session, may miss
// them. A few replays from the last shown event pick them up while the worker is being stopped.
const LATE_REPLAY_DELAYS_MS = [1000, 3000, 8000];

function scheduleLateReplays() {
  if (!workerMode || view.workerExited) return;
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
}

function showGap(from, to) {
  if (to < from) return;
  view.lastSequenceId = Math.max(view.lastSequenceId, to);
  const range = from === to ? `Event ${from} is` : `Events ${from}–${to} are`;
  appendEventRow(el('li', { class: 'event gap', 'data-testid': 'event-gap' },
    `${range} no longer kept by the gateway (retention) and cannot be shown.`));
}

// Appends to the event list, keeping it scrolled to the newest event if it was there already.
function appendEventRow(row) {
  const list = $('event-list');
  if (!view.stickScheduled) {
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    if (atBottom) {
      view.stickScheduled = true;
      requestAnimationFrame(() => {
        view.stickScheduled = false;
        list.scrollTop = list.scrollHeight;
      });
    }
  }
  list.append(row);
  while (list.childElementCount > MAX_EVENTS_SHOWN) list.firstElementChild.remove();
}

function renderEventCount() {
  const shown = Math.min(view.eventsShown, MAX_EVENTS_SHOWN);
  $('event-count').textContent = view.eventsShown > MAX_EVENTS_SHOWN
    ? `newest ${shown} of ${view.eventsShown} received`
    : `${view.eventsShown} event${view.eventsShown === 1 ? '' : 's'}`;
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
  button.disabled = true;
  showActionError(null);
  try {
    await action(id);
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
  sessionAction($('followup-send'), async (id) => {
    const answer = await api('POST', `${sessionPath(id)}/followups`, { body: { message } });
    // The event itself arrives over the stream, like everyone else's.
    if (view.id === id) input.value = '';
    updateSnapshot(answer.session);
  });
}

function drainFollowups() {
  sessionAction($('drain'), async (id) => {
    const answer = await api('POST', `${sessionPath(id)}/followups/drain`, { body: {} });
    updateSnapshot(answer.session);
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
  sessionAction($('close-session'), async (id) => {
    const answer = await api('POST', `${sessionPath(id)}/close`);
    // The stream follows with the final snapshot and `done`.
    updateSnapshot(answer.session);
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
