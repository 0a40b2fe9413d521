'use strict';
// Echo — the example Portico plugin server.
//
// Contract: listen on 127.0.0.1 (port 0 = any free port), then print exactly one line
// `{"ready":true,"port":N}` on stdout. WebSocket lives at /ws (and below); any other HTTP
// route is available to the frontend through /api/plugins/echo/rpc/<path>.
const http = require('node:http');
const { WebSocketServer } = require('ws');

const { verifyIdentity } = require('./portico-identity');

const wss = new WebSocketServer({
  noServer: true,
  maxPayload: 64 * 1024 * 1024,
  // Answer with the first subprotocol the client offered, ignoring Portico's own marker.
  handleProtocols: (protocols) => [...protocols].find((p) => p !== 'portico') ?? false,
});

// A plugin serves many users over one process: one client's bad input must end that client's
// connection, never the process. `ws` reports a protocol error (invalid UTF-8, a bad close code,
// an oversized message) as an 'error' event on that socket, and an 'error' event nobody listens
// to is thrown — so every socket, the server and the HTTP server get a listener.
function logError(where, err) {
  console.error(JSON.stringify({ event: 'error', where, reason: err.message }));
}
wss.on('error', (err) => logError('wss', err));

wss.on('connection', (ws, req) => {
  // Who is connected, as Portico vouches for it (null if the headers were not signed for us).
  const user = verifyIdentity(req.headers);
  console.log(JSON.stringify({ event: 'connected', user: user?.id ?? null }));
  ws.on('error', (err) => logError('ws', err)); // ws closes the connection itself (1002/1007/1009)
  ws.on('message', (data, isBinary) => {
    // `__close:<code>:<reason>` asks the plugin to close the connection itself.
    const close = !isBinary && /^__close:(\d+):(.*)$/s.exec(data.toString());
    if (close) {
      try {
        ws.close(Number(close[1]), close[2]);
      } catch {
        ws.close(1008, 'invalid close code');
      }
      return;
    }
    ws.send(data, { binary: isBinary }); // text stays text, binary stays binary
  });
});

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://plugin').pathname;
  if (req.method === 'POST' && path === '/echo') {
    res.writeHead(200, {
      'content-type': req.headers['content-type'] ?? 'application/octet-stream',
    });
    req.pipe(res); // streamed back as it arrives, never buffered
    req.on('error', (err) => logError('request', err)); // a client gone mid-body
  } else if (req.method === 'GET' && path === '/whoami') {
    // Portico replaces any client-sent x-plugin-* header with the signed identity of the user.
    const user = verifyIdentity(req.headers);
    json(res, user ? 200 : 401, user ?? { error: 'unverified identity' });
  } else if (req.method === 'GET' && path === '/health') {
    json(res, 200, { ok: true });
  } else {
    json(res, 404, { error: 'not found' });
  }
});

server.on('error', (err) => logError('server', err));

server.on('upgrade', (req, socket, head) => {
  socket.on('error', (err) => logError('upgrade', err));
  const path = new URL(req.url, 'http://plugin').pathname;
  if (path !== '/ws' && !path.startsWith('/ws/')) {
    socket.once('finish', () => socket.destroy());
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

// A large accept queue: after a rollout every client reconnects at once, and Portico dials this
// server once per client (Node's default of 511 overflows; the kernel caps it at somaxconn).
server.listen({ port: 0, host: '127.0.0.1', backlog: 65535 }, () => {
  console.log(JSON.stringify({ ready: true, port: server.address().port }));
});

// Portico stops a plugin with SIGTERM (SIGKILL 5 s later): close cleanly and exit 0.
process.on('SIGTERM', () => {
  for (const client of wss.clients) client.close(1001, 'plugin stopping');
  server.close();
  setTimeout(() => process.exit(0), 100);
});
