#!/usr/bin/env bash
# Metadata benchmark (docs/performance.md, "Metadata"): untar of a source tree + sync, rm -rf +
# sync, and creates per second with one writer, on ext4 and on hafs mirrored pairs side by side.
#
# Targets, each over a directory of the same ext4 filesystem (the work directory):
#   ext4     the directory itself: the baseline hafs runs over
#   logged   node 1's vol1 of a two-node pair (`hafsctl cluster up`), metadata logged in the NV
#            log (fs.sync_metadata = false, the default)
#   synced   the same pair type with fs.sync_metadata = true: every metadata operation synced
#   floor    bench/fuse_floor (a minimal FUSE passthrough, one system call per request) over a
#            directory of the same filesystem: what FUSE alone costs these steps on this machine
# The source tree is a tar of parts of /usr/include (linux, c++, x86_64-linux-gnu, boost/spirit,
# boost/mpl, boost/asio where present), made once in the work directory. Each repetition runs
# every target in turn (interleaved), each step timed wall-clock:
#   untar   tar -xf TREE.tar -C DIR && sync -f DIR
#   rmrf    rm -rf DIR/* && sync -f DIR
#   creates 5,000 open(O_CREAT|O_EXCL) + close of empty files by one writer (python): the loop
#           alone, timed by the writer (issue 14's creates/s goal), then sync -f and rm -rf untimed
# CPU: user + system time of both hafsd of the pair (of fuse_floor for the floor) from
# /proc/PID/stat over each step.
# Prints medians, per-repetition ratios to ext4 and their medians.
#
# Needs root (FUSE mounts), python3 and a built hafsctl/hafsd (--build-dir, default build).
# Starts and stops its own clusters, also on failure.
#
# Usage: bench/meta/run.sh [--build-dir DIR] [--work-parent DIR] [--reps N] [--targets "ext4 floor logged synced"]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build_dir="$repo/build"
work_parent=/var/tmp
reps=5
targets="ext4 floor logged synced"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --work-parent) work_parent=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --targets) targets=$2; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
log() { echo "[$(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root"
hafsctl="$build_dir/tools/hafsctl"
[[ -x "$hafsctl" ]] || die "no hafsctl at $hafsctl (build first)"

work=$(mktemp -d "$work_parent/hafs-meta-bench.XXXXXX")
declare -A dir_of cluster_of
floor_pid=
cleanup() {
  for t in "${!cluster_of[@]}"; do "$hafsctl" cluster down --dir "${cluster_of[$t]}" --purge >/dev/null 2>&1 || true; done
  if [[ -n $floor_pid ]]; then
    kill "$floor_pid" 2>/dev/null || true
    wait "$floor_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

tree="$work/tree.tar"
parts=()
for p in linux c++ x86_64-linux-gnu boost/spirit boost/mpl boost/asio; do
  [[ -e /usr/include/$p ]] && parts+=("$p")
done
tar -cf "$tree" -C /usr/include "${parts[@]}"
entries=$(tar -tf "$tree" | wc -l)
log "tree: ${parts[*]}: $entries entries, $(du -m "$tree" | cut -f1) MiB; work directory $work ($(stat -f -c %T "$work"))"

for t in $targets; do
  case "$t" in
    ext4) dir_of[$t]="$work/ext4"; mkdir -p "${dir_of[$t]}" ;;
    floor)
      [[ -x "$build_dir/bench/fuse_floor" ]] || die "no fuse_floor in $build_dir/bench (build first)"
      mkdir -p "$work/floor-backing" "$work/floor"
      "$build_dir/bench/fuse_floor" "$work/floor-backing" "$work/floor" &
      floor_pid=$!
      for _ in $(seq 100); do mountpoint -q "$work/floor" && break; sleep 0.1; done
      mountpoint -q "$work/floor" || die "fuse_floor did not mount"
      dir_of[$t]="$work/floor" ;;
    logged|synced)
      sync_md=false; [[ $t == synced ]] && sync_md=true
      cluster_of[$t]="$work/cluster-$t"
      "$hafsctl" cluster up --dir "${cluster_of[$t]}" --set "fs.sync_metadata=$sync_md" >/dev/null 2>&1 ||
        die "cluster up for $t failed"
      dir_of[$t]="${cluster_of[$t]}/node1/mnt/vol1" ;;
    *) die "unknown target $t" ;;
  esac
