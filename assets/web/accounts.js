// The accounts page: fair share as sshare shows it (slurmctld's GET shares), what runs
// now per account and user (the queue), and the associations with their limits
// (slurmdbd's GET associations).

import { SLURM, SLURMDB, SessionEnded, get, userName } from './api.js';
import { card, fill, h, meter, num, table, tres } from './ui.js';

/** An association's limits that are set, as "MaxJobs=4" phrases. */
function limits(a) {
  const out = [];
  const add = (label, value) => {
    const n = num(value);
    if (n !== null && n !== Infinity) out.push(`${label}=${n}`);
  };
  const list = (label, items) => {
    if (items?.length) out.push(`${label}=${items.map((t) => `${t.type === 'gres' ? `gres/${t.name}` : t.type}=${t.count}`).join(',')}`);
  };
  add('MaxJobs', a.max?.jobs?.per?.count);
  add('MaxSubmitJobs', a.max?.jobs?.per?.submitted);
  add('GrpJobs', a.max?.jobs?.active);
  add('GrpSubmitJobs', a.max?.jobs?.total);
  add('MaxWall', a.max?.jobs?.per?.wall_clock);
  add('GrpWall', a.max?.per?.account?.wall_clock);
  list('GrpTRES', a.max?.tres?.total);
  list('GrpTRESMins', a.max?.tres?.group?.minutes);
  list('MaxTRES', a.max?.tres?.per?.job);
  list('MaxTRESPerNode', a.max?.tres?.per?.node);
  list('MaxTRESMins', a.max?.tres?.minutes?.per?.job);
  return out;
}

const fixed = (value, digits = 3) => {
  const n = num(value);
  return n === null ? '–' : n === Infinity ? '∞' : Number(n).toFixed(digits);
};

export const accountsPage = {
  title: 'Accounts',

  mount(root) {
    this.shares = h('div', { id: 'shares' });
    this.current = h('div', { id: 'current-use' });
    this.assocs = h('div', { id: 'associations' });
    fill(
      root,
      h('h1', { class: 'h3 mb-3' }, 'Accounts and fair share'),
      h(
        'div',
        { class: 'card shadow-sm mb-4' },
        h('div', { class: 'card-header fw-semibold' }, 'Fair share ', h('span', { class: 'text-muted fw-normal small' }, '(sshare: a factor near 1 means the account or user used little of its share lately, and its jobs go first)')),
        h('div', { class: 'card-body p-0' }, this.shares),
      ),
      h('div', { class: 'row' }, h('div', { class: 'col-xl-5' }, card('Running now', this.current)), h('div', { class: 'col-xl-7' }, card('Associations and limits', this.assocs))),
    );
  },

  async refresh({ fresh } = {}) {
    const [shares, jobs, assocs] = await Promise.allSettled([get(`${SLURM}/shares`, undefined, fresh), get(`${SLURM}/jobs`, undefined, fresh), get(`${SLURMDB}/associations`, undefined, fresh)]);
    for (const r of [shares, jobs, assocs]) if (r.status === 'rejected' && r.reason instanceof SessionEnded) throw r.reason;
    const me = userName();

    if (shares.status === 'fulfilled') {
      // 24.11 nests the list ({shares: {shares: [...], total_shares}}).
      const raw = shares.value.shares;
      const list = Array.isArray(raw) ? raw : (raw?.shares ?? []);
      const depth = new Map([['', -1]]);
      const rows = [];
      for (const s of list) {
        const isUser = (s.type ?? []).includes('USER');
        const d = (depth.get(s.parent) ?? 0) + 1;
        if (!isUser) depth.set(s.name, d);
        if (!s.parent && !isUser) continue; // the root of the tree: Slurm's own total
        // sshare gives the factor for users only: an account's is not one jobs get.
        const factor = isUser ? num(s.fairshare?.factor) : null;
        const label = h('span', { class: `share-name depth-${Math.min(d, 6)}` }, isUser ? h('span', { class: s.name === me ? 'fw-semibold' : '' }, s.name) : h('span', { class: 'fw-semibold' }, s.name), isUser ? h('span', { class: 'text-muted small' }, ' user') : h('span', { class: 'text-muted small' }, ' account'));
        rows.push(
          h(
            'tr',
            { class: isUser ? 'share-user' : 'share-account', dataset: { name: s.name } },
            h('td', null, label),
            h('td', null, s.parent),
            h('td', { class: 'text-end' }, num(s.shares) ?? '–'),
            h('td', { class: 'text-end' }, fixed(s.shares_normalized)),
            h('td', { class: 'text-end' }, Number(s.usage ?? 0).toLocaleString()),
            h('td', { class: 'text-end' }, fixed(s.effective_usage)),
            h('td', { class: 'meter-cell' }, factor === null ? '–' : meter(factor, 1, factor.toFixed(3), { plain: true })),
          ),
        );
      }
      fill(this.shares, table(['Account / user', 'Parent', 'Shares', 'Share of its level', 'Raw usage (CPU-s)', 'Effective usage', 'Fair-share factor'], rows, { classes: 'mb-0 shares-table', empty: 'No fair-share data: the cluster may not use priority/multifactor.' }));
    } else {
      fill(this.shares, h('p', { class: 'text-muted m-3' }, `Slurm did not give the shares: ${shares.reason.message}`));
    }

    if (jobs.status === 'fulfilled') {
      const per = new Map();
      for (const j of jobs.value.jobs ?? []) {
        const key = `${j.account}\u0000${j.user_name}`;
        if (!per.has(key)) per.set(key, { account: j.account, user: j.user_name, running: 0, pending: 0, cpus: 0, mem: 0 });
        const row = per.get(key);
        const state = j.job_state?.[0];
        if (state === 'RUNNING') {
          row.running += 1;
          const t = tres(j.tres_alloc_str);
          row.cpus += t.cpu;
          row.mem += t.mem;
        } else if (state === 'PENDING') row.pending += 1;
      }
      const rows = [...per.values()].filter((r) => r.running || r.pending).sort((a, b) => a.account.localeCompare(b.account) || a.user.localeCompare(b.user)).map((r) => [r.account, r.user, r.running, r.pending, r.cpus]);
      fill(this.current, table(['Account', 'User', 'Running', 'Pending', 'CPUs'], rows, { classes: 'mb-0', empty: 'No job is running or waiting.' }));
    }

    if (assocs.status === 'fulfilled') {
      const rows = (assocs.value.associations ?? [])
        .filter((a) => a.user || a.account !== 'root')
        .map((a) => [a.account, a.user || h('span', { class: 'text-muted' }, '(account)'), a.parent_account || '–', a.shares_raw ?? '–', (a.qos ?? []).join(', '), a.default?.qos || '–', h('span', { class: 'small font-monospace' }, limits(a).join(' ') || 'none')]);
      fill(this.assocs, table(['Account', 'User', 'Parent', 'Shares', 'QOS', 'Default QOS', 'Limits'], rows, { classes: 'mb-0' }));
    } else {
      fill(this.assocs, h('p', { class: 'text-muted' }, `Accounting did not answer: ${assocs.reason.message}`));
    }
  },
};
