// The dashboard's pure parts: formatting, building elements, reading the Prometheus text
// format, rates from the deltas of counters between two scrapes, and the cluster's rates from
// two answers of /admin/metrics/cluster.
'use strict';

const counts = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export function rate(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  if (x >= 1e6) return (x / 1e6).toFixed(1) + 'M';
  if (x >= 1e4) return (x / 1e3).toFixed(1) + 'k';
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}
export function count(x) { return Number.isFinite(x) ? counts.format(x) : '—'; }
export function bytes(x) {
  if (!Number.isFinite(x)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (x >= 1024 && i < units.length - 1) { x /= 1024; i += 1; }
  return (i === 0 ? x.toFixed(0) : x.toFixed(1)) + ' ' + units[i];
}
export function ago(ms) {
  if (!Number.isFinite(ms)) return '—';
  return ms < 1000 ? `${ms} ms ago` : `${(ms / 1000).toFixed(1)} s ago`;
}
export function clock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString();
}

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
export function badge(status) { return el('span', { class: 'badge ' + status }, status); }

// A figure tile: the value, its label, and a detail line if any.
export function tile(label, value, detail) {
  return el('div', { class: 'tile' },
    el('div', { class: 'value' }, value), el('div', { class: 'label' }, label),
    detail ? el('div', { class: 'detail' }, detail) : null);
}

// A row of the sagas table.
export function sagaRow(s) {
  const state = s.stuck ? 'stuck' : s.state;
  return el('tr', { 'data-saga': s.id },
    el('td', {}, clock(s.updated_at)),
    el('td', { class: 'series', title: s.id }, s.id.slice(-12)),
    el('td', {}, badge(state)),
    el('td', {}, s.step || '—'),
    el('td', { class: 'num' }, s.attempts === undefined ? '—' : count(s.attempts)),
    el('td', { class: 'error', title: s.last_error || s.reason || '' }, s.reason || s.last_error || ''));
}

// ---- metrics: Prometheus text, rates from counter deltas ------------------------------

export function parseSample(line) {
  const end = line.search(/[{\s]/);
  if (end <= 0) return null;
  const name = line.slice(0, end);
  const labels = {};
  let i = end;
  if (line[i] === '{') {
    i += 1;
    while (i < line.length && line[i] !== '}') {
      const eq = line.indexOf('=', i);
      if (eq < 0 || line[eq + 1] !== '"') return null;
      const key = line.slice(i, eq).trim();
      let value = '';
      i = eq + 2;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\') { i += 1; value += line[i] === 'n' ? '\n' : line[i]; } else value += line[i];
        i += 1;
      }
      labels[key] = value;
      i += 1;
      if (line[i] === ',') i += 1;
    }
    i += 1;
  }
  const text = line.slice(i).trim().split(/\s+/)[0];
  const value = text === '+Inf' ? Infinity : text === '-Inf' ? -Infinity : Number(text);
  return { name, labels, value };
}

function seriesKey(s) {
  return s.name + JSON.stringify(Object.keys(s.labels).sort().map((k) => [k, s.labels[k]]));
}

// What the page has seen of /metrics: the last scrape's counter values, and each series'
// rate since the scrape before.
export class Scrapes {
  constructor() { this.reset(); }

  reset() {
    this.previous = null; // {at, values: Map(series -> value)}
    this.rates = new Map(); // series -> {name, labels, value, rate}
  }

  // Counters, and the counts of summaries and histograms, go up: their deltas are rates.
  ingest(text) {
    const types = new Map();
    const samples = [];
    for (const line of text.split('\n')) {
      if (line.startsWith('# TYPE ')) {
        const [, , name, type] = line.split(/\s+/);
        types.set(name, type);
      } else if (line && !line.startsWith('#')) {
        const sample = parseSample(line);
        if (sample) samples.push(sample);
      }
    }
    const counting = (name) => types.get(name) === 'counter'
      || (name.endsWith('_count') && ['summary', 'histogram'].includes(types.get(name.slice(0, -6))));
    const now = performance.now();
    const values = new Map();
    const next = new Map();
    for (const s of samples) {
      if (!counting(s.name) || !Number.isFinite(s.value)) continue;
      const key = seriesKey(s);
      values.set(key, s.value);
      let r = null;
      if (this.previous && this.previous.values.has(key)) {
        const before = this.previous.values.get(key);
        const seconds = (now - this.previous.at) / 1000;
        // A counter that went down was reset (its process restarted): no rate this time.
        if (seconds > 0 && s.value >= before) r = (s.value - before) / seconds;
      }
      next.set(key, { name: s.name, labels: s.labels, value: s.value, rate: r, counter: types.get(s.name) === 'counter' });
    }
    this.previous = { at: now, values };
    this.rates = next;
  }

