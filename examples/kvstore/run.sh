#!/usr/bin/env bash
# run.sh [N] — N kvstore processes (default 10) on loopback, embedded etcd:
# forms the cluster, writes 1,000 keys through every node, adds node N+1,
# kills one node with SIGKILL, restarts it with the same data directory,
# and reads every key back through every node in turn. Exits non-zero if a
# key is missing or wrong.
#
#   ./run.sh            # 10 nodes, sync mode
#   MODE=async ./run.sh 5
#   BASE_PORT=9100 ./run.sh   # node i: ClusterKit on BASE_PORT+i (its etcd on +10000
#                             # and +20000), store on BASE_PORT+100+i
set -euo pipefail
N=${1:-10}
MODE=${MODE:-sync}
BASE=${BASE_PORT:-7100}
KEYS=1000
cd "$(dirname "$0")"
work=$(mktemp -d)
declare -A pids
cleanup() {
  status=$?
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $status -ne 0 ]; then
    for f in "$work"/*.log; do [ -e "$f" ] && { echo "---- $f"; tail -5 "$f"; }; done
  fi
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT INT TERM

http_port() { echo $((BASE + $1)); }
api_port() { echo $((BASE + 100 + $1)); }
api() { echo "http://127.0.0.1:$(api_port "$1")"; }

start() { # node number
  local i=$1 join=()
  [ "$i" -gt 1 ] && join=(-join "127.0.0.1:$(http_port 1)")
  "$work/kvstore" -id "node-$i" -http "127.0.0.1:$(http_port "$i")" -api "127.0.0.1:$(api_port "$i")" \
    -data "$work/node-$i" -token run-sh -mode "$MODE" -lease 2s "${join[@]}" >>"$work/node-$i.log" 2>&1 &
  pids[$i]=$!
  for _ in $(seq 1 200); do
    curl -fs -m 1 "http://127.0.0.1:$(http_port "$i")/ready" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "node-$i did not become ready"; exit 1
}

settled() { # expected members, as node-1 sees them
  local body
  body=$(curl -fs -m 2 "http://127.0.0.1:$(http_port 1)/cluster") || return 1
  [[ "$body" == *'"settled":true'* ]] && [ "$(grep -o '"incarnation"' <<<"$body" | wc -l)" -eq "$1" ]
}
wait_settled() { # expected members
  local t0=$SECONDS
  for _ in $(seq 1 600); do settled "$1" && { echo "   settled with $1 nodes ($((SECONDS - t0)) s)"; return 0; }; sleep 0.1; done
  echo "the cluster never settled with $1 nodes"; exit 1
}

check_keys() { # label
  local ok=0 live=("$@")
  for k in $(seq 1 $KEYS); do
    local node=${live[$((k % ${#live[@]}))]}
    [ "$(curl -fs -m 5 "$(api "$node")/kv/key-$k")" = "value-$k" ] && ok=$((ok + 1))
  done
  echo "   $ok/$KEYS keys read back through ${#live[@]} nodes"
  [ "$ok" -eq $KEYS ]
}

echo "building kvstore"
go build -o "$work/kvstore" .
echo "starting $N nodes ($MODE mode)"
for i in $(seq 1 "$N"); do start "$i"; done
wait_settled "$N"

echo "writing $KEYS keys through every node"
for k in $(seq 1 $KEYS); do
  curl -fs -m 5 -X PUT --data "value-$k" "$(api $((k % N + 1)))/kv/key-$k" || { echo "PUT key-$k failed"; exit 1; }
done
all=($(seq 1 "$N"))
check_keys "${all[@]}"

echo "adding node-$((N + 1))"
start $((N + 1))
wait_settled $((N + 1))
all=($(seq 1 $((N + 1))))
check_keys "${all[@]}"

victim=$(( (N + 1) / 2 + 1 ))
echo "killing node-$victim (SIGKILL)"
kill -9 "${pids[$victim]}"
wait "${pids[$victim]}" 2>/dev/null || true
unset "pids[$victim]"
wait_settled "$N"
live=()
for i in "${all[@]}"; do [ "$i" -ne "$victim" ] && live+=("$i"); done
check_keys "${live[@]}"

echo "restarting node-$victim"
start "$victim"
wait_settled $((N + 1))
check_keys "${all[@]}"

echo
printf "   %-8s %9s %9s %6s\n" node primaries replicas keys
for i in "${all[@]}"; do
  s=$(curl -fs -m 2 "$(api "$i")/stats")
  field() { sed -E "s/.*\"$1\":([0-9]+).*/\1/" <<<"$s"; }
  printf "   %-8s %9s %9s %6s\n" "node-$i" "$(field primaries)" "$(field replicas)" "$(field keys)"
done
echo "run.sh: OK — every key readable after a join, a SIGKILL and a restart"
