// Hand-drawn SVG charts for the omnibridge dashboard. No libraries: every
// element is created with the DOM API and every text goes in as text, never
// as markup.
'use strict';

const SVG_NS = 'http://www.w3.org/2000/svg';

function svgEl(name, attrs, parent) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  if (parent) parent.appendChild(el);
  return el;
}

function svgText(parent, x, y, text, attrs) {
  const t = svgEl('text', Object.assign({ x, y }, attrs), parent);
  t.textContent = text;
  return t;
}

// niceTicks returns about n round values from 0 up to at least max.
function niceTicks(max, n) {
  if (!(max > 0)) max = 1;
  const raw = max / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw);
  const ticks = [];
  for (let v = 0; v < max + step / 2; v += step) ticks.push(+v.toPrecision(12));
  if (ticks[ticks.length - 1] < max) ticks.push(+(ticks[ticks.length - 1] + step).toPrecision(12));
  return ticks;
}

// fmtClock prints a time of day, with seconds for short spans and with the
// date for long ones.
function fmtClock(ms, span) {
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, '0');
  const hm = two(d.getHours()) + ':' + two(d.getMinutes());
  if (span < 10 * 60 * 1000) return hm + ':' + two(d.getSeconds());
  if (span <= 36 * 3600 * 1000) return hm;
  return (d.getMonth() + 1) + '/' + d.getDate() + ' ' + hm;
}

// chartWidth is the drawing's width in user units: the container's width in
// CSS pixels, so that text keeps its size whatever the card's width.
function chartWidth(container) {
  return Math.max(320, Math.round(container.clientWidth || 640));
}

