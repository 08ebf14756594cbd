#!/usr/bin/env bash
# The consumer apps of consumers/, each as a user's app would get the package: from the packed
# tarball (`npm pack`, its prepack building dist/ from scratch, checked by check-pack.mjs), installed
# over the app's own lockfile. For each app: npm ci, install the tarball, build, boot the built app
# and POST a note through it, then its e2e tests. One verdict line per app; fails if any fails.
# Database: PostgreSQL at 127.0.0.1:5432, database test (DATABASE_URL overrides); each app its table.
#
# Usage: bash .ci/consumers.sh [app-name...]   (default: every app in consumers/)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export DATABASE_URL=${DATABASE_URL_CONSUMERS:-postgres://postgres@127.0.0.1:5432/test}

work=$(mktemp -d /tmp/consumers.XXXXXX)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

tgz=$(node .ci/check-pack.mjs --into "$work") || { echo 'consumers: npm pack failed its check'; exit 1; }

apps=("$@")
[ ${#apps[@]} -eq 0 ] && apps=($(ls consumers))
verdicts=()
failed=0
port=3900

# Runs a step, appending its seconds to $timings; its output goes to the app's log.
step() {
  local name=$1
  shift
  local t0=$(date +%s%N)
  "$@" >>"$log" 2>&1
  local rc=$?
  timings+="$name $(( ($(date +%s%N) - t0) / 1000000 )) ms, "
  return $rc
}

# Starts the built app, POSTs a note once it listens, stops it: the app boots outside any test runner.
boot() {
  local pid ok=1
  PORT=$port node dist/main.js >>"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 60); do
    if curl -sf -X POST -H 'content-type: application/json' -d '{"text":"boot"}' \
      "http://127.0.0.1:$port/notes" >>"$log" 2>&1; then
      ok=0
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  echo >>"$log"
  return $ok
}

for app in "${apps[@]}"; do
  dir="$work/$app"
  log="$work/$app.log"
  timings=''
  port=$((port + 1))
  cp -r "$root/consumers/$app" "$dir"
  rm -rf "$dir/node_modules" "$dir/dist"
  cd "$dir"
  result=ok
  step 'npm ci' npm ci --no-audit --no-fund &&
    step 'install tgz' npm install --no-save --no-audit --no-fund "$tgz" &&
    step build npm run build &&
    step boot boot &&
    step test npm run test:e2e || result=FAILED
  cd "$root"
  if [ "$result" != ok ]; then
    failed=1
    echo "---- consumers/$app: log ----"
    tail -n 80 "$log"
  fi
  verdicts+=("consumers/$app: $result (${timings%, })")
done

printf '%s\n' "${verdicts[@]}"
echo "consumers: $(basename "$tgz"), ${#apps[@]} apps in $(($(date +%s) - started)) s"
exit $failed
