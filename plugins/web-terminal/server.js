'use strict';
// Terminal — a shell per WebSocket, for Portico (README.md describes the protocol).
//
// Contract (docs/plugin-contract.md §2): listen on 127.0.0.1 port 0, print one line
// `{"ready":true,"port":N}` on stdout. WebSocket at /ws (clients reach it as
// /plugin-ws/web-terminal); GET /health (via /api/plugins/web-terminal/rpc/health).
const { accessSync, constants, statSync } = require('node:fs');
const http = require('node:http');
const { isAbsolute } = require('node:path');

const { WebSocketServer } = require('ws');

const { verifyIdentity } = require('./portico-identity');

/** Roles that may open a shell: a shell is the host's user account. */
const SHELL_ROLES = ['admin', 'terminal'];
const { parseSizeParam } = require('./lib/protocol');
const { TerminalSession } = require('./lib/terminal-session');

const DEFAULT_COLS = 80;
const DEFAULT_ROWS = 24;
/** Largest message from a client: Portico's default relay limit (contract §1, maxMessageBytes). */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** How long a stopping server lets shells answer SIGHUP before the final SIGKILL. */
const SHUTDOWN_GRACE_MS = 500;

function log(event, fields = {}) {
  console.log(JSON.stringify({ event, ...fields }));
}

function logError(where, err) {
  console.error(JSON.stringify({ event: 'error', where, reason: err.message }));
}

function isUsableDirectory(path) {
  if (typeof path !== 'string' || !isAbsolute(path) || path.includes('\0')) return false;
  try {
    if (!statSync(path).isDirectory()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function isExecutableFile(path) {
  if (typeof path !== 'string' || !isAbsolute(path)) return false;
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `$SHELL` when Portico passed one, else bash, else sh. */
const SHELL = [process.env.SHELL, '/bin/bash', '/bin/sh'].find(isExecutableFile) ?? '/bin/sh';

/** The requested folder when it exists, else HOME, else this plugin's folder. */
function workingDirectory(requested) {
  return [requested, process.env.HOME].find(isUsableDirectory) ?? __dirname;
}

/** @type {Set<TerminalSession>} sessions not yet fully ended (their leftovers not yet killed) */
const sessions = new Set();
let stopping = false;

const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
wss.on('error', (err) => logError('wss', err));

wss.on('connection', (ws, req, { user, query }) => {
  // One client's bad frame (invalid UTF-8, oversized) ends its own socket, never the process.
  ws.on('error', (err) => logError('ws', err));
  const session = new TerminalSession(ws, {
    shell: SHELL,
    cwd: workingDirectory(query.get('cwd') ?? undefined),
    cols: parseSizeParam(query.get('cols') ?? undefined) ?? DEFAULT_COLS,
    rows: parseSizeParam(query.get('rows') ?? undefined) ?? DEFAULT_ROWS,
    user: user.id,
    log,
    onEnded: (ended) => sessions.delete(ended),
  });
  sessions.add(session);
  session.start();
});

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/** Counts for operators and tests: how many shells run and how many wait for a slow client. */
function health() {
  const live = [...sessions].filter((s) => !s.ended);
  return {
    ok: true,
    pid: process.pid,
    sessions: live.length,
    pausedSessions: live.filter((s) => s.paused).length,
    bufferedBytes: live.reduce((sum, s) => sum + s.bufferedAmount, 0),
    queuedInputBytes: live.reduce((sum, s) => sum + s.queuedInputBytes, 0),
  };
}

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://plugin').pathname;
  if (req.method === 'GET' && path === '/health') json(res, 200, health());
  else json(res, 404, { error: 'not found' });
});
server.on('error', (err) => logError('server', err));

function refuse(socket, status, text) {
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

server.on('upgrade', (req, socket, head) => {
  socket.on('error', (err) => logError('upgrade', err));
  const url = new URL(req.url, 'http://plugin');
  if (url.pathname !== '/ws') return refuse(socket, 404, 'Not Found');
  if (stopping) return refuse(socket, 503, 'Service Unavailable');
  // A shell is this host's user account: only connections Portico authenticated and signed for
  // this plugin get one, never another local process that found the loopback port.
  const user = verifyIdentity(req.headers);
  if (user === null) return refuse(socket, 401, 'Unauthorized');
  // Not every signed-in user gets a shell: only the roles below (on top of the plugin's access
  // roles in Portico). Accepted, then closed with 4403, so the page can say why.
  if (!user.roles.some((role) => SHELL_ROLES.includes(role))) {
    wss.handleUpgrade(req, socket, head, (ws) =>
      ws.close(4403, `a shell needs the role ${SHELL_ROLES.join(' or ')}`),
    );
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) =>
    wss.emit('connection', ws, req, { user, query: url.searchParams }),
  );
});

server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ ready: true, port: server.address().port }));
  log('listening', { shell: SHELL });
});

// Portico stops a plugin with SIGTERM (SIGKILL 5 s later): close every session with 1001, hang
// up on the shells, kill what is left, exit 0.
function stop() {
  if (stopping) return;
  stopping = true;
  const ending = [...sessions];
  for (const session of ending) session.shutdown();
  server.close();
  setTimeout(() => {
    for (const session of ending) session.killRemaining();
    process.exit(0);
  }, SHUTDOWN_GRACE_MS);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
