'use strict';
// The container image's HEALTHCHECK (Dockerfile): the slim base image has no curl, so this asks
// Portico's liveness route itself. Plain Node, no dependencies. Exit 0 when
// GET http://127.0.0.1:$PORT/healthz answers 200 within HEALTHCHECK_TIMEOUT_MS (default 3000),
// 1 otherwise. Liveness only: /readyz would mark the container unhealthy while plugins start.
const http = require('node:http');

const port = Number(process.env.PORT || 8080);
const timeoutMs = Number(process.env.HEALTHCHECK_TIMEOUT_MS || 3000);
// Bound to every interface (the image's HOST=0.0.0.0): loopback reaches it. A host bound to one
// address is asked there.
const bound = process.env.HOST;
const host = !bound || bound === '0.0.0.0' || bound === '::' ? '127.0.0.1' : bound;

function done(healthy, why) {
  if (!healthy) process.stderr.write(`healthcheck: ${why}\n`);
  process.exit(healthy ? 0 : 1);
}

// One deadline for everything (connect, head, status): a hung host is an unhealthy host.
setTimeout(() => done(false, `no answer within ${timeoutMs} ms`), timeoutMs).unref();
http
  .get({ host, port, path: '/healthz' }, (res) => {
    res.resume();
    done(res.statusCode === 200, `GET /healthz answered ${res.statusCode}`);
  })
  .on('error', (err) => done(false, err.message));
