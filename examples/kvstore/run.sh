#!/usr/bin/env bash
# Three kvstore processes on loopback: node-1 bootstraps an embedded etcd,
# node-2 and node-3 join it. Writes 100 keys, kills node-3 (no goodbye),
# reads every key back through node-1, then stops everything.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/kvstore" .

start() { # id http api [join]
  "$work/kvstore" -id "$1" -http "127.0.0.1:$2" -api "127.0.0.1:$3" -data "$work/$1" -token run-sh ${4:+-join 127.0.0.1:$4} >"$work/$1.log" 2>&1 &
}
wait_ready() { # http port
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node on $1 did not come up"; cat "$work"/*.log; exit 1
}

start node-1 7101 7201; wait_ready 7101
start node-2 7102 7202 7101; wait_ready 7102
start node-3 7103 7203 7101; wait_ready 7103
sleep 1
for i in $(seq 1 100); do curl -fs -X PUT --data "v$i" "http://127.0.0.1:7201/kv/k$i"; done
echo "wrote 100 keys"
kill -9 "$(jobs -p | tail -1)"
echo "killed node-3; waiting for its lease to expire"
sleep 8
ok=0
for i in $(seq 1 100); do [ "$(curl -fs "http://127.0.0.1:7201/kv/k$i")" = "v$i" ] && ok=$((ok+1)); done
echo "read back $ok/100 keys through node-1"
grep -h "\[leave\]" "$work/node-1.log" || true
[ "$ok" -eq 100 ]
