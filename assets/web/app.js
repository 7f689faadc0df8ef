// The dashboard's shell: the session (a token from the login link), the navbar, the
// hash routes (#/, #/jobs, #/jobs/ID, #/submit, #/nodes, #/accounts), and the refresh
// of the page shown every 10 seconds, without reloading it.

import { SessionEnded, clusterName, expired, learnClusterName, logOut, takeTokenFromUrl, token, userName } from './api.js';
import { accountsPage } from './accounts.js';
import { jobPage } from './job.js';
import { jobsPage } from './jobs.js';
import { nodesPage } from './nodes.js';
import { overviewPage } from './overview.js';
import { submitPage } from './submit.js';
import { alert, fill, h } from './ui.js';

const REFRESH_MS = 10_000;

const ROUTES = [
  [/^\/?(overview\/?)?$/, overviewPage, 'overview'],
  [/^\/jobs\/?$/, jobsPage, 'jobs'],
  [/^\/jobs\/(\d+)$/, jobPage, 'jobs'],
  [/^\/submit\/?$/, submitPage, 'submit'],
  [/^\/nodes\/?$/, nodesPage, 'nodes'],
  [/^\/accounts\/?$/, accountsPage, 'accounts'],
];

const NAV = [
  ['overview', '#/', 'Overview'],
  ['jobs', '#/jobs', 'Jobs'],
  ['submit', '#/submit', 'Submit'],
  ['nodes', '#/nodes', 'Nodes'],
  ['accounts', '#/accounts', 'Accounts'],
];

const app = document.getElementById('app');
let current = null; // { page, root }
let timer = null;
let ended = false;

/** The page for a hash, with what its pattern caught. */
function route() {
  const path = location.hash.replace(/^#/, '') || '/';
  for (const [pattern, page, tab] of ROUTES) {
    const m = path.match(pattern);
    if (m) return { page, tab, params: m.slice(1) };
  }
  return { page: null, tab: null, params: [] };
}

function navbar(tab) {
  const links = NAV.map(([key, href, label]) => h('li', { class: 'nav-item' }, h('a', { class: `nav-link${key === tab ? ' active' : ''}`, href, 'aria-current': key === tab ? 'page' : null, id: `nav-${key}` }, label)));
  return h(
    'nav',
    { class: 'navbar navbar-expand-md navbar-dark bg-dark mb-4' },
    h(
      'div',
      { class: 'container-fluid' },
      h('a', { class: 'navbar-brand', href: '#/' }, h('span', { class: 'brand-mark' }, 'slurmbox'), h('span', { class: 'ms-2 cluster-name', id: 'cluster-name' }, clusterName ?? '')),
      h('button', { class: 'navbar-toggler', type: 'button', 'data-bs-toggle': 'collapse', 'data-bs-target': '#nav-links', 'aria-controls': 'nav-links', 'aria-expanded': 'false', 'aria-label': 'Menu' }, h('span', { class: 'navbar-toggler-icon' })),
      h(
        'div',
        { class: 'collapse navbar-collapse', id: 'nav-links' },
        h('ul', { class: 'navbar-nav me-auto' }, links),
        h(
          'div',
          { class: 'd-flex align-items-center gap-3' },
          h('span', { class: 'navbar-text small', id: 'updated' }),
          h('span', { class: 'navbar-text' }, 'Logged in as ', h('strong', { id: 'user-name', class: 'text-white' }, userName() ?? '?')),
          h('button', { class: 'btn btn-outline-light btn-sm', type: 'button', id: 'log-out', onclick: () => endSession(false) }, 'Log out'),
        ),
      ),
    ),
  );
}

/** The page for people without a session: how to get one. */
function loginHelp(why) {
  stop();
  document.title = 'slurmbox: log in';
  fill(
    app,
    h(
      'div',
      { class: 'container login-help' },
      h(
        'div',
        { class: 'card shadow-sm mx-auto', id: 'login-help' },
        h(
          'div',
          { class: 'card-body p-4' },
          h('h1', { class: 'h4 mb-3' }, 'slurmbox dashboard'),
          why ? alert('warning', why) : null,
          h('p', null, 'To log in, run ', h('code', null, 'web-login'), ' on the cluster\u2019s login node (ssh to it as you do to submit jobs) and open the link it prints.'),
          h('pre', { class: 'bg-light border rounded p-2 mb-3' }, h('code', null, `$ ssh -p PORT you@server\n$ web-login\n${location.origin}/login#token=…`)),
          h('p', { class: 'text-muted small mb-0' }, 'The link logs you in as yourself until its token expires (8 hours; "web-login 2h" for less). The admin gets one for anybody with ', h('code', null, 'slurmbox web-login USER'), '.'),
        ),
      ),
    ),
  );
}

function endSession(byServer) {
  ended = true;
  logOut();
  current?.page.unmount?.();
  current = null;
  loginHelp(byServer ? 'Your session ended (its token expired or is no longer valid). Log in again:' : 'You logged out. To log in again:');
}

function stop() {
  clearInterval(timer);
  timer = null;
}

/** Refreshes the page shown; a 401 anywhere ends the session. */
async function refresh(options = {}) {
  if (!current) return;
  const shown = current;
  try {
    await Promise.all([shown.page.refresh(options), learnClusterName()]);
    if (shown !== current) return;
    fill(shown.error, '');
    const name = document.getElementById('cluster-name');
    if (name && clusterName) name.textContent = clusterName;
    document.title = `${shown.page.title} · ${clusterName ?? 'slurmbox'}`;
    const updated = document.getElementById('updated');
    if (updated) updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e instanceof SessionEnded) return endSession(true);
    if (shown === current) fill(shown.error, alert('danger', `Could not load this page: ${e.message}`));
    console.error(e);
  }
}

function show() {
  if (ended) return;
  if (!token() || expired()) {
    const had = token() !== null;
    logOut();
    return loginHelp(had ? 'Your session ended (its token expired). Log in again:' : null);
  }
  const { page, tab, params } = route();
  current?.page.unmount?.();
  const root = h('div', { id: `page-${tab ?? 'missing'}` });
  const error = h('div', { id: 'page-error' });
  fill(app, navbar(tab), h('div', { class: 'container-fluid px-md-4 pb-5' }, error, root));
  if (!page) {
    current = null;
    fill(root, alert('warning', 'No such page. ', h('a', { href: '#/' }, 'Back to the overview')));
    return;
  }
  current = { page, root, error };
  page.mount(root, { params });
  refresh();
  stop();
  timer = setInterval(() => {
    if (document.visibilityState === 'visible') refresh();
  }, REFRESH_MS);
}

// An action's answer may be a 401 too (the token expired meanwhile).
window.addEventListener('unhandledrejection', (event) => {
  if (event.reason instanceof SessionEnded) {
    event.preventDefault();
    endSession(true);
  }
});

takeTokenFromUrl();
window.addEventListener('hashchange', show);
show();
