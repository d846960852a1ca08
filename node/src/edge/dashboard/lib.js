// The dashboard's pure parts: formatting, building elements, reading the Prometheus text
// format, and rates from the deltas of counters between two scrapes.
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
