# syntax=docker/dockerfile:1
#
# Portico's container image. Build: `docker build -t portico .`
# Run:   docker run -p 8080:8080 -e JWT_SECRET=... -e SECRETS_KEY=... portico
# test/unit/deploy/dockerfile.spec.ts checks this file (no container engine runs in CI), and
# test/e2e/pid1.e2e-spec.ts runs Portico as PID 1 under tini the way this image does.

# --- build: dev dependencies, the TypeScript compiler and esbuild (the console's and the web
# terminal's frontends); none of it reaches the runtime image.
FROM node:22-bookworm-slim AS build
# node-pty (the web terminal's pty) compiles its addon with node-gyp during `npm ci`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The lockfile first, so the install layer is reused until the dependencies change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY console ./console
COPY plugins ./plugins
RUN npm run build
COPY scripts/healthcheck.js ./scripts/healthcheck.js
# A bundled plugin with a package.json is built here (with its dev dependencies), then left with
# its production dependencies only. `npm ci` needs the plugin's lockfile: builds stay reproducible.
RUN set -eu; \
    for dir in plugins/*/; do \
      if [ -f "${dir}package.json" ]; then \
        (cd "$dir" && npm ci --no-audit --no-fund && npm run build --if-present \
          && npm ci --omit=dev --no-audit --no-fund); \
      fi; \
    done
# What the runtime needs, in one tree. Read-only for everyone but root: the runtime user
# (10001) can read and run it but never change it.
RUN mkdir -p /app/scripts /app/console \
 && cp -R dist plugins package.json /app/ \
 && cp -R console/dist /app/console/ \
 && cp scripts/healthcheck.js /app/scripts/ \
 && chmod -R u=rwX,go=rX /app

# --- deps: production dependencies only, installed from the lockfile on the runtime's base
# image (so any native module is built for the Node and glibc it will run with).
FROM node:22-bookworm-slim AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && chmod -R u=rwX,go=rX node_modules

# --- runtime
FROM node:22-bookworm-slim AS runtime
# tini is PID 1: it forwards SIGTERM to Portico and reaps orphaned processes. Portico stops each
# plugin's process group and whatever escaped it, but a process re-parented to PID 1 is only
# ever reaped by PID 1, and Node (or `npm start`) as PID 1 would leave it a zombie.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
# A numeric, non-root user (runAsNonRoot can verify a number, not a name). DATA_DIR is the one
# place it writes besides /tmp, so the root filesystem can be mounted read-only.
RUN groupadd --gid 10001 portico \
 && useradd --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin portico \
 && mkdir -p /var/lib/portico \
 && chown 10001:10001 /var/lib/portico \
 && chmod 0700 /var/lib/portico
# HOME empty: each plugin server gets its own writable PLUGIN_DATA_DIR as HOME instead.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/var/lib/portico \
    PLUGINS_DIR=/app/plugins \
    HOME=""
WORKDIR /app
# Owned by root: the runtime user cannot alter the app. Plugins sit under /app so that a plugin
# requiring `ws` (like plugins/echo) finds it in /app/node_modules.
COPY --from=deps --chown=0:0 /app/node_modules ./node_modules
COPY --from=build --chown=0:0 /app ./
VOLUME ["/var/lib/portico"]
USER 10001:10001
EXPOSE 8080
# Liveness only (/healthz); the slim image has no curl, so a small Node script asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "scripts/healthcheck.js"]
# Never `npm start` as PID 1: npm reaps no orphans (and its prestart would rebuild, without tsc).
ENTRYPOINT ["tini", "--"]
CMD ["node", "--max-semi-space-size=2", "dist/main.js"]
