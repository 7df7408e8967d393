// The Ensemble dashboard (docs/DASHBOARD.md): one page, no build step, no dependency.
// Everything it shows comes from the agent's HTTP API, with the token the user types once;
// the token is kept in sessionStorage (this tab only) and sent in the Authorization header,
// never in a URL. A 401 forgets it and brings the sign-in form back.
'use strict';

// Errors of the page, for whoever looks (the browser test reads them).
window.dashboardErrors = [];
window.addEventListener('error', (e) => {
  window.dashboardErrors.push(String(e.message || (e.target && e.target.src) || 'error'));
}, true);
window.addEventListener('unhandledrejection', (e) => {
  window.dashboardErrors.push('unhandled rejection: ' + String(e.reason));
});
document.addEventListener('securitypolicyviolation', (e) => {
  window.dashboardErrors.push('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);
});

const TOKEN_KEY = 'ensemble.token';
const HEARTBEAT_LIMIT_MS = 15000; // the stream sends a heartbeat every 5 s
const BACKOFF_MAX_MS = 15000;

const state = {
  token: null,
  members: new Map(), // name -> member view
  singletons: [],
  neighbours: null, // the members this agent has a connection to, once known
  sort: { key: 'name', dir: 1 },
  view: 'members',
  stream: null, // the AbortController of the event stream
  timers: [],
  viewTimer: null, // the current view's own refresh, if it has one
  me: null, // this agent's name
};

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// --- The token ---

class Unauthorized extends Error {}

async function api(path, options) {
  const resp = await fetch(path, {
    ...options,
    cache: 'no-store',
    headers: { Authorization: 'Bearer ' + state.token },
  });
  if (resp.status === 401) throw new Unauthorized();
  return resp;
}

function signedOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  if (state.stream) state.stream.abort();
  state.stream = null;
  state.timers.forEach(clearInterval);
  state.timers = [];
  clearInterval(state.viewTimer);
  state.viewTimer = null;
  state.members.clear();
  clearHistory();
  state.singletons = [];
  state.neighbours = null;
  clearData();
  render();
  $('#tabs').hidden = true;
  $('#logout').hidden = true;
  $('#agent').textContent = '';
  $('#link').textContent = '';
  document.querySelectorAll('.view').forEach((v) => { v.hidden = true; });
  $('#login').hidden = false;
  $('#login-error').textContent = message || '';
  $('#token').value = '';
  $('#token').focus();
}

async function signIn(token) {
  state.token = token;
  try {
    const resp = await api('/v1/self');
    if (!resp.ok) throw new Error('the agent answered ' + resp.status);
    const me = await resp.json();
    sessionStorage.setItem(TOKEN_KEY, token);
    state.me = me.name;
    $('#agent').textContent = 'agent ' + me.name;
  } catch (e) {
    if (e instanceof Unauthorized) signedOut('The agent refused this token.');
    else signedOut('Cannot reach the agent: ' + e.message);
    return;
  }
  $('#login').hidden = true;
  $('#tabs').hidden = false;
  $('#logout').hidden = false;
  show(state.view);
  follow();
  refreshLocal();
  state.timers.push(setInterval(refreshLocal, 1000));
}

function guard(e) {
  if (e instanceof Unauthorized) signedOut('The agent refused the token: sign in again.');
  else if (e.name !== 'AbortError') console.warn(e);
}

// --- The event stream: GET /v1/events?types=member&snapshot=true through fetch() ---

