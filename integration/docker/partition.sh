#!/usr/bin/env bash
# A network partition across real hosts: three kvstore containers (each an
# embedded etcd voter) on a private Docker network this script creates.
# node-3 is cut off from the network; the other two must report it gone
# (lease_expired), keep every key readable and keep quorum; when node-3 is
# reconnected it must come back (rejoin) and the cluster must settle with
# three nodes again. Traffic stays inside the network made here.
set -euo pipefail
cd "$(dirname "$0")"
tag="ck-partition-$$"
net="$tag"
subnet_prefix="172.29.$((RANDOM % 200 + 20))"
work=$(mktemp -d)
cleanup() {
  status=$?
  if [ $status -ne 0 ]; then
    for n in 1 2 3; do echo "---- node-$n log"; docker logs "$tag-node-$n" 2>&1 | grep -v '^{' | tail -40 || true; done
  fi
  docker rm -f "$tag-node-1" "$tag-node-2" "$tag-node-3" >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
  docker rmi "$tag" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT

(cd ../.. && CGO_ENABLED=0 go build -o "$work/kvstore" ./examples/kvstore)
cp Dockerfile "$work/"
docker build -q -t "$tag" "$work" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
docker network create --subnet "$subnet_prefix.0/24" "$net" >/dev/null

ip() { echo "$subnet_prefix.1$1"; }
start() { # n [join-n]
  local n=$1 join=()
  [ $# -gt 1 ] && join=(-join "$(ip "$2"):7101")
  docker run -d --name "$tag-node-$n" --network "$net" --ip "$(ip "$n")" "$tag" \
    -id "node-$n" -http "$(ip "$n"):7101" -api "$(ip "$n"):7201" -data /data -token docker-test "${join[@]}" >/dev/null
}
wait_http() { # url
  for _ in $(seq 1 300); do curl -fs -m 1 "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "no answer from $1"; return 1
}
settled() { # n expected-nodes
  local body
  body=$(curl -fs -m 2 "http://$(ip "$1"):7101/cluster") || return 1
  [[ "$body" == *'"settled":true'* ]] && [ "$(grep -o '"incarnation"' <<<"$body" | wc -l)" -eq "$2" ]
}
wait_settled() { # n expected-nodes seconds
  for _ in $(seq 1 $(($3 * 10))); do settled "$1" "$2" && return 0; sleep 0.1; done
  echo "node-$1 never settled with $2 nodes"; curl -fs "http://$(ip "$1"):7101/cluster" | head -c 2000; return 1
}
# grep reads the whole log (no -q): an early exit would kill docker logs
# with SIGPIPE, which pipefail reports as a failure.
logs_have() { docker logs "$tag-node-$1" 2>&1 | grep "$2" >/dev/null; }

start 1; wait_http "http://$(ip 1):7101/health"
start 2 1; wait_http "http://$(ip 2):7101/health"
start 3 1; wait_http "http://$(ip 3):7101/health"
wait_settled 1 3 60
echo "3 containers formed a cluster"

for i in $(seq 1 100); do curl -fs -m 5 -X PUT --data "v$i" "http://$(ip 1):7201/kv/k$i"; done
echo "wrote 100 keys"

began=$(date +%s%N)
docker network disconnect "$net" "$tag-node-3"
echo "cut node-3 off the network"
for _ in $(seq 1 300); do logs_have 1 "node-3 left (lease_expired)" && logs_have 2 "node-3 left (lease_expired)" && break; sleep 0.1; done
logs_have 1 "node-3 left (lease_expired)" || { echo "node-1 never saw node-3 leave"; exit 1; }
echo "survivors saw node-3 leave after $(( ($(date +%s%N) - began) / 1000000 )) ms (lease TTL 5 s)"
wait_settled 1 2 60
ok=0
for i in $(seq 1 100); do [ "$(curl -fs -m 5 "http://$(ip 2):7201/kv/k$i")" = "v$i" ] && ok=$((ok + 1)); done
echo "during the partition: $ok/100 keys readable through node-2"
[ "$ok" -eq 100 ]

docker network connect --ip "$(ip 3)" "$net" "$tag-node-3"
echo "reconnected node-3"
for _ in $(seq 1 600); do logs_have 1 "\[rejoin\] node-3" && break; sleep 0.1; done
logs_have 1 "\[rejoin\] node-3" || { echo "node-1 never saw node-3 rejoin"; exit 1; }
wait_settled 1 3 90
wait_settled 3 3 90
ok=0
for i in $(seq 1 100); do [ "$(curl -fs -m 5 "http://$(ip 3):7201/kv/k$i")" = "v$i" ] && ok=$((ok + 1)); done
echo "after the partition healed: $ok/100 keys readable through node-3"
[ "$ok" -eq 100 ]
echo "docker: 1 passed, 0 failed"
