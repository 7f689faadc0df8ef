// One job's details (#/jobs/ID): what slurmctld knows of it while it is queued or
// running, what accounting kept once it ended (its steps, its efficiency), and the
// actions: cancel, hold, release. The buttons show on every active job, because Slurm,
// not the page, decides who may act (an operator may act on anyone's): a refusal shows
// Slurm's own message.

import { ApiError, SLURM, SLURMDB, SessionEnded, get, request, slurmErrors, userName } from './api.js';
import { efficiency, efficiencyCells, jobState } from './jobs.js';
import { explainReason } from './reasons.js';
import { alert, card, duration, fill, h, mb, minutes, num, stateBadges, table, tres, when } from './ui.js';

/** A definition list of [label, value] pairs (values are text or elements). */
function facts(pairs) {
  return h(
    'dl',
    { class: 'row mb-0 facts' },
    pairs.filter(([, v]) => v !== null && v !== undefined && v !== '').flatMap(([k, v]) => [h('dt', { class: 'col-sm-4 col-lg-3 text-muted fw-normal' }, k), h('dd', { class: 'col-sm-8 col-lg-9 text-break' }, v)]),
  );
}

const exitCode = (e) => {
  if (!e) return null;
  const code = num(e.return_code);
  const signal = e.signal?.name || num(e.signal?.id);
  return `${(e.status ?? []).join(', ')}${code !== null ? ` (code ${code}${signal ? `, signal ${signal}` : ''})` : ''}`;
};

