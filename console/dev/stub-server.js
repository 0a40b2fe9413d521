// A stand-in for Portico's server side, for trying the console before (or without) the real
// one: serves console/dist at / and fakes /api/me, /api/projects, /api/plugins/*, /api/events
// and /plugin-ws/echo as docs/plugin-contract.md and the console's brief describe them.
//   node console/dev/stub-server.js [port]     then sign in with "admin-token" or "user-token"
// Test controls (POST, no auth): /__stub/expire, /__stub/status {name,status,lastError},
// /__stub/close-plugin-ws {name,code,reason}, /__stub/drop-events {code,reason},
// /__stub/events {on: false|true} (refuse /api/events upgrades, as a server without it would).
'use strict';

const { createReadStream, existsSync, readFileSync, statSync } = require('node:fs');
const http = require('node:http');
const { extname, join, normalize } = require('node:path');
const { WebSocketServer } = require('ws');

const DIST = join(__dirname, '..', 'dist');
const ECHO_FRONTEND = join(__dirname, '..', '..', 'plugins', 'echo', 'frontend', 'index.js');
const USERS = {
  'admin-token': { id: 'alice', roles: ['admin'], admin: true },
  'user-token': { id: 'bob', roles: ['user'], admin: false },
};
const PROJECTS = [
  { name: 'portico', path: '/work/portico' },
  { name: 'website', path: '/srv/website' },
];
const TYPES = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
};

/** A tiny frontend that reports what it is given, so a browser script can check the contract. */
const PROBE_FRONTEND = `
const mounts = (window.__probe ??= { mounts: [], unmounts: [], contexts: [] });
export function mount(container, api) {
  const name = container.getAttribute('data-plugin-container');
  mounts.mounts.push(name);
  container.__probeName = name;
  const keys = Object.keys(api).sort().join(',');
  container.innerHTML = '<p class="probe-keys"></p><p class="probe-context"></p>' +
    '<button type="button" class="probe-rpc">Call RPC</button><pre class="probe-rpc-result"></pre>';
  container.querySelector('.probe-keys').textContent = 'api: ' + keys;
  const show = (ctx) => {
    mounts.contexts.push([name, ctx]);
    container.querySelector('.probe-context').textContent =
      'theme=' + ctx.theme + ' project=' + (ctx.project ? ctx.project.name + ':' + ctx.project.path : 'none');
  };
  show(api.context);
  container.__off = api.onContextChange(show);
  container.querySelector('.probe-rpc').onclick = async () => {
    const out = container.querySelector('.probe-rpc-result');
    try { out.textContent = JSON.stringify(await api.rpc('post', '/hello/world', { n: 1 })); }
    catch (e) { out.textContent = String(e); }
  };
}
export function unmount(container) {
  mounts.unmounts.push(container.getAttribute('data-plugin-container'));
  container.__off?.();
}
`;
const BROKEN_FRONTEND = `throw new Error('boom at import');\nexport function mount() {}\n`;

function initialPlugins() {
  const base = (name, extra) => ({
    name,
    folder: name,
    hasServer: true,
    enabled: true,
    status: 'running',
    restarts: 0,
    secrets: [],
    urls: { ws: `/plugin-ws/${name}`, rpc: `/api/plugins/${name}/rpc` },
    access: { roles: [], allowed: true },
    ...extra,
  });
  return [
    base('echo', {
      displayName: 'Echo',
      version: '1.0.0',
      description:
        'Example plugin: echoes WebSocket messages and HTTP request bodies back to the sender.',
      entry: 'frontend/index.js',
    }),
    base('notes', {
      displayName: 'Notes',
      version: '0.3.1',
      description: 'A frontend-only plugin (no server).',
      entry: 'dist/index.js',
      hasServer: false,
      status: 'stopped',
    }),
    base('broken', {
      displayName: 'Broken frontend',
      entry: 'index.js',
      description: 'Throws when imported.',
    }),
    base('github', {
      displayName: 'GitHub',
      entry: 'dist/index.js',
      status: 'failed',
      lastError: 'missing required secrets: GITHUB_TOKEN',
      secrets: [
        { key: 'GITHUB_TOKEN', required: true, set: false, source: null },
        { key: 'WEBHOOK_SECRET', required: false, set: true, source: 'file' },
      ],
      access: { roles: ['dev', 'ops'], allowed: true },
    }),
    base('worker', { displayName: 'Background worker', description: 'Server only, no frontend.' }),
    base('bad-manifest', {
      hasServer: false,
      status: 'invalid',
      enabled: true,
      invalidReason: 'manifest.json: name is required; displayName is required; entry is required',
    }),
  ];
}

