'use strict';
// Terminal — a shell per session, for Portico (README.md describes the protocol). A session
// starts with a WebSocket and survives its socket for a grace period, so a client that comes
// back (a refreshed token, a network blip) re-attaches to the same shell.
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
const {
  encodeControl,
  parseDetachParam,
  parseSessionParam,
  parseSizeParam,
} = require('./lib/protocol');
const { SessionRegistry } = require('./lib/session-registry');
const { TerminalSession } = require('./lib/terminal-session');

const DEFAULT_COLS = 80;
const DEFAULT_ROWS = 24;
/** Largest message from a client: Portico's default relay limit (contract §1, maxMessageBytes). */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** How long a stopping server lets shells answer SIGHUP before the final SIGKILL. */
const SHUTDOWN_GRACE_MS = 500;
/**
 * How long a session whose socket closed keeps its shell for a client to re-attach: long enough
 * for the console to refresh an expired token or for a network blip to pass. A connection may
 * ask for less (`detachMs`, at least MIN_DETACH_MS), never for more.
 */
const DETACH_GRACE_MS = 60_000;
const MIN_DETACH_MS = 1000;
/** Detached sessions kept per user and in all; beyond, the one detached longest ago ends. */
const MAX_DETACHED_PER_USER = 8;
const MAX_DETACHED = 64;

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
const registry = new SessionRegistry({
  maxDetachedPerUser: MAX_DETACHED_PER_USER,
  maxDetached: MAX_DETACHED,
});
let stopping = false;

const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
wss.on('error', (err) => logError('wss', err));

wss.on('connection', (ws, req, { user, query }) => {
  // One client's bad frame (invalid UTF-8, oversized) ends its own socket, never the process.
  ws.on('error', (err) => logError('ws', err));
  const param = (name) => query.get(name) ?? undefined;
  const cols = parseSizeParam(param('cols'));
  const rows = parseSizeParam(param('rows'));
  const attachment = {
    cols,
    rows,
    detachMs:
      parseDetachParam(param('detachMs'), MIN_DETACH_MS, DETACH_GRACE_MS) ?? DETACH_GRACE_MS,
  };
  if (query.has('session')) {
    // Only the user who started a session gets it back; anyone else hears "unknown".
    const claimed = registry.claim(parseSessionParam(param('session')), user.id);
    if ('session' in claimed) {
      claimed.session.attach(ws, attachment);
      return;
    }
    ws.send(encodeControl({ type: 'session-new', reason: claimed.reason }));
  }
  const session = new TerminalSession({
    shell: SHELL,
    cwd: workingDirectory(param('cwd')),
    cols: cols ?? DEFAULT_COLS,
    rows: rows ?? DEFAULT_ROWS,
    user: user.id,
    log,
    onEnd: (ending) => registry.forget(ending),
    onDetach: (detached) => registry.enforceLimits(detached),
    onEnded: (ended) => sessions.delete(ended),
  });
  sessions.add(session);
  registry.add(session);
  session.start(ws, attachment);
});

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/**
 * Counts for operators and tests: how many shells run, how many wait for a client to re-attach,
 * how many are not read (slow or absent client), and the bytes waiting in each direction.
 */
function health() {
  const live = [...sessions].filter((s) => !s.ended);
  const detached = live.filter((s) => s.detached);
  return {
    ok: true,
    pid: process.pid,
    sessions: live.length,
    detachedSessions: detached.length,
    pausedSessions: live.filter((s) => s.paused).length,
    bufferedBytes: live.reduce((sum, s) => sum + s.bufferedAmount, 0),
    heldBytes: live.reduce((sum, s) => sum + s.heldBytes, 0),
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

// A large accept queue: after a rollout every client reconnects at once, and Portico dials this
// server once per client (Node's default of 511 overflows; the kernel caps it at somaxconn).
server.listen({ port: 0, host: '127.0.0.1', backlog: 65535 }, () => {
  console.log(JSON.stringify({ ready: true, port: server.address().port }));
  log('listening', { shell: SHELL });
});

// Portico stops a plugin with SIGTERM (SIGKILL 5 s later): close every session with 1001 (the
// detached ones too: the next process knows none of their ids), hang up on the shells, kill
// what is left, exit 0.
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
