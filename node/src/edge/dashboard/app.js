// The Troupe dashboard: signs in, polls the node that served it, draws what it answers.
// No other origin, no inline code (the page's Content-Security-Policy forbids both); the
// token lives in this tab's sessionStorage only and travels in the Authorization header only.
'use strict';

import {
  ClusterSamples, FAMILIES, Scrapes, ago, badge, byLabel, bytes, clusterRateRows, count, el, rate,
  sagaRow, sumRate, sumValue, tile, top,
} from './lib.js';

(() => {
  const TOKEN_KEY = 'troupe.dashboard.token';
  const POLL_MS = 1500;          // between two polls while the node answers
  const HIDDEN_POLL_MS = 10000;  // while the tab is hidden
  const MAX_BACKOFF_MS = 15000;  // the longest wait after failures
  const FETCH_TIMEOUT_MS = 5000; // one request
  const SAGA_ROWS = 20;          // sagas in flight shown (and asked for, per state)
  const SAGA_MIN_EVERY_MS = 5000; // between two saga listings, at least
  const SAGA_MAX_EVERY_MS = 120000; // and at most
  const SAGA_COST_FACTOR = 10;    // waits this many times as long as the last listing took
  const SAGA_TIMEOUT_MS = 15000; // one listing (the node's own deadline is 10 s by default)
  const FINISHED_ROWS = 10;      // finished sagas shown
  const FINISHED_READS = 10;     // sagas read after a listing at most
  const BUSIEST_ROWS = 8;
  const SHARD_CELLS = 256;       // shards drawn per service at most
  const KILL_LOG_ROWS = 8;

  const $ = (id) => document.getElementById(id);

  let token = sessionStorage.getItem(TOKEN_KEY);
  let timer = null;
  // Bumped at every sign-in and sign-out: an answer to a request of an earlier session (a
  // refused token's, say) is dropped, and can neither draw nor sign the new session out.
  let session = 0;
  let failures = 0;
  const scrapes = new Scrapes();
  const clusterSamples = new ClusterSamples();
  const killRows = new Map();   // service -> its row's kill controls (kept across polls)

  // ---- requests --------------------------------------------------------------------------

  class AuthError extends Error {}

  async function call(path, options = {}) {
    const controller = new AbortController();
    const limit = options.timeoutMs || FETCH_TIMEOUT_MS;
    const timeout = setTimeout(() => controller.abort(), limit);
    const headers = Object.assign({}, options.headers);
    if (token && options.auth !== false) headers.Authorization = 'Bearer ' + token;
    try {
      const response = await fetch(path, {
        method: options.method || 'GET', headers, body: options.body,
        signal: controller.signal, cache: 'no-store', credentials: 'omit',
      });
      if (options.auth !== false && (response.status === 401 || response.status === 403)) {
        throw new AuthError(response.status === 401
          ? 'The token was refused (expired, or issued by another cluster): sign in again.'
          : 'This token is not an admin\'s: the dashboard needs an admin account.');
      }
      return response;
    } catch (e) {
      if (e.name === 'AbortError') throw new Error(`no answer within ${limit / 1000} s`);
      throw e;
    } finally {
      clearTimeout(timeout);
    }
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (_) { /* not JSON */ }
    return `${response.status} ${response.statusText}`;
  }

  async function json(path, timeoutMs) {
    const response = await call(path, { timeoutMs });
    if (!response.ok) throw new Error(await errorText(response));
    return response.json();
  }

  // The tiles: the cluster's figures (from /admin/metrics/cluster) when this node gathered
  // them, else this node's own (from its /metrics).
  function renderRates(cluster) {
    const tiles = [];
    const http = scrapes.family(FAMILIES.http);
    if (cluster) {
      const t = cluster.total;
      const counted = cluster.nodes.filter((n) => !n.unavailable).length;
      const of = `${counted} of ${cluster.nodes.length} nodes`;
      tiles.push(tile('HTTP requests / s, cluster', rate(t.http), `${of} · 4xx ${rate(t.http4xx)} · 5xx ${rate(t.http5xx)}`));
      tiles.push(tile('messages / s, cluster', rate(t.messages), top(cluster.services, 3, rate) || of));
      const restarts = cluster.totalCounters ? cluster.totalCounters.restarts : null;
      const most = top(cluster.restarts, 3, count);
      tiles.push(tile('member restarts, cluster', count(restarts),
        `${count(cluster.recent ? cluster.recent.total ?? NaN : NaN)} in the last minute` + (most ? ` · ${most}` : '')));
      tiles.push(tile('sagas started / s, cluster', rate(t.sagasStarted), `finished ${rate(t.sagasFinished)} / s`));
    } else if (http) {
      const classes = byLabel(http.series.map((s) => ({ ...s, labels: { c: String(s.labels.status ?? s.labels.code ?? '?')[0] + 'xx' } })), 'c', (s) => s.rate);
      tiles.push(tile('HTTP requests / s', rate(sumRate(http.series)), top(classes, 4, rate)));
    } else {
      tiles.push(tile('HTTP requests / s', '—', 'no HTTP request counter on this node'));
    }
    const messages = scrapes.family(FAMILIES.messages, (n) => !/link_/.test(n));
    if (messages && !cluster) {
      tiles.push(tile('messages / s', rate(sumRate(messages.series)), top(byLabel(messages.series, 'service', (s) => s.rate), 4, rate)));
    }
    const links = [...scrapes.rates.values()].filter((s) => /^troupe_link_envelopes_(sent|received)_total$/.test(s.name));
    if (links.length) {
      const sent = links.filter((s) => s.name.includes('sent'));
      const received = links.filter((s) => s.name.includes('received'));
      tiles.push(tile('envelopes between nodes / s', rate(sumRate(links)), `out ${rate(sumRate(sent))} · in ${rate(sumRate(received))}`));
    }
    const restarts = scrapes.family(FAMILIES.restarts);
    if (restarts && !cluster) {
      const perMinute = sumRate(restarts.series);
      const most = top(byLabel(restarts.series, 'service', (s) => s.value), 4, count);
      tiles.push(tile('member restarts', count(sumValue(restarts.series)),
        `${rate(perMinute === null ? null : perMinute * 60)} / min` + (most ? ` · ${most}` : '')));
    }
    const started = scrapes.family(FAMILIES.sagaStarted);
    const finished = scrapes.family(FAMILIES.sagaFinished);
    if ((started || finished) && !cluster) {
      const outcomes = finished ? top(byLabel(finished.series, 'outcome', (s) => s.rate), 4, rate) : '';
      tiles.push(tile('sagas started / s', rate(started ? sumRate(started.series) : null),
        finished ? `finished ${rate(sumRate(finished.series))} / s` + (outcomes ? ` (${outcomes})` : '') : null));
    }
    const published = scrapes.family(FAMILIES.published);
    const delivered = scrapes.family(FAMILIES.delivered);
    if (published || delivered) {
      tiles.push(tile('events published / s', rate(published ? sumRate(published.series) : null),
        delivered ? `delivered ${rate(sumRate(delivered.series))} / s` : null));
    }
    $('rates').replaceChildren(...tiles);

    const busiest = [...scrapes.rates.values()].filter((s) => s.rate > 0)
      .sort((a, b) => b.rate - a.rate).slice(0, BUSIEST_ROWS);
    const rows = busiest.map((s) => {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${v}"`).join(',');
      return el('tr', {}, el('td', { class: 'series' }, s.name + (labels ? `{${labels}}` : '')),
        el('td', { class: 'num' }, rate(s.rate)), el('td', { class: 'num' }, count(s.value)));
    });
    if (!rows.length) rows.push(el('tr', {}, el('td', { colSpan: 3, class: 'muted' }, 'no counter moved since the last poll')));
    $('busiest').tBodies[0].replaceChildren(...rows);
    return { messages, restarts };
  }

  function renderClusterRates(body, latest) {
    const { rows, total } = clusterRateRows(latest);
    $('cluster-rates').tBodies[0].replaceChildren(...rows);
    $('cluster-rates').tFoot.replaceChildren(total);
    $('cluster-rates-node').textContent = body.node;
    $('cluster-rates-deadline').textContent = `${body.deadline_ms} ms`;
  }

  // ---- the cluster -----------------------------------------------------------------------

  function renderNodes(cluster) {
    const cards = cluster.nodes.map((n) => {
      let members = 0;
      let shards = 0;
      for (const s of cluster.services) {
        for (const m of s.members) if (m.node === n.id) members += m.count;
        for (const sh of s.shards) if (sh.node === n.id) shards += 1;
      }
      const here = n.id === cluster.node ? ' (this node)' : '';
      return el('div', { class: 'card ' + n.status, 'data-node': n.id, 'data-status': n.status },
        el('span', { class: 'id' }, n.id), badge(n.status), el('span', { class: 'muted' }, here),
        el('dl', {},
          el('dt', {}, 'cluster'), el('dd', {}, n.cluster_addr),
          el('dt', {}, 'http'), el('dd', {}, n.http_addr || '—'),
          el('dt', {}, 'last heard'), el('dd', {}, n.id === cluster.node ? '—' : ago(n.last_heard_ms)),
          el('dt', {}, 'members'), el('dd', {}, count(members)),
          el('dt', {}, 'shards'), el('dd', {}, count(shards)),
          el('dt', {}, 'store'), el('dd', {}, n.store_bytes == null ? '—' : bytes(n.store_bytes)),
          el('dt', {}, 'incarnation'), el('dd', {}, n.incarnation ? n.incarnation.slice(-8) : '—')));
    });
    $('nodes').replaceChildren(...cards);
    $('served-by').textContent = `served by ${cluster.node}`;
    const formed = $('formed');
    formed.textContent = cluster.formed ? 'cluster formed' : 'forming';
    formed.className = 'badge ' + (cluster.formed ? 'up' : 'suspect');
    $('rates-node').textContent = clusterSamples.latest
      ? '(the cluster\'s; envelopes, events and the busiest counters: this node\'s)'
      : `(as counted by ${cluster.node})`;
  }

  function killControls(service, nodeIds) {
    let row = killRows.get(service);
    if (!row) {
      const select = el('select', { 'aria-label': `node for ${service}` });
      const button = el('button', { type: 'button', class: 'danger' }, 'Kill');
      button.addEventListener('click', () => kill(service, select.value, button));
      row = { select, button, cell: el('td', {}, select, ' ', button), nodes: '' };
      killRows.set(service, row);
    }
    const key = nodeIds.join(',');
    if (row.nodes !== key) {
      const chosen = row.select.value;
      row.select.replaceChildren(el('option', { value: '' }, 'any node'),
        ...nodeIds.map((id) => el('option', { value: id }, id)));
      row.select.value = nodeIds.includes(chosen) ? chosen : '';
      row.nodes = key;
    }
    return row.cell;
  }

  function renderServices(cluster, metricFamilies) {
    const nodeIds = cluster.nodes.map((n) => n.id);
    const clusterWide = clusterSamples.latest;
    const msgRates = clusterWide ? clusterWide.services
      : metricFamilies.messages ? byLabel(metricFamilies.messages.series, 'service', (s) => s.rate) : null;
    const restarts = clusterWide ? clusterWide.restarts
      : metricFamilies.restarts ? byLabel(metricFamilies.restarts.series, 'service', (s) => s.value) : null;
    const rows = cluster.services.map((s) => {
      const members = s.members.filter((m) => m.count > 0)
        .map((m) => el('span', { class: 'pill' }, `${m.node} ×${m.count}`));
      const perNode = new Map();
      for (const sh of s.shards) {
        const entry = perNode.get(sh.node) || { total: 0, bad: new Map() };
        entry.total += 1;
        if (sh.status !== 'up') entry.bad.set(sh.status, (entry.bad.get(sh.status) || 0) + 1);
        perNode.set(sh.node, entry);
      }
      const shards = [...perNode.entries()].sort().map(([node, e]) => {
        const bad = [...e.bad.entries()].map(([st, c]) => `${c} ${st}`).join(', ');
        const worst = e.bad.has('down') ? 'down' : e.bad.size ? 'suspect' : '';
        return el('span', { class: 'pill ' + worst }, `${node}: ${e.total}` + (bad ? ` (${bad})` : ''));
      });
      return el('tr', { 'data-service': s.name },
        el('td', {}, s.name),
        el('td', {}, ...(members.length ? members : ['none'])),
        el('td', {}, ...(shards.length ? shards : [el('span', { class: 'muted' }, 'not sharded')])),
        el('td', { class: 'num' }, msgRates ? rate(msgRates.get(s.name) ?? 0) : '—'),
        el('td', { class: 'num' }, restarts ? count(restarts.get(s.name) ?? 0) : '—'),
        killControls(s.name, nodeIds));
    });
    $('services').tBodies[0].replaceChildren(...rows);

    const maps = cluster.services.filter((s) => s.shards.length).map((s) => {
      const cells = s.shards.slice(0, SHARD_CELLS).map((sh) =>
        el('div', { class: 'shard ' + sh.status, title: `${s.name} shard ${sh.shard} on ${sh.node}: ${sh.status}` }, sh.node));
      const more = s.shards.length > SHARD_CELLS ? ` (first ${SHARD_CELLS} of ${s.shards.length})` : '';
      return el('div', { class: 'shard-map' },
        el('div', { class: 'title' }, `${s.name}: shard → node${more}`), el('div', { class: 'grid' }, ...cells));
    });
    $('shard-maps').replaceChildren(...maps);
  }

  async function kill(service, node, button) {
    button.disabled = true;
    const mine = session;
    const log = $('kill-log');
    const note = (text, error) => {
      log.prepend(el('li', { class: error ? 'error' : '' }, `${new Date().toLocaleTimeString()} ${text}`));
      while (log.children.length > KILL_LOG_ROWS) log.lastElementChild.remove();
    };
    const where = node ? ` on ${node}` : '';
    try {
      const body = { service };
      if (node) body.node = node;
      const response = await call('/admin/chaos/kill', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
      });
      if (response.ok) {
        const answer = await response.json();
        const killed = (answer.killed || []).map((k) => Object.entries(k).map(([a, b]) => `${a} ${b}`).join(' ')).join('; ');
        note(`killed a member of ${service}${where}: ${killed || 'nothing'}`, false);
      } else if (response.status === 429) {
        note(`${service}${where}: rate limited, retry after ${response.headers.get('Retry-After') || '?'} s (${await errorText(response)})`, true);
      } else {
        note(`${service}${where}: ${response.status}: ${await errorText(response)}`, true);
      }
    } catch (e) {
      if (e instanceof AuthError) { if (mine === session) signOut(e.message); return; }
      note(`${service}${where}: ${e.message}`, true);
    } finally {
      setTimeout(() => { button.disabled = false; }, 1000);
    }
  }

  // ---- sagas -----------------------------------------------------------------------------
  //
  // A listing by state reads every saga to find those in that state, so it is asked for
  // less often the longer it takes (under load), one state at a time (running three times
  // out of four). Sagas that leave the
  // in-flight lists are read one by one (a point read each, a few per listing) to show how
  // they finished.

  const active = { running: [], compensating: [] };
  const more = { running: false, compensating: false };
  const finished = new Map();   // id -> saga, the newest FINISHED_ROWS
  let sagaTurn = 0;
  let sagaNextAt = 0;
  let sagaBusy = false;
  let sagaEveryMs = SAGA_MIN_EVERY_MS;
  let sagaListedAt = null;

  async function loadSagas(mine) {
    // Compensations are rarer: every fourth listing.
    const state = sagaTurn % 4 === 3 ? 'compensating' : 'running';
    sagaTurn += 1;
    const began = performance.now();
    let body;
    try {
      body = await json(`/admin/sagas?state=${state}&limit=${SAGA_ROWS}`, SAGA_TIMEOUT_MS);
    } catch (e) {
      if (e instanceof AuthError || mine !== session) throw e;
      // A listing that failed (a node down or frozen holds it to its deadline): back off.
      sagaEveryMs = Math.min(SAGA_MAX_EVERY_MS, 2 * sagaEveryMs);
      sagaNextAt = performance.now() + sagaEveryMs;
      const shown = sagaListedAt ? `; the lists below are from ${sagaListedAt}` : '';
      $('sagas-note').textContent = `(${state} sagas not listed: ${e.message}${shown}; `
        + `next try in ${Math.round(sagaEveryMs / 1000)} s)`;
      return;
    }
    if (mine !== session) return;
    sagaListedAt = new Date().toLocaleTimeString();
    sagaEveryMs = Math.min(SAGA_MAX_EVERY_MS, Math.max(SAGA_MIN_EVERY_MS, SAGA_COST_FACTOR * (performance.now() - began)));
    sagaNextAt = performance.now() + sagaEveryMs;
    const listed = body.sagas || [];
    const still = new Set(listed.map((s) => s.id));
    const left = active[state].filter((s) => !still.has(s.id) && !finished.has(s.id)).slice(0, FINISHED_READS);
    active[state] = listed;
    more[state] = Boolean(body.next_after);
    const reads = await Promise.allSettled(left.map((s) => json(`/api/v1/sagas/${encodeURIComponent(s.id)}`)));
    if (mine !== session) return;
    for (const r of reads) {
      if (r.status === 'rejected' && r.reason instanceof AuthError) throw r.reason;
      if (r.status === 'fulfilled' && ['completed', 'compensated'].includes(r.value.state)) {
        const s = r.value;
        finished.set(s.id, { id: s.id, state: s.state, reason: s.reason, created_at: s.created_at, updated_at: s.updated_at });
      }
    }
    const newest = [...finished.values()].sort((a, b) => b.updated_at.localeCompare(a.updated_at));
    finished.clear();
    for (const s of newest.slice(0, FINISHED_ROWS)) finished.set(s.id, s);
    renderSagas(body.unavailable_shards || []);
  }

  function renderSagas(unavailable) {
    const byNewest = (a, b) => b.updated_at.localeCompare(a.updated_at);
    const flying = [...active.running, ...active.compensating].sort(byNewest).slice(0, SAGA_ROWS);
    const rows = flying.map(sagaRow);
    if (!rows.length) rows.push(el('tr', {}, el('td', { colSpan: 6, class: 'muted' }, 'no saga in flight')));
    const done = [...finished.values()].sort(byNewest);
    if (done.length) {
      rows.push(el('tr', {}, el('th', { colSpan: 6 }, 'finished lately (as this page saw them leave)')));
      rows.push(...done.map(sagaRow));
    }
    $('sagas').tBodies[0].replaceChildren(...rows);
    const n = (state) => `${active[state].length}${more[state] ? '+' : ''} ${state}`;
    $('sagas-note').textContent = `(in flight: ${n('running')}, ${n('compensating')}; `
      + `listed at ${sagaListedAt}, every ${Math.round(sagaEveryMs / 1000)} s`
      + (unavailable.length ? `; ${unavailable.length} shards unavailable` : '') + ')';
  }

  function maybeLoadSagas() {
    if (sagaBusy || performance.now() < sagaNextAt) return;
    sagaBusy = true;
    const mine = session;
    loadSagas(mine)
      .catch((e) => { if (e instanceof AuthError && mine === session) signOut(e.message); })
      .finally(() => { sagaBusy = false; });
  }

  // ---- the loop --------------------------------------------------------------------------

  async function poll() {
    timer = null;
    const mine = session;
    maybeLoadSagas();
    const [cluster, metrics, counters] = await Promise.allSettled([
      json('/admin/cluster'), call('/metrics', { auth: false }).then((r) => (r.ok ? r.text() : '')),
      json('/admin/metrics/cluster'),
    ]);
    if (mine !== session) return; // signed out, or in again, meanwhile
    const refused = [cluster, metrics, counters].find((r) => r.status === 'rejected' && r.reason instanceof AuthError);
    if (refused) { signOut(refused.reason.message); return; }
    if (counters.status === 'fulfilled') {
      renderClusterRates(counters.value, clusterSamples.ingest(counters.value, performance.now()));
    } else {
      // Rates need two answers in a row: start again from the next one, and show no stale row.
      clusterSamples.reset();
      $('cluster-rates').tBodies[0].replaceChildren(el('tr', {}, el('td', { colSpan: 10, class: 'error' },
        `the cluster's figures did not come: ${counters.reason.message}`)));
      $('cluster-rates').tFoot.replaceChildren();
    }
    let families = {};
    if (metrics.status === 'fulfilled' && metrics.value) {
      scrapes.ingest(metrics.value);
      families = renderRates(clusterSamples.latest);
    }
    if (cluster.status === 'fulfilled') {
      failures = 0;
      renderNodes(cluster.value);
      renderServices(cluster.value, families);
      $('poll').textContent = `updated ${new Date().toLocaleTimeString()}`;
    } else {
      failures += 1;
    }
    const delay = schedule();
    if (failures) {
      $('poll').textContent = `this node does not answer (${cluster.reason.message}); retrying in ${Math.round(delay / 1000)} s`;
    }
  }

  function schedule() {
    let delay = Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** failures);
    if (document.hidden) delay = Math.max(delay, HIDDEN_POLL_MS);
    timer = setTimeout(poll, delay);
    return delay;
  }

  // ---- signing in and out ----------------------------------------------------------------

  function signedIn() {
    session += 1;
    active.running = [];
    active.compensating = [];
    finished.clear();
    sagaNextAt = 0;
    sagaListedAt = null;
    $('sign-in').hidden = true;
    $('board').hidden = false;
    $('sign-out').hidden = false;
    $('sign-in-message').textContent = '';
    failures = 0;
    scrapes.reset();
    clusterSamples.reset();
    if (timer) clearTimeout(timer);
    poll();
  }

  function signOut(message) {
    session += 1;
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (timer) clearTimeout(timer);
    timer = null;
    $('board').hidden = true;
    $('sign-out').hidden = true;
    $('sign-in').hidden = false;
    $('sign-in-message').textContent = message || '';
    $('poll').textContent = '';
  }

  function useToken(value) {
    token = value.trim().replace(/^Bearer\s+/i, '');
    sessionStorage.setItem(TOKEN_KEY, token);
    signedIn();
  }

  async function login(event) {
    event.preventDefault();
    const email = $('login-email').value.trim();
    const password = $('login-password').value;
    $('sign-in-message').textContent = '';
    try {
      const response = await call('/api/v1/auth/login', {
        method: 'POST', auth: false, headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email, password }),
      });
      if (!response.ok) {
        $('sign-in-message').textContent = `Not signed in: ${await errorText(response)}`;
        return;
      }
      const answer = await response.json();
      $('login-password').value = '';
      useToken(answer.access_token);
    } catch (e) {
      $('sign-in-message').textContent = `Not signed in: ${e.message}`;
    }
  }

  function start() {
    $('login-form').addEventListener('submit', login);
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const value = $('token-input').value;
      $('token-input').value = '';
      if (value.trim()) useToken(value);
    });
    $('sign-out').addEventListener('click', () => signOut('Signed out.'));
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && timer && token) { clearTimeout(timer); poll(); }
    });
    if (token) signedIn(); else signOut('');
  }

  start();
})();
