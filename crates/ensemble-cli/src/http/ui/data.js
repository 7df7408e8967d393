// A member's details, and the Tables and Tracker views of the dashboard (docs/DASHBOARD.md), read once a second
// while shown, through the same `api()` (the token in the Authorization header) as app.js.
'use strict';

const RECORDS_PAGE = 100;
const data = {
  tables: [], // GET /v1/tables/{table} of each table
  table: null, // the table whose records are shown
  pages: [], // the `after` key of each page shown so far (null for the first)
  records: [],
  tracker: null,
  busy: false,
  detail: null, // the member whose details are shown
  detailTimer: null, // their refresh, while they are shown
  view: null, // the member's own view of the cluster (GET /v1/members/{node}/view), or {error}
  viewAt: 0, // when it was last asked (every 5 s at most: the agent asks the member)
};

// Forgets everything (signed out).
function clearData() {
  clearInterval(data.detailTimer);
  Object.assign(data, { tables: [], table: null, pages: [], records: [], tracker: null, detail: null, detailTimer: null, view: null, viewAt: 0 });
  renderTables();
  renderTracker();
}

const enc = encodeURIComponent;

async function refreshTables() {
  if (!state.token || state.view !== 'tables' || data.busy || document.hidden) return;
  data.busy = true;
  try {
    await loadTables();
    if (data.table) await loadRecords();
    renderTables();
  } catch (e) {
    guard(e);
  } finally {
    data.busy = false;
  }
}

// GET /v1/tables, then GET /v1/tables/{table} of each.
async function loadTables() {
  const resp = await api('/v1/tables');
  if (!resp.ok) return;
  const names = (await resp.json()).sort();
  data.tables = await Promise.all(names.map(async (n) => {
    const r = await api('/v1/tables/' + enc(n));
    return r.ok ? r.json() : { name: n };
  }));
}

// The current page of the chosen table: at most RECORDS_PAGE records after the page's key.
async function loadRecords() {
  const after = data.pages[data.pages.length - 1];
  const q = '?limit=' + RECORDS_PAGE + (after == null ? '' : '&after=' + enc(after));
  const resp = await api('/v1/tables/' + enc(data.table) + '/records' + q);
  data.records = resp.ok ? await resp.json() : [];
}

function bytes(n) {
  if (n == null) return '';
  return n < 1024 ? n + ' B' : n < 1048576 ? (n / 1024).toFixed(1) + ' KiB' : (n / 1048576).toFixed(1) + ' MiB';
}

function lastJoin(j) {
  if (!j) return '';
  return 'with ' + j.with + ', ' + ago(Date.now() - j.ago_ms) + ', took ' + duration(j.took_ms);
}

function renderTables() {
  const rows = data.tables.map((t) => el('tr', { 'data-name': t.name, class: t.name === data.table ? 'chosen' : '' },
    el('td', {}, el('button', { type: 'button', class: 'link', 'data-table': t.name }, t.name)),
    el('td', { class: 'num' }, t.size == null ? '' : t.size),
    el('td', { class: 'num' }, bytes(t.memory)),
    el('td', { title: (t.members || []).join(', ') }, t.members ? t.members.length + ' (' + t.members.join(', ') + ')' : ''),
    el('td', {}, t.leader || ''),
    el('td', { class: 'num' }, t.joins == null ? '' : t.joins),
    el('td', { class: 'num' }, t.conflicts_resolved == null ? '' : t.conflicts_resolved),
    el('td', {}, lastJoin(t.last_join))));
  if (!rows.length && state.token) rows.push(el('tr', { class: 'empty' }, el('td', { colSpan: 8 }, 'This agent hosts no table.')));
  $('#tables tbody').replaceChildren(...rows);
  $('#records-panel').hidden = !data.table;
  if (!data.table) return;
  $('#records-title').textContent = 'Records of ' + data.table + ' (page ' + data.pages.length + ')';
  const recs = data.records.map((r) => el('tr', { 'data-key': r.key }, el('td', {}, r.key), el('td', {}, r.value)));
  if (!recs.length) recs.push(el('tr', { class: 'empty' }, el('td', { colSpan: 2 }, 'No record on this page.')));
  $('#records tbody').replaceChildren(...recs);
  $('#records-next').disabled = data.records.length < RECORDS_PAGE;
  $('#records-first').disabled = data.pages.length < 2;
  $('#records-note').textContent = data.records.length + ' records shown, ' + RECORDS_PAGE + ' a page, in key order';
}

async function browse(table, pages) {
  data.table = table;
  data.pages = pages;
  try {
    await loadRecords();
  } catch (e) {
    guard(e);
  }
  renderTables();
}

async function refreshTracker() {
  if (!state.token || state.view !== 'tracker' || document.hidden) return;
  try {
    await loadTracker();
    renderTracker();
  } catch (e) {
    guard(e);
  }
}

async function loadTracker() {
  const resp = await api('/v1/tracker');
  if (resp.ok) data.tracker = await resp.json();
}

// The tables and the tracker for a member's details, once a second while they are shown.
async function refreshDetails() {
  if (!state.token || !data.detail || data.busy || document.hidden) return;
  data.busy = true;
  try {
    await Promise.all([loadTables(), loadTracker(), loadView(data.detail)]);
    renderDetails();
  } catch (e) {
    guard(e);
  } finally {
    data.busy = false;
  }
}