export const jobPage = {
  title: 'Job',

  mount(root, { params }) {
    this.id = params[0];
    this.confirming = null;
    this.message = h('div', { id: 'action-message' });
    this.body = h('div', null, h('p', { class: 'text-muted' }, 'Loading…'));
    fill(root, h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' }, h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/jobs' }, 'Jobs')), h('li', { class: 'breadcrumb-item active' }, `Job ${this.id}`))), this.message, this.body);
  },

  async refresh({ fresh } = {}) {
    const [live, acct] = await Promise.allSettled([get(`${SLURM}/job/${this.id}`, undefined, fresh), get(`${SLURMDB}/job/${this.id}`, undefined, fresh)]);
    for (const r of [live, acct]) if (r.status === 'rejected' && r.reason instanceof SessionEnded) throw r.reason;
    const queued = live.status === 'fulfilled' ? live.value.jobs?.[0] : null;
    const accounted = acct.status === 'fulfilled' ? acct.value.jobs?.[0] : null;
    if (!queued && !accounted) {
      const why = [live, acct].map((r) => (r.status === 'rejected' ? r.reason.message : slurmErrors(r.value).join('; '))).filter(Boolean);
      fill(this.body, alert('warning', `Slurm knows no job ${this.id} that you may see.`, why.length ? ` (${why[0]})` : ''));
      return;
    }
    this.render(queued, accounted);
  },

  render(job, acct) {
    const state = job ? jobState(job) : (acct.state?.current ?? []);
    const base = state[0];
    const active = ['PENDING', 'RUNNING', 'SUSPENDED', 'REQUEUED'].includes(base);
    const held = job ? job.hold || /^JobHeld/.test(job.state_reason) || num(job.priority) === 0 : false;
    const name = job?.name ?? acct?.name;
    const user = job?.user_name ?? acct?.user;

    const buttons = h('div', { class: 'btn-toolbar gap-2 ms-auto actions' });
    if (active) {
      buttons.append(this.confirmButton('cancel', 'Cancel job', 'btn-outline-danger', () => this.act('cancel', () => request(`${SLURM}/job/${this.id}`, { method: 'DELETE' }), `Job ${this.id} was cancelled.`)));
      if (base === 'PENDING' && !held) {
        buttons.append(h('button', { class: 'btn btn-outline-secondary btn-sm', id: 'hold', type: 'button', onclick: () => this.act('hold', () => request(`${SLURM}/job/${this.id}`, { method: 'POST', body: { hold: true } }), `Job ${this.id} is held: it will not start until released.`) }, 'Hold'));
      }
      if (base === 'PENDING' && held) {
        buttons.append(h('button', { class: 'btn btn-outline-success btn-sm', id: 'release', type: 'button', onclick: () => this.act('release', () => request(`${SLURM}/job/${this.id}`, { method: 'POST', body: { hold: false } }), `Job ${this.id} is released: it may start again.`) }, 'Release'));
      }
    }

    const header = h(
      'div',
      { class: 'd-flex flex-wrap align-items-center gap-2 mb-3' },
      h('h1', { class: 'h3 mb-0 me-2' }, `Job ${this.id}`),
      h('span', { class: 'fs-5 text-break job-title' }, name),
      h('span', { class: 'ms-1' }, stateBadges(state)),
      user && user !== userName() ? h('span', { class: 'badge text-bg-light border' }, `${user}'s job`) : null,
      buttons,
    );

    const parts = [header];
    if (job && base === 'PENDING') {
      parts.push(alert('warning', h('strong', null, `Waiting: ${job.state_reason}. `), explainReason(job.state_reason)));
    }

    const now = Date.now() / 1000;
    const start = num(job?.start_time) ?? acct?.time?.start;
    const alloc = job ? tres(job.tres_alloc_str) : tres(acct?.tres?.allocated);
    const asked = job ? tres(job.tres_req_str) : tres(acct?.tres?.requested);
    const elapsed = job ? (base === 'RUNNING' ? now - start : base === 'PENDING' ? null : (num(job.end_time) ?? now) - start) : acct?.time?.elapsed;
    const memory = alloc.mem || asked.mem;
    const left = [
      ['User', user],
      ['Account', job?.account ?? acct?.account],
      ['Partition', job?.partition ?? acct?.partition],
      ['QOS', job?.qos ?? acct?.qos],
      ['Submitted', when(job?.submit_time ?? acct?.time?.submission)],
      // A pending job's start time is when Slurm expects to start it (backfill's guess).
      base === 'PENDING' ? ['Expected to start', start ? when(start) : 'not known yet'] : ['Started', start ? when(start) : 'not yet'],
      ['Ended', base && !active ? when(job?.end_time ?? acct?.time?.end) : null],
      ['Ran for', elapsed !== null && elapsed !== undefined ? duration(elapsed) : null],
      ['Time limit', job ? minutes(job.time_limit) : minutes(acct?.time?.limit)],
    ];
    const right = [
      ['CPUs', alloc.cpu || asked.cpu || num(job?.cpus) || null],
      ['Memory', memory ? mb(memory) : null],
      ['GPUs', alloc.gpu || asked.gpu || null],
      ['Nodes', (job?.nodes || acct?.nodes) ?? null],
      ['Priority', job ? num(job.priority) : null],
      ['Exit code', !active ? exitCode(job?.exit_code ?? acct?.exit_code) : null],
      ['Working directory', job?.current_working_directory ?? acct?.working_directory],
      ['Output', job?.standard_output ?? acct?.stdout_expanded],
      ['Errors', (job?.standard_error ?? acct?.stderr_expanded) || null],
      ['Submitted with', (job?.command || acct?.submit_line) ?? null],
    ];
    parts.push(h('div', { class: 'row' }, h('div', { class: 'col-lg-6' }, card('The job', facts(left))), h('div', { class: 'col-lg-6' }, card('What it holds', facts(right)))));

    if (acct && !active) {
      const e = efficiency(acct);
      const [cpu, mem] = efficiencyCells(e);
      parts.push(
        card(
          'Efficiency',
          h('p', { class: 'text-muted small' }, 'CPU time its steps used, of the CPUs it held for as long as it ran; the largest memory a step used (MaxRSS), of the memory it asked for.'),
          h('div', { class: 'row g-3 efficiency' }, h('div', { class: 'col-md-6' }, h('div', { class: 'small fw-semibold mb-1' }, 'CPU'), cpu), h('div', { class: 'col-md-6' }, h('div', { class: 'small fw-semibold mb-1' }, 'Memory'), mem)),
        ),
      );
    }
    if (acct?.steps?.length) {
      const rows = acct.steps.map((s) => {
        const t = s.time?.total;
        const rss = (s.tres?.requested?.max ?? []).find((m) => m.type === 'mem');
        return [s.step?.id, s.step?.name, stateBadges(s.state ?? []), duration(s.time?.elapsed), t ? duration(t.seconds + t.microseconds / 1e6) : '–', rss ? mb(rss.count / 1048576) : '–', s.nodes?.range ?? ''];
      });
      parts.push(card('Steps (accounting)', table(['Step', 'Name', 'State', 'Ran', 'CPU time', 'Max RSS', 'Nodes'], rows, { classes: 'mb-0' })));
    }
    fill(this.body, parts);
  },

  /** A button that asks once more, in place, before it acts; the question stays
   * through the page's refreshes until answered. */
  confirmButton(id, label, style, action) {
    const wrap = h('span', { class: 'd-inline-flex gap-2' });
    const ask = () => {
      this.confirming = id;
      fill(
        wrap,
        h('span', { class: 'align-self-center small' }, 'Cancel this job?'),
        h('button', { class: 'btn btn-danger btn-sm', id: `${id}-confirm`, type: 'button', onclick: () => ((this.confirming = null), action()) }, 'Yes, cancel it'),
        h('button', { class: 'btn btn-outline-secondary btn-sm', type: 'button', onclick: () => ((this.confirming = null), fill(wrap, first)) }, 'No'),
      );
    };
    const first = h('button', { class: `btn ${style} btn-sm`, id, type: 'button', onclick: ask }, label);
    fill(wrap, first);
    if (this.confirming === id) ask();
    return wrap;
  },

  /** Runs an action; shows Slurm's refusal (its errors) or `done`, then asks again at once. */
  async act(what, send, done) {
    fill(this.message, h('div', { class: 'text-muted small mb-2' }, 'Asking Slurm…'));
    try {
      const answer = await send();
      const refused = slurmErrors(answer);
      fill(this.message, refused.length ? alert('danger', h('strong', null, `Slurm refused to ${what} job ${this.id}: `), h('span', { class: 'slurm-error' }, refused.join('; '))) : alert('success', done));
    } catch (e) {
      if (e instanceof SessionEnded) throw e;
      fill(this.message, alert('danger', h('strong', null, `Slurm refused to ${what} job ${this.id}: `), h('span', { class: 'slurm-error' }, e instanceof ApiError ? e.message : String(e))));
    }
    await this.refresh({ fresh: true }).catch(() => {});
  },
};