  // The series of the first family whose name matches one of `patterns` (in order of
  // preference), counters before counts.
  family(patterns, filter) {
    const names = [...new Set([...this.rates.values()].map((s) => s.name))];
    for (const p of patterns) {
      const matching = names.filter((n) => p.test(n) && (!filter || filter(n)));
      matching.sort((a, b) => Number(b.endsWith('_total')) - Number(a.endsWith('_total')));
      if (matching.length) {
        const name = matching[0];
        return { name, series: [...this.rates.values()].filter((s) => s.name === name) };
      }
    }
    return null;
  }
}

export const sumRate = (series) => series.reduce((a, s) => (s.rate === null ? a : (a ?? 0) + s.rate), null);
export const sumValue = (series) => series.reduce((a, s) => a + s.value, 0);
export function byLabel(series, label, f) {
  const out = new Map();
  for (const s of series) {
    const k = s.labels[label];
    if (k === undefined) continue;
    out.set(k, (out.get(k) || 0) + (f(s) || 0));
  }
  return out;
}

export const FAMILIES = {
  http: [/http.*requests?(_total)?$/, /http.*request.*_count$/, /http.*_count$/],
  messages: [/messages?.*(received|handled).*(_total)?$/, /messages?.*(_total)?$/, /messages?.*_count$/],
  restarts: [/restarts?(_total)?$/, /restart.*_count$/],
  sagaStarted: [/saga.*start/],
  sagaFinished: [/saga.*(finish|outcome|complete|end)/],
  published: [/events_published/],
  delivered: [/events_delivered/],
};

export function top(map, n, fmt) {
  return [...map.entries()].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([k, v]) => `${k} ${fmt(v)}`).join(' · ');
}

// ---- the cluster's rates: two samples of /admin/metrics/cluster ------------------------

// The figures of a node's counters that the page shows as rates, by name.
export const CLUSTER_FIELDS = {
  http: (c) => c.http_requests,
  http4xx: (c) => c.http_by_class && c.http_by_class['4xx'],
  http5xx: (c) => c.http_by_class && c.http_by_class['5xx'],
  messages: (c) => c.messages_received,
  restarts: (c) => c.restarts,
  sagasStarted: (c) => c.sagas_started,
  sagasFinished: (c) => c.sagas_finished,
};

// The rate of a counter that went from `before` to `after` in `seconds`; null when either is
// missing, no time passed, or it went down (its node's process restarted: it counts from 0).
export function counterRate(before, after, seconds) {
  if (!Number.isFinite(before) || !Number.isFinite(after) || !(seconds > 0) || after < before) return null;
  return (after - before) / seconds;
}

// Per node, each field's rate between two answers of /admin/metrics/cluster taken `seconds`
// apart (`before` may be null: no rates yet), and per service its messages handled per second;
// for the cluster, the sums of the nodes' rates (a node without a rate, because it is
// unavailable in either answer or restarted between them, adds nothing: the difference of
// the totals would jump when a node drops out or comes back).
export function clusterRates(before, after, seconds) {
  const earlier = new Map();
  for (const n of (before && before.nodes) || []) {
    if (!n.unavailable && n.counters) earlier.set(n.node, n.counters);
  }
  const total = Object.fromEntries(Object.keys(CLUSTER_FIELDS).map((f) => [f, null]));
  const services = new Map(); // service -> messages handled per second, cluster-wide
  const nodes = ((after && after.nodes) || []).map((n) => {
    const now = n.unavailable ? null : n.counters;
    const old = now ? earlier.get(n.node) : undefined;
    const rates = {};
    for (const [field, read] of Object.entries(CLUSTER_FIELDS)) {
      const r = now && old ? counterRate(read(old), read(now), seconds) : null;
      rates[field] = r;
      if (r !== null) total[field] = (total[field] ?? 0) + r;
    }
    if (now && old) {
      const oldServices = new Map((old.services || []).map((s) => [s.name, s]));
      for (const s of now.services || []) {
        const o = oldServices.get(s.name);
        const r = o ? counterRate(o.messages_received, s.messages_received, seconds) : null;
        if (r !== null) services.set(s.name, (services.get(s.name) ?? 0) + r);
      }
    }
    return {
      node: n.node, status: n.status, unavailable: Boolean(n.unavailable || !n.counters),
      reason: n.reason || null, counters: now, rates,
    };
  });
  const restarts = new Map(); // service -> restarts so far, cluster-wide
  for (const s of (after && after.total && after.total.services) || []) restarts.set(s.name, s.restarts);
  return { nodes, total, totalCounters: (after && after.total) || null, services, restarts };
}

