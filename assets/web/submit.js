// Submitting a batch script (#/submit): slurmrestd's POST job/submit, run as the token's
// user in their home folder. Slurm checks everything; its message shows when it refuses.

import { ApiError, SLURM, SessionEnded, get, request, slurmErrors, userName } from './api.js';
import { alert, fill, h } from './ui.js';

const EXAMPLE = '#!/bin/bash\n# Runs in your home folder; output goes to slurm-JOBID.out there.\nhostname\nid -u\n';

/** The form's fields survive a visit to another page (not a reload). */
const kept = { name: '', partition: '', time: '', cpus: '1', memory: '', script: EXAMPLE };

export const submitPage = {
  title: 'Submit',

  mount(root) {
    const field = (id, label, control, help) => h('div', { class: 'mb-3' }, h('label', { class: 'form-label', for: id }, label), control, help ? h('div', { class: 'form-text' }, help) : null);
    const keep = (key) => (event) => {
      kept[key] = event.target.value;
    };
    this.partition = h('select', { class: 'form-select', id: 'job-partition', onchange: keep('partition') }, h('option', { value: '' }, 'the default partition'));
    this.result = h('div', { id: 'submit-result', 'aria-live': 'polite' });
    this.button = h('button', { class: 'btn btn-primary', type: 'submit', id: 'submit-job' }, 'Submit');
    const form = h(
      'form',
      { id: 'submit-form', novalidate: true, onsubmit: (e) => this.submit(e) },
      h(
        'div',
        { class: 'row' },
        h('div', { class: 'col-md-6' }, field('job-name', 'Job name', h('input', { class: 'form-control', id: 'job-name', maxlength: 200, placeholder: 'my-analysis', value: kept.name, oninput: keep('name') }))),
        h('div', { class: 'col-md-6' }, field('job-partition', 'Partition', this.partition)),
        h('div', { class: 'col-md-4' }, field('job-time', 'Time limit (minutes)', h('input', { class: 'form-control', id: 'job-time', type: 'number', min: 1, placeholder: "the partition's default", value: kept.time, oninput: keep('time') }))),
        h('div', { class: 'col-md-4' }, field('job-cpus', 'CPUs', h('input', { class: 'form-control', id: 'job-cpus', type: 'number', min: 1, value: kept.cpus, oninput: keep('cpus') }))),
        h('div', { class: 'col-md-4' }, field('job-memory', 'Memory (MB)', h('input', { class: 'form-control', id: 'job-memory', type: 'number', min: 1, placeholder: "the cluster's default", value: kept.memory, oninput: keep('memory') }))),
      ),
      field(
        'job-script',
        'Batch script',
        h('textarea', { class: 'form-control font-monospace', id: 'job-script', rows: 12, spellcheck: 'false', value: kept.script, oninput: keep('script') }),
        'Like a file for sbatch: #SBATCH lines are read too. It runs in your home folder, as you.',
      ),
      h('div', { class: 'd-flex gap-2 align-items-center' }, this.button, h('a', { class: 'btn btn-link', href: '#/jobs' }, 'Back to the jobs')),
    );
    const tips = h(
      'div',
      { class: 'card shadow-sm' },
      h('div', { class: 'card-header fw-semibold' }, 'Good to know'),
      h(
        'ul',
        { class: 'list-group list-group-flush small' },
        h('li', { class: 'list-group-item' }, 'The job runs as you, in ', h('code', null, `/home/${userName()}`), ', like ', h('code', null, 'sbatch script.sh'), ' there.'),
        h('li', { class: 'list-group-item' }, 'Its output goes to ', h('code', null, 'slurm-JOBID.out'), ' in that folder unless the script says otherwise (', h('code', null, '#SBATCH -o'), ').'),
        h('li', { class: 'list-group-item' }, 'Fields left empty take Slurm\u2019s defaults; ', h('code', null, '#SBATCH'), ' lines in the script ask for more (GPUs, nodes, an account).'),
        h('li', { class: 'list-group-item' }, 'The job gets a plain environment (PATH, HOME, USER): load or set what else it needs in the script.'),
      ),
    );
    fill(root, h('h1', { class: 'h3 mb-3' }, 'Submit a batch job'), this.result, h('div', { class: 'row g-4' }, h('div', { class: 'col-xl-8' }, h('div', { class: 'card shadow-sm' }, h('div', { class: 'card-body' }, form))), h('div', { class: 'col-xl-4' }, tips)));
  },

  /** Only the partitions' list changes on its own. */
  async refresh() {
    const answer = await get(`${SLURM}/partitions`);
    const names = (answer.partitions ?? []).map((p) => p.name).filter(Boolean);
    const key = names.join(',');
    if (this.partition.dataset.names === key) return;
    this.partition.dataset.names = key;
    this.partition.replaceChildren(h('option', { value: '' }, 'the default partition'), ...names.map((n) => h('option', { value: n }, n)));
    this.partition.value = kept.partition;
  },

  async submit(event) {
    event.preventDefault();
    // What the form holds now (a field set without an input event too).
    for (const [key, id] of [['name', 'job-name'], ['partition', 'job-partition'], ['time', 'job-time'], ['cpus', 'job-cpus'], ['memory', 'job-memory'], ['script', 'job-script']]) {
      kept[key] = document.getElementById(id).value;
    }
    const me = userName();
    const job = {
      script: kept.script,
      current_working_directory: `/home/${me}`,
      // slurmrestd starts the job with exactly this environment (sbatch would pass the
      // caller's): enough for a shell script to find its tools.
      environment: ['PATH=/usr/local/bin:/usr/bin:/bin', `HOME=/home/${me}`, `USER=${me}`, 'LANG=C.UTF-8'],
    };
    if (kept.name.trim()) job.name = kept.name.trim();
    if (kept.partition) job.partition = kept.partition;
    if (kept.time) job.time_limit = { set: true, infinite: false, number: Number(kept.time) };
    if (kept.cpus) job.cpus_per_task = Number(kept.cpus);
    if (kept.memory) job.memory_per_node = { set: true, infinite: false, number: Number(kept.memory) };
    this.button.disabled = true;
    fill(this.result, h('p', { class: 'text-muted' }, 'Submitting…'));
    try {
      const answer = await request(`${SLURM}/job/submit`, { method: 'POST', body: { job } });
      const refused = slurmErrors(answer);
      const id = answer.job_id;
      if (refused.length || !id) {
        fill(this.result, alert('danger', h('strong', null, 'Slurm refused the job: '), h('span', { class: 'slurm-error' }, refused.join('; ') || 'no job ID in its answer')));
      } else {
        const warnings = (answer.warnings ?? []).map((w) => w.description).filter(Boolean);
        fill(
          this.result,
          alert('success', 'Submitted job ', h('a', { href: `#/jobs/${id}`, id: 'new-job', class: 'alert-link' }, String(id)), '.', warnings.length ? h('div', { class: 'small mt-1' }, `Slurm notes: ${warnings.join('; ')}`) : null),
        );
      }
    } catch (e) {
      if (e instanceof SessionEnded) throw e;
      fill(this.result, alert('danger', h('strong', null, 'Slurm refused the job: '), h('span', { class: 'slurm-error' }, e instanceof ApiError ? e.message : String(e))));
    } finally {
      this.button.disabled = false;
    }
  },
};
