// The traffic view (docs/DASHBOARD.md): this agent's GET /metrics once a second while the view
// is shown, as rates between two samples, and the round-trip time of acknowledged messages
// from its histogram.
'use strict';

const TRAFFIC_SAMPLES = 120;
const traffic = { samples: [] };
const RTT = 'ensemble_message_round_trip_seconds';

// The increase of counter `metric` between samples `a` and `b`, per second.
const rateOf = (metric) => (a, b) => Math.max(0, ((b.v[metric] || 0) - (a.v[metric] || 0)) / ((b.t - a.t) / 1000 || 1));

// The mean round-trip time of the messages acknowledged between `a` and `b` (null if none).
function rttMean(a, b) {
  const n = (b.v[RTT + '_count'] || 0) - (a.v[RTT + '_count'] || 0);
  return n > 0 ? ((b.v[RTT + '_sum'] || 0) - (a.v[RTT + '_sum'] || 0)) / n : null;
}

// The median of those round trips, as the upper bound of the histogram's bucket that holds it
// (null if none).
function rttMedian(a, b) {
  const after = b.buckets[RTT + '_bucket'] || {};
  const before = a.buckets[RTT + '_bucket'] || {};
  const bounds = Object.keys(after).map(Number).sort((x, y) => x - y);
  const count = (le) => (after[le] || 0) - (before[le] || 0);
  const total = count(Infinity);
  if (!(total > 0)) return null;
  const le = bounds.find((x) => count(x) >= total / 2);
  return le === Infinity ? null : le;
}

const CHARTS = [
  { title: 'Frames per second', unit: '', series: [['in', rateOf('ensemble_received_frames_total')], ['out', rateOf('ensemble_sent_frames_total')]] },
  { title: 'Bytes per second', unit: 'B', series: [['in', rateOf('ensemble_received_bytes_total')], ['out', rateOf('ensemble_sent_bytes_total')]] },
  { title: 'Dropped frames per second', unit: '', series: [['dropped', rateOf('ensemble_dropped_frames_total')]] },
  { title: 'Messages per second', unit: '', series: [['sent', rateOf('ensemble_messages_sent_total')], ['delivered', rateOf('ensemble_messages_delivered_total')]] },
  { title: 'Round-trip time', unit: 's', series: [['mean', rttMean], ['p50 ≤', rttMedian]] },
];

// Every metric of the Prometheus text format summed over its series, and the buckets of each
// histogram (`le` -> count, summed over the other labels).
function parseMetrics(text) {
  const sums = {};
  const buckets = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    sums[m[1]] = (sums[m[1]] || 0) + Number(m[3]);
    const le = m[1].endsWith('_bucket') && /le="([^"]+)"/.exec(m[2] || '');
    if (le) {
      const b = (buckets[m[1]] = buckets[m[1]] || {});
      const bound = le[1] === '+Inf' ? Infinity : Number(le[1]);
      b[bound] = (b[bound] || 0) + Number(m[3]);
    }
  }
  return { sums, buckets };
}

async function sampleTraffic() {
  if (!state.token || state.view !== 'traffic' || document.hidden) return;
  try {
    const resp = await api('/metrics');
    if (!resp.ok) return;
    const { sums, buckets } = parseMetrics(await resp.text());
    traffic.samples.push({ t: Date.now(), v: sums, buckets });
    if (traffic.samples.length > TRAFFIC_SAMPLES + 1) traffic.samples.shift();
    renderTraffic();
  } catch (e) {
    guard(e);
  }
}

function rate(x, unit) {
  if (unit === 's') return x < 0.001 ? Math.round(x * 1e6) + ' µs' : x < 1 ? (x * 1000).toFixed(x < 0.01 ? 2 : 1) + ' ms' : x.toFixed(2) + ' s';
  const k = unit === 'B' ? 1024 : 1000;
  const units = unit === 'B' ? ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'] : ['/s', 'k/s', 'M/s', 'G/s'];
  let i = 0;
  while (x >= k && i < units.length - 1) { x /= k; i += 1; }
  return (x < 10 && i > 0 ? x.toFixed(1) : Math.round(x)) + ' ' + units[i];
}

function renderTraffic() {
  const s = traffic.samples;
  const charts = CHARTS.map((c) => {
    const series = c.series.map(([label, f]) => ({ label, points: s.slice(1).map((b, i) => f(s[i], b)) }));
    const values = series.flatMap((x) => x.points).filter((v) => v != null);
    const peak = Math.max(0, ...values);
    const max = (c.unit === 's' ? peak || 0.001 : Math.max(1, peak)) * 1.1;
    const [w, h] = [420, 110];
    const chart = svg('svg', { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: 'none' });
    chart.append(svg('line', { x1: 0, y1: h - 1, x2: w, y2: h - 1 }));
    series.forEach((x, n) => {
      const pts = x.points.map((v, i) => v == null ? null
        : `${(w * (i + TRAFFIC_SAMPLES - x.points.length)) / TRAFFIC_SAMPLES},${h - 1 - ((h - 2) * v) / max}`);
      chart.append(svg('polyline', { points: pts.filter((p) => p).join(' '), class: 's' + n }));
    });
    const last = (x) => x.points.length ? x.points[x.points.length - 1] : undefined;
    const shown = el('div', { class: 'values' }, ...series.map((x, n) => el('span', { class: 's' + n, 'data-series': x.label },
      x.label + ' ' + (last(x) === undefined ? '…' : last(x) === null ? '–' : rate(last(x), c.unit)))));
    const note = c.unit === 's' && !values.length ? 'no acknowledged message sent over ' : 'peak ' + rate(peak, c.unit) + ' over ';
    return el('div', { class: 'chart', 'data-chart': c.title, 'data-points': s.length - 1 }, el('h3', {}, c.title), chart, shown,
      el('div', { class: 'muted' }, note + Math.max(0, s.length - 1) + ' s'));
  });
  $('#charts').replaceChildren(...charts);
}
