// The overview: the cluster now (nodes by state, CPUs, memory and GPUs allocated, jobs
// running and pending, from slurmctld) and over the last hour, day or week (Prometheus).
// The queries use families both releases have under the same names: Slurm 26.05's own
// metrics, and slurmbox-exporter's on 24.11 (README, "REST API and metrics").

import { SLURM, SessionEnded, get, promRange, userName } from './api.js';
import { card, fill, gpusIn, h, mb, meter, num, stat, tres, when } from './ui.js';

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

  async refresh({ fresh } = {}) {
    const [nodes, jobs] = await Promise.all([get(`${SLURM}/nodes`, undefined, fresh), get(`${SLURM}/jobs`, undefined, fresh)]);
    this.renderStats(nodes.nodes ?? [], jobs.jobs ?? []);
    // sdiag's figures; a cluster may keep them from researchers (PrivateData), and
    // then the card is left out.
    try {
      this.renderScheduler((await get(`${SLURM}/diag`, undefined, fresh)).statistics);
    } catch (e) {
      if (e instanceof SessionEnded) throw e;
      fill(this.scheduler);
    }
    try {
      await this.refreshCharts();
    } catch (e) {
      if (e instanceof SessionEnded) throw e;
      fill(this.chartNote, `No history: ${e.message}`);
    }
  },

  renderStats(nodes, jobs) {
    const byState = new Map();
    let cpus = 0;
    let cpusAlloc = 0;
    let mem = 0;
    let memAlloc = 0;
    let gpus = 0;
    let gpusAlloc = 0;
    for (const n of nodes) {
      const state = (n.state ?? []).filter((s) => s !== 'DYNAMIC_NORM').join('+') || 'UNKNOWN';
      byState.set(state, (byState.get(state) ?? 0) + 1);
      cpus += n.cpus ?? 0;
      cpusAlloc += n.alloc_cpus ?? 0;
      mem += n.real_memory ?? 0;
      memAlloc += n.alloc_memory ?? 0;
      gpus += gpusIn(n.gres);
      gpusAlloc += tres(n.tres_used).gpu;
    }
    const state = (j) => j.job_state?.[0];
    const running = jobs.filter((j) => state(j) === 'RUNNING');
    const pending = jobs.filter((j) => state(j) === 'PENDING');
    const me = userName();
    const mine = (list) => list.filter((j) => j.user_name === me).length;
    const nodeStates = h(
      'div',
      { class: 'd-flex flex-wrap gap-1 mt-1' },
      [...byState.entries()].sort().map(([s, n]) => h('span', { class: `badge node-state node-state-${s.split('+')[0].toLowerCase()}` }, `${n} ${s.toLowerCase()}`)),
    );
    fill(
      this.stats,
      stat('Nodes', String(nodes.length), nodeStates),
      stat('CPUs allocated', `${cpusAlloc} / ${cpus}`, meter(cpusAlloc, cpus, `${Math.round((100 * cpusAlloc) / (cpus || 1))}%`)),
      stat('Memory allocated', `${mb(memAlloc)}`, meter(memAlloc, mem, `of ${mb(mem)}`)),
      stat('GPUs allocated', gpus ? `${gpusAlloc} / ${gpus}` : '–', gpus ? meter(gpusAlloc, gpus, `${Math.round((100 * gpusAlloc) / gpus)}%`) : h('span', { class: 'text-muted small' }, 'no GPU in the cluster')),
      stat('Jobs running', h('a', { href: '#/jobs', class: 'text-reset text-decoration-none', id: 'running-count' }, String(running.length)), h('span', { class: 'text-muted small' }, `${mine(running)} of them yours`)),
      stat('Jobs pending', h('a', { href: '#/jobs', class: 'text-reset text-decoration-none', id: 'pending-count' }, String(pending.length)), h('span', { class: 'text-muted small' }, `${mine(pending)} of them yours`)),
    );
  },

  renderScheduler(st) {
    if (!st) return fill(this.scheduler);
    const ms = (us) => (us === undefined ? '–' : `${(us / 1000).toFixed(us < 10_000 ? 2 : 0)} ms`);
    const figures = [
      ['Jobs submitted', st.jobs_submitted],
      ['started', st.jobs_started],
      ['completed', st.jobs_completed],
      ['cancelled', st.jobs_canceled],
      ['failed', st.jobs_failed],
      ['Last scheduling pass', ms(st.schedule_cycle_last)],
      ['mean', ms(st.schedule_cycle_mean)],
      ['Last backfill pass', ms(st.bf_cycle_last)],
      ['jobs backfilled', st.bf_backfilled_jobs],
      ['Server threads', st.server_thread_count],
    ];
    fill(
      this.scheduler,
      card(
        h('span', null, 'Scheduler ', h('span', { class: 'text-muted fw-normal small' }, `(sdiag, since ${when(num(st.req_time_start))})`)),
        h(
          'div',
          { class: 'd-flex flex-wrap gap-4 scheduler' },
          figures.map(([label, value]) => h('div', null, h('div', { class: 'small text-muted' }, label), h('div', { class: 'fw-semibold' }, value ?? '–'))),
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
