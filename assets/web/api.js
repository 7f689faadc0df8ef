// The session and every request for data. The token is the only credential: it comes
// in the login link's fragment (never sent to a server), lives in sessionStorage (this
// tab only), and travels in X-SLURM-USER-TOKEN to nginx, which hands it to slurmrestd.
// Slurm decides what the user sees and may do; nothing here is trusted for that.

const TOKEN_KEY = 'slurmbox.token';
export const SLURM = '/api/slurm/v0.0.42';
export const SLURMDB = '/api/slurmdb/v0.0.42';
export const PROMETHEUS = '/api/prometheus/api/v1';

/** The token left by the login link (`/login#token=JWT`), kept and taken out of the URL. */
export function takeTokenFromUrl() {
  const match = location.hash.match(/^#token=([A-Za-z0-9_\-.]+)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, match[1]);
  }
  if (match || location.pathname !== '/') {
    // Neither the token nor /login stays in the address bar or the history.
    history.replaceState(null, '', '/#/');
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function logOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The token's claims (its middle part, base64url JSON), or null when unreadable. */
export function claims() {
  const jwt = token();
  if (!jwt) return null;
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const text = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The user the token names (`sun`): slurmrestd's meta.client is its own account. */
export function userName() {
  return claims()?.sun ?? null;
}

/** Whether the token's own expiry has passed (then no request is worth sending). */
export function expired() {
  const exp = claims()?.exp;
  return typeof exp === 'number' && exp * 1000 <= Date.now();
}

/** The session is over: the token is gone, expired or refused (401). */
export class SessionEnded extends Error {}

/** A request that failed, with Slurm's own words where its answer has them. */
export class ApiError extends Error {
  constructor(message, answer) {
    super(message);
    this.answer = answer;
  }
}

/** The cluster's name, from the last answer's meta (for the navbar). */
export let clusterName = null;

/** Asks for the cluster's name once, where no answer has given it yet (the overview's
 * come from Prometheus): the licenses are Slurm's smallest answer. */
export async function learnClusterName() {
  if (!clusterName) await get(`${SLURM}/licenses`);
  return clusterName;
}

/**
 * One request for data. `fresh` skips nginx's few seconds of cached answers (right
 * after an action). Resolves to the answer's JSON; a 401 throws SessionEnded, any
 * other failure ApiError.
 */
export async function request(path, { method = 'GET', body, fresh = false, params } = {}) {
  const jwt = token();
  if (!jwt || expired()) throw new SessionEnded();
  const headers = { 'X-SLURM-USER-TOKEN': jwt, Accept: 'application/json' };
  if (fresh) headers['X-Slurmbox-Fresh'] = '1';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const url = params ? `${path}?${new URLSearchParams(params)}` : path;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(`The dashboard's server did not answer (${e.message}).`, null);
  }
  if (response.status === 401) throw new SessionEnded();
  const text = await response.text();
  let answer = null;
  try {
    answer = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (nginx's own error page): the status says it.
  }
  const name = answer?.meta?.slurm?.cluster;
  if (name) clusterName = name;
  if (!response.ok) {
    const said = slurmErrors(answer);
    const message = said.length ? said.join('; ') : `${method} ${path}: HTTP ${response.status}`;
    throw new ApiError(message, answer);
  }
  return answer ?? {};
}

export const get = (path, params, fresh) => request(path, { params, fresh });

/**
 * Slurm's own messages in an answer: its `errors` (description, error), and for a
 * cancel the per-job `status[].error` (24.11 answers 200 with "Access/permission
 * denied" there and nothing in `errors`).
 */
export function slurmErrors(answer) {
  const out = [];
  for (const e of answer?.errors ?? []) {
    const parts = [e.description, e.error].filter((p) => p && String(p).trim());
    const unique = [...new Set(parts)];
    if (unique.length) out.push(unique.join(': '));
  }
  for (const s of answer?.status ?? []) {
    const e = s.error;
    if (e && e.code) out.push(e.message || e.string || `error ${e.code}`);
  }
  return out;
}

/** Prometheus's data from its answer; where the cluster has none ([metrics] enabled =
 * false) nginx serves the page instead, which is no answer of Prometheus's. */
function promData(answer) {
  if (answer?.status !== 'success') throw new ApiError('this cluster keeps no history (no Prometheus: [metrics] enabled = false)', answer);
  return answer.data?.result ?? [];
}

/** A Prometheus instant query: its samples. */
export async function promQuery(query) {
  return promData(await get(`${PROMETHEUS}/query`, { query }));
}

/** A Prometheus range query over the last `seconds`: up to 240 points, none closer
 * than Prometheus's scrapes (15 s). */
export async function promRange(query, seconds) {
  const end = Math.floor(Date.now() / 1000);
  const step = Math.max(15, Math.round(seconds / 240));
  return promData(await get(`${PROMETHEUS}/query_range`, { query, start: end - seconds, end, step }));
}
