// Building blocks of the pages: elements made with createElement and textContent only
// (the Content-Security-Policy allows no inline script or style, and job names, reasons
// and messages are other people's text), and how Slurm's values read.

/**
 * An element: h('td', {class: 'x', onclick: f}, 'text', child). Strings become text
 * nodes, never markup; null/false children are skipped.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'value' || key === 'checked' || key === 'selected') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces what `el` holds. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A Slurm number: plain, or {set, infinite, number} (null when unset). */
export function num(value) {
  if (value === null || value === undefined) return null;
  if (typeof value === 'object') {
    if (value.infinite) return Infinity;
    return value.set ? value.number : null;
  }
  return value;
}

/** A TRES list ([{type, name, count}]) or string ("cpu=2,mem=1G") as {cpu, mem (MB), gpu}. */
export function tres(list) {
  const out = { cpu: 0, mem: 0, gpu: 0, node: 0 };
  if (typeof list === 'string') {
    for (const item of list.split(',')) {
      const [key, value] = item.split('=');
      if (!value) continue;
      const m = value.match(/^([\d.]+)([KMGTP]?)$/);
      if (!m) continue;
      const n = parseFloat(m[1]) * (key === 'mem' ? { K: 1 / 1024, '': 1, M: 1, G: 1024, T: 1024 ** 2, P: 1024 ** 3 }[m[2]] : 1);
      if (key === 'cpu') out.cpu = n;
      else if (key === 'mem') out.mem = n;
      else if (key === 'node') out.node = n;
      // "gres/gpu" is the total; typed ones ("gres/gpu:a100") count the same GPUs again.
      else if (key === 'gres/gpu') out.gpu = n;
    }
    return out;
  }
  for (const t of list ?? []) {
    if (t.type === 'cpu') out.cpu = t.count;
    else if (t.type === 'mem') out.mem = t.count;
    else if (t.type === 'node') out.node = t.count;
    else if (t.type === 'gres' && t.name === 'gpu') out.gpu = t.count;
  }
  return out;
}

