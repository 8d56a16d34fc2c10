#!/usr/bin/env bash
# Brings up each compose file here (compose.embedded.yml: three kvstore
# nodes on embedded etcd; compose.external.yml: three nodes on a three-member
# etcd cluster) and, for each:
#   - waits until every node is ready and every node's /cluster is settled;
#   - writes 100 keys through node-1 and reads each through every node (and
#     one through node-1's published loopback port);
#   - cuts node-3 off the network (docker network disconnect): node-1 and
#     node-2 must drop it, settle, serve every key and take new writes;
#     reconnected, node-3 must come back, the cluster settle with three
#     nodes and node-3 serve every key;
#   - restarts node-2 (docker restart; on external etcd also the etcd-2
#     member): same arguments, same volume, every key readable everywhere;
#   - kills node-1's process with SIGKILL: Docker must restart it (restart
#     policy) with the same arguments and volume,
#     the cluster settle again and every key stay readable everywhere;
#   - after every settling, checks what can be seen from outside: on every
#     node every partition has exactly one primary (a member, not among its
#     replicas), min(RF, members)-1 distinct replicas, no handoff left, and
#     all nodes show the same map (assignment version, primaries, replicas,
#     epochs); and that Docker restarted no container before the crash.
# Usage: deploy/test.sh [embedded|external]...  (default: both)
# Each run uses its own compose project, image tag and a random /24, and
# removes its containers, network, volumes and images, also on failure.
# Exits 0 with a plain message when no Docker engine answers.
set -uo pipefail
cd "$(dirname "$0")"

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "docker: not available here; the deploy test (deploy/test.sh) did not run"
  exit 0
fi
if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose_cmd=(docker-compose)
else
  echo "docker answers but Compose is missing (neither 'docker compose' nor 'docker-compose'); install docker-compose"
  exit 1
fi
command -v jq >/dev/null 2>&1 || { echo "deploy/test.sh needs jq (apt-get install jq)"; exit 1; }

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(embedded external)

passed=0 failed=0 scenario="" project="" file="" step=$(date +%s%N)
export CK_TOKEN="deploy-test-$$" CK_TAG="cktest-$$" CK_HTTP_PORT="" CK_API_PORT="" CK_NET=""
work=$(mktemp -d)
began=$(date +%s%N)

compose() { "${compose_cmd[@]}" -p "$project" -f "$file" "$@"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
pass() { passed=$((passed + 1)); echo "PASS [$scenario] $* ($(ms_since "$step") ms)"; }
fail() { failed=$((failed + 1)); echo "FAIL [$scenario] $* ($(ms_since "$step") ms)"; }
# check DESCRIPTION COMMAND...: one counted result.
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; return 1; fi
}
# wait_for SECONDS COMMAND...: true once COMMAND succeeds.
wait_for() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

ip() { echo "$CK_NET.1${1#node-}"; } # node-2 -> $CK_NET.12
cid() { compose ps -q "$1"; }
view() { curl -fs -m 3 "http://$(ip "$1"):7101/cluster"; }
ready() { curl -fs -m 3 "http://$(ip "$1"):7101/ready" >/dev/null; }

# sound_view NODE MEMBERS...: NODE's /cluster is settled, shows exactly
# MEMBERS, and its map is sound; prints the map (what all nodes must agree on).
sound_view() {
  local node=$1 body
  shift
  body=$(view "$node") || return 1
  jq -ce --argjson m "$(printf '%s\n' "$@" | jq -R . | jq -sc 'sort')" '
    . as $c | ([$c.replication_factor, ($m | length)] | min) as $rf
    | select($c.settled and ([$c.members[].id] | sort) == $m
        and ($c.partitions | length) == $c.partition_count
        and all($c.partitions[];
          (.primary as $p | $m | index($p)) != null
          and (.replicas | length) == $rf - 1
          and (.replicas | unique | length) == (.replicas | length)
          and all(.replicas[]; (. as $r | $m | index($r)) != null)
          and (.primary as $p | .replicas | index($p)) == null
          and (.incoming | length) == 0))
    | {v: .assignment_version, p: [.partitions[] | [.index, .primary, .replicas, .epoch]]}' <<<"$body" >"$work/view.$node" 2>/dev/null
}
# settled MEMBERS...: every member's view is sound and all are the same map.
settled() {
  local n
  for n in "$@"; do sound_view "$n" "$@" || return 1; done
  [ "$(for n in "$@"; do cat "$work/view.$n"; done | sort -u | wc -l)" -eq 1 ]
}
show_views() {
  local n
  for n in "$@"; do
    echo "  $n: $(view "$n" | jq -c '{settled, leader, assignment_version, members: [.members[] | [.id, .state]], handoffs: [.partitions[] | select(.incoming != [])] | length}' 2>&1 | head -c 600)"
  done
}

