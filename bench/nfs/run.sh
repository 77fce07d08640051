#!/usr/bin/env bash
# NFS end to end: ganesha (tools/hafs-nfs.sh, NFSv3) over a plain ext4 directory vs over a
# staged hafs mount (one node) vs over a mirrored one (node 1 of a pair), 4 KiB random writes with bench/nfs/nfs_load: stable (FILE_SYNC) and
# unstable + COMMIT, QD1 and QD16. Figures and the machine: docs/performance.md, "NFS".
#
#   bench/nfs/run.sh [--build DIR] [--seconds N] [--size-mib N] [--reps N] [--work-parent DIR]
#
# Runs in a private network namespace (re-executes itself under `unshare --net`), so its ports
# and rpcbind never meet the host's. Needs root; removes its work directory, mounts and
# processes on exit, also on failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$repo/build-nfs seconds=10 size_mib=256 reps=1 work_parent=/var/tmp
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$(realpath "$2"); shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --size-mib) size_mib=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --work-parent) work_parent=$2; shift 2 ;;
    *) echo "usage: run.sh [--build DIR] [--seconds N] [--size-mib N] [--reps N] [--work-parent DIR]" >&2; exit 2 ;;
  esac
done
hafsd=$build/tools/hafsd load=$build/bench/nfs/nfs_load nfs=$repo/tools/hafs-nfs.sh
for f in "$hafsd" "$load"; do [ -x "$f" ] || { echo "run.sh: $f missing (build hafsd and nfs_load)" >&2; exit 1; }; done
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root" >&2; exit 1; }

if [ -z "${HAFS_NFS_BENCH_NETNS:-}" ]; then
  exec unshare --net env HAFS_NFS_BENCH_NETNS=1 "$0" --build "$build" --seconds "$seconds" \
    --size-mib "$size_mib" --reps "$reps" --work-parent "$work_parent"
fi
ip link set lo up

work=$(mktemp -d "$work_parent/hafs-nfs-bench.XXXXXX")
shm=/dev/shm/$(basename "$work")
hafsd_pids=()
stop_hafsd() {  # node 1 first: it destages while node 2 still mirrors it
  local pid
  for pid in "${hafsd_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  hafsd_pids=()
  local m
  for m in "$work"/mnt*; do mountpoint -q "$m" && fusermount3 -uz "$m"; done
  rm -f "$shm".*
}
cleanup() {
  "$nfs" down --dir "$work/ganesha" >/dev/null 2>&1 || true
  stop_hafsd
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/ext4/vol1"

# hafsd node N serving volN (staged, 1 GiB NV log on /dev/shm); with a partner port, one node of
# a mirrored pair (cf. bench/fio/run.sh): its NV log is mirrored into the other node over
# libfabric tcp on loopback before every write is acknowledged.
start_node() {  # node [my_port partner_port]
  local n=$1 args=()
  mkdir -p "$work/mnt$n" "$work/media/vol$n"
  if [ $# -eq 3 ]; then
    args=(--set "interconnect.partner_node_id=$((3 - n))" --set "interconnect.listen=\"127.0.0.1:$2\""
          --set "interconnect.partner=\"127.0.0.1:$3\"" --set 'interconnect.key="hafs-nfs-bench"'
          --set "interconnect.mirror_path=\"$shm.$n.mirror\"")
  fi
  "$hafsd" --node-id "$n" --mount "$work/mnt$n" --nvlog "$shm.$n.nvlog" --nvlog-size 1GiB --nvlog-mode pmem \
    --volume "vol$n:$n:$work/media/vol$n:staged" --log-level info \
    --set "control_socket=\"$work/control$n.sock\"" "${args[@]}" >"$work/hafsd$n.log" 2>&1 &
  hafsd_pids+=($!)
}
wait_node() {  # node [mirrored]: mounted, and for a pair node, mirroring
  local n=$1 i
  for ((i = 0; i < 600; i++)); do
    if mountpoint -q "$work/mnt$n" && { [ $# -eq 1 ] || grep -q -- "-> mirroring" "$work/hafsd$n.log"; }; then
      return 0
    fi
    sleep 0.1
  done
  cat "$work/hafsd$n.log" >&2
  echo "run.sh: hafsd node $n did not start" >&2
  exit 1
}

start_target() {  # prints the directory to export
  case "$1" in
    ext4) echo "$work/ext4" ;;
    staged) start_node 1; wait_node 1; echo "$work/mnt1" ;;
    mirrored)
      start_node 1 17001 17002; start_node 2 17002 17001
      wait_node 1 mirrored; wait_node 2 mirrored; echo "$work/mnt1" ;;
  esac
}

# One target at a time, interleaved per repetition; the same ports and ganesha settings (the
# script's template) for all.
url="nfs://127.0.0.1/vol1?version=3&nfsport=2049&mountport=20048"
echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg), ${seconds}s per run, ${size_mib} MiB file, NFSv3"
for rep in $(seq "$reps"); do
  for target in ext4 staged mirrored; do
    export_dir=$(start_target "$target")
    extra=()
    [ "$target" = ext4 ] && extra=(--baseline)
    "$nfs" up --dir "$work/ganesha" --mount "$export_dir" --port 2049 --mount-port 20048 "${extra[@]}" >/dev/null
    "$load" --url "$url" --size-mib "$size_mib" --seconds 1 --prefill >/dev/null
    for mode in stable unstable; do
      for qd in 1 16; do
        flag=()
        [ "$mode" = unstable ] && flag=(--unstable)
        printf '%-8s rep=%s ' "$target" "$rep"
        "$load" --url "$url" --size-mib "$size_mib" --seconds "$seconds" --qd "$qd" "${flag[@]}"
      done
    done
    "$nfs" down --dir "$work/ganesha" >/dev/null
    stop_hafsd
    rm -rf "${work:?}/ext4/vol1/"* "${work:?}/media"
  done
done