// How far back the page counts restarts ("in the last minute"), and the most samples it
// keeps for that.
export const RESTART_WINDOW_MS = 60000;
const MAX_SAMPLES = 200;

// Each node's restarts within `windowMs` of the last of `samples` ([{at, restarts: Map(node
// -> restarts so far)}], oldest first): its count now less its count in the oldest sample of
// the window that has it (null if it went down: the node restarted); and their sum.
export function recentRestarts(samples, windowMs) {
  const byNode = new Map();
  let total = null;
  const last = samples[samples.length - 1];
  if (!last) return { byNode, total };
  for (const [node, now] of last.restarts) {
    const first = samples.find((s) => last.at - s.at <= windowMs && s.restarts.has(node));
    const then = first.restarts.get(node);
    const r = now >= then ? now - then : null;
    byNode.set(node, r);
    if (r !== null) total = (total ?? 0) + r;
  }
  return { byNode, total };
}

// What the page has seen of /admin/metrics/cluster: the last answer, the rates since the one
// before, and the restarts within the last minute it watched.
export class ClusterSamples {
  constructor() { this.reset(); }

  reset() {
    this.previous = null; // {at, body}
    this.latest = null;   // what clusterRates returned, with `recent` (recentRestarts)
    this.samples = [];    // for recentRestarts, oldest first, within the window
  }

  ingest(body, now) {
    const seconds = this.previous ? (now - this.previous.at) / 1000 : 0;
    this.latest = clusterRates(this.previous && this.previous.body, body, seconds);
    this.previous = { at: now, body };
    const restarts = new Map();
    for (const n of body.nodes || []) {
      if (!n.unavailable && n.counters) restarts.set(n.node, n.counters.restarts);
    }
    this.samples.push({ at: now, restarts });
    while (this.samples.length > MAX_SAMPLES
      || (this.samples.length > 1 && now - this.samples[0].at > RESTART_WINDOW_MS)) this.samples.shift();
    this.latest.recent = recentRestarts(this.samples, RESTART_WINDOW_MS);
    return this.latest;
  }
}

// The cells of one row of the rates table: fixed, in the order of its header; each carries
// its figure in `data-value` (empty when there is none).
function rateCells(rates, counters, recent) {
  const cell = (field, text, value) => el('td', {
    class: 'num', 'data-field': field, 'data-value': value === null || value === undefined ? '' : String(value),
  }, text);
  return [
    cell('http', rate(rates.http), rates.http), cell('http4xx', rate(rates.http4xx), rates.http4xx),
    cell('http5xx', rate(rates.http5xx), rates.http5xx), cell('messages', rate(rates.messages), rates.messages),
    cell('restarts-total', counters ? count(counters.restarts) : '—', counters ? counters.restarts : null),
    cell('restarts-minute', count(recent ?? NaN), recent),
    cell('sagas-started', rate(rates.sagasStarted), rates.sagasStarted),
    cell('sagas-finished', rate(rates.sagasFinished), rates.sagasFinished),
  ];
}

// The rows of the rates table for what clusterRates returned: one per configured node (an
// unavailable one marked in place, with the reason), and the cluster's.
export function clusterRateRows(latest) {
  const recent = latest.recent || { byNode: new Map(), total: null };
  const rows = latest.nodes.map((n) => {
    const state = n.unavailable ? 'unavailable' : 'counted';
    const note = n.unavailable ? (n.reason || 'unavailable') : (n.rates.http === null ? 'first sample' : 'counted');
    return el('tr', { class: state, 'data-node': n.node, 'data-state': state, title: n.reason || '' },
      el('td', {}, n.node, ' ', badge(n.status)), el('td', {}, note),
      ...rateCells(n.rates, n.counters, recent.byNode.get(n.node)));
  });
  const counted = latest.nodes.filter((n) => !n.unavailable).length;
  const total = el('tr', { 'data-node': '*' }, el('td', {}, 'cluster'),
    el('td', {}, `${counted} of ${latest.nodes.length} nodes counted`),
    ...rateCells(latest.total, latest.totalCounters, recent.total));
  return { rows, total };
}