put_keys() { # NODE FROM TO: PUT kFROM..kTO through NODE; true if all acknowledged
  local i bad=0
  for i in $(seq "$2" "$3"); do
    curl -fs -m 5 -o /dev/null -X PUT --data "v$i" "http://$(ip "$1"):7201/kv/k$i" || bad=$((bad + 1))
  done
  [ "$bad" -eq 0 ] || echo "  $bad writes through $1 refused"
  [ "$bad" -eq 0 ]
}
read_keys() { # NODE FROM TO: every key reads back its value through NODE (gives up after 3 misses)
  local i miss=0
  for i in $(seq "$2" "$3"); do
    [ "$(curl -fs -m 5 "http://$(ip "$1"):7201/kv/k$i")" = "v$i" ] && continue
    miss=$((miss + 1))
    echo "  $1: k$i did not read back v$i"
    [ "$miss" -lt 3 ] || break
  done
  [ "$miss" -eq 0 ]
}
read_everywhere() { # FROM TO NODES...
  local from=$1 to=$2 n
  shift 2
  for n in "$@"; do read_keys "$n" "$from" "$to" || return 1; done
}
read_published() { # node-1's API through the loopback port Compose published
  local port
  port=$(docker port "$(cid node-1)" 7201/tcp | head -1 | sed 's/.*://')
  [ "$(curl -fs -m 5 "http://127.0.0.1:$port/kv/k1")" = "v1" ]
}
members_are() { # NODE MEMBERS...: NODE's /cluster lists exactly MEMBERS
  local node=$1
  shift
  [ "$(view "$node" | jq -c '[.members[].id] | sort')" = "$(printf '%s\n' "$@" | jq -R . | jq -sc 'sort')" ]
}
# incarnation NODE OF: OF's incarnation (a lease ID) in NODE's /cluster, as
# text: jq would round it to a double, merging IDs granted in a row.
incarnation() {
  view "$1" | grep -oE '"id":"[^"]*"|"incarnation":[0-9]+' |
    awk -v of="\"id\":\"$2\"" '$0 == of { hit = 1; next } hit && /^"incarnation"/ { sub(/.*:/, ""); print; exit }'
}
# reincarnated OF OLD NODES...: every NODE shows OF with an incarnation
# other than OLD (its new process registered).
reincarnated() {
  local of=$1 old=$2 n i
  shift 2
  for n in "$@"; do
    i=$(incarnation "$n" "$of") || return 1
    [ -n "$i" ] && [ "$i" != "$old" ] || return 1
  done
}
identity() { # SERVICE: its arguments and volumes, which a restart must keep
  docker inspect -f '{{json .Args}} {{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}' "$(cid "$1")"
}
restart_same() { # SERVICE: docker restart keeps arguments and volume, and really restarts
  local c before after t0
  c=$(cid "$1")
  before=$(identity "$1")
  t0=$(docker inspect -f '{{.State.StartedAt}}' "$c")
  local r0=$(date +%s%N)
  docker restart -t 10 "$c" >/dev/null || return 1
  echo "  docker restart $1 took $(ms_since "$r0") ms"
  after=$(identity "$1")
  [ "$before" = "$after" ] || { echo "  before: $before"; echo "  after:  $after"; return 1; }
  [ "$(docker inspect -f '{{.State.StartedAt}}' "$c")" != "$t0" ]
}
never_restarted_by_docker() {
  local c bad=0
  for c in $(compose ps -q); do
    read -r name count running < <(docker inspect -f '{{.Name}} {{.RestartCount}} {{.State.Running}}' "$c")
    if [ "$count" != 0 ] || [ "$running" != true ]; then
      echo "  $name: restarted by Docker $count times, running $running"
      bad=1
    fi
  done
  [ "$bad" -eq 0 ]
}

cleanup_project() {
  [ -n "$project" ] || return 0
  compose down -v --rmi all --remove-orphans >/dev/null 2>&1
  docker rmi "clusterkit-kvstore:$CK_TAG" "clusterkit-etcd:$CK_TAG" >/dev/null 2>&1
  project=""
}
dump_logs() {
  local s
  [ -n "$(compose ps -q 2>/dev/null)" ] || return 0
  for s in $(compose ps --services 2>/dev/null); do
    echo "---- $s log (last 30 lines)"
    compose logs --no-color --tail 30 "$s" 2>&1 | grep -v '^Attaching' || true
  done
}
trap 'cleanup_project; rm -rf "$work"' EXIT
trap 'echo "deploy/test.sh: interrupted; cleaning up"; exit 130' INT TERM

# up: start the project on a free random /24 (retrying when the subnet
# overlaps a network that exists already).
up() {
  local try
  for try in 1 2 3 4 5; do
    CK_NET="172.$((RANDOM % 8 + 24)).$((RANDOM % 250 + 2))"
    compose up --build -d >"$work/up.log" 2>&1 && return 0
    compose down -v --remove-orphans >/dev/null 2>&1
    grep -qi 'overlap' "$work/up.log" || break
  done
  cat "$work/up.log"
  return 1
}

run_scenario() {
  scenario=$1 file="compose.$1.yml" project="cktest-$$-$1"
  local nodes=(node-1 node-2 node-3) t
  echo "== $scenario: $file, project $project"
  step=$(date +%s%N)
  if [ "$scenario" = external ] && [[ "$(bin/kvstore -h 2>&1)" != *" -etcd "* ]]; then
    fail "examples/kvstore has no -etcd flag, so it cannot use an external etcd"
    return 1
  fi
  check "compose up --build (images FROM scratch)" up || return 1
  echo "  subnet $CK_NET.0/24"

  step=$(date +%s%N)
  check "every node ready" wait_for 90 eval 'ready node-1 && ready node-2 && ready node-3' || return 1
  check "every node's /cluster settled on one sound map with 3 members" wait_for 90 settled "${nodes[@]}" ||
    { show_views "${nodes[@]}"; return 1; }

  step=$(date +%s%N)
  check "100 writes through node-1 acknowledged" put_keys node-1 1 100
  check "all 100 keys read back through every node" read_everywhere 1 100 "${nodes[@]}"
  check "node-1's API answers on its published loopback port" read_published

  step=$(date +%s%N)
  local net
  net=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$(cid node-3)")
  docker network disconnect "$net" "$(cid node-3)"
  echo "  cut node-3 off network $net"
  check "node-1 and node-2 drop node-3 (lease TTL 5 s)" \
    wait_for 60 eval 'members_are node-1 node-1 node-2 && members_are node-2 node-1 node-2' ||
    show_views node-1 node-2
  check "node-1 and node-2 settle on one sound map without node-3" wait_for 60 settled node-1 node-2 ||
    show_views node-1 node-2
  step=$(date +%s%N)
  check "during the partition: all 100 keys readable through node-1 and node-2" read_everywhere 1 100 node-1 node-2
  check "during the partition: 10 new writes through node-2 acknowledged" put_keys node-2 101 110

  step=$(date +%s%N)
  docker network connect --ip "$(ip node-3)" "$net" "$(cid node-3)"
  echo "  reconnected node-3"
  check "node-3 rejoins and all 3 settle on one sound map" wait_for 120 settled "${nodes[@]}" ||
    show_views "${nodes[@]}"
  step=$(date +%s%N)
  check "after healing: all 110 keys read back through every node" read_everywhere 1 110 "${nodes[@]}"

  step=$(date +%s%N)
  local old
  old=$(incarnation node-1 node-2)
  local restarted=(node-2)
  [ "$scenario" = external ] && restarted+=(etcd-2)
  for t in "${restarted[@]}"; do
    check "docker restart $t: same arguments and volume" restart_same "$t"
  done
  check "node-2 ready again, registered anew, and all 3 settle on one sound map" \
    wait_for 90 eval 'ready node-2 && reincarnated node-2 "$old" "${nodes[@]}" && settled "${nodes[@]}"' ||
    show_views "${nodes[@]}"
  step=$(date +%s%N)
  check "after the restart: all 110 keys read back through every node" read_everywhere 1 110 "${nodes[@]}"
  check "no container was restarted by Docker (no crash)" never_restarted_by_docker

  step=$(date +%s%N)
  local c1 before
  c1=$(cid node-1)
  before=$(identity node-1)
  old=$(incarnation node-2 node-1)
  kill -KILL "$(docker inspect -f '{{.State.Pid}}' "$c1")" # a crash: docker kill would count as a manual stop
  echo "  killed node-1's process (SIGKILL)"
  check "Docker restarts the crashed node-1 (restart: unless-stopped)" \
    wait_for 30 eval '[ "$(docker inspect -f "{{.State.Running}} {{.RestartCount}}" "$c1")" = "true 1" ]'
  check "node-1 came back with the same arguments and volume" [ "$(identity node-1)" = "$before" ]
  check "node-1 ready again, registered anew, and all 3 settle on one sound map" \
    wait_for 90 eval 'ready node-1 && reincarnated node-1 "$old" "${nodes[@]}" && settled "${nodes[@]}"' ||
    show_views "${nodes[@]}"
  step=$(date +%s%N)
  check "after the crash: all 110 keys read back through every node" read_everywhere 1 110 "${nodes[@]}"
}

(cd .. && bash deploy/build.sh) >"$work/build.log" 2>&1 || { cat "$work/build.log"; echo "deploy: 0 passed, 1 failed"; exit 1; }
for s in "${scenarios[@]}"; do
  case $s in
  embedded | external) ;;
  *) echo "unknown scenario $s (embedded or external)"; exit 2 ;;
  esac
  failed_before=$failed
  s_began=$(date +%s%N)
  run_scenario "$s"
  [ "$failed" -eq "$failed_before" ] || dump_logs
  step=$(date +%s%N)
  cleanup_project
  echo "== $s: $(ms_since "$s_began") ms including cleanup"
done
echo "deploy: $passed passed, $failed failed ($(ms_since "$began") ms)"
[ "$failed" -eq 0 ]