// lineChart draws series of {t (ms), v (number or null)} points into
// container, replacing what it held. opts: series [{key, label, cls, points,
// total}], from and to (ms), yMax (fixed top, optional), yFormat (value →
// text), empty (text when there is nothing to draw).
function lineChart(container, opts) {
  const W = chartWidth(container), H = 220, L = 52, R = 12, T = 12, B = 26;
  const pw = W - L - R, ph = H - T - B;
  container.replaceChildren();
  const svg = svgEl('svg', {
    viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img',
    'data-chart': opts.name, 'aria-label': opts.label,
  }, container);
  const values = opts.series.flatMap((s) => s.points.map((p) => p.v)).filter((v) => v !== null && isFinite(v));
  const dataMax = values.length ? Math.max(...values) : 0;
  const ticks = opts.yMax !== undefined ? niceTicks(opts.yMax, 4) : niceTicks(dataMax, 4);
  const yTop = ticks[ticks.length - 1];
  const from = opts.from, to = Math.max(opts.to, opts.from + 1);
  const x = (t) => L + ((t - from) / (to - from)) * pw;
  const y = (v) => T + ph - (v / yTop) * ph;
  const fmt = opts.yFormat || String;

  const grid = svgEl('g', { class: 'grid' }, svg);
  for (const tv of ticks) {
    svgEl('line', { x1: L, x2: W - R, y1: y(tv), y2: y(tv) }, grid);
    svgText(grid, L - 6, y(tv) + 4, fmt(tv), { 'text-anchor': 'end', class: 'tick' });
  }
  const span = to - from;
  // About one label per 110 px, and no two labels within the same second.
  const labels = Math.max(1, Math.min(8, Math.floor(pw / 110), Math.floor(span / 1000)));
  for (let i = 0; i <= labels; i++) {
    const t = from + (span * i) / labels;
    svgText(grid, x(t), H - 6, fmtClock(t, span), {
      'text-anchor': i === 0 ? 'start' : i === labels ? 'end' : 'middle', class: 'tick',
    });
  }

  for (const s of opts.series) {
    let d = '';
    let pen = false;
    for (const p of s.points) {
      if (p.v === null || !isFinite(p.v)) { pen = false; continue; }
      d += (pen ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(p.v).toFixed(1);
      pen = true;
    }
    const last = [...s.points].reverse().find((p) => p.v !== null && isFinite(p.v));
    const g = svgEl('g', { class: 'series ' + s.cls, 'data-series': s.key }, svg);
    svgEl('path', {
      d: d || 'M0 0', class: 'line', 'data-series': s.key, 'data-points': s.points.filter((p) => p.v !== null).length,
      'data-total': s.total, 'data-last': last ? last.v : '', 'data-max': s.points.reduce((m, p) => (p.v !== null && p.v > m ? p.v : m), 0),
    }, g);
    // A lone point shows as a dot, since a path of one point draws nothing.
    for (const [i, p] of s.points.entries()) {
      if (p.v === null) continue;
      const prev = s.points[i - 1], next = s.points[i + 1];
      if ((!prev || prev.v === null) && (!next || next.v === null)) {
        svgEl('circle', { cx: x(p.t), cy: y(p.v), r: 2.5, class: 'dot' }, g);
      }
    }
  }

  // Hover: one transparent column per point of the first series, titled
  // with every series' value there.
  const hover = svgEl('g', { class: 'hover' }, svg);
  const base = opts.series[0] ? opts.series[0].points : [];
  const colW = base.length ? pw / base.length : pw;
  for (const [i, p] of base.entries()) {
    const rect = svgEl('rect', { x: x(p.t) - colW / 2, y: T, width: colW, height: ph }, hover);
    const lines = [fmtClock(p.t, span)].concat(opts.series.map((s) => {
      const v = s.points[i] ? s.points[i].v : null;
      return s.label + ': ' + (v === null ? '–' : fmt(v));
    }));
    svgEl('title', {}, rect).textContent = lines.join('\n');
  }

  if (!values.length && opts.empty) {
    svgText(svg, L + pw / 2, T + ph / 2, opts.empty, { 'text-anchor': 'middle', class: 'empty' });
  }
  legend(container, opts.series, fmt);
  return svg;
}

function legend(container, series, fmt) {
  const ul = document.createElement('ul');
  ul.className = 'legend';
  for (const s of series) {
    const li = document.createElement('li');
    li.className = s.cls;
    const sw = document.createElement('span');
    sw.className = 'swatch';
    li.appendChild(sw);
    const last = [...s.points].reverse().find((p) => p.v !== null && isFinite(p.v));
    li.appendChild(document.createTextNode(s.label + (last ? ' ' + fmt(last.v) : ' –')));
    ul.appendChild(li);
  }
  container.appendChild(ul);
}

// barChart draws one horizontal bar per row: {key, label, value (0–max),
// text, cls, attrs}. Rows are drawn in the given order.
function barChart(container, opts) {
  container.replaceChildren();
  const rowH = 34, W = chartWidth(container), T = 6;
  const L = Math.min(240, Math.round(W * 0.36)), R = Math.min(220, Math.round(W * 0.3));
  const H = Math.max(1, opts.rows.length) * rowH + T * 2;
  const svg = svgEl('svg', {
    viewBox: `0 0 ${W} ${H}`, class: 'chart bars', role: 'img',
    'data-chart': opts.name, 'aria-label': opts.label,
  }, container);
  if (!opts.rows.length) {
    svgText(svg, W / 2, H / 2 + 4, opts.empty || 'no data', { 'text-anchor': 'middle', class: 'empty' });
    return svg;
  }
  const pw = W - L - R;
  for (const [i, r] of opts.rows.entries()) {
    const y0 = T + i * rowH;
    const g = svgEl('g', Object.assign({ class: 'bar ' + (r.cls || ''), 'data-key': r.key }, r.attrs), svg);
    svgText(g, L - 8, y0 + rowH / 2 + 4, r.label, { 'text-anchor': 'end', class: 'label' });
    svgEl('rect', { x: L, y: y0 + 7, width: pw, height: rowH - 14, rx: 3, class: 'track' }, g);
    const w = Math.max(0, Math.min(1, r.value / opts.max)) * pw;
    svgEl('rect', { x: L, y: y0 + 7, width: w.toFixed(1), height: rowH - 14, rx: 3, class: 'fill' }, g);
    svgText(g, L + pw + 8, y0 + rowH / 2 + 4, r.text, { class: 'value' });
    if (r.title) svgEl('title', {}, g).textContent = r.title;
  }
  return svg;
}

window.omnibridgeCharts = { lineChart, barChart };