async function follow() {
  let backoff = 1000;
  const ctl = new AbortController();
  state.stream = ctl;
  while (!ctl.signal.aborted) {
    let lastLine = Date.now();
    const inner = new AbortController();
    // A stream that says nothing, not even its heartbeat, is dead: start another.
    const watchdog = setInterval(() => {
      if (Date.now() - lastLine > HEARTBEAT_LIMIT_MS) inner.abort();
    }, 1000);
    const stop = () => inner.abort();
    ctl.signal.addEventListener('abort', stop);
    let quiet = null;
    try {
      const resp = await api('/v1/events?types=member&snapshot=true', { signal: inner.signal });
      if (!resp.ok) throw new Error('the event stream answered ' + resp.status);
      $('#link').textContent = 'live';
      const snapshot = new Set();
      let inSnapshot = true;
      const endSnapshot = () => {
        if (!inSnapshot) return;
        inSnapshot = false;
        for (const name of [...state.members.keys()]) if (!snapshot.has(name)) state.members.delete(name);
        render();
      };
      quiet = setTimeout(endSnapshot, 500);
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        lastLine = Date.now();
        backoff = 1000;
        buf += value;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const msg = JSON.parse(line);
          if (msg.type === 'snapshot') {
            snapshot.add(msg.member.name);
            fromSnapshot(msg.member);
          } else if (msg.type === 'member') {
            endSnapshot();
            onEvent(msg);
          } else if (msg.type === 'heartbeat') {
            endSnapshot();
          }
        }
        render();
      }
    } catch (e) {
      if (e instanceof Unauthorized) {
        clearInterval(watchdog);
        guard(e);
        return;
      }
      if (e.name !== 'AbortError') console.warn('event stream:', e.message);
    } finally {
      clearTimeout(quiet);
      clearInterval(watchdog);
      ctl.signal.removeEventListener('abort', stop);
    }
    if (ctl.signal.aborted) return;
    $('#link').textContent = 'reconnecting in ' + Math.round(backoff / 1000) + ' s';
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  }
}

// A member as the stream's snapshot shows it (a change missed while the stream was cut is
// in the agent's history, on the timeline).
function fromSnapshot(m) {
  state.members.set(m.name, m);
}

function onEvent(e) {
  state.members.set(e.member.name, e.member);
  refreshLocal();
  refreshTopology();
}

// --- This agent's own state, once a second (and on membership events, at most once a
// second): its singletons (GET /v1/singletons), the members it has a connection to
// (neighbours of GET /v1/broadcast) and its history's new entries (timeline.js) ---

let localAt = 0;
let localBusy = false;
async function refreshLocal() {
  if (!state.token || localBusy || document.hidden) return;
  if (Date.now() - localAt < 1000) return;
  localBusy = true;
  localAt = Date.now();
  try {
    const [singletons, broadcast] = await Promise.all([api('/v1/singletons'), api('/v1/broadcast'), refreshHistory()]);
    if (singletons.ok) state.singletons = await singletons.json();
    if (broadcast.ok) state.neighbours = new Set((await broadcast.json()).neighbours);
    renderSingletons();
    renderMembers();
  } catch (e) {
    guard(e);
  } finally {
    localBusy = false;
  }
}

// --- Rendering ---

const role = (m) => (m.tags && m.tags['ensemble.role']) || 'peer';
const userTags = (m) => Object.entries(m.tags || {}).filter(([k]) => k !== 'ensemble.role');
const tagText = (m) => userTags(m).map(([k, v]) => k + '=' + v).join(' ');

function connected(m) {
  if (m.name === state.me) return 'this agent';
  return state.neighbours ? (state.neighbours.has(m.name) ? 'yes' : 'no') : '';
}

function sortValue(m, key) {
  if (key === 'role') return role(m);
  if (key === 'connected') return connected(m);
  if (key === 'tags') return tagText(m);
  return m[key];
}

function render() {
  renderMembers();
  renderTimeline();
  renderSingletons();
}

function renderMembers() {
  const filter = $('#filter').value.trim().toLowerCase();
  const { key, dir } = state.sort;
  const rows = [...state.members.values()]
    .filter((m) => !filter || [m.name, m.addr, m.status, role(m), tagText(m)].join(' ').toLowerCase().includes(filter))
    .sort((a, b) => {
      const x = sortValue(a, key);
      const y = sortValue(b, key);
      return (x < y ? -1 : x > y ? 1 : 0) * dir || (a.name < b.name ? -1 : 1);
    });
  const row = (m) => el('tr', { 'data-name': m.name, 'data-status': m.status, 'data-incarnation': m.incarnation },
      el('td', {}, m.name),
      el('td', {}, m.addr),
      el('td', {}, el('span', { class: 'status ' + m.status }, m.status)),
      el('td', { class: 'num' }, m.incarnation),
      el('td', {}, role(m)),
      el('td', { class: 'connected' }, connected(m)),
      el('td', {}, ...userTags(m).map(([k, v]) => el('span', { class: 'tag' }, k + '=' + v))));
  virtualRows($('#members-box'), $('#members tbody'), rows, row, null);
  renderDetails();
  document.querySelectorAll('#members th').forEach((th) => {
    th.classList.toggle('asc', th.dataset.key === key && dir === 1);
    th.classList.toggle('desc', th.dataset.key === key && dir === -1);
  });
  const counts = {};
  for (const m of state.members.values()) counts[m.status] = (counts[m.status] || 0) + 1;
  $('#members-count').textContent = state.token
    ? Object.entries(counts).map(([s, n]) => n + ' ' + s).join(', ') + (filter ? ' (' + rows.length + ' shown)' : '')
    : '';
}

