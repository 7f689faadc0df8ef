// The nodes page: each node's state and reason, where it runs, what its jobs hold of it,
// and the jobs on it; then the partitions.

import { SLURM, get } from './api.js';
import { jobsByNode } from './jobs.js';
import { card, fill, gpusIn, h, mb, meter, minutes, num, stateBadges, table, tres, when } from './ui.js';

export const nodesPage = {
  title: 'Nodes',

  mount(root) {
    this.nodes = h('div', { id: 'nodes' });
    this.partitions = h('div', { id: 'partitions' });
    fill(root, h('h1', { class: 'h3 mb-3' }, 'Nodes'), h('div', { class: 'card shadow-sm mb-4' }, h('div', { class: 'card-body p-0' }, this.nodes)), card('Partitions', this.partitions));
  },

  async refresh({ fresh } = {}) {
    const [nodes, jobs, partitions] = await Promise.all([get(`${SLURM}/nodes`, undefined, fresh), get(`${SLURM}/jobs`, undefined, fresh), get(`${SLURM}/partitions`, undefined, fresh)]);
    const on = jobsByNode(jobs.jobs ?? []);
    const list = nodes.nodes ?? [];
    const anyGpu = list.some((n) => gpusIn(n.gres) > 0);
    const rows = list.map((n) => {
      const gpus = gpusIn(n.gres);
      const used = tres(n.tres_used);
      const reason = n.reason
        ? h('div', null, h('span', { class: 'node-reason' }, n.reason), h('div', { class: 'small text-muted' }, [n.reason_set_by_user, when(n.reason_changed_at)].filter((x) => x && x !== '–').join(', ')))
        : h('span', { class: 'text-muted' }, '–');
      const host = [n.hostname, n.address].filter(Boolean);
      const jobsHere = (on.get(n.name) ?? []).map((j) => h('a', { href: `#/jobs/${j.job_id}`, class: 'badge text-bg-light border me-1 text-decoration-none', title: j.name }, `${j.job_id} ${j.user_name}`));
      return h(
        'tr',
        { class: 'node-row', dataset: { node: n.name } },
        h('td', { class: 'fw-semibold' }, n.name),
        h('td', null, stateBadges(n.state)),
        h('td', null, reason),
        h('td', { class: 'small' }, [...new Set(host)].join(' · ')),
        h('td', { class: 'meter-cell' }, meter(n.alloc_cpus, n.cpus, `${n.alloc_cpus ?? 0} / ${n.cpus} CPUs`)),
        h('td', { class: 'meter-cell' }, meter(n.alloc_memory, n.real_memory, `${mb(n.alloc_memory)} / ${mb(n.real_memory)}`)),
        anyGpu ? h('td', { class: 'meter-cell' }, gpus ? meter(used.gpu, gpus, `${used.gpu} / ${gpus} GPUs`) : h('span', { class: 'text-muted' }, 'none')) : null,
        h('td', { class: 'text-end' }, n.cpu_load !== undefined ? (n.cpu_load / 100).toFixed(2) : '–'),
        h('td', null, jobsHere.length ? jobsHere : h('span', { class: 'text-muted' }, 'none')),
      );
    });
    const headers = ['Node', 'State', 'Reason', 'Host (name · address)', 'CPUs allocated', 'Memory allocated', ...(anyGpu ? ['GPUs allocated'] : []), 'Load', 'Jobs'];
    fill(this.nodes, table(headers, rows, { empty: 'Slurm lists no node.', classes: 'mb-0 nodes-table' }));

    const parts = (partitions.partitions ?? []).map((p) => [
      h('span', { class: 'fw-semibold' }, p.name),
      stateBadges(p.partition?.state ?? []),
      h('span', { class: 'font-monospace small' }, p.nodes?.configured ?? ''),
      p.nodes?.total ?? '–',
      p.cpus?.total ?? '–',
      minutes(p.defaults?.time),
      minutes(p.maximums?.time),
      num(p.priority?.tier) ?? '–',
    ]);
    fill(this.partitions, table(['Partition', 'State', 'Nodes', 'Node count', 'CPUs', 'Default time', 'Longest time', 'Priority tier'], parts, { classes: 'mb-0' }));
  },
};
