// The jobs page: the queue as Slurm shows it to this user (slurmctld's GET jobs), with
// filters, and the jobs that finished in the last week (slurmdbd's GET jobs) with how
// well they used what they asked for.

import { SLURM, SLURMDB, get, userName } from './api.js';
import { explainReason } from './reasons.js';
import { duration, fill, h, hostnames, mb, meter, minutes, num, select, stateBadges, table, tres, when } from './ui.js';

/** The filters, kept while the tab lives (across pages and refreshes). */
const filters = { mine: false, user: '', account: '', state: '', partition: '' };

/** Base states of jobs that ended. */
const FINISHED = new Set(['COMPLETED', 'CANCELLED', 'FAILED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE', 'OUT_OF_MEMORY']);

/** A queued job's base state (its first) and flags (the rest). */
export function jobState(job) {
  return job.job_state ?? [];
}

/** Seconds a queued job has run (or, pending, waited). */
function timeOf(job, now) {
  const state = jobState(job)[0];
  if (state === 'PENDING') return now - (num(job.submit_time) ?? now);
  const start = num(job.start_time);
  if (!start) return null;
  const end = state === 'RUNNING' || state === 'SUSPENDED' ? now : (num(job.end_time) ?? now);
  return Math.max(0, end - start);
}

/** How well a finished job (slurmdbd's form) used what it was given. */
export function efficiency(job) {
  const elapsed = job.time?.elapsed ?? 0;
  const alloc = tres(job.tres?.allocated);
  const asked = tres(job.tres?.requested);
  const cpus = alloc.cpu || asked.cpu || job.required?.CPUs || 0;
  let cpuUsed = 0;
  let maxRss = null;
  for (const step of job.steps ?? []) {
    const t = step.time?.total;
    if (t) cpuUsed += (t.seconds ?? 0) + (t.microseconds ?? 0) / 1e6;
    // Each step's largest task's peak RSS, in bytes (what sacct calls MaxRSS).
    for (const m of step.tres?.requested?.max ?? []) {
      if (m.type === 'mem') maxRss = Math.max(maxRss ?? 0, m.count);
    }
  }
  if (!job.steps?.length && job.time?.total) cpuUsed = job.time.total.seconds + job.time.total.microseconds / 1e6;
  return {
    elapsed,
    cpus,
    cpuUsed,
    cpuAsked: cpus * elapsed,
    memUsed: maxRss === null ? null : maxRss / (1024 * 1024),
    memAsked: alloc.mem || asked.mem || null,
  };
}

/** The two efficiency figures as meters (for the table and the details). */
export function efficiencyCells(e) {
  const cpu = e.cpuAsked
    ? meter(e.cpuUsed, e.cpuAsked, `${Math.round((100 * e.cpuUsed) / e.cpuAsked)}% · ${duration(e.cpuUsed)} of ${e.cpus}×${duration(e.elapsed)}`, { plain: true })
    : h('span', { class: 'text-muted' }, 'ran no time');
  const mem =
    e.memUsed === null
      ? h('span', { class: 'text-muted', title: 'Slurm recorded no memory figure for its steps' }, `not measured (asked ${mb(e.memAsked)})`)
      : meter(e.memUsed, e.memAsked, `${Math.round((100 * e.memUsed) / (e.memAsked || 1))}% · ${mb(e.memUsed)} of ${mb(e.memAsked)}`, { plain: true });
  return [cpu, mem];
}

/** The link to a job's details. */
function jobLink(id) {
  return h('a', { href: `#/jobs/${id}`, class: 'job-link' }, String(id));
}

/** Whether `job` passes the filters (`user`, `account`, `partition` fields given). */
function passes(job, { user, account, partition, states }) {
  const me = userName();
  if (filters.mine && user !== me) return false;
  if (filters.user && user !== filters.user) return false;
  if (filters.account && account !== filters.account) return false;
  if (filters.partition && !(partition ?? '').split(',').includes(filters.partition)) return false;
  if (filters.state && !states.includes(filters.state)) return false;
  return true;
}

/** Sets a select's options, only where they changed (an open list stays open). */
function setOptions(el, options, current) {
  // A filter whose value is no longer offered (its last job left) still filters.
  if (!options.some(([value]) => value === current)) options.push([current, current]);
  const key = JSON.stringify(options);
  if (el.dataset.options !== key) {
    el.dataset.options = key;
    el.replaceChildren(...options.map(([value, label]) => h('option', { value }, label)));
  }
  el.value = current;
}

