'use strict';
// The reference point for the relay: the least a Node WebSocket proxy can do. It reads the
// upgrade request, verifies the Bearer JWT (HS256, jose, as Portico does), rewrites the
// path to /ws, dials the upstream and pipes bytes both ways. No frame tracking, pings, size
// limit, close codes, metrics, identity headers or Nest: everything Portico adds is missing.
// Not a product, only a yardstick (`npm run bench -- --targets ...,splice`).
//
//   PORT=8081 UPSTREAM_PORT=9000 JWT_SECRET=... node bench/splice.js
const net = require('node:net');
const { createSecretKey } = require('node:crypto');
const { jwtVerify } = require('jose');

const port = Number(process.env.PORT);
const upstreamPort = Number(process.env.UPSTREAM_PORT);
const key = createSecretKey(Buffer.from(process.env.JWT_SECRET ?? '', 'utf8'));
const MAX_HEAD = 16 * 1024;

function refuse(socket, status) {
  socket.end(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
}

const server = net.createServer((client) => {
  client.setNoDelay(true);
  client.on('error', () => client.destroy());
  let head = Buffer.alloc(0);
  const onData = (chunk) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end === -1) {
      if (head.length > MAX_HEAD) refuse(client, '431 Request Header Fields Too Large');
      return;
    }
    client.off('data', onData);
    client.pause();
    const lines = head.subarray(0, end).toString('latin1').split('\r\n');
    const rest = head.subarray(end + 4);
    const auth = lines.find((l) => /^authorization:/i.test(l));
    const token = auth && /^authorization:\s*bearer\s+(\S+)/i.exec(auth)?.[1];
    const verified = token
      ? jwtVerify(token, key, { algorithms: ['HS256'] })
      : Promise.reject(new Error('no token'));
    verified.then(
      () => forward(lines, auth, rest),
      () => refuse(client, '401 Unauthorized'),
    );
  };
  const forward = (lines, auth, rest) => {
    const [method, , version] = lines[0].split(' ');
    const out = [`${method} /ws ${version}`, ...lines.slice(1).filter((l) => l !== auth)];
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    upstream.setNoDelay(true);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.on('connect', () => {
      upstream.write(out.join('\r\n') + '\r\n\r\n');
      if (rest.length > 0) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  };
  client.on('data', onData);
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
