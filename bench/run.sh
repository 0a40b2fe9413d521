#!/usr/bin/env bash
# `npm run bench [-- options]`: raises the open-file limit (a proxy holds two descriptors per
# connection, so 10,000 idle connections need about 20,000 in the proxy, 50,000 about 100,000)
# and starts the harness.
set -euo pipefail
cd "$(dirname "$0")/.."
want=131072
current=$(ulimit -n)
if [ "$current" != unlimited ] && [ "$current" -lt "$want" ]; then
  ulimit -n "$want" 2>/dev/null || {
    hard=$(ulimit -Hn)
    if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then ulimit -n "$want" 2>/dev/null || true
    else ulimit -n "$hard" 2>/dev/null || true; fi
  }
fi
exec node -r ts-node/register/transpile-only bench/bench.ts "$@"
