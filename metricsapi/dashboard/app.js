// The omnibridge dashboard: loads the ModelMetrics API with the bearer token
// kept in this tab's sessionStorage, draws it, and refreshes itself.
'use strict';

(() => {
  const { lineChart, barChart } = window.omnibridgeCharts;
  const body = document.body;
  const REFRESH_MS = Math.max(1000, Number(body.dataset.refreshMs) || 10000);
  const TOKEN_KEY = 'omnibridge.token';
  const $ = (id) => document.getElementById(id);

  // A link of the form /#token=… hands the page its token; the fragment
  // never reaches the server, and it leaves the address bar at once.
  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  const fromHash = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (fromHash) {
    token = decodeURIComponent(fromHash[1]);
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, '', location.pathname + location.search);
  }

  const backlogHistory = []; // {t, backlog, dead}, since the page opened
  const MAX_HISTORY = 720;
  let timer = null;

  class AuthError extends Error {}

  async function api(path) {
    const headers = token ? { Authorization: 'Bearer ' + token } : {};
    const res = await fetch(path, { headers, cache: 'no-store', credentials: 'omit' });
    const data = await res.json().catch(() => null);
    if (res.status === 401) throw new AuthError(data && data.error ? data.error : 'unauthorized');
    if (!res.ok) throw new Error((data && data.error) || res.status + ' ' + res.statusText);
    return data;
  }

  // Formatting.
  const fmtInt = (n) => String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  function fmtNum(n) {
    if (n === null || n === undefined || !isFinite(n)) return '–';
    const a = Math.abs(n);
    if (a >= 1000) return fmtInt(n);
    if (a >= 100) return n.toFixed(0);
    if (a >= 10) return n.toFixed(1).replace(/\.0$/, '');
    if (a === 0) return '0';
    return n.toPrecision(2).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
  }
  const fmtPct = (r) => (r === null || r === undefined ? '–' : (r * 100).toFixed(r >= 0.9995 || r === 0 ? 0 : 1) + '%');
  const fmtMS = (v) => fmtNum(v) + ' ms';
  function fmtAge(seconds) {
    if (!(seconds > 0)) return '0s';
    const s = Math.round(seconds);
    const parts = [[86400, 'd'], [3600, 'h'], [60, 'm'], [1, 's']];
    const out = [];
    let rest = s;
    for (const [n, u] of parts) {
      if (rest >= n && out.length < 2) { out.push(Math.floor(rest / n) + u); rest %= n; }
    }
    return out.join(' ') || '0s';
  }
  const ago = (iso) => fmtAge((Date.now() - Date.parse(iso)) / 1000) + ' ago';

  function setStat(key, value, text, level) {
    const tile = document.querySelector(`[data-stat="${key}"]`);
    tile.dataset.value = value === null || value === undefined ? '' : String(value);
    tile.dataset.level = level || 'ok';
    tile.querySelector('.value').textContent = text;
  }

  function setStatus(state, text) {
    const s = $('status');
    s.dataset.state = state;
    s.textContent = text;
  }

  function renderTiles(perf, sessions) {
    setStat('received', perf.received, fmtInt(perf.received));
    setStat('processed', perf.processed, fmtInt(perf.processed));
    setStat('throughput', perf.throughput_per_second, fmtNum(perf.throughput_per_second) + '/s');
    const rate = perf.kafka_publish_success_rate;
    setStat('success', rate, fmtPct(rate), rate === null ? 'ok' : rate < 0.95 ? 'crit' : rate < 0.99 ? 'warn' : 'ok');
    setStat('p95', perf.processing_time_ms ? perf.processing_time_ms.p95 : null,
      perf.processing_time_ms ? fmtMS(perf.processing_time_ms.p95) : '–');
    setStat('backlog', perf.backlog, fmtInt(perf.backlog));
    const age = perf.oldest_pending_age_seconds;
    setStat('oldest', age, fmtAge(age), age > 900 ? 'crit' : age > 60 ? 'warn' : 'ok');
    setStat('dead', perf.dead, fmtInt(perf.dead), perf.dead > 0 ? 'warn' : 'ok');
    setStat('sessions', sessions.length, fmtInt(sessions.length), sessions.length === 0 ? 'warn' : 'ok');
  }

  function renderSeries(series) {
    const step = series.step_seconds;
    const toMS = Date.parse(series.to);
    const mid = (b) => Date.parse(b.start) + (step * 1000) / 2;
    const from = series.buckets.length ? Date.parse(series.buckets[0].start) : toMS - 3600e3;
    const perSecond = (b, n) => {
      // The last bucket is partial: divide by the time it has covered.
      const covered = Math.min(step, Math.max(1, (toMS - Date.parse(b.start)) / 1000));
      return n / covered;
    };
    const sum = (k) => series.buckets.reduce((s, b) => s + b[k], 0);
    const range = { from, to: toMS };
    lineChart($('chart-throughput'), Object.assign({
      name: 'throughput', label: 'Throughput, events per second', yFormat: fmtNum,
      series: [
        { key: 'received', label: 'received/s', cls: 's1', total: sum('received'), points: series.buckets.map((b) => ({ t: mid(b), v: perSecond(b, b.received) })) },
        { key: 'processed', label: 'processed/s', cls: 's2', total: sum('processed'), points: series.buckets.map((b) => ({ t: mid(b), v: perSecond(b, b.processed) })) },
      ],
    }, range));
    const pct = (k) => series.buckets.map((b) => ({ t: mid(b), v: b.processing_time_ms ? b.processing_time_ms[k] : null }));
    lineChart($('chart-latency'), Object.assign({
      name: 'latency', label: 'Processing time percentiles, milliseconds', yFormat: fmtNum, empty: 'no attempts in this window',
      series: [
        { key: 'p50', label: 'p50', cls: 's2', total: sum('attempts'), points: pct('p50') },
        { key: 'p95', label: 'p95', cls: 's3', total: sum('attempts'), points: pct('p95') },
        { key: 'p99', label: 'p99', cls: 's4', total: sum('attempts'), points: pct('p99') },
      ],
    }, range));
    const svg = lineChart($('chart-success'), Object.assign({
      name: 'success', label: 'Kafka publish success rate, percent', yMax: 100, yFormat: (v) => fmtNum(v) + '%',
      empty: 'no attempts in this window',
      series: [{
        key: 'success', label: 'published', cls: 's2', total: sum('attempts') - sum('failed_attempts'),
        points: series.buckets.map((b) => ({ t: mid(b), v: b.kafka_publish_success_rate === null ? null : b.kafka_publish_success_rate * 100 })),
      }],
    }, range));
    svg.dataset.attempts = sum('attempts');
    svg.dataset.failed = sum('failed_attempts');
  }

  function renderBacklog(perf) {
    const t = Date.parse(perf.to);
    if (!backlogHistory.length || backlogHistory[backlogHistory.length - 1].t !== t) {
      backlogHistory.push({ t, backlog: perf.backlog, dead: perf.dead });
      if (backlogHistory.length > MAX_HISTORY) backlogHistory.shift();
    }
    const first = backlogHistory[0].t;
    lineChart($('chart-backlog'), {
      name: 'backlog', label: 'Backlog and dead letters since this page opened', yFormat: fmtNum,
      from: Math.min(first, t - REFRESH_MS), to: t,
      series: [
        { key: 'backlog', label: 'backlog', cls: 's1', total: perf.backlog, points: backlogHistory.map((h) => ({ t: h.t, v: h.backlog })) },
        { key: 'dead', label: 'dead', cls: 's4', total: perf.dead, points: backlogHistory.map((h) => ({ t: h.t, v: h.dead })) },
      ],
    });
  }

  function renderPools(pools) {
    barChart($('chart-pools'), {
      name: 'pools', label: 'Pool utilization per service instance', max: 100, empty: 'no pool has reported in the last 24 hours',
      rows: pools.map((p) => {
        const u = p.utilization_percent;
        const notes = [];
        if (p.waiting_connections > 0) notes.push(p.waiting_connections + ' waiting');
        if (p.potential_leaks > 0) notes.push(p.potential_leaks + ' leaked');
        return {
          key: p.service_name + '/' + p.instance_id,
          label: p.service_name + ' · ' + p.instance_id.slice(0, 22),
          value: u,
          text: fmtNum(u) + '% ' + p.active_connections + '/' + p.pool_size + (notes.length ? ' · ' + notes.join(', ') : ''),
          cls: u >= 90 || p.potential_leaks > 0 ? 'crit' : u >= 75 || p.waiting_connections > 0 ? 'warn' : 'ok',
          title: `${p.service_name} ${p.instance_id}\nactive ${p.active_connections}, idle ${p.idle_connections}, waiting ${p.waiting_connections} of ${p.pool_size}\n` +
            `queries ${fmtInt(p.total_queries)} (${fmtInt(p.failed_queries)} failed), avg ${fmtMS(p.avg_query_time_ms)}\nrecorded ${ago(p.recorded_at)}`,
          attrs: {
            'data-service': p.service_name, 'data-instance': p.instance_id, 'data-utilization': u,
            'data-active': p.active_connections, 'data-size': p.pool_size,
            'data-waiting': p.waiting_connections, 'data-leaks': p.potential_leaks,
          },
        };
      }),
    });
  }

  // fillTable replaces the rows of a table body with cells of text.
  function fillTable(id, rows, emptyText, rowAttrs) {
    const tbody = $(id).querySelector('tbody');
    tbody.replaceChildren();
    if (!rows.length) {
      const tr = tbody.insertRow();
      const td = tr.insertCell();
      td.colSpan = $(id).querySelectorAll('thead th').length;
      td.className = 'empty';
      td.textContent = emptyText;
      return;
    }
    for (const [i, cells] of rows.entries()) {
      const tr = tbody.insertRow();
      for (const [k, v] of Object.entries((rowAttrs && rowAttrs[i]) || {})) tr.dataset[k] = v;
      for (const c of cells) {
        const td = tr.insertCell();
        if (c && typeof c === 'object') {
          td.textContent = c.text;
          if (c.title) td.title = c.title;
          if (c.cls) td.className = c.cls;
        } else {
          td.textContent = c;
        }
      }
    }
  }

  function renderSessions(sessions) {
    fillTable('sessions', sessions.map((s) => [
      s.service_name, { text: s.instance_id.slice(0, 28), title: s.instance_id },
      { text: ago(s.session_start), title: s.session_start }, { text: ago(s.last_seen), title: s.last_seen },
    ]), 'no active sessions', sessions.map((s) => ({ id: s.id, service: s.service_name })));
  }

  function renderDead(events) {
    fillTable('dead', events.map((e) => [
      { text: ago(e.created_at), title: e.created_at },
      { text: e.source + ' ' + e.action, title: e.id },
      String(e.retry_count),
      { text: (e.processing_errors[e.processing_errors.length - 1] || '').slice(0, 120), title: e.processing_errors.join('\n'), cls: 'detail' },
    ]), 'no dead letters', events.map((e) => ({ id: e.id })));
  }

  function renderAudit(events) {
    fillTable('audit', events.map((e) => {
      const info = e.client_info || {};
      const who = info.remote_addr || info.source || info.service || '';
      const suppressed = info.suppressed ? ` (+${info.suppressed} like it)` : '';
      return [
        { text: ago(e.created_at), title: e.created_at },
        e.event_type,
        { text: String(who), title: JSON.stringify(info) },
        { text: (e.error_details || info.reason || '') + suppressed, cls: 'detail' },
      ];
    }), 'no failed security events', events.map((e) => ({ id: String(e.id), type: e.event_type })));
  }

  async function refresh() {
    clearTimeout(timer);
    const w = encodeURIComponent($('window').value);
    try {
      const [perf, series, pools, sessions, dead, audit] = await Promise.all([
        api('/api/v1/performance?window=' + w),
        api('/api/v1/performance/series?window=' + w),
        api('/api/v1/pools'),
        api('/api/v1/sessions?status=active'),
        api('/api/v1/events?status=dead&limit=10'),
        api('/api/v1/audit?success=false&limit=15'),
      ]);
      showMain();
      renderTiles(perf, sessions.sessions);
      renderSeries(series);
      renderBacklog(perf);
      renderPools(pools.pools);
      renderSessions(sessions.sessions);
      renderDead(dead.events);
      renderAudit(audit.events);
      body.dataset.loaded = String(Number(body.dataset.loaded || 0) + 1);
      setStatus('ok', 'updated ' + new Date().toLocaleTimeString());
    } catch (err) {
      if (err instanceof AuthError) {
        showLogin(token ? 'The token was refused: ' + err.message : '');
        return;
      }
      setStatus('error', 'refresh failed: ' + err.message);
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  function showMain() {
    $('login').hidden = true;
    $('main').hidden = false;
    $('signout').hidden = !token;
  }

  function showLogin(message) {
    clearTimeout(timer);
    $('main').hidden = true;
    $('login').hidden = false;
    $('signout').hidden = true;
    $('login-error').textContent = message;
    setStatus('auth', 'sign in');
    $('token').focus();
  }

  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('token').value.trim();
    $('token').value = '';
    sessionStorage.setItem(TOKEN_KEY, token);
    refresh();
  });
  $('signout').addEventListener('click', () => {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('');
  });
  $('window').value = body.dataset.window;
  if ($('window').value !== body.dataset.window) {
    const opt = document.createElement('option');
    opt.value = opt.textContent = body.dataset.window;
    $('window').appendChild(opt);
    $('window').value = body.dataset.window;
  }
  $('window').addEventListener('change', refresh);
  document.addEventListener('visibilitychange', () => { if (!document.hidden && $('login').hidden) refresh(); });
  // Without a token there is nothing to ask the API yet (and a request
  // would only add a refusal to the audit log).
  if (body.dataset.tokenRequired === 'true' && !token) showLogin('');
  else refresh();
})();
