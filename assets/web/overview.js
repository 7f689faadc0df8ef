// The overview: the cluster now (nodes by state, CPUs, memory and GPUs allocated, jobs
// running and pending, from slurmctld) and over the last hour, day or week (Prometheus).
// The queries use families both releases have under the same names: Slurm 26.05's own
// metrics, and slurmbox-exporter's on 24.11 (README, "REST API and metrics").

import { SessionEnded, promQuery, promRange, userName } from './api.js';
import { card, fill, h, mb, meter, stat, when } from './ui.js';

const RANGES = [
  ['1h', 'Last hour', 3600],
  ['1d', 'Last day', 86400],
  ['1w', 'Last week', 7 * 86400],
];

// max() and sum() make one series of each, whatever labels (instance, cluster) a
// release adds.
const CHARTS = [
  {
    id: 'chart-jobs',
    title: 'Jobs',
    series: [
      ['Running', 'max(slurm_jobs_running)', '#198754'],
      ['Pending', 'max(slurm_jobs_pending)', '#fd7e14'],
    ],
  },
  {
    id: 'chart-cpus',
    title: 'CPUs allocated',
    series: [
      ['Allocated', 'sum(slurm_node_cpus_alloc)', '#0d6efd'],
      ['Total', 'sum(slurm_node_cpus)', '#adb5bd'],
    ],
  },
  {
    id: 'chart-memory',
    title: 'Memory allocated (GB)',
    // Both releases write MB, even where the family's name ends in _bytes.
    series: [
      ['Allocated', 'sum(slurm_node_memory_alloc_bytes) / 1024', '#6f42c1'],
      ['Total', 'sum(slurm_node_memory_bytes) / 1024', '#adb5bd'],
    ],
  },
  {
    id: 'chart-reasons',
    title: 'Pending jobs by reason',
    byLabel: 'reason',
    series: [['', 'sum by (reason) (slurmbox_jobs_pending_reason)', null]],
  },
];

// Node states as the families count them (a node may count in two: drain and idle),
// and their badges' names.
const NODE_STATES = [
  ['slurm_nodes_alloc', 'allocated'],
  ['slurm_nodes_mixed', 'mixed'],
  ['slurm_nodes_idle', 'idle'],
  ['slurm_nodes_completing', 'completing'],
  ['slurm_nodes_drain', 'drain'],
  ['slurm_nodes_down', 'down'],
  ['slurm_nodes_fail', 'fail'],
  ['slurm_nodes_noresp', 'not responding'],
  ['slurm_nodes_maint', 'maintenance'],
  ['slurm_nodes_reboot_req', 'reboot requested'],
  ['slurm_nodes_planned', 'planned'],
  ['slurm_nodes_future', 'future'],
  ['slurm_nodes_powered_down', 'powered down'],
];

// The overview's figures now, in one instant query.
const NOW_FAMILIES = [
  'slurm_nodes',
  ...NODE_STATES.map(([family]) => family),
  'slurm_node_cpus',
  'slurm_node_cpus_alloc',
  'slurm_node_memory_bytes',
  'slurm_node_memory_alloc_bytes',
  'slurm_node_gpus',
  'slurm_node_gpus_alloc',
  'slurm_jobs_running',
  'slurm_jobs_pending',
  'slurm_user_jobs_running',
  'slurm_user_jobs_pending',
  'slurm_sdiag_jobs_submitted',
  'slurm_sdiag_jobs_started',
  'slurm_sdiag_jobs_completed',
  'slurm_sdiag_jobs_canceled',
  'slurm_sdiag_jobs_failed',
  'slurm_schedule_cycle_last',
  'slurm_sched_mean_cycle',
  'slurm_bf_cycle_last',
  'slurm_backfilled_jobs',
  'slurm_server_thread_cnt',
  'slurm_last_proc_req_start',
].join('|');

/**
 * An instant query's samples as figures: per-node families summed over nodes, per-user
 * ones kept by user, the rest one value each. A series a release exposes twice (under
 * another scrape's labels) counts once.
 */
function figures(samples) {
  const seen = new Map();
  for (const { metric, value } of samples) {
    const key = `${metric.__name__}\u0000${metric.node ?? ''}\u0000${metric.username ?? ''}`;
    seen.set(key, Math.max(seen.get(key) ?? 0, Number(value[1])));
  }
  const totals = new Map();
  const byUser = new Map();
  for (const [key, v] of seen) {
    const [name, , user] = key.split('\u0000');
    if (user) byUser.set(`${name}\u0000${user}`, v);
    else totals.set(name, (totals.get(name) ?? 0) + v);
  }
  return { get: (name) => totals.get(name) ?? 0, has: (name) => totals.has(name), byUser };
}

const PALETTE = ['#fd7e14', '#0d6efd', '#dc3545', '#20c997', '#6f42c1', '#ffc107', '#0dcaf0', '#6c757d'];

let range = '1h';

