// Testfleet dashboard: one script for every page, no build step, no
// libraries. Text from the server is only ever set as text (never as HTML).
'use strict';

const app = { session: null, sources: [] };

// ---- helpers ----
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') el.textContent = v; else el.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c) el.append(c);
  return el;
}
async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: 'same-origin' }, options));
  if (response.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search); throw new Error('log in'); }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
function ms(v) {
  if (v === undefined || v === null || v < 0) return '–';
  if (v < 1000) return Math.round(v) + ' ms';
  if (v < 60000) return (v / 1000).toFixed(1) + ' s';
  if (v < 3600000) return Math.floor(v / 60000) + ' m ' + Math.round((v % 60000) / 1000) + ' s';
  return (v / 3600000).toFixed(1) + ' h';
}
function kib(v) {
  if (!v) return '–';
  if (v < 1024) return v + ' KiB';
  if (v < 1048576) return (v / 1024).toFixed(1) + ' MiB';
  return (v / 1048576).toFixed(2) + ' GiB';
}
function bytes(v) { return kib(Math.round((v || 0) / 1024)); }
function when(unixMs) { return unixMs ? new Date(unixMs).toLocaleString() : '–'; }
function statusCell(status) { return h('td', { class: 'status-' + status, text: status }); }
function stateBadge(state) { return h('span', { class: 'state state-' + state, text: state }); }
function suiteLink(id, text) { return h('a', { href: '/suites/' + encodeURIComponent(id), text: text || id.slice(0, 12) }); }
function testLink(suiteName, testId, suiteId) {
  const q = new URLSearchParams({ suite_name: suiteName, test_id: testId });
  if (suiteId) q.set('suite_id', suiteId);
  return h('a', { href: '/tests?' + q, text: testId });
}
function progressBar(summary, big) {
  const total = Math.max(1, summary.total);
  const part = (n, cls) => { const s = h('span', { class: cls }); s.style.width = (100 * n / total) + '%'; return s; };
  const cachedPassed = Math.min(summary.cached, summary.passed);
  return h('div', { class: big ? 'big bar' : 'bar', role: 'progressbar', 'aria-valuenow': summary.done, 'aria-valuemax': summary.total },
    part(summary.passed - cachedPassed, 'ok'), part(cachedPassed, 'cached'), part(summary.failed, 'bad'));
}
function table(headers, rows) {
  return h('table', {}, h('thead', {}, h('tr', {}, headers.map(x => h('th', { class: x.endsWith('#') ? 'num' : null, text: x.replace(/#$/, '') })))),
    h('tbody', {}, rows));
}
function num(v) { return h('td', { class: 'num', text: v }); }
// replaceChildren without the nulls that conditional parts leave.
function fill(el, ...children) { el.replaceChildren(...children.flat().filter(c => c !== null && c !== undefined && c !== false)); return el; }
function setMain(...children) { return fill(document.getElementById('main'), ...children); }
function live(url, handlers) {
  const source = new EventSource(url);
  for (const [event, fn] of Object.entries(handlers)) source.addEventListener(event, e => fn(JSON.parse(e.data)));
  app.sources.push(source);
  return source;
}

// ---- fleet ----
function fleetPage() {
  document.title = 'Testfleet: fleet';
  const cards = h('div', { class: 'cards' });
  const suites = h('div');
  const workers = h('div');
  let workerPage = 0, lastFleet = null;
  setMain(h('h1', { text: 'Fleet' }), cards, h('h2', { text: 'Suites' }), suites, h('h2', { text: 'Workers' }), workers);
  const card = (label, value) => h('div', { class: 'card' }, h('b', { text: value }), label);
  function renderWorkers() {
    const per = 100, list = lastFleet.workers;
    const shown = list.slice(workerPage * per, (workerPage + 1) * per);
    const rows = shown.map(w => h('tr', {},
      h('td', { text: w.name }), h('td', { class: 'muted', text: w.worker_id }),
      num(w.busy_slots + ' / ' + w.slots), num(w.load_average.toFixed(2)), num(kib(w.free_memory_kb)), num(w.tests_run),
      h('td', {}, w.running.map(r => h('div', {}, r.test_id ? testLink(r.suite_name, r.test_id, r.suite_id) : h('span', { class: 'muted', text: 'another team\u2019s test' }),
        h('span', { class: 'muted', text: ' for ' + ms(r.running_ms) + (r.tests_left > 1 ? ', ' + (r.tests_left - 1) + ' more in shard' : '') })))))
    );
    const pages = Math.ceil(list.length / per);
    fill(workers, 
      list.length ? table(['name', 'id', 'busy slots#', 'load#', 'free memory#', 'tests run#', 'running now'], rows) : h('p', { class: 'muted', text: 'No worker is registered.' }),
      pages > 1 ? h('div', { class: 'pager' },
        h('button', { disabled: workerPage === 0, onclick: () => { workerPage--; renderWorkers(); }, text: 'previous' }),
        'page ' + (workerPage + 1) + ' of ' + pages,
        h('button', { disabled: workerPage + 1 >= pages, onclick: () => { workerPage++; renderWorkers(); }, text: 'next' })) : null);
  }
  function render(fleet) {
    lastFleet = fleet;
    const queued = fleet.suites.filter(s => s.state === 'queued' || s.state === 'running')
      .reduce((n, s) => n + s.summary.total - s.summary.done - s.summary.running, 0);
    const cache = fleet.cache;
    fill(cards, 
      card('workers', fleet.workers.length), card('busy slots', fleet.busy_slots + ' / ' + fleet.slots),
      card('tests queued', queued),
      fleet.desired_workers !== undefined ? card('desired workers', fleet.desired_workers) : null,
      cache ? card('cache hit rate', (100 * cache.hit_rate).toFixed(1) + '%') : null,
      cache ? card('cache size', bytes(cache.bytes) + ' of ' + bytes(cache.max_bytes)) : null);
    const rows = fleet.suites.map(s => h('tr', { 'data-suite': s.suite_id },
      h('td', {}, stateBadge(s.state)), h('td', {}, suiteLink(s.suite_id, s.name || s.suite_id)), h('td', { text: s.owner || '–' }),
      num(s.priority), h('td', {}, progressBar(s.summary)), num(s.summary.done + ' / ' + s.summary.total),
      num(s.summary.failed), num(s.regressions), num(s.state === 'running' || s.state === 'queued' ? ms(s.eta_ms) : ms(s.summary.wall_ms)),
      h('td', { text: when(s.submitted_at_unix_ms) })));
    fill(suites, fleet.suites.length
      ? table(['state', 'suite', 'owner', 'priority#', 'progress', 'done#', 'failed#', 'regressions#', 'ETA / wall#', 'submitted'], rows)
      : h('p', { class: 'muted', text: 'No suite yet: coordctl submit suite.json' }));
    renderWorkers();
  }
  live('/api/fleet/events', { fleet: render });
}

// ---- a suite ----
const COLORS = { passed: '#31a354', cancelled: '#bdbdbd', skipped: '#bdbdbd' };
function suitePage(suiteId) {
  const header = h('div'), progress = h('div'), changes = h('div'), failures = h('div');
  const canvas = h('canvas', { class: 'timeline', height: 60 });
  const results = h('div'), report = h('div');
  setMain(header, progress, h('h2', { text: 'Failures' }), failures, h('h2', { text: 'Regressions' }), changes,
    h('h2', { text: 'Timeline (worker slots)' }), canvas, h('h2', { text: 'Tests' }), results, report);
  const state = { suite: null, lanes: [], bars: [], seen: new Set(), failures: [], failedIds: new Set(), drawn: false,
    page: 0, filter: 'all', sort: 'finished', tableTimer: null, ended: false };

  function renderHeader(suite, feedState) {
    const ended = feedState.ended;
    fill(header, 
      h('h1', {}, suite.name || suite.suite_id, ' ', stateBadge((feedState.progress || {}).state || suite.state)),
      h('p', { class: 'muted' }, 'suite ' + suite.suite_id + ' · owner ' + (suite.owner || '–') + ' · priority ' + suite.priority +
        ' · submitted ' + when(suite.submitted_at_unix_ms)),
      suite.can_cancel && !ended ? h('button', { id: 'cancel', onclick: cancel, text: 'Cancel suite' }) : null);
  }
  function renderProgress(p) {
    const s = p.summary;
    fill(progress, progressBar(s, true),
      h('div', { class: 'cards', id: 'counts' },
        ...[['done', s.done + ' / ' + s.total], ['running', s.running], ['passed', s.passed], ['failed', s.failed], ['cached', s.cached],
          ['flaky', s.flaky], ['workers busy', p.workers_busy], [p.state === 'running' || p.state === 'queued' ? 'ETA' : 'wall time',
            p.state === 'running' || p.state === 'queued' ? ms(p.eta_ms) : ms(s.wall_ms)],
          ...(s.first_failure_ms === null || s.first_failure_ms === undefined ? [] : [['first failure after', ms(s.first_failure_ms)]])]
          .map(([label, value]) => h('div', { class: 'card', 'data-count': label }, h('b', { text: value }), label))));
  }
  function renderChanges(list) {
    fill(changes, list.length ? table(['test', 'metric', 'change#', 'baseline#', 'now#', 'p#'],
      list.map(c => h('tr', {}, h('td', {}, testLink(state.suite.name, c.id, suiteId)), h('td', { text: c.metric }),
        num((c.change_pct > 0 ? '+' : '') + c.change_pct.toFixed(1) + '%'), num(c.baseline_median.toFixed(1) + ' ' + c.unit),
        num(c.current_median.toFixed(1) + ' ' + c.unit), num(c.p_value.toFixed(3)))))
      : h('p', { class: 'muted', text: 'None found.' }));
  }
  function addFailure(row) {
    if (state.failedIds.has(row.i)) return;
    state.failedIds.add(row.i);
    state.failures.push(row);
    failures.querySelector('.muted.none')?.remove();
    if (state.failures.length > 200) return;  // the table below pages the rest
    failures.append(h('div', { class: 'failure', 'data-test': row.id },
      h('b', {}, testLink(state.suite.name, row.id, suiteId)), ' ', h('span', { class: 'status-' + row.status, text: row.status }),
      h('span', { class: 'muted', text: ' · ' + ms(row.wall_ms) + ' on ' + (row.worker || 'cache') + (row.exit_code ? ' · exit ' + row.exit_code : '') +
        (row.signal ? ' · signal ' + row.signal : '') + (row.error ? ' · ' + row.error : '') }),
      row.stderr_tail ? h('pre', { text: row.stderr_tail }) : null,
      !row.stderr_tail && row.stdout_tail ? h('pre', { text: row.stdout_tail }) : null));
  }
  function addBar(lane, start, duration, status, index) {
    if (state.seen.has(index)) return;
    state.seen.add(index);
    state.bars.push([lane, start, duration, status, index]);
  }
  function draw() {
    state.drawn = false;
    const lanes = Math.max(1, state.lanes.length), laneHeight = 14, left = 150;
    const width = canvas.clientWidth || 1000;
    const ratio = window.devicePixelRatio || 1;
    canvas.height = (lanes * laneHeight + 20) * ratio;
    canvas.width = width * ratio;
    canvas.style.height = (lanes * laneHeight + 20) + 'px';
    const g = canvas.getContext('2d');
    g.scale(ratio, ratio);
    g.clearRect(0, 0, width, lanes * laneHeight + 20);
    let start = Infinity, end = 0;
    for (const b of state.bars) { start = Math.min(start, b[1]); end = Math.max(end, b[1] + b[2]); }
    if (!state.bars.length) start = 0;
    end = Math.max(1, end - start);
    const scale = (width - left - 10) / end;
    g.font = '11px sans-serif';
    g.fillStyle = '#666';
    state.lanes.forEach((lane, i) => g.fillText(lane.length > 22 ? '…' + lane.slice(-21) : lane, 4, i * laneHeight + 11));
    for (const [lane, began, duration, status] of state.bars) {
      g.fillStyle = COLORS[status] || '#de2d26';
      g.fillRect(left + (began - start) * scale, lane * laneHeight + 2, Math.max(1, duration * scale), laneHeight - 4);
    }
    g.fillStyle = '#666';
    g.fillText('0', left, lanes * laneHeight + 14);
    g.fillText(ms(end), width - 60, lanes * laneHeight + 14);
    canvas.dataset.bars = String(state.bars.length);
    canvas.dataset.lanes = String(state.lanes.length);
  }
  function redraw() { if (!state.drawn) { state.drawn = true; requestAnimationFrame(draw); } }
  async function loadTable() {
    const per = 100;
    const page = await api(`/api/suites/${suiteId}/results?offset=${state.page * per}&limit=${per}&filter=${state.filter}&sort=${state.sort}`);
    const pages = Math.max(1, Math.ceil(page.total / per));
    const select = (value, options, onchange) => h('select', { onchange }, options.map(o => h('option', { value: o, selected: o === value, text: o })));
    fill(results, 
      h('div', { class: 'controls' }, 'show', select(state.filter, ['all', 'failed', 'executed', 'cached'], e => { state.filter = e.target.value; state.page = 0; loadTable(); }),
        'sorted by', select(state.sort, ['finished', 'wall', 'memory'], e => { state.sort = e.target.value; state.page = 0; loadTable(); }),
        h('span', { class: 'muted', text: page.total + ' tests' })),
      table(['test', 'status', 'wall#', 'CPU#', 'peak memory#', 'worker', 'attempt#', 'finished'],
        page.rows.map(r => h('tr', {}, h('td', {}, testLink(state.suite.name, r.id, suiteId)), statusCell(r.status + (r.cached ? ' (cached)' : '') + (r.flaky ? ' (flaky)' : '')),
          num(ms(r.wall_ms)), num(ms(r.cpu_ms)), num(kib(r.peak_rss_kb)), h('td', { text: r.worker ? r.worker + '/' + r.slot : 'cache' }), num(r.attempt),
          h('td', { text: when(r.finished) })))),
      h('div', { class: 'pager' },
        h('button', { disabled: state.page === 0, onclick: () => { state.page--; loadTable(); }, text: 'previous' }),
        'page ' + (state.page + 1) + ' of ' + pages,
        h('button', { disabled: state.page + 1 >= pages, onclick: () => { state.page++; loadTable(); }, text: 'next' })));
  }
  function refreshTableSoon() {
    if (state.tableTimer) return;
    state.tableTimer = setTimeout(() => { state.tableTimer = null; loadTable(); }, 2000);
  }
  function showReport() {
    fill(report, h('h2', { text: 'Report' }),
      h('p', {}, h('a', { href: `/suites/${suiteId}/report.html`, text: 'open the HTML report alone' })),
      h('iframe', { class: 'report', src: `/suites/${suiteId}/report.html`, title: 'suite report' }));
  }
  async function cancel() {
    if (!confirm('Cancel this suite? Its unfinished tests stop.')) return;
    try {
      const r = await api(`/api/suites/${suiteId}/cancel`, { method: 'POST', headers: { 'X-CSRF-Token': app.session.csrf } });
      header.append(h('p', { text: `Cancelled ${r.cancelled} tests.` }));
    } catch (e) { header.append(h('p', { class: 'error', text: 'Not cancelled: ' + e.message })); }
  }
  function update(msg) {
    const feedState = msg.state;
    renderProgress(feedState.progress);
    renderChanges(feedState.changes);
    state.lanes.splice(msg.lanes_from, msg.lanes.length, ...msg.lanes);
    for (const bar of msg.bars) addBar(...bar);
    for (const row of msg.failures) addFailure(row);
    redraw();
    if (msg.bars.length || msg.failures.length) refreshTableSoon();
    if (feedState.ended && !state.ended) { state.ended = true; renderHeader(state.suite, feedState); }
  }

  (async () => {
    const suite = await api('/api/suites/' + suiteId);
    state.suite = suite;
    document.title = 'Testfleet: ' + (suite.name || suiteId);
    renderHeader(suite, suite.feed);
    if (suite.feed.progress.summary) renderProgress(suite.feed.progress);
    renderChanges(suite.feed.changes);
    failures.append(h('p', { class: 'muted none', text: 'None so far.' }));
    const [timeline, failed] = await Promise.all([api(`/api/suites/${suiteId}/timeline`), api(`/api/suites/${suiteId}/results?filter=failed&limit=200`)]);
    state.lanes = timeline.lanes.slice();
    for (const b of timeline.bars) addBar(...b);
    for (const row of failed.rows) addFailure(row);
    redraw();
    loadTable();
    const ended = suite.feed.ended;
    if (ended) { state.ended = true; showReport(); return; }
    const source = live(`/api/suites/${suiteId}/events?from=${suite.feed.rows}`, {
      update,
      end: () => { source.close(); showReport(); loadTable(); },
    });
  })().catch(e => setMain(h('p', { class: 'error', text: e.message })));
}

// ---- a test ----
function chart(points, value, label, format) {
  const width = 900, height = 220, left = 60, bottom = 24, top = 16;
  const values = points.map(value);
  const max = Math.max(1, ...values), n = points.length;
  const x = i => left + (n <= 1 ? (width - left) / 2 : i * (width - left - 10) / (n - 1));
  const y = v => top + (height - top - bottom) * (1 - v / max);
  const path = points.map((p, i) => (i ? 'L' : 'M') + x(i).toFixed(1) + ',' + y(value(p)).toFixed(1)).join(' ');
  return svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, 'data-points': n },
    svg('text', { x: 4, y: 12, text: label }),
    svg('text', { x: 4, y: top + 10, text: format(max) }), svg('text', { x: 4, y: height - bottom, text: '0' }),
    svg('text', { x: left, y: height - 6, text: n ? when(points[0].finished_at_unix_ms) : '' }),
    svg('text', { x: width - 150, y: height - 6, text: n ? when(points[n - 1].finished_at_unix_ms) : '' }),
    n > 1 ? svg('path', { d: path }) : null,
    points.map((p, i) => svg('circle', { class: 'point' + (p.status === 'passed' ? '' : ' bad'), cx: x(i), cy: y(value(p)), r: 3.5 },
      svg('title', { text: `${when(p.finished_at_unix_ms)}: ${format(value(p))} ${p.status} on ${p.worker}` }))));
}
async function testPage() {
  const q = new URLSearchParams(location.search);
  const data = await api('/api/tests?' + new URLSearchParams({ suite_name: q.get('suite_name') || '', test_id: q.get('test_id') || '', suite_id: q.get('suite_id') || '' }));
  document.title = 'Testfleet: ' + data.test_id;
  const parts = [h('h1', { text: data.test_id }),
    h('p', { class: 'muted' }, 'suite name ' + data.suite_name, data.suite_id ? h('span', {}, ' · in suite ', suiteLink(data.suite_id)) : null)];
  const history = data.history;
  if (history) {
    const runs = history.runs, insight = history.insight;
    parts.push(h('div', { class: 'cards' },
      [['runs kept', runs.length + (history.older_runs ? ` (+${history.older_runs} older)` : '')], ['median wall', insight.median_wall_ms ? ms(insight.median_wall_ms) : '–'],
        ['median peak memory', kib(insight.median_peak_rss_kb)], ['trend', insight.trend], ['slope', insight.slope_ms_per_run.toFixed(2) + ' ms/run'],
        ['flakiness (flip rate)', (100 * insight.flip_rate).toFixed(1) + '%'], ['leak suspected', insight.leak_suspected ? 'yes' : 'no']]
        .map(([label, value]) => h('div', { class: 'card' }, h('b', { text: value }), label))));
    parts.push(h('h2', { text: 'Wall time per run' }), chart(runs, r => r.wall_ms, 'wall time (ms)', ms));
    parts.push(h('h2', { text: 'Peak memory per run' }), chart(runs, r => r.peak_rss_kb, 'peak memory', kib));
    parts.push(h('h2', { text: 'Recent runs' }), table(['finished', 'status', 'wall#', 'CPU#', 'peak memory#', 'worker', 'suite'],
      runs.slice().reverse().slice(0, 50).map(r => h('tr', {}, h('td', { text: when(r.finished_at_unix_ms) }), statusCell(r.status),
        num(ms(r.wall_ms)), num(ms(r.cpu_ms)), num(kib(r.peak_rss_kb)), h('td', { text: r.worker }), h('td', {}, r.suite_id ? suiteLink(r.suite_id) : '–')))));
  } else {
    parts.push(h('p', { class: 'muted', text: 'No history: ' + data.history_error }));
  }
  if (data.changes && data.changes.length) {
    parts.push(h('h2', { text: 'Regressions and improvements in this suite' }),
      data.changes.map(c => h('p', { text: `${c.metric} ${(c.change_pct > 0 ? '+' : '') + c.change_pct.toFixed(1)}% (${c.baseline_median.toFixed(1)} → ${c.current_median.toFixed(1)} ${c.unit}, p=${c.p_value.toFixed(3)})` })));
  }
  if (data.explain) {
    const e = data.explain;
    parts.push(h('h2', { text: 'Cache key' }),
      h('p', {}, e.cached ? 'Its result in this suite came from the cache. ' : 'It ran in this suite. ', 'Key ', h('code', { text: e.key })),
      e.compared_key ? h('p', {}, 'Against the last earlier passing run\u2019s key ', h('code', { text: e.compared_key }), ':') : h('p', { class: 'muted', text: 'No earlier passing run to compare with.' }),
      e.differences.length ? h('ul', {}, e.differences.map(d => h('li', { text: d }))) : (e.compared_key ? h('p', { text: 'Nothing changed.' }) : null));
  } else if (data.explain_error) {
    parts.push(h('p', { class: 'muted', text: 'Cache key: ' + data.explain_error }));
  }
  setMain(...parts);
}

// ---- search ----
async function searchPage() {
  const query = new URLSearchParams(location.search).get('q') || '';
  document.getElementById('search-input').value = query;
  document.title = 'Testfleet: search';
  const r = await api('/api/search?q=' + encodeURIComponent(query));
  const none = h('p', { class: 'muted', text: 'Nothing.' });
  setMain(h('h1', { text: 'Search: ' + query }),
    h('h2', { text: 'Suites' }), r.suites.length ? table(['state', 'suite', 'id', 'owner', 'done#', 'failed#', 'submitted'],
      r.suites.map(s => h('tr', {}, h('td', {}, stateBadge(s.state)), h('td', {}, suiteLink(s.suite_id, s.name || s.suite_id)), h('td', { class: 'muted', text: s.suite_id }),
        h('td', { text: s.owner || '–' }), num(s.summary.done + ' / ' + s.summary.total), num(s.summary.failed), h('td', { text: when(s.submitted_at_unix_ms) })))) : none.cloneNode(true),
    h('h2', { text: 'Tests in recent suites' }), r.tests.length ? table(['test', 'suite'],
      r.tests.map(t => h('tr', {}, h('td', {}, testLink(t.suite_name, t.test_id, t.suite_id)), h('td', {}, suiteLink(t.suite_id, t.suite_name))))) : none.cloneNode(true),
    h('h2', { text: 'Tests with history under the suite name' }), r.history.length ? table(['test', 'runs#', 'last status', 'median wall#'],
      r.history.map(t => h('tr', {}, h('td', {}, testLink(t.suite_name, t.test_id)), num(t.runs), statusCell(t.last_status), num(ms(t.median_wall_ms))))) : none.cloneNode(true));
}

// ---- login page and start ----
function loginPage() {
  const form = document.getElementById('login-form');
  form.action = '/login' + location.search;
  if (new URLSearchParams(location.search).get('failed')) document.getElementById('login-failed').hidden = false;
}

async function start() {
  if (location.pathname === '/login') { loginPage(); return; }
  app.session = await api('/api/session');
  if (app.session.name) {
    document.getElementById('who').textContent = app.session.name;
    const logout = document.getElementById('logout');
    logout.hidden = false;
    logout.addEventListener('click', async () => {
      await fetch('/logout', { method: 'POST', headers: { 'X-CSRF-Token': app.session.csrf } });
      location.href = '/login';
    });
  }
  const path = location.pathname;
  const suite = path.match(/^\/suites\/([A-Za-z0-9_-]+)$/);
  if (suite) suitePage(suite[1]);
  else if (path === '/tests') await testPage();
  else if (path === '/search') await searchPage();
  else fleetPage();
}
window.addEventListener('pagehide', () => app.sources.forEach(s => s.close()));
document.addEventListener('DOMContentLoaded', () => start().catch(e => setMain(h('p', { class: 'error', text: e.message }))));
