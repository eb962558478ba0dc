// Calls to the REST API with the session cookie; state changes carry the CSRF token.

const CSRF = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function detailOf(status, data) {
  if (data && typeof data === 'object') {
    const d = data.detail;
    if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).slice(1).join('.') || 'value'}: ${e.msg}`).join('; ');
    if (d) return String(d);
  }
  return typeof data === 'string' && data ? data.slice(0, 300) : `HTTP ${status}`;
}

/** `path` under /api/v1 (or an absolute path), with `query` and a JSON `body`. */
export async function api(path, { method = 'GET', query, body } = {}) {
  const url = new URL(path.startsWith('/dashboard/') ? path : `/api/v1${path}`, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = CSRF;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    location.assign(`/dashboard/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, 'logged out');
  }
  const isJson = (res.headers.get('content-type') || '').includes('json');
  const data = isJson ? await res.json() : await res.text();
  if (!res.ok) throw new ApiError(res.status, detailOf(res.status, data));
  return data;
}

/** Whether the API serves `path` (a route other engineers add may be missing on this server). */
export function missing(err) {
  return err instanceof ApiError && (err.status === 404 || err.status === 405) && /Not Found|Method Not Allowed/.test(err.message);
}

/** Run `fn` now and every `ms` while the page is visible, until it returns false. */
export function every(ms, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    timer = null;
    if (stopped) return;
    if (document.visibilityState === 'visible') {
      let again = true;
      try { again = (await fn()) !== false; } catch (e) { console.error(e); }
      if (!again) { stopped = true; return; }
    }
    timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; if (timer) clearTimeout(timer); };
}