function startStub({ port = 0, host = '127.0.0.1' } = {}) {
  const plugins = new Map(initialPlugins().map((p) => [p.name, p]));
  const logs = new Map([...plugins.keys()].map((n) => [n, []]));
  const validTokens = new Set(Object.keys(USERS));
  const timers = new Set();
  const eventSockets = new Set();
  const pluginSockets = new Set();
  let eventsOn = true;

  const later = (ms, fn) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const view = (p, user) => ({
    ...p,
    access: {
      roles: p.access.roles,
      allowed:
        user.admin ||
        p.access.roles.length === 0 ||
        p.access.roles.some((r) => user.roles.includes(r)),
    },
  });
  const broadcast = (message, adminsOnly = false) => {
    for (const s of eventSockets) if (!adminsOnly || s.user.admin) s.send(JSON.stringify(message));
  };
  const changed = (name) => {
    for (const s of eventSockets)
      s.send(JSON.stringify({ type: 'plugin', plugin: view(plugins.get(name), s.user) }));
  };
  const setStatus = (name, status, extra = {}) => {
    const p = plugins.get(name);
    plugins.set(name, { ...p, status, ...extra });
    changed(name);
  };
  const log = (name, stream, line) => {
    const entry = { time: Date.now(), stream, line };
    const buffer = logs.get(name);
    buffer.push(entry);
    if (buffer.length > 1000) buffer.shift();
    broadcast({ type: 'log', name, at: new Date(entry.time).toISOString(), stream, line }, true);
  };
  for (let i = 0; i < 40; i++)
    logs.get('echo').push({
      time: Date.now() - (40 - i) * 1000,
      stream: 'stdout',
      line: `echo started request ${i}`,
    });
  logs.get('github').push({
    time: Date.now(),
    stream: 'portico',
    line: 'not started: missing required secrets: GITHUB_TOKEN',
  });
  const ticker = setInterval(() => {
    for (const p of plugins.values())
      if (p.status === 'running' && p.hasServer)
        log(
          p.name,
          Math.random() < 0.2 ? 'stderr' : 'stdout',
          `${p.name}: heartbeat ${new Date().toISOString()}`,
        );
  }, 1500);

  const restartLater = (name, ms = 600) => {
    setStatus(name, 'restarting');
    log(name, 'portico', 'stopped (signal SIGTERM)');
    closePluginSockets(name, 1012, 'plugin restarting');
    later(ms, () => {
      const p = plugins.get(name);
      if (p.status !== 'restarting') return;
      setStatus(name, 'running', { restarts: p.restarts + 1, lastError: undefined });
      log(name, 'portico', 'ready');
    });
  };
  const closePluginSockets = (name, code, reason) => {
    for (const s of pluginSockets) if (s.plugin === name) s.close(code, reason);
  };

  const userOf = (req) => {
    const url = new URL(req.url, 'http://x');
    const auth = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '');
    const proto = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .find((s) => s.startsWith('base64url.bearer.authorization.portico.'));
    const cookie = /(?:^|;\s*)portico_token=([^;]*)/.exec(req.headers.cookie ?? '');
    let token = auth?.[1];
    if (token === undefined && proto !== undefined)
      token = Buffer.from(proto.split('.').pop(), 'base64url').toString();
    if (token === undefined) token = cookie?.[1] || url.searchParams.get('token') || undefined;
    if (token === undefined) return { error: 'missing credentials' };
    if (!validTokens.has(token))
      return { error: token in USERS ? 'token expired' : 'invalid token' };
    return { user: USERS[token] };
  };

  const send = (res, status, body) => {
    if (body === undefined) {
      res.writeHead(status).end();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const fail = (res, status, message) =>
    send(res, status, { statusCode: status, error: http.STATUS_CODES[status], message });
  const readBody = (req) =>
    new Promise((resolve) => {
      let data = '';
      req.on('data', (c) => (data += c));
      req.on('end', () => {
        try {
          resolve(data === '' ? undefined : JSON.parse(data));
        } catch {
          resolve(null);
        }
      });
    });

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const path = url.pathname;
    if (path.startsWith('/__stub/')) return control(req, res, path, await readBody(req));
    if (!path.startsWith('/api/')) return serveStatic(res, path);
    const who = userOf(req);
    if (who.error) return fail(res, 401, who.error);
    const user = who.user;
    if (path === '/api/me' && req.method === 'GET') return send(res, 200, user);
    if (path === '/api/projects' && req.method === 'GET') return send(res, 200, PROJECTS);
    if (path === '/api/plugins' && req.method === 'GET')
      return send(
        res,
        200,
        [...plugins.values()].map((p) => view(p, user)),
      );
    const m = /^\/api\/plugins\/([^/]+)(?:\/(.*))?$/.exec(path);
    if (!m) return fail(res, 404, `Cannot ${req.method} ${path}`);
    const name = decodeURIComponent(m[1]);
    const rest = m[2] ?? '';
    const plugin = plugins.get(name);
    if (!plugin) return fail(res, 404, `unknown plugin ${name}`);
    if (rest === '' && req.method === 'GET') return send(res, 200, view(plugin, user));
    if (rest.startsWith('assets/') && req.method === 'GET')
      return asset(res, plugin, decodeURIComponent(rest.slice(7)));
    if (rest.startsWith('rpc/') || rest === 'rpc') {
      if (!view(plugin, user).access.allowed)
        return fail(res, 403, `user lacks access to plugin ${name}`);
      if (plugin.hasServer && plugin.status !== 'running')
        return fail(res, 503, `plugin ${name} is not running`);
      return send(res, 200, {
        method: req.method,
        path: '/' + rest.slice(4),
        body: await readBody(req),
        user: user.id,
      });
    }
    if (!user.admin) return fail(res, 403, 'requires role admin');
    const body = await readBody(req);
    if (rest === 'enable' && req.method === 'PUT') {
      if (typeof body?.enabled !== 'boolean')
        return fail(res, 400, ['enabled must be a boolean value']);
      if (plugin.status === 'invalid')
        return fail(res, 409, `plugin ${name} is invalid: ${plugin.invalidReason}`);
      if (body.enabled && !plugin.enabled) {
        plugins.set(name, {
          ...plugin,
          enabled: true,
          status: plugin.hasServer ? 'starting' : 'stopped',
        });
        if (plugin.hasServer) later(700, () => setStatus(name, 'running'));
      } else if (!body.enabled && plugin.enabled) {
        plugins.set(name, { ...plugin, enabled: false, status: 'disabled' });
        closePluginSockets(name, 1011, 'plugin disabled');
      }
      changed(name);
      return send(res, 200, view(plugins.get(name), user));
    }
    if (rest === 'restart' && req.method === 'POST') {
      if (!plugin.enabled) return fail(res, 409, `plugin ${name} is disabled`);
      if (!plugin.hasServer) return fail(res, 409, `plugin ${name} has no server`);
      restartLater(name);
      return send(res, 202, view(plugins.get(name), user));
    }
    if (rest === 'logs' && req.method === 'GET') {
      const tail = Number(url.searchParams.get('tail') ?? 100);
      return send(res, 200, { lines: logs.get(name).slice(-tail) });
    }
    if (rest === 'access' && req.method === 'PUT') {
      const roles = body?.roles;
      if (
        !Array.isArray(roles) ||
        roles.some((r) => typeof r !== 'string' || !/^[A-Za-z0-9_.:-]{1,128}$/.test(r))
      ) {
        return fail(res, 400, ['each role must be 1-128 characters of letters, digits, _ . : -']);
      }
      plugins.set(name, { ...plugin, access: { roles, allowed: true } });
      changed(name);
      return send(res, 200, view(plugins.get(name), user));
    }
    const s = /^secrets\/([^/]+)$/.exec(rest);
    if (s) {
      const key = decodeURIComponent(s[1]);
      const secret = plugin.secrets.find((x) => x.key === key);
      if (!secret) return fail(res, 400, `plugin ${name} does not declare secret ${key}`);
      if (req.method === 'PUT') {
        if (typeof body?.value !== 'string' || body.value === '')
          return fail(res, 400, ['value must be a non-empty string']);
        updateSecret(plugin, key, {
          set: true,
          source: secret.source === 'file' ? 'file' : 'store',
        });
        startAfterSecretChange(name);
        return send(res, 204);
      }
      if (req.method === 'DELETE') {
        if (secret.source === 'file')
          return fail(res, 409, `secret ${key} of plugin ${name} comes from a mounted file`);
        if (!secret.set) return fail(res, 404, `secret ${key} of plugin ${name} is not set`);
        updateSecret(plugin, key, { set: false, source: null });
        startAfterSecretChange(name);
        return send(res, 204);
      }
    }
    return fail(res, 404, `Cannot ${req.method} ${path}`);
  });

  const updateSecret = (plugin, key, change) => {
    plugins.set(plugin.name, {
      ...plugin,
      secrets: plugin.secrets.map((x) => (x.key === key ? { ...x, ...change } : x)),
    });
  };
  const startAfterSecretChange = (name) => {
    const p = plugins.get(name);
    const missing = p.secrets.filter((x) => x.required && !x.set).map((x) => x.key);
    if (missing.length > 0) {
      setStatus(name, 'failed', { lastError: `missing required secrets: ${missing.join(', ')}` });
      closePluginSockets(name, 1011, 'plugin stopped');
      return;
    }
    setStatus(name, 'starting', { lastError: undefined });
    later(700, () => {
      setStatus(name, 'running');
      log(name, 'portico', 'ready');
    });
  };

  const asset = (res, plugin, file) => {
    if (file !== plugin.entry) return fail(res, 404, 'no such file');
    const source =
      plugin.name === 'echo'
        ? readFileSync(ECHO_FRONTEND, 'utf8')
        : plugin.name === 'broken'
          ? BROKEN_FRONTEND
          : PROBE_FRONTEND;
    res
      .writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-cache' })
      .end(source);
  };

  // As Portico serves the build: the page at /, its files at /console/<file>.
  const serveStatic = (res, path) => {
    const relative =
      path === '/' ? 'index.html' : path.startsWith('/console/') ? path.slice(9) : null;
    if (relative === null) return fail(res, 404, 'not found');
    const file = normalize(join(DIST, relative));
    if (!file.startsWith(DIST) || !existsSync(file) || !statSync(file).isFile())
      return fail(res, 404, 'not found');
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  };

  const control = (req, res, path, body = {}) => {
    if (path === '/__stub/expire') {
      validTokens.clear();
      for (const s of eventSockets) s.close(4401, 'token expired');
    } else if (path === '/__stub/status') {
      setStatus(body.name, body.status, { lastError: body.lastError });
    } else if (path === '/__stub/close-plugin-ws') {
      closePluginSockets(body.name, body.code, body.reason ?? '');
    } else if (path === '/__stub/drop-events') {
      for (const s of eventSockets)
        s.close(body.code ?? 1001, body.reason ?? 'server shutting down');
    } else if (path === '/__stub/events') {
      eventsOn = body.on !== false;
    } else if (path === '/__stub/revive') {
      for (const t of Object.keys(USERS)) validTokens.add(t);
    } else return fail(res, 404, 'no such control');
    return send(res, 204);
  };

  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => (protocols.has('portico') ? 'portico' : false),
  });
  server.on('upgrade', (req, socket, head) => {
    const path = new URL(req.url, 'http://x').pathname;
    const who = userOf(req);
    if (who.error) {
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n${JSON.stringify({ statusCode: 401, message: who.error })}`,
      );
      return;
    }
    if (path === '/api/events' && !eventsOn) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => undefined);
      ws.user = who.user;
      if (path === '/api/events') {
        eventSockets.add(ws);
        ws.on('close', () => eventSockets.delete(ws));
        ws.send(JSON.stringify({ type: 'hello', user: who.user }));
        ws.send(
          JSON.stringify({
            type: 'plugins',
            plugins: [...plugins.values()].map((p) => view(p, who.user)),
          }),
        );
        return;
      }
      const m = /^\/plugin-ws\/([^/]+)/.exec(path);
      const plugin = m && plugins.get(m[1]);
      if (!plugin || plugin.status === 'invalid') return ws.close(4404, 'unknown plugin');
      if (plugin.hasServer && plugin.status !== 'running')
        return ws.close(4503, 'plugin not running');
      ws.plugin = plugin.name;
      pluginSockets.add(ws);
      ws.on('close', () => pluginSockets.delete(ws));
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });

  return new Promise((resolve) => {
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      resolve({
        url: `http://${host}:${actual}`,
        close: () =>
          new Promise((done) => {
            clearInterval(ticker);
            for (const t of timers) clearTimeout(t);
            for (const s of [...eventSockets, ...pluginSockets]) s.terminate();
            wss.close();
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

module.exports = { startStub };

if (require.main === module) {
  startStub({ port: Number(process.argv[2] ?? 8787) }).then((stub) =>
    console.log(`stub on ${stub.url} — sign in with admin-token or user-token`),
  );
}