function timeLabel(ms, seconds) {
  const d = new Date(ms);
  if (seconds <= 86400) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toLocaleDateString([], { weekday: 'short', day: 'numeric' });
}

/** Series by label (pending reasons) exist only while some job has that label: their
 * missing points on `grid` are zeros, not gaps. */
function zeroFill(series, grid) {
  for (const s of series) {
    const have = new Map(s.values);
    s.values = grid.map((t) => [t, have.get(t) ?? '0']);
  }
}

export const overviewPage = {
  title: 'Overview',

  mount(root) {
    this.stats = h('div', { class: 'row row-cols-2 row-cols-md-3 row-cols-xl-6 g-3 mb-4', id: 'stats' });
    this.scheduler = h('div', { id: 'scheduler' });
    this.chartNote = h('span', { class: 'text-muted small ms-2' });
    const buttons = RANGES.map(([key, label]) =>
      h('button', { type: 'button', class: `btn btn-sm ${key === range ? 'btn-primary' : 'btn-outline-primary'}`, dataset: { range: key }, onclick: () => this.setRange(key) }, label),
    );
    this.rangeButtons = buttons;
    this.charts = new Map();
    const boxes = CHARTS.map((c) => {
      const canvas = h('canvas', { id: c.id, 'aria-label': c.title, role: 'img' });
      this.charts.set(c.id, { spec: c, canvas, chart: null });
      return h('div', { class: 'col-lg-6' }, h('div', { class: 'card shadow-sm h-100' }, h('div', { class: 'card-header fw-semibold' }, c.title), h('div', { class: 'card-body' }, h('div', { class: 'chart-box' }, canvas))));
    });
    fill(
      root,
      h('div', { class: 'd-flex align-items-baseline mb-3' }, h('h1', { class: 'h3 mb-0' }, 'Overview')),
      this.stats,
      h('div', { class: 'd-flex align-items-center mb-3' }, h('h2', { class: 'h5 mb-0 me-3' }, 'History'), h('div', { class: 'btn-group', role: 'group', 'aria-label': 'time range' }, buttons), this.chartNote),
      h('div', { class: 'row g-3 mb-4' }, boxes),
      this.scheduler,
    );
  },

  unmount() {
    for (const c of this.charts?.values() ?? []) c.chart?.destroy();
  },

  setRange(key) {
    range = key;
    for (const b of this.rangeButtons) b.className = `btn btn-sm ${b.dataset.range === key ? 'btn-primary' : 'btn-outline-primary'}`;
    this.refreshCharts().catch((e) => {
      if (e instanceof SessionEnded) throw e;
      fill(this.chartNote, `No history: ${e.message}`);
    });
  },

  /** Everything from Prometheus: many researchers' overviews cost slurmctld nothing. */
  async refresh() {
    try {
      const now = figures(await promQuery(`{__name__=~"${NOW_FAMILIES}"}`));
      this.renderStats(now);
      this.renderScheduler(now);
      await this.refreshCharts();
    } catch (e) {
      if (e instanceof SessionEnded) throw e;
      fill(this.chartNote, `No history: ${e.message}`);
      fill(this.stats, h('div', { class: 'col-12 text-muted' }, `No figures here (${e.message}): the Jobs and Nodes pages have them from Slurm.`));
    }
  },

  renderStats(f) {
    const me = userName();
    const mine = (family) => f.byUser.get(`${family}\u0000${me}`) ?? 0;
    const states = NODE_STATES.filter(([family]) => f.get(family) > 0);
    const nodeStates = h(
      'div',
      { class: 'd-flex flex-wrap gap-1 mt-1' },
      states.map(([family, label]) => h('span', { class: `badge node-state node-state-${family.replace('slurm_nodes_', '')}` }, `${f.get(family)} ${label}`)),
    );
    const [cpus, cpusAlloc] = [f.get('slurm_node_cpus'), f.get('slurm_node_cpus_alloc')];
    const [mem, memAlloc] = [f.get('slurm_node_memory_bytes'), f.get('slurm_node_memory_alloc_bytes')];
    const [gpus, gpusAlloc] = [f.get('slurm_node_gpus'), f.get('slurm_node_gpus_alloc')];
    const running = f.get('slurm_jobs_running');
    const pending = f.get('slurm_jobs_pending');
    fill(
      this.stats,
      stat('Nodes', String(f.get('slurm_nodes')), nodeStates),
      stat('CPUs allocated', `${cpusAlloc} / ${cpus}`, meter(cpusAlloc, cpus, `${Math.round((100 * cpusAlloc) / (cpus || 1))}%`)),
      // Both releases write MB, even where the family's name ends in _bytes.
      stat('Memory allocated', mb(memAlloc), meter(memAlloc, mem, `of ${mb(mem)}`)),
      stat('GPUs allocated', gpus ? `${gpusAlloc} / ${gpus}` : '–', gpus ? meter(gpusAlloc, gpus, `${Math.round((100 * gpusAlloc) / gpus)}%`) : h('span', { class: 'text-muted small' }, 'no GPU in the cluster')),
      stat('Jobs running', h('a', { href: '#/jobs', class: 'text-reset text-decoration-none', id: 'running-count' }, String(running)), h('span', { class: 'text-muted small' }, `${mine('slurm_user_jobs_running')} of them yours`)),
      stat('Jobs pending', h('a', { href: '#/jobs', class: 'text-reset text-decoration-none', id: 'pending-count' }, String(pending)), h('span', { class: 'text-muted small' }, `${mine('slurm_user_jobs_pending')} of them yours`)),
    );
  },

  renderScheduler(f) {
    if (!f.has('slurm_sdiag_jobs_submitted')) return fill(this.scheduler);
    const ms = (us) => `${(us / 1000).toFixed(us < 10_000 ? 2 : 0)} ms`;
    const shown = [
      ['Jobs submitted', f.get('slurm_sdiag_jobs_submitted')],
      ['started', f.get('slurm_sdiag_jobs_started')],
      ['completed', f.get('slurm_sdiag_jobs_completed')],
      ['cancelled', f.get('slurm_sdiag_jobs_canceled')],
      ['failed', f.get('slurm_sdiag_jobs_failed')],
      ['Last scheduling pass', ms(f.get('slurm_schedule_cycle_last'))],
      ['mean', ms(f.get('slurm_sched_mean_cycle'))],
      ['Last backfill pass', ms(f.get('slurm_bf_cycle_last'))],
      ['jobs backfilled', f.get('slurm_backfilled_jobs')],
      ['Server threads', f.get('slurm_server_thread_cnt')],
    ];
    const since = f.get('slurm_last_proc_req_start');
    fill(
      this.scheduler,
      card(
        h('span', null, 'Scheduler ', h('span', { class: 'text-muted fw-normal small' }, since ? `(sdiag, since ${when(since)})` : '(sdiag)')),
        h(
          'div',
          { class: 'd-flex flex-wrap gap-4 scheduler' },
          shown.map(([label, value]) => h('div', null, h('div', { class: 'small text-muted' }, label), h('div', { class: 'fw-semibold' }, String(value)))),
        ),
      ),
    );
  },

  async refreshCharts() {
    const seconds = RANGES.find(([key]) => key === range)[2];
    const specs = [...this.charts.values()];
    const results = await Promise.all(specs.map((c) => Promise.all(c.spec.series.map(([, query]) => promRange(query, seconds)))));
    // Every step Prometheus has any point at (the other charts' series run throughout).
    const grid = [...new Set(results.flat(2).flatMap((s) => s.values.map(([t]) => t)))].sort((a, b) => a - b);
    specs.forEach((c, i) => {
      if (c.spec.byLabel) zeroFill(results[i][0], grid);
      const datasets = [];
      c.spec.series.forEach(([label, , colour], k) => {
        for (const [n, series] of results[i][k].entries()) {
          const name = c.spec.byLabel ? (series.metric?.[c.spec.byLabel] ?? '?') : label;
          const col = colour ?? PALETTE[n % PALETTE.length];
          const data = series.values.map(([t, v]) => ({ x: t * 1000, y: Number(v) }));
          datasets.push({
            label: name,
            data,
            borderColor: col,
            backgroundColor: `${col}33`,
            fill: label === 'Allocated' || label === 'Running',
            borderWidth: 2,
            // A young cluster's few points would draw no line: dots show them.
            pointRadius: data.length < 30 ? 2.5 : 0,
            tension: 0,
          });
        }
      });
      this.draw(c, datasets, seconds);
    });
    fill(this.chartNote, '');
  },

  /** Makes the chart once, then only changes its data (no flicker on refresh). */
  draw(c, datasets, seconds) {
    const now = Date.now();
    // A cluster younger than the range gets its whole life across the chart (at least
    // five minutes), not a sliver at its right edge.
    const first = Math.min(...datasets.flatMap((d) => (d.data.length ? [d.data[0].x] : [])), now);
    const xScale = {
      type: 'linear',
      min: Math.max(now - seconds * 1000, Math.min(first, now - 300_000)),
      max: now,
      ticks: { maxTicksLimit: 7, callback: (v) => timeLabel(v, seconds) },
      grid: { display: false },
    };
    if (c.chart) {
      c.chart.data.datasets = datasets;
      c.chart.options.scales.x = xScale;
      c.chart.update('none');
      return;
    }
    // Chart.js sizes its canvas through CSSOM, which the Content-Security-Policy allows.
    c.chart = new window.Chart(c.canvas, {
      type: 'line',
      data: { datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'index', intersect: false },
        scales: { x: xScale, y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: {
          legend: { position: 'bottom', labels: { boxWidth: 12 } },
          tooltip: { callbacks: { title: (items) => (items.length ? new Date(items[0].parsed.x).toLocaleString() : '') } },
        },
      },
    });
  },
};
