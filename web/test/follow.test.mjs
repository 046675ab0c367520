// The dashboard's log stream client (src/api.js follow) against a server
// that drops the connection mid-stream: it reconnects with Last-Event-ID
// and shows every event once, in order, then stops at "end"; an answer of
// 4xx stops it with the API's error. Runs in Node (fetch, streams) with the
// browser's sessionStorage and window stood in.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';

const store = new Map();
globalThis.sessionStorage = {
  getItem: (k) => (store.has(k) ? store.get(k) : null),
  setItem: (k, v) => store.set(k, String(v)),
  removeItem: (k) => store.delete(k),
};
globalThis.window = { dispatchEvent: () => true };
const { follow, session } = await import('../src/api.js');

const seen = []; // [path, authorization, last-event-id] per request
const server = createServer((req, res) => {
  seen.push([req.url, req.headers.authorization, req.headers['last-event-id'] || '']);
  if (req.url === '/denied') {
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'not_found', message: 'deployment bld_x does not exist' } }));
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/event-stream' });
  const after = Number((req.headers['last-event-id'] || 'b0').slice(1));
  const first = seen.length === 1;
  for (let n = after + 1; n <= 6; n++) {
    res.write(`id: b${n}\nevent: build\ndata: ${JSON.stringify({ seq: n, text: `line ${n}` })}\n\n`);
    // The first connection dies after its third event, mid-frame.
    if (first && n === 3) {
      res.write('id: b4\nevent: bu');
      setTimeout(() => res.socket.destroy(), 100); // once the client has read it
      return;
    }
  }
  res.end(`event: end\ndata: ${JSON.stringify({ state: 'live' })}\n\n`);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;
session.signIn('c2d_test-token');

const run = (path) =>
  new Promise((resolve) => {
    const events = [];
    const states = [];
    follow(
      base + path,
      (ev) => events.push(ev),
      (s, e) => {
        states.push(e ? `${s}: ${e.message}` : s);
        if (s === 'ended' || s === 'error') resolve({ events, states });
      },
    );
  });

const { events, states } = await run('/logs');
assert.deepEqual(
  events.map((e) => `${e.event} ${e.data.text || e.data.state}`),
  ['build line 1', 'build line 2', 'build line 3', 'build line 4', 'build line 5', 'build line 6', 'end live'],
);
assert.deepEqual(states, ['open', 'reconnecting', 'open', 'ended']);
assert.equal(seen.length, 2);
assert.deepEqual(seen[0], ['/logs', 'Bearer c2d_test-token', '']);
assert.deepEqual(seen[1], ['/logs', 'Bearer c2d_test-token', 'b3']);

const denied = await run('/denied');
assert.deepEqual(denied.states, ['error: deployment bld_x does not exist']);
assert.equal(seen.length, 3, 'a 4xx is not retried');
server.close();
console.log('follow: 1 passed, 0 failed');