const sorted = (values) => [...new Set(values.filter(Boolean))].sort();

export const jobsPage = {
  title: 'Jobs',

  mount(root) {
    // The controls are made once, so that a refresh does not close an open list.
    const onChange = (key) => (event) => {
      filters[key] = event.target.type === 'checkbox' ? event.target.checked : event.target.value;
      this.render();
    };
    this.controls = {};
    for (const key of ['user', 'account', 'state', 'partition']) {
      this.controls[key] = select({ id: `filter-${key}`, onchange: onChange(key) }, [], '');
    }
    const labelled = (label, control) => h('div', { class: 'col-6 col-md-2' }, h('label', { class: 'form-label small text-muted mb-1', for: control.id }, label), control);
    this.filterBar = h(
      'div',
      { class: 'row g-2 align-items-end mb-3 filters' },
      h(
        'div',
        { class: 'col-12 col-md-auto me-md-3' },
        h('div', { class: 'form-check form-switch mb-1' }, h('input', { class: 'form-check-input', type: 'checkbox', role: 'switch', id: 'mine', checked: filters.mine, onchange: onChange('mine') }), h('label', { class: 'form-check-label', for: 'mine' }, 'My jobs only')),
      ),
      labelled('User', this.controls.user),
      labelled('Account', this.controls.account),
      labelled('State', this.controls.state),
      labelled('Partition', this.controls.partition),
    );
    this.queue = h('div');
    this.finished = h('div');
    this.counts = h('span', { class: 'text-muted ms-2 small' });
    fill(
      root,
      h('div', { class: 'd-flex align-items-baseline mb-3' }, h('h1', { class: 'h3 mb-0' }, 'Jobs'), this.counts, h('a', { class: 'btn btn-primary btn-sm ms-auto', href: '#/submit' }, 'Submit a job')),
      this.filterBar,
      h('div', { class: 'card shadow-sm mb-4' }, h('div', { class: 'card-header fw-semibold' }, 'In the queue'), h('div', { class: 'card-body p-0', id: 'queue' }, this.queue)),
      h('div', { class: 'card shadow-sm mb-4' }, h('div', { class: 'card-header fw-semibold' }, 'Finished in the last 7 days ', h('span', { class: 'text-muted fw-normal small' }, '(accounting: CPU and memory used of what was asked)')), h('div', { class: 'card-body p-0', id: 'finished' }, this.finished)),
    );
    this.queued = null;
    this.done = null;
  },

  async refresh({ fresh } = {}) {
    const [queued, done] = await Promise.allSettled([get(`${SLURM}/jobs`, undefined, fresh), get(`${SLURMDB}/jobs`, { start_time: 'now-7days' }, fresh)]);
    if (queued.status === 'rejected') throw queued.reason;
    this.queued = queued.value.jobs ?? [];
    this.done = done.status === 'fulfilled' ? (done.value.jobs ?? []).filter((j) => !['PENDING', 'RUNNING', 'SUSPENDED', 'REQUEUED'].includes(j.state?.current?.[0])) : null;
    this.doneError = done.status === 'rejected' ? done.reason.message : null;
    this.render();
  },

  render() {
    if (!this.queued) return;
    const queued = this.queued;
    const done = this.done ?? [];
    const users = sorted([...queued.map((j) => j.user_name), ...done.map((j) => j.user)]);
    const accounts = sorted([...queued.map((j) => j.account), ...done.map((j) => j.account)]);
    const partitions = sorted([...queued.flatMap((j) => (j.partition ?? '').split(',')), ...done.map((j) => j.partition)]);
    const states = sorted([...queued.filter((j) => !FINISHED.has(jobState(j)[0])).flatMap(jobState), ...done.flatMap((j) => j.state?.current ?? [])]);
    setOptions(this.controls.user, [['', 'everyone'], ...users.map((u) => [u, u])], filters.user);
    setOptions(this.controls.account, [['', 'all'], ...accounts.map((a) => [a, a])], filters.account);
    setOptions(this.controls.state, [['', 'all'], ...states.map((x) => [x, x])], filters.state);
    setOptions(this.controls.partition, [['', 'all'], ...partitions.map((p) => [p, p])], filters.partition);

    const now = Date.now() / 1000;
    // As squeue shows them: jobs that ended (slurmctld keeps them a few minutes) are
    // in the finished list instead.
    // Accounting may already know a job ended that the queue (asked a few seconds
    // earlier, or cached) still shows running: it is shown once, as finished.
    const ended = new Set(done.map((j) => j.job_id));
    const shown = queued
      .filter((j) => !FINISHED.has(jobState(j)[0]) && !ended.has(j.job_id))
      .filter((j) => passes(j, { user: j.user_name, account: j.account, partition: j.partition, states: jobState(j) }))
      .sort((a, b) => a.job_id - b.job_id);
    const running = queued.filter((j) => jobState(j)[0] === 'RUNNING').length;
    const pending = queued.filter((j) => jobState(j)[0] === 'PENDING').length;
    fill(this.counts, `${running} running, ${pending} pending`);
    const rows = shown.map((job) => {
      const state = jobState(job);
      const pendingNow = state[0] === 'PENDING';
      const where = pendingNow
        ? h('div', { class: 'reason' }, h('span', { class: 'badge text-bg-warning-subtle text-warning-emphasis border me-1 reason-code' }, job.state_reason), h('span', { class: 'small reason-text' }, explainReason(job.state_reason)))
        : h('span', { class: 'font-monospace small' }, job.nodes || '–');
      return h(
        'tr',
        { class: `job-row${job.user_name === userName() ? ' mine' : ''}`, dataset: { job: job.job_id } },
        h('td', null, jobLink(job.job_id)),
        h('td', { class: 'job-name text-break' }, job.name),
        h('td', null, job.user_name),
        h('td', null, job.account),
        h('td', null, job.partition),
        h('td', null, stateBadges(state)),
        h('td', { class: 'text-nowrap' }, duration(timeOf(job, now)), h('span', { class: 'text-muted small' }, ` / ${minutes(job.time_limit)}`)),
        h('td', { class: 'text-end' }, num(job.cpus) ?? '–'),
        h('td', null, where),
      );
    });
    fill(this.queue, table(['ID', 'Name', 'User', 'Account', 'Partition', 'State', 'Time / limit', 'CPUs', 'Nodes, or why it waits'], rows, { empty: 'No job in the queue matches.', classes: 'mb-0 jobs-table' }));

    if (this.doneError) {
      fill(this.finished, h('p', { class: 'text-muted m-3' }, `Accounting did not answer: ${this.doneError}`));
      return;
    }
    const finished = done
      .filter((j) => passes(j, { user: j.user, account: j.account, partition: j.partition, states: j.state?.current ?? [] }))
      .sort((a, b) => (b.time?.end ?? 0) - (a.time?.end ?? 0))
      .slice(0, 100);
    const finishedRows = finished.map((job) => {
      const [cpu, mem] = efficiencyCells(efficiency(job));
      return h(
        'tr',
        { class: 'finished-row', dataset: { job: job.job_id } },
        h('td', null, jobLink(job.job_id)),
        h('td', { class: 'job-name text-break' }, job.name),
        h('td', null, job.user),
        h('td', null, stateBadges(job.state?.current ?? [])),
        h('td', { class: 'text-nowrap' }, when(job.time?.end)),
        h('td', { class: 'text-nowrap' }, duration(job.time?.elapsed)),
        h('td', { class: 'eff-cpu' }, cpu),
        h('td', { class: 'eff-mem' }, mem),
      );
    });
    fill(this.finished, table(['ID', 'Name', 'User', 'State', 'Ended', 'Ran', 'CPU used of asked', 'Memory used of asked'], finishedRows, { empty: 'No finished job matches.', classes: 'mb-0 finished-table' }));
  },
};

/** Node name → the queue's jobs running on it (for the nodes page). */
export function jobsByNode(jobs) {
  const out = new Map();
  for (const job of jobs) {
    if (!['RUNNING', 'SUSPENDED', 'COMPLETING'].includes(jobState(job)[0]) && !jobState(job).includes('COMPLETING')) continue;
    for (const node of hostnames(job.nodes)) {
      if (!out.has(node)) out.set(node, []);
      out.get(node).push(job);
    }
  }
  return out;
}
