// The REST API, as the dashboard uses it: the token from sessionStorage in an
// Authorization header (never in a URL), JSON in and out, and the API's own
// error (code, message, field) thrown as an ApiError.

const TOKEN_KEY = 'c2d.token';

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY) || '',
  signIn: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  signOut: () => {
    sessionStorage.removeItem(TOKEN_KEY);
    window.dispatchEvent(new Event('c2d:signed-out'));
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `the API answered HTTP ${status}`);
    this.status = status;
    this.code = e.code || `http_${status}`;
    this.field = e.field || '';
  }
}

function headers(extra) {
  return { Authorization: `Bearer ${session.token()}`, ...extra };
}

async function errorOf(res) {
  let body = null;
  try {
    body = JSON.parse(await res.text());
  } catch {
    // not JSON: the status says enough
  }
  if (res.status === 401) session.signOut();
  return new ApiError(res.status, body);
}

// api('GET', '/v1/projects') -> the parsed body; throws ApiError on 4xx/5xx.
export async function api(method, path, body) {
  const init = { method, headers: headers(), cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await errorOf(res);
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

// One Server-Sent Events frame: {id, event, data (parsed JSON)}.
function parseFrame(frame) {
  const ev = { id: '', event: 'message', data: '' };
  for (const line of frame.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const field = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^ /, '');
    if (field === 'data') ev.data += value;
    else if (field === 'id' || field === 'event') ev[field] = value;
  }
  try {
    ev.data = JSON.parse(ev.data);
  } catch {
    // left as text
  }
  return ev;
}

// Follows an SSE endpoint over fetch (EventSource cannot send the token):
// onEvent(ev) per event; after a dropped connection it reconnects with
// Last-Event-ID, so nothing is shown twice or lost. onState('open' |
// 'reconnecting' | 'ended' | 'error', error?). Returns a function that stops.
export function follow(path, onEvent, onState = () => {}) {
  let lastId = '';
  let stopped = false;
  let controller = null;
  const read = async () => {
    const h = headers({ Accept: 'text/event-stream' });
    if (lastId) h['Last-Event-ID'] = lastId;
    controller = new AbortController();
    const res = await fetch(path, { headers: h, signal: controller.signal, cache: 'no-store' });
    if (!res.ok) throw await errorOf(res);
    onState('open');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const ev = parseFrame(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (ev.id) lastId = ev.id;
        onEvent(ev);
        if (ev.event === 'end') return true;
      }
    }
  };
  (async () => {
    let delay = 500;
    while (!stopped) {
      try {
        if (await read()) {
          onState('ended');
          return;
        }
        delay = 500;
      } catch (e) {
        if (stopped) return;
        if (e instanceof ApiError && e.status < 500 && e.status !== 429) {
          onState('error', e);
          return;
        }
      }
      if (stopped) return;
      onState('reconnecting');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 8000);
    }
  })();
  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}
