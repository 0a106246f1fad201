// The admin API client of the console: same origin only, the token from
// session storage in a header (never in a URL), the API's error shape, and
// live data through blocking queries (?index=&wait=) that pause while the
// tab is hidden.

const TOKEN_KEY = 'nexus.token';
const BLOCK_WAIT = '60s';

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY) || '',
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

// ApiError is an answer outside 2xx (status 0: the node did not answer).
export class ApiError extends Error {
  constructor(status, code, message, field, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || '';
    this.body = body;
  }
  get notAllowed() { return this.status === 403; }
  get unauthenticated() { return this.status === 401; }
}

// url builds a same-origin path with a query; undefined/empty values are left out.
export function url(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === '') continue;
    q.set(k, v === true ? '' : String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// keyPath escapes each segment of a config key but keeps its slashes.
export const keyPath = (key) => key.split('/').map(encodeURIComponent).join('/');

// request calls the API. body: an object (sent as JSON) or a string (sent
// as is: a config value the user typed). text: read the answer as text.
// It resolves to {data, index, next, headers, status} or throws ApiError.
export async function request(method, path, {query, body, signal, text} = {}) {
  const headers = {};
  const token = session.token();
  if (token) headers['X-Nexus-Token'] = token;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(url(path, query), {method, headers, body: payload, signal, credentials: 'omit', cache: 'no-store'});
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', `the node did not answer (${e.message})`);
  }
  const raw = await res.text();
  if (!res.ok) {
    let err = {};
    try { err = JSON.parse(raw).error || {}; } catch { /* not JSON */ }
    const e = new ApiError(res.status, err.code || `http_${res.status}`, err.message || raw || res.statusText, err.field, raw);
    if (res.status === 401) window.dispatchEvent(new CustomEvent('nexus:unauthenticated', {detail: e}));
    throw e;
  }
  let data = raw;
  if (!text) {
    try { data = raw ? JSON.parse(raw) : null; } catch { throw new ApiError(res.status, 'bad_answer', 'the answer is not JSON'); }
  }
  return {
    data,
    status: res.status,
    headers: res.headers,
    index: Number(res.headers.get('X-Nexus-Index') || 0),
    next: res.headers.get('X-Nexus-Next') || '',
  };
}

export const get = (path, opts) => request('GET', path, opts);

// getAll reads every page of a list (limit/after, X-Nexus-Next). The
// first page carries the blocking parameters; the answer's index is the
// first page's.
export async function getAll(path, {query, signal, limit = 1000} = {}) {
  const first = await get(path, {query: {...query, limit}, signal});
  let items = first.data || [];
  let next = first.next;
  while (next) {
    const q = {...query, limit, after: next};
    delete q.index;
    delete q.wait;
    const page = await get(path, {query: q, signal});
    items = items.concat(page.data || []);
    next = page.next;
  }
  return {...first, data: items};
}

// ---- hidden tabs --------------------------------------------------------

// untilVisible resolves when the tab is visible (at once if it is).
function untilVisible() {
  if (!document.hidden) return Promise.resolve();
  return new Promise((resolve) => {
    const on = () => {
      if (!document.hidden) { document.removeEventListener('visibilitychange', on); resolve(); }
    };
    document.addEventListener('visibilitychange', on);
  });
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, {once: true});
});

// live keeps data fresh until stop() is called.
//
// fetcher(extraQuery, signal) does the request; in blocking mode (no
// interval) extraQuery carries index and wait, so the API answers as soon
// as the data changes (its X-Nexus-Index moves past ours). With an interval
// it polls, for endpoints that do not block (/status, /metrics).
// onData(result) gets every answer; onError(err) every failure (then it
// retries with backoff). While the tab is hidden no request is in flight:
// the one running is aborted, and the loop restarts with a fresh read
// when the tab shows again.
export function live(fetcher, {onData, onError, interval} = {}) {
  const stopper = new AbortController();
  let inflight = null;
  // The index of the last answer; -1 before the first (then the read
  // does not block). 0 is a real index: a table nothing has written yet
  // (no session, no maintenance), and index=0 blocks until its first write.
  let index = -1;
  const onVis = () => { if (document.hidden && inflight) inflight.abort(); };
  document.addEventListener('visibilitychange', onVis);
  (async () => {
    let failures = 0;
    while (!stopper.signal.aborted) {
      if (document.hidden) {
        await untilVisible();
        index = -1;
        if (stopper.signal.aborted) return;
      }
      inflight = new AbortController();
      const abortInflight = () => inflight.abort();
      stopper.signal.addEventListener('abort', abortInflight, {once: true});
      let gap = interval || 0;
      try {
        const q = !interval && index >= 0 ? {index, wait: BLOCK_WAIT} : {};
        const res = await fetcher(q, inflight.signal);
        const t0 = performance.now();
        // An index that goes backwards (a restore, another node) restarts
        // the watch with a read that does not block.
        index = res.index >= index ? res.index : -1;
        failures = 0;
        if (!stopper.signal.aborted) onData(res);
        // Leave the browser room after a large answer (10,000 instances):
        // the next read waits at least twice the time this one took to handle.
        if (!interval) gap = Math.min(1000, Math.max(50, 2 * (performance.now() - t0)));
      } catch (e) {
        if (e.name === 'AbortError') continue;
        failures++;
        index = -1;
        if (!stopper.signal.aborted && onError) onError(e);
        gap = Math.max(gap, Math.min(10000, 500 * 2 ** Math.min(failures - 1, 5)));
      } finally {
        stopper.signal.removeEventListener('abort', abortInflight);
        inflight = null;
      }
      await sleep(gap, stopper.signal);
    }
  })();
  return () => {
    stopper.abort();
    document.removeEventListener('visibilitychange', onVis);
  };
}

// liveGet watches one path (a list read whole through its pages when all
// is set).
export function liveGet(path, {query, all, ...handlers}) {
  return live((q, signal) => (all ? getAll(path, {query: {...query, ...q}, signal}) : get(path, {query: {...query, ...q}, signal})), handlers);
}
