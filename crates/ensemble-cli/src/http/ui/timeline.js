// The timeline (docs/DASHBOARD.md): the agent's own history of the last hour, from
// GET /v1/history: read whole when the page signs in, then what is new after the last entry
// seen, once a second (with this agent's other state, refreshLocal in app.js).
'use strict';

const HISTORY_MAX = 10000; // what the agent keeps at most

const timeline = { entries: [], lastSeq: 0, busy: false }; // oldest first

function clearHistory() {
  timeline.entries = [];
  timeline.lastSeq = 0;
}

async function refreshHistory() {
  if (!state.token || timeline.busy) return;
  timeline.busy = true;
  try {
    const resp = await api('/v1/history' + (timeline.lastSeq ? '?after=' + timeline.lastSeq : ''));
    if (!resp.ok) return;
    const h = await resp.json();
    // An agent that restarted counts again from 1: read its history whole.
    if (h.last_seq < timeline.lastSeq) {
      clearHistory();
      return;
    }
    timeline.lastSeq = h.last_seq;
    if (!h.entries.length) return;
    timeline.entries.push(...h.entries.map((e) => ({ ...e, time: new Date(e.at_ms) })));
    if (timeline.entries.length > HISTORY_MAX) timeline.entries.splice(0, timeline.entries.length - HISTORY_MAX);
    h.entries.forEach(suspicion);
    renderTimeline();
    renderMembers();
  } catch (e) {
    guard(e);
  } finally {
    timeline.busy = false;
  }
}

// The event stream carries no suspicion: the history's suspect and refuted entries set it.
function suspicion(e) {
  const m = state.members.get(e.member);
  if (!m) return;
  if (e.kind === 'suspect' && m.status === 'alive' && m.incarnation === e.incarnation) {
    state.members.set(m.name, { ...m, status: 'suspect' });
  } else if (e.kind === 'refuted' && m.status === 'suspect') {
    state.members.set(m.name, { ...m, status: 'alive', incarnation: Math.max(m.incarnation, e.incarnation) });
  }
}

// What an entry says, as the Event column shows it.
function entryText(t) {
  switch (t.kind) {
    case 'takeover':
      return [el('span', { class: 'status takeover' }, 'leads ' + t.singleton), ' (epoch ' + t.epoch + ')'];
    case 'table_joined':
      return [el('span', { class: 'status table' }, 'table ' + t.table + ' joined'),
        ' (took ' + duration(t.took_ms) + ', ' + t.conflicts + ' conflicts resolved)'];
    case 'table_remerged':
      return [el('span', { class: 'status ' + (t.error ? 'down' : 'table') }, 'table ' + t.table + (t.error ? ' re-merge failed' : ' re-merged')),
        t.error ? ' (' + t.error + ')' : ''];
    case 'partition_injected':
      return [el('span', { class: 'status partition' }, 'partition ' + t.partition + ' injected'), ' (cut off from ' + t.nodes.join(', ') + ')'];
    case 'candidates':
      return [el('span', { class: 'status takeover' }, 'candidates of ' + t.singleton), ': ' + candidatesText(t)];
    case 'suspect':
      return [el('span', { class: 'status suspect' }, 'suspect'), suspectedBy(t) ? ' (' + suspectedBy(t) + ')' : ''];
    case 'partition_resolved':
      return [el('span', { class: 'status partition' }, 'partition ' + t.partition + ' resolved'), ' (' + t.nodes.join(', ') + ')'];
    default:
      return [el('span', { class: 'status ' + t.kind }, t.kind)];
  }
}

function candidatesText(t) {
  return t.nodes && t.nodes.length ? t.nodes.join(', ') : '(none)';
}

// The last `n` changes of the candidates of singleton `name`, newest first.
function candidateChanges(name, n) {
  const out = [];
  for (let i = timeline.entries.length - 1; i >= 0 && out.length < n; i--) {
    const t = timeline.entries[i];
    if (t.kind === 'candidates' && t.singleton === name) out.push(t);
  }
  return out;
}

// Who suspected the member of a `suspect` entry: this agent itself, or the peer that told it.
function suspectedBy(t) {
  if (t.by === 'this agent') return 'by this agent';
  return t.heard_from ? 'heard from ' + t.heard_from : '';
}

// The latest suspicion of member `name` in the last hour, as the details show it.
function lastSuspicion(name) {
  const t = entriesOf(name).find((e) => e.kind === 'suspect');
  if (!t) return '(not in the last hour)';
  return (suspectedBy(t) || 'suspect') + ' at ' + t.time.toLocaleTimeString() + ' (' + ago(t.at_ms) + ')';
}

function timelineRow(t) {
  return el('tr', { 'data-name': t.member || '', 'data-kind': t.kind, 'data-seq': t.seq },
    el('td', { title: t.time.toISOString() }, t.time.toLocaleTimeString()),
    el('td', {}, t.member || ''),
    el('td', {}, ...entryText(t)),
    el('td', { class: 'num' }, t.incarnation == null ? '' : t.incarnation),
    el('td', { class: 'num detection' }, t.detection_ms == null ? '' : duration(t.detection_ms)));
}

function renderTimeline() {
  const empty = el('tr', { class: 'empty' }, el('td', { colSpan: 5 }, 'Nothing happened in the last hour.'));
  virtualRows($('#timeline-box'), $('#timeline tbody'), timeline.entries.slice().reverse(), timelineRow, empty);
  renderDetails();
}

// The entries about member `name`, newest first.
function entriesOf(name) {
  return timeline.entries.filter((t) => t.member === name).reverse();
}
