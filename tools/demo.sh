#!/usr/bin/env bash
# The main job: installs what hafs needs, builds it, and shows the HA promise end to end on this
# machine: a two-node hafs pair (`hafsctl cluster up`, each node in a network namespace of its
# own where namespaces can be made) mirroring each other's NV log over libfabric (tcp), a
# workload of checksummed O_DSYNC writes on node 1, node 1 killed with SIGKILL mid-stream, node 2
# taking vol1 over by itself (lease expiry, epoch + 1, replay of its mirror of node 1's log, then
# serving), a check that every write node 1 acknowledged is there, node 1's return
# (`hafsctl cluster restart-node`) and the giveback of vol1. `hafsctl cluster down` removes the
# pair at the end, also when the demo fails or is interrupted.
# HAFS_BUILD_DIR (default build) is the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup-deps.sh
build=${HAFS_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DHAFS_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target hafsd hafsctl hafs-ackcheck >/dev/null

bin=$build/tools
work=$(mktemp -d /tmp/hafs-demo.XXXXXX)  # the demo's own files (acks, verify output)
cl=$work/cluster                         # the pair: medium (the "SAN"), node dirs, logs, cluster.json
workload=
cleanup() {
  [ -n "$workload" ] && kill -9 "$workload" 2>/dev/null || true
  $bin/hafsctl cluster down --dir "$cl" --purge >/dev/null || echo "cleanup: hafsctl cluster down --dir $cl failed"
  grep -q " $work/" /proc/mounts || rm -rf "$work"
}
trap cleanup EXIT

wait_for() {  # wait_for SECONDS CMD...: until CMD succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { echo "timed out waiting for: $*"; tail -20 "$cl"/node*/hafsd.log; exit 1; }
    sleep 0.1
  done
}
indent() { sed 's/^/   /'; }
status() { $bin/hafsctl --socket "$cl/node$1/control.sock" status | indent; }
node_pid() { $bin/hafsctl cluster status --dir "$cl" | awk -v n="$1:" '$1 == "node" && $2 == n { print $4 }'; }
log() { echo "$cl/node$1/hafsd.log"; }

echo "== start a two-node pair: node 1 serves vol1, node 2 serves vol2; each mirrors its NV log into the other"
echo "   (destage is held back for 60 s, so what a node acknowledges lives only in the two NV logs)"
up=(--dir "$cl" --set nvlog.destage_interval_ms=60000)
if $bin/hafsctl cluster up --netns "${up[@]}" >"$work/up.out" 2>&1; then
  indent <"$work/up.out"
else
  grep -h "hafsctl:" "$work/up.out" | indent
  echo "   the pair could not start in network namespaces (above): running both nodes on loopback instead"
  $bin/hafsctl cluster down --dir "$cl" --purge >/dev/null
  $bin/hafsctl cluster up "${up[@]}" | indent
fi
pid1=$(node_pid 1)
status 1

echo "== workload: checksummed 4 KiB O_DSYNC writes to vol1 on node 1; every acknowledged write is recorded"
$bin/hafs-ackcheck write --dir "$cl/node1/mnt/vol1" --files 4 --blocks 512 --seconds 60 \
  >"$work/acks" 2>"$work/workload.err" &
workload=$!
wait_for 20 test -s "$work/acks"
sleep 2
echo "== kill -9 node 1 (pid $pid1) in the middle of the workload"
kill -9 "$pid1"
killed_at=$(date +%s%N)
wait "$workload" 2>/dev/null || true
workload=
acked=$(grep -c '^ack' "$work/acks" || true)
echo "   node 1 acknowledged $acked writes before it died ($(head -1 "$work/workload.err"))"
echo "   on the storage medium at that moment: $($bin/hafs-ackcheck verify --dir "$cl/medium/vol1" --acks "$work/acks" | tail -1 || true)"

echo "== node 2 notices (interconnect and disk heartbeat silent), waits out node 1's lease, raises"
echo "   vol1's epoch, replays its mirror of node 1's NV log onto the medium, then serves vol1"
wait_for 60 test -d "$cl/node2/mnt/vol1"
served_at=$(date +%s%N)
echo "   vol1 served by node 2 $(( (served_at - killed_at) / 1000000 )) ms after the kill"
grep -h "leases expired\|vol1 taken over at epoch" "$(log 2)" | indent
status 2

echo "== check every write node 1 acknowledged: through node 2's mount, and on the storage medium"
failed=0
for where in "$cl/node2/mnt/vol1" "$cl/medium/vol1"; do
  if $bin/hafs-ackcheck verify --dir "$where" --acks "$work/acks" >"$work/verify"; then
    echo "   $where: $(tail -1 "$work/verify")"
  else
    grep -v '^ack' "$work/verify" | head -10; failed=1
  fi
done

echo "== node 1 returns (hafsctl cluster restart-node 1): it finds vol1 owned by node 2, drops its own"
echo "   stale records of it, resyncs"
$bin/hafsctl cluster restart-node 1 --dir "$cl" | indent
wait_for 30 grep -q "discarded this node's stale records of volume vol1" "$(log 1)"
wait_for 60 sh -c "$bin/hafsctl --socket '$cl/node2/control.sock' status | grep -q '): NORMAL'"
echo "== giveback: node 2 destages vol1 and hands it back; node 1 serves it at the next epoch"
$bin/hafsctl --socket "$cl/node2/control.sock" giveback vol1 >/dev/null
wait_for 60 test -d "$cl/node1/mnt/vol1"
status 1
if $bin/hafs-ackcheck verify --dir "$cl/node1/mnt/vol1" --acks "$work/acks" >"$work/verify"; then
  echo "   back on node 1: $(tail -1 "$work/verify")"
else
  grep -v '^ack' "$work/verify" | head -10; failed=1
fi
$bin/hafsctl cluster status --dir "$cl" | indent

echo "== hafsctl cluster down: stop both nodes, remove the namespaces, stores, mounts and the medium"
$bin/hafsctl cluster down --dir "$cl" --purge | indent
if [ "$failed" = 0 ]; then
  echo "RESULT: OK: all $acked writes node 1 acknowledged before it was killed survived the automatic takeover by node 2 and the giveback"
else
  echo "RESULT: FAILED: an acknowledged write is missing"
  exit 1
fi