// The member's own view, asked of it through this agent every 5 s while its details are shown.
async function loadView(name) {
  if (Date.now() - data.viewAt < 5000 && data.view && data.view.node === name) return;
  data.viewAt = Date.now();
  const resp = await api('/v1/members/' + enc(name) + '/view');
  const body = await resp.json();
  data.view = resp.ok ? body : { node: name, error: body.error || String(resp.status) };
}

// What the member sees: its members by status, and those it does not hold alive.
function viewOf(name) {
  const v = data.view;
  if (!v || v.node !== name) return '(asking it)';
  if (v.error) return '(' + v.error + ')';
  const counts = Object.entries(v.counts).map(([s, n]) => n + ' ' + s).join(', ');
  const others = Object.entries(v.not_alive).map(([m, s]) => m + ' ' + s).join(', ');
  return counts + (others ? '; ' + others : '') + (v.truncated ? ', and more' : '');
}

function showDetails(name) {
  data.detail = name;
  data.view = null;
  data.viewAt = 0;
  clearInterval(data.detailTimer);
  data.detailTimer = name ? setInterval(refreshDetails, 1000) : null;
  if (name) refreshDetails();
  renderDetails();
}

function renderTracker() {
  const t = data.tracker;
  $('#tracker-mode').textContent = t ? 'Cluster mode: ' + t.mode : '';
  const rows = (t ? [...t.nodes] : []).sort((a, b) => (a.node < b.node ? -1 : 1)).map((r) =>
    el('tr', { 'data-node': r.node, 'data-status': r.status },
      el('td', {}, r.node),
      el('td', {}, el('span', { class: 'status ' + r.status }, r.status)),
      el('td', { title: new Date(r.last_change).toISOString() }, new Date(r.last_change).toLocaleTimeString() + ' (' + ago(r.last_change) + ')'),
      el('td', { class: 'num' }, r.incarnation)));
  $('#tracker tbody').replaceChildren(...rows);
}

// --- A member's details: shown under the members when its row is clicked, kept up to date ---

function renderDetails() {
  const m = data.detail && state.members.get(data.detail);
  $('#member-details').hidden = !m;
  if (!m) return;
  $('#details-name').textContent = m.name;
  const fields = [
    ['Address', m.addr],
    ['Status', el('span', { class: 'status ' + m.status }, m.status)],
    ['Incarnation', m.incarnation],
    ['Role', role(m)],
    ['Connected', connected(m)],
    ['Tags', Object.keys(m.tags || {}).length
      ? el('span', {}, ...Object.entries(m.tags).map(([k, v]) => el('span', { class: 'tag' }, k + '=' + v)))
      : '(none)'],
    ['Tables', data.tables.filter((t) => (t.members || []).includes(m.name)).map((t) => t.name).join(', ') || '(none this agent hosts)'],
    ['Singletons', singletonsOf(m.name)],
    ['Tracker', trackerOf(m.name)],
    ['Suspected', lastSuspicion(m.name)],
    ['Its view', viewOf(m.name)],
  ];
  $('#details-fields').replaceChildren(...fields.flatMap(([k, v]) =>
    [el('dt', {}, k), el('dd', { 'data-field': k.toLowerCase() }, v)]));
  const rows = entriesOf(m.name).map((t) => el('tr', { 'data-kind': t.kind },
    el('td', { title: t.time.toISOString() }, t.time.toLocaleTimeString()),
    el('td', {}, ...entryText(t)),
    el('td', { class: 'num' }, t.incarnation == null ? '' : t.incarnation),
    el('td', { class: 'num' }, t.detection_ms == null ? '' : duration(t.detection_ms))));
  if (!rows.length) rows.push(el('tr', { class: 'empty' }, el('td', { colSpan: 4 }, 'No event for this member in the last hour.')));
  $('#details-events tbody').replaceChildren(...rows);
}

// The singletons of this agent that `name` leads, or runs without leading (a candidate).
function singletonsOf(name) {
  const roles = state.singletons.flatMap((s) => {
    if (s.leader === name) return [s.name + ' (leader, epoch ' + s.epoch + ')'];
    if (name === state.me || (s.candidates || []).includes(name)) return [s.name + ' (runs it)'];
    return [];
  });
  return roles.join(', ') || '(none of this agent\'s)';
}

// The tracker's row of `name`: its status and when it last changed.
function trackerOf(name) {
  const r = data.tracker && data.tracker.nodes.find((n) => n.node === name);
  if (!r) return data.tracker ? '(no row)' : '';
  return r.status + ' since ' + new Date(r.last_change).toLocaleTimeString() + ' (' + ago(r.last_change) + '), incarnation ' + r.incarnation;
}

// The view's refresh, started by show() in app.js while the view is shown.
function startDataView(view) {
  if (view === 'tables') {
    refreshTables();
    return setInterval(refreshTables, 1000);
  }
  refreshTracker();
  return setInterval(refreshTracker, 1000);
}

document.addEventListener('DOMContentLoaded', () => {
  $('#members tbody').addEventListener('click', (e) => {
    const row = e.target.closest('tr[data-name]');
    if (!row) return;
    showDetails(row.dataset.name);
  });
  $('#details-close').addEventListener('click', () => showDetails(null));
  $('#tables').addEventListener('click', (e) => {
    const t = e.target.dataset.table;
    if (t) browse(t, [null]);
  });
  $('#records-next').addEventListener('click', () => {
    const last = data.records[data.records.length - 1];
    if (last) browse(data.table, [...data.pages, last.key]);
  });
  $('#records-first').addEventListener('click', () => browse(data.table, [null]));
});
