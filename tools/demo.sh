#!/usr/bin/env bash
# The main job: installs what hafs needs, builds it, and shows the HA promise end to end on this
# machine: a two-node hafs pair mirroring each other's NV log over libfabric (tcp), a workload
# of checksummed O_DSYNC writes on node 1, node 1 killed with SIGKILL mid-stream, node 2 taking
# vol1 over by itself (lease expiry, epoch + 1, replay of its mirror of node 1's log, then
# serving), a check that every write node 1 acknowledged is there, node 1's return and the
# giveback of vol1.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup-deps.sh
cmake -S . -B build -G Ninja -DHAFS_WERROR=ON >/dev/null
cmake --build build -j "$(nproc)" --target hafsd hafsctl hafs-ackcheck >/dev/null

bin=build/tools
work=$(mktemp -d /tmp/hafs-demo.XXXXXX)      # volumes on the root filesystem (the "SAN")
shm=/dev/shm/$(basename "$work")             # NV logs and mirrors: emulated NVRAM
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for m in "$work"/node*/mnt; do mountpoint -q "$m" && fusermount3 -uz "$m" 2>/dev/null || true; done
  rm -rf "$work" "$shm"-*
}
trap cleanup EXIT

free_port() {  # the first port from $1 upwards that nothing listens on
  local p=$1
  while ss -ltnH "sport = :$p" 2>/dev/null | grep -q .; do p=$((p + 1)); done
  echo "$p"
}
port1=$(free_port 7401)
port2=$(free_port $((port1 + 1)))

start_node() {  # start_node N MY_PORT PARTNER_PORT
  local n=$1
  mkdir -p "$work/node$n/mnt" "$work/medium/vol1" "$work/medium/vol2" "$work/medium/.membership"
  $bin/hafsd --node-id "$n" --mount "$work/node$n/mnt" \
    --nvlog "$shm-node$n.nvlog" --nvlog-size 256MiB \
    --volume "vol1:1:$work/medium/vol1:staged:1" --volume "vol2:2:$work/medium/vol2:staged:2" \
    --set membership.dir="\"$work/medium/.membership\"" \
    --set control_socket="\"$work/node$n.sock\"" \
    --set nvlog.destage_interval_ms=60000 \
    --set interconnect.partner_node_id=$((3 - n)) \
    --set interconnect.listen="127.0.0.1:$2" --set interconnect.partner="127.0.0.1:$3" \
    --set interconnect.key=hafs-demo-key --set interconnect.mirror_path="$shm-node$n.mirror" \
    >>"$work/node$n.log" 2>&1 &
  pids+=($!)
  eval "pid$n=$!"
}
wait_for() {  # wait_for SECONDS CMD...: until CMD succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { echo "timed out waiting for: $*"; tail -20 "$work"/node*.log; exit 1; }
    sleep 0.1
  done
}

status() { $bin/hafsctl --socket "$work/node$1.sock" status | sed 's/^/   /'; }

echo "== start a two-node pair: node 1 serves vol1, node 2 serves vol2; each mirrors its NV log into the other"
start_node 1 "$port1" "$port2"
start_node 2 "$port2" "$port1"
wait_for 30 test -d "$work/node1/mnt/vol1"
wait_for 30 test -d "$work/node2/mnt/vol2"
wait_for 30 grep -q -- "-> mirroring" "$work/node1.log"
status 1

echo "== workload: checksummed 4 KiB O_DSYNC writes to vol1 on node 1; every acknowledged write is recorded"
echo "   (destage is held back for 60 s, so what node 1 acknowledges lives only in the two NV logs)"
$bin/hafs-ackcheck write --dir "$work/node1/mnt/vol1" --files 4 --blocks 512 --seconds 60 \
  >"$work/acks" 2>"$work/workload.err" &
workload=$!
wait_for 20 test -s "$work/acks"
sleep 2
echo "== kill -9 node 1 in the middle of the workload"
kill -9 "$pid1"
killed_at=$(date +%s%N)
wait "$pid1" 2>/dev/null || true
wait "$workload" 2>/dev/null || true
fusermount3 -uz "$work/node1/mnt" 2>/dev/null || true
acked=$(grep -c '^ack' "$work/acks" || true)
echo "   node 1 acknowledged $acked writes before it died ($(head -1 "$work/workload.err"))"
echo "   on the storage medium at that moment: $($bin/hafs-ackcheck verify --dir "$work/medium/vol1" --acks "$work/acks" | tail -1 || true)"

echo "== node 2 notices (interconnect and disk heartbeat silent), waits out node 1's lease, raises"
echo "   vol1's epoch, replays its mirror of node 1's NV log onto the medium, then serves vol1"
wait_for 60 test -d "$work/node2/mnt/vol1"
served_at=$(date +%s%N)
echo "   vol1 served by node 2 $(( (served_at - killed_at) / 1000000 )) ms after the kill"
grep -h "leases expired\|vol1 taken over at epoch" "$work/node2.log" | sed 's/^/   /'
status 2

echo "== check every write node 1 acknowledged: through node 2's mount, and on the storage medium"
failed=0
for where in "$work/node2/mnt/vol1" "$work/medium/vol1"; do
  if $bin/hafs-ackcheck verify --dir "$where" --acks "$work/acks" >"$work/verify"; then
    echo "   $where: $(tail -1 "$work/verify")"
  else
    grep -v '^ack' "$work/verify" | head -10; failed=1
  fi
done

echo "== node 1 returns: it finds vol1 owned by node 2, drops its own stale records of it, resyncs"
start_node 1 "$port1" "$port2"
wait_for 30 grep -q "discarded this node's stale records of volume vol1" "$work/node1.log"
wait_for 60 sh -c "$bin/hafsctl --socket '$work/node2.sock' status | grep -q '): NORMAL'"
echo "== giveback: node 2 destages vol1 and hands it back; node 1 serves it at the next epoch"
$bin/hafsctl --socket "$work/node2.sock" giveback vol1 >/dev/null
wait_for 60 test -d "$work/node1/mnt/vol1"
status 1
if $bin/hafs-ackcheck verify --dir "$work/node1/mnt/vol1" --acks "$work/acks" >"$work/verify"; then
  echo "   back on node 1: $(tail -1 "$work/verify")"
else
  grep -v '^ack' "$work/verify" | head -10; failed=1
fi

if [ "$failed" = 0 ]; then
  echo "RESULT: OK: all $acked writes node 1 acknowledged before it was killed survived the automatic takeover by node 2 and the giveback"
else
  echo "RESULT: FAILED: an acknowledged write is missing"
  exit 1
fi