done

pids_of() {
  if [[ $1 == floor ]]; then echo "$floor_pid"; return 0; fi
  [[ -n "${cluster_of[$1]:-}" ]] || return 0
  python3 -c "import json,sys; print(' '.join(str(n['pid']) for n in json.load(open(sys.argv[1]))['nodes']))" \
    "${cluster_of[$1]}/cluster.json" 2>/dev/null || true
}
cpu_ticks() {
  local sum=0 p
  for p in $(pids_of "$1"); do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$sum"
}
creates() {  # dir; prints the nanoseconds the loop took
  python3 - "$1" <<'PY'
import os, sys, time
d = os.path.join(sys.argv[1], "creates")
os.mkdir(d)
t0 = time.monotonic_ns()
for i in range(5000):
    os.close(os.open(os.path.join(d, "f%05d" % i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
print(time.monotonic_ns() - t0)
PY
}
step() {  # target step
  local d=${dir_of[$1]}
  case "$2" in
    untar) tar -xf "$tree" -C "$d" && sync -f "$d" ;;
    rmrf) rm -rf "$d"/* && sync -f "$d" ;;
  esac
}

results="$work/results.txt"
: >"$results"
for ((rep = 1; rep <= reps; rep++)); do
  for s in untar rmrf creates; do
    for t in $targets; do
      c0=$(cpu_ticks "$t"); t0=$(date +%s%N)
      if [[ $s == creates ]]; then
        # Only the loop is timed (by the writer); the sync and the clean-up after it are not.
        d=${dir_of[$t]}; ns=$(creates "$d"); c1=$(cpu_ticks "$t"); t1=$((t0 + ns))
        sync -f "$d"; rm -rf "$d/creates"; sync -f "$d"
      else
        step "$t" "$s"; t1=$(date +%s%N); c1=$(cpu_ticks "$t")
      fi
      echo "$rep $s $t $(( (t1 - t0) / 1000 )) $((c1 - c0))" >>"$results"
      log "rep $rep $s $t: $(( (t1 - t0) / 1000000 )) ms"
    done
  done
done

python3 - "$results" "$entries" "$targets" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
entries, targets, hz = int(sys.argv[2]), sys.argv[3].split(), int(sys.argv[4])
res = {}
for rep, step, t, us, ticks in rows:
    res.setdefault((step, t), []).append((int(rep), int(us), int(ticks)))
med = statistics.median
print(f"\n| step | target | median | each repetition | daemon CPU (both nodes; the floor's), median |")
print("|---|---|---|---|---|")
for step in ("untar", "rmrf", "creates"):
    for t in targets:
        xs = sorted(res[(step, t)])
        wall = med([x[1] for x in xs]) / 1e6
        each = ", ".join(f"{x[1] / 1e6:.2f}" for x in xs)
        cpu = "" if t == "ext4" else f"{med([x[2] for x in xs]) / hz:.2f} s"
        extra = f" ({5000 / wall / 1e3:.1f} k creates/s)" if step == "creates" else ""
        print(f"| {step} | {t} | {wall:.2f} s{extra} | {each} | {cpu} |")
print("\n| ratio | median | each repetition |")
print("|---|---|---|")
for step in ("untar", "rmrf", "creates"):
    for t in targets:
        if t == "ext4" or "ext4" not in targets:
            continue
        a = {x[0]: x[1] for x in res[(step, t)]}
        b = {x[0]: x[1] for x in res[(step, "ext4")]}
        r = [a[k] / b[k] for k in sorted(a)]
        print(f"| {step} {t} / ext4 | {med(r):.2f}x | {', '.join(f'{x:.2f}' for x in r)} |")
for step in ("untar", "rmrf", "creates"):
    for t in targets:
        if t in ("ext4", "floor") or "floor" not in targets:
            continue
        a = {x[0]: x[1] for x in res[(step, t)]}
        b = {x[0]: x[1] for x in res[(step, "floor")]}
        r = [a[k] / b[k] for k in sorted(a)]
        print(f"| {step} {t} / floor | {med(r):.2f}x | {', '.join(f'{x:.2f}' for x in r)} |")
PY