function duration(ms) {
  if (ms < 1) return '< 1 ms';
  return ms < 1000 ? ms + ' ms' : (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? s + ' s ago' : Math.round(s / 60) + ' min ago';
}

function renderSingletons() {
  const rows = state.singletons.map((s) => el('tr', { 'data-name': s.name, 'data-leader': s.leader || '', 'data-epoch': s.epoch },
    el('td', {}, s.name),
    el('td', {}, s.leader || '(none)'),
    el('td', { class: 'num' }, s.epoch),
    el('td', { title: s.since_ms ? new Date(s.since_ms).toISOString() : '' },
      s.since_ms ? new Date(s.since_ms).toLocaleTimeString() + ' (' + ago(s.since_ms) + ')' : ''),
    el('td', {}, s.role),
    el('td', {}, (s.candidates || []).join(', ')),
    el('td', { class: 'changes' }, ...candidateChanges(s.name, 3).map((t) =>
      el('div', { 'data-nodes': (t.nodes || []).join(' '), title: t.time.toISOString() }, t.time.toLocaleTimeString() + ': ' + candidatesText(t))))));
  if (!rows.length && state.token) rows.push(el('tr', { class: 'empty' }, el('td', { colSpan: 7 }, 'This agent runs no singleton.')));
  $('#singletons tbody').replaceChildren(...rows);
}

function show(view) {
  state.view = view;
  document.querySelectorAll('#tabs button').forEach((b) => b.classList.toggle('active', b.dataset.view === view));
  document.querySelectorAll('.view').forEach((v) => { v.hidden = v.id !== 'view-' + view; });
  // The topology and traffic views ask the agent only while they are shown.
  clearInterval(state.viewTimer);
  state.viewTimer = null;
  if (view === 'topology') {
    refreshTopology();
    state.viewTimer = setInterval(refreshTopology, TOPOLOGY_EVERY_MS);
  } else if (view === 'tables' || view === 'tracker') {
    state.viewTimer = startDataView(view);
  } else if (view === 'traffic') {
    traffic.samples = [];
    sampleTraffic();
    state.viewTimer = setInterval(sampleTraffic, 1000);
  }
}

// --- Topology: the members on the hash ring, the overlay's connections as
// edges, from GET /v1/broadcast/tree/{root}: each member's eager (tree) and lazy peers ---

const TOPOLOGY_EVERY_MS = 5000;
// Above this many members the graph is drawn small: members as dots without names, and only
// the chosen root's eager links (`?graph=N` in the page's address sets it).
const TOPOLOGY_FULL_MAX = Number(new URLSearchParams(location.search).get('graph')) || 64;
const SVG = 'http://www.w3.org/2000/svg';
const topology = { tree: null, at: 0, busy: false };

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

async function refreshTopology() {
  if (!state.token || state.view !== 'topology' || topology.busy || document.hidden) return;
  if (Date.now() - topology.at < 1000) return;
  const select = $('#root');
  const up = [...state.members.values()].filter((m) => m.status === 'alive' || m.status === 'suspect').map((m) => m.name).sort();
  const root = up.includes(select.value) ? select.value : (up.includes(state.me) ? state.me : up[0]);
  if (!root) return;
  topology.busy = true;
  topology.at = Date.now();
  try {
    const resp = await api('/v1/broadcast/tree/' + encodeURIComponent(root));
    if (resp.ok) topology.tree = await resp.json();
    renderTopology(up, root);
  } catch (e) {
    guard(e);
  } finally {
    topology.busy = false;
  }
}

// A member's place on the hash ring as a fraction of a turn, from its `ring_position` (a u64
// as a decimal string; its top 53 bits are exact in a double).
function ringTurn(m) {
  return Number(BigInt(m.ring_position || '0') >> 11n) / 2 ** 53;
}

function renderTopology(up, root) {
  const select = $('#root');
  if ([...select.options].map((o) => o.value).join() !== up.join()) {
    select.replaceChildren(...up.map((n) => el('option', { value: n }, n)));
  }
  select.value = root;
  const members = [...state.members.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  const [cx, cy, r] = [320, 320, 250];
  // Each member at its place on the hash ring (0 at the top, clockwise).
  const turn = new Map(members.map((m) => [m.name, ringTurn(m)]));
  const at = new Map(members.map((m) => {
    const a = 2 * Math.PI * turn.get(m.name) - Math.PI / 2;
    return [m.name, [cx + r * Math.cos(a), cy + r * Math.sin(a)]];
  }));
  const edges = new Map(); // "a b" -> eager or lazy (eager if either end says so)
  const tree = topology.tree && topology.tree.root === root ? topology.tree : { nodes: {}, unanswered: [] };
  for (const [node, peers] of Object.entries(tree.nodes)) {
    for (const [kind, list] of [['lazy', peers.lazy], ['eager', peers.eager]]) {
      for (const p of list) {
        const key = [node, p].sort().join(' ');
        if (kind === 'eager' || !edges.has(key)) edges.set(key, kind);
      }
    }
  }
  const small = members.length > TOPOLOGY_FULL_MAX;
  const drawn = [...edges].filter(([key, kind]) => key.split(' ').every((n) => at.has(n)) && (!small || kind === 'eager'));
  const lines = drawn.map(([key, kind]) => {
    const [[x1, y1], [x2, y2]] = key.split(' ').map((n) => at.get(n));
    return svg('line', { x1, y1, x2, y2, class: kind, 'data-edge': key });
  });
  const nodes = members.map((m) => {
    const [x, y] = at.get(m.name);
    const client = role(m) === 'client';
    const g = svg('g', { 'data-name': m.name, 'data-turn': turn.get(m.name) });
    const size = small ? (m.name === root ? 6 : 3) : client ? 7 : 11;
    g.append(svg('circle', { cx: x, cy: y, r: size, class: m.status + (m.name === root ? ' root' : '') }));
    if (small) {
      g.append(svg('title', {}, m.name + (client ? ' (client)' : '')));
      return g;
    }
    const dx = x < cx ? -16 : 16;
    g.append(svg('text', { x: x + dx, y: y + 4, 'text-anchor': x < cx ? 'end' : 'start' }, m.name + (client ? ' (client)' : '')));
    return g;
  });
  const ring = svg('circle', { cx, cy, r, class: 'ring' });
  $('#topology').replaceChildren(ring, ...lines, ...nodes);
  const counts = [...edges.values()].reduce((c, k) => ({ ...c, [k]: (c[k] || 0) + 1 }), {});
  const missing = tree.unanswered && tree.unanswered.length ? '; no answer from ' + tree.unanswered.join(', ') : '';
  const note = small ? '; ' + members.length + ' members: drawn as dots (names on hover), only the eager links shown' : '';
  $('#topology-note').textContent = (counts.eager || 0) + ' eager, ' + (counts.lazy || 0) + ' lazy links' + missing + note;
}

// --- Wiring ---

document.addEventListener('DOMContentLoaded', () => {
  $('#login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('#token').value.trim();
    $('#token').value = '';
    if (token) signIn(token);
  });
  $('#logout').addEventListener('click', () => signedOut(''));
  $('#tabs').addEventListener('click', (e) => {
    if (e.target.dataset.view) show(e.target.dataset.view);
  });
  $('#filter').addEventListener('input', renderMembers);
  $('#root').addEventListener('change', () => { topology.at = 0; refreshTopology(); });
  $('#members thead').addEventListener('click', (e) => {
    const key = e.target.dataset.key;
    if (!key) return;
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
    renderMembers();
  });
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else signedOut('');
});