/** GPUs in a node's GRES string ("gpu:a100:2(S:0-1),gpu:1"). */
export function gpusIn(gres) {
  let n = 0;
  for (const m of (gres ?? '').matchAll(/gpu(?::[^:,(]+)?:(\d+)/g)) n += Number(m[1]);
  return n;
}

/** Slurm's compressed host list ("node[1-3,05],pi2") as names. */
export function hostnames(list) {
  const names = [];
  for (const m of (list ?? '').matchAll(/([^,[]+)(?:\[([^\]]+)\])?([^,]*)/g)) {
    const [, prefix, ranges, suffix] = m;
    if (!ranges) {
      names.push(prefix + suffix);
      continue;
    }
    for (const part of ranges.split(',')) {
      const [lo, hi] = part.split('-');
      for (let i = Number(lo); i <= Number(hi ?? lo); i++) {
        names.push(prefix + String(i).padStart(lo.length, '0') + suffix);
      }
    }
  }
  return names;
}

/** Megabytes as people read them. */
export function mb(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  if (value >= 1024 * 1024) return `${(value / 1024 / 1024).toFixed(1)} TB`;
  if (value >= 1024) return `${(value / 1024).toFixed(1)} GB`;
  return `${Math.round(value)} MB`;
}

/** Seconds as "3d 4h", "2h 05m", "4m 10s", "12s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '–';
  const s = Math.round(seconds);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${String(mm).padStart(2, '0')}m`;
  if (mm) return `${mm}m ${String(ss).padStart(2, '0')}s`;
  return `${ss}s`;
}

/** A time limit in minutes (Slurm's unit), or "none". */
export function minutes(value) {
  const n = num(value);
  if (n === Infinity) return 'none';
  if (n === null) return '–';
  return duration(n * 60);
}

/** A Unix time as local date and time ("–" when unset or zero). */
export function when(value) {
  const n = num(value);
  if (!n || !Number.isFinite(n)) return '–';
  const d = new Date(n * 1000);
  const today = new Date();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.toLocaleDateString([], { year: 'numeric', month: 'short', day: 'numeric' })} ${time}`;
}

export function percent(part, whole) {
  if (!whole || part === null || part === undefined) return null;
  return (100 * part) / whole;
}

/** A Bootstrap progress bar for part of whole, with its label beside it. */
export function meter(part, whole, label, { plain = false } = {}) {
  const pct = percent(part, whole);
  // Full is a warning for what is used up, not for a score (`plain`).
  const tone = plain ? 'bg-info' : pct > 90 ? 'bg-danger' : pct > 60 ? 'bg-warning' : 'bg-primary';
  const bar = h('div', { class: `progress-bar ${tone}` });
  // CSSOM, which the Content-Security-Policy allows (a style attribute it would not).
  bar.style.width = `${Math.min(100, pct ?? 0)}%`;
  return h(
    'div',
    { class: 'meter' },
    h('div', { class: 'progress', role: 'progressbar', 'aria-valuenow': Math.round(pct ?? 0), 'aria-valuemin': 0, 'aria-valuemax': 100 }, bar),
    h('span', { class: 'meter-label' }, label),
  );
}

const STATE_COLOURS = {
  RUNNING: 'success',
  PENDING: 'warning',
  COMPLETED: 'secondary',
  COMPLETING: 'info',
  CANCELLED: 'dark',
  FAILED: 'danger',
  TIMEOUT: 'danger',
  OUT_OF_MEMORY: 'danger',
  NODE_FAIL: 'danger',
  BOOT_FAIL: 'danger',
  PREEMPTED: 'danger',
  SUSPENDED: 'info',
  IDLE: 'success',
  MIXED: 'primary',
  ALLOCATED: 'primary',
  DOWN: 'danger',
  DRAIN: 'danger',
  DRAINED: 'danger',
  DRAINING: 'warning',
  FUTURE: 'light',
  UNKNOWN: 'secondary',
};

/** A state (or a list of them: Slurm's base state and its flags) as badges. */
export function stateBadges(states) {
  const list = Array.isArray(states) ? states : [states];
  return list
    .filter((s) => s && s !== 'DYNAMIC_NORM')
    .map((s) => h('span', { class: `badge text-bg-${STATE_COLOURS[s] ?? 'light'} me-1 state` }, s));
}

/** A table: headers, then rows (each an array of cells, or a <tr> made by the caller). */
export function table(headers, rows, { empty = 'Nothing to show.', classes = '' } = {}) {
  const body = h('tbody');
  for (const row of rows) body.append(row instanceof Node ? row : h('tr', null, row.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', null, c)))));
  if (!rows.length) body.append(h('tr', null, h('td', { colspan: headers.length, class: 'text-muted text-center py-3' }, empty)));
  return h(
    'div',
    { class: 'table-responsive' },
    h('table', { class: `table table-sm table-hover align-middle ${classes}` }, h('thead', { class: 'table-light' }, h('tr', null, headers.map((x) => h('th', { scope: 'col' }, x)))), body),
  );
}

/** A card with a title and a body. */
export function card(title, ...body) {
  return h('div', { class: 'card shadow-sm mb-4' }, title ? h('div', { class: 'card-header fw-semibold' }, title) : null, h('div', { class: 'card-body' }, body));
}

/** A figure card for the overview: a big number and what it is. */
export function stat(label, value, sub) {
  return h('div', { class: 'col' }, h('div', { class: 'card shadow-sm h-100 stat' }, h('div', { class: 'card-body' }, h('div', { class: 'stat-label text-muted' }, label), h('div', { class: 'stat-value' }, value), sub ? h('div', { class: 'stat-sub' }, sub) : null)));
}

/** An alert with a message (Slurm's words shown as text). */
export function alert(kind, ...message) {
  return h('div', { class: `alert alert-${kind}`, role: 'alert' }, message);
}

/** A select of `options` ([value, label]) keeping `current` chosen. */
export function select(props, options, current) {
  return h('select', { class: 'form-select form-select-sm', ...props }, options.map(([value, label]) => h('option', { value, selected: value === current }, label)));
}
