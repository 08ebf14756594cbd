#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: repeatable whatever else the machine
# does, unlike requests/s and CPU time. Runs after `npm run bench:prepare`.
#   bash bench/instructions/measure.sh <variant> <endpoint> [requests=500] [dist|dist-previous]
# Prints the main thread's instructions per request (the request path itself) and the whole
# process's (with the compiler and GC threads). Scavenges land in the window or not: differences
# under about 3% are noise. Under valgrind a request takes ~0.1 s; startup ~1 min.
# KEEP=1 keeps the dumps (for callgrind_annotate).
# CONCURRENCY=50 BENCH_POOL=10: 50 requests in flight on a pool of 10 (what waiting costs).
set -euo pipefail
variant=$1 endpoint=$2 n=${3:-500} library=${4:-dist}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
cat >"$out/node.sh" <<EOS
#!/bin/sh
exec valgrind --tool=callgrind --smc-check=all-non-file --callgrind-out-file=$out/cg.%p $(command -v node) "\$@" 2>>$out/valgrind.log
EOS
chmod +x "$out/node.sh"
node "$here/drive.mjs" "$variant" "$endpoint" "$n" "$library" "$out/node.sh" >"$out/drive.log" 2>&1
dump=$(ls "$out"/cg.*.1 | head -1)
total=$(grep -E '^summary' "$dump" | awk '{print $2}')
main=$(callgrind_annotate --inclusive=yes --threshold=100 "$dump" 2>/dev/null | grep 'node::Start' | head -1 | awk '{gsub(",","",$1); print $1}')
echo "$variant /$endpoint ($library, $n requests): main thread $((main / n)) instructions/request, process $((total / n))"
if [ -n "${KEEP:-}" ]; then echo "callgrind dumps kept in $out"; else rm -rf "$out"; fi
