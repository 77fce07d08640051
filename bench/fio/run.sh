#!/usr/bin/env bash
# End-to-end fio benchmarks of the hafs FUSE mount (docs/performance.md, "End to end (fio)").
#
# Targets, each over a directory of the same ext4 filesystem:
#   ext4    the directory itself (the baseline: what hafs runs over)
#   floor   bench/fuse_floor.cc, a minimal FUSE passthrough with hafsd's session settings over a
#           tmpfs directory: the cost of FUSE alone
# A target may be varied, so that variants run side by side: NAME-base runs the hafsd given with
# --base-hafsd (an older build: before/after in one run), and NAME@KEY=VAL,KEY=VAL passes those
# settings to hafsd with --set (e.g. mirrored@interconnect.busy_poll_us=200, on both nodes).
#   wt      hafsd, one write-through volume over an ext4 directory
#   staged  hafsd, one staged volume over an ext4 directory, NV log on /dev/shm (pmem store)
#   mirrored  the same as staged, but on node 1 of a real two-node pair: two hafsd (node 1 serving
#           vol1, node 2 serving vol2, no [membership]) mirror each other's NV log over libfabric
#           (tcp, loopback); fio runs on node 1's mount, so every staged write is also acknowledged
#           by node 2's mirror before it returns
# Jobs (this directory): w1 (4 KiB randwrite QD1, fsync after each write), w2 (4 KiB randwrite,
# O_DSYNC, 4 jobs), w3 (1 MiB sequential write, fsync at the end), w4 (4 KiB randread QD1,
# O_DIRECT). Files are laid out once per target with prefill.fio, so the jobs measure steady
# state (overwrites of allocated blocks).
#
# Each job runs --reps times, interleaving the targets (ext4 wt staged mirrored ext4 ...), so
# that ratios compare runs taken side by side; the table shows medians of the repetitions and
# the ratios are medians of the per-repetition ratios. CPU: the user + system time of the
# target's daemons (both hafsd of the mirrored pair; fuse_floor), from /proc/PID/stat, while fio
# ran ("during", per operation and in cores) and until they were idle again (the destage of what
# the job staged, "after"); and once per target, over 5 s with nothing to do ("idle").
#
# This script starts and stops hafsd itself and removes everything it created (mounts, NV log
# and mirror files in /dev/shm, its work directory), also on failure or Ctrl-C. It needs root (FUSE
# mounts), fio and python3. It builds only the hafsd and fuse_floor targets, and only if one is
# missing.
#
# Usage: bench/fio/run.sh [--build-dir DIR] [--work-parent DIR] [--reps N] [--jobs "w1 w2 w3 w4"]
#                         [--targets "ext4 floor wt staged mirrored"] [--nvlog-size SIZE]
#                         [--results DIR] [--base-hafsd PATH]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build_dir="$repo/build-fio"
work_parent=/var/tmp
reps=3
jobs="w1 w2 w3 w4"
targets="ext4 floor wt staged mirrored"
nvlog_size=1GiB
results_dir=""
base_hafsd=""

usage() { sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --work-parent) work_parent=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --targets) targets=$2; shift 2 ;;
    --nvlog-size) nvlog_size=$2; shift 2 ;;
    --results) results_dir=$2; shift 2 ;;
    --base-hafsd) base_hafsd=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage 2 ;;
  esac
done

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in fio python3 mountpoint fusermount3 ss; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
[[ $(id -u) -eq 0 ]] || die "run as root (hafsd mounts FUSE and serves as root)"

# --- hafsd binary ------------------------------------------------------------------------
hafsd="$build_dir/tools/hafsd"
floor="$build_dir/bench/fuse_floor"
if [[ ! -x "$hafsd" || ! -x "$floor" ]]; then
  log "building hafsd and fuse_floor in $build_dir (Release)"
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S "$repo" -B "$build_dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DHAFS_BUILD_BENCH=ON >&2
  cmake --build "$build_dir" --target hafsd fuse_floor -j2 >&2
fi
[[ -x "$hafsd" ]] || die "no hafsd at $hafsd"
[[ -x "$floor" ]] || die "no fuse_floor at $floor"
[[ -z "$base_hafsd" || -x "$base_hafsd" ]] || die "no hafsd at $base_hafsd (--base-hafsd)"

# Target variants: the kind (ext4 floor wt staged mirrored), the binary, the extra settings.
kind_of() { local k=${1%%@*}; echo "${k%-base}"; }
hafsd_of() {
  local k=${1%%@*}
  if [[ $k == *-base ]]; then [[ -n "$base_hafsd" ]] || die "target $1 needs --base-hafsd"; echo "$base_hafsd"
  else echo "$hafsd"; fi
}
sets_of() {  # the --set arguments of a target, one per line
  [[ $1 == *@* ]] || return 0
  local kv
  for kv in $(tr ',' ' ' <<<"${1#*@}"); do printf -- '--set\n%s\n' "$kv"; done
}

# --- work area and cleanup ---------------------------------------------------------------
work=$(mktemp -d "$work_parent/hafs-fio.XXXXXX")
fstype=$(stat -f -c %T "$work")
case "$fstype" in
  ext2/ext3) ;;  # what stat reports for ext4
  *) rmdir "$work"; die "$work_parent is on '$fstype', not ext4 (use --work-parent)" ;;
esac
shm_prefix="/dev/shm/hafs-fio-$$"
declare -A pid_of=() mnt_of=() vol_of=() dir_of=() peer_of=()
mkdir -p "$work/json" "$work/logs"

stop_hafsd() {  # target
  local t=$1 pid=${pid_of[$1]:-}
  if [[ -n "$pid" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 600; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "hafsd ($t, pid $pid) did not stop in 60 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || log "hafsd ($t) exited with status $?"
    pid_of[$t]=""
  fi
  if [[ -n "${mnt_of[$t]:-}" ]] && mountpoint -q "${mnt_of[$t]}"; then
    fusermount3 -uz "${mnt_of[$t]}" 2>/dev/null || umount -l "${mnt_of[$t]}" || true
  fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for t in "${!pid_of[@]}"; do stop_hafsd "$t"; done
  for t in "${!mnt_of[@]}"; do
    mountpoint -q "${mnt_of[$t]}" 2>/dev/null && { fusermount3 -uz "${mnt_of[$t]}" || umount -l "${mnt_of[$t]}" || true; }
  done
  if [[ -n "$results_dir" && -d "$work/json" ]]; then
    mkdir -p "$results_dir" && cp -r "$work/json" "$work/logs" "$results_dir/" || true
  fi
  rm -rf "$work" "$shm_prefix.floor"
  rm -f "$shm_prefix".*.nvlog "$shm_prefix".*.mirror
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_hafsd() {  # target mode node_id nvlog_size
  local t=$1 mode=$2 node=$3 size=$4
  local mnt="$work/$t/mnt" vol="$work/$t/vol" extra
  mapfile -t extra < <(sets_of "$t")
  mkdir -p "$mnt" "$vol"
  mnt_of[$t]=$mnt; vol_of[$t]=$vol; dir_of[$t]="$mnt/bench"
  "$(hafsd_of "$t")" --node-id "$node" --mount "$mnt" --nvlog "$shm_prefix.$t.nvlog" --nvlog-size "$size" \
    --nvlog-mode pmem --volume "bench:1:$vol:$mode" --log-level info "${extra[@]}" \
    >>"$work/logs/hafsd-$t.log" 2>&1 &
  pid_of[$t]=$!
  local i
  for ((i = 0; i < 300; i++)); do
    mountpoint -q "$mnt" && return 0
    kill -0 "${pid_of[$t]}" 2>/dev/null || { cat "$work/logs/hafsd-$t.log" >&2; die "hafsd ($t) exited before mounting"; }
    sleep 0.1
  done
  cat "$work/logs/hafsd-$t.log" >&2
  die "hafsd ($t) did not mount within 30 s"
}

free_port() {  # the first TCP port from $1 upwards that nothing listens on
  local p=$1
  while ss -ltnH "sport = :$p" 2>/dev/null | grep -q .; do p=$((p + 1)); done
  echo "$p"
}

# One node of the mirrored pair (cf. tools/demo.sh): node N serves only its own volume volN
# (no [membership], so no takeover) and mirrors its NV log into the other node over libfabric
# tcp on loopback. The instance is named t (the target = node 1, where fio runs; TARGET-n2).
start_pair_node() {  # t node my_port partner_port nvlog_size
  local t=$1 n=$2 size=$5 g=${1%-n2} extra
  local mnt="$work/$g/mnt$n" vol="$work/$g/vol$n" log="$work/logs/hafsd-$t.log"
  mapfile -t extra < <(sets_of "$g")
  mkdir -p "$mnt" "$vol"
  mnt_of[$t]=$mnt; vol_of[$t]=$vol; dir_of[$t]="$mnt/vol$n"
  touch "$log"
  start_line_of[$t]=$(wc -l <"$log")
  "$(hafsd_of "$g")" --node-id "$n" --mount "$mnt" --nvlog "$shm_prefix.$t.nvlog" --nvlog-size "$size" \
    --nvlog-mode pmem --volume "vol$n:$n:$vol:staged" --log-level info "${extra[@]}" \
    --set interconnect.partner_node_id=$((3 - n)) \
    --set interconnect.listen="127.0.0.1:$3" --set interconnect.partner="127.0.0.1:$4" \
    --set interconnect.key=hafs-fio-key --set interconnect.mirror_path="$shm_prefix.$t.mirror" \
    --set control_socket="\"$work/$t.sock\"" \
    >>"$log" 2>&1 &
  pid_of[$t]=$!
}

wait_pair_node() {  # t: until it has mounted and mirrors into its partner
  local t=$1 log="$work/logs/hafsd-$1.log" i
  for ((i = 0; i < 600; i++)); do
    if mountpoint -q "${mnt_of[$t]}" &&
       tail -n +"$((start_line_of[$t] + 1))" "$log" | grep -q -- "-> mirroring"; then
      return 0
    fi
    kill -0 "${pid_of[$t]}" 2>/dev/null || { cat "$log" >&2; die "hafsd ($t) exited before serving"; }
    sleep 0.1
  done
  cat "$log" >&2
  die "hafsd ($t) did not mount and start mirroring within 60 s"
}

declare -A start_line_of=() port1_of=() port2_of=()
next_port=7601
start_mirrored() {  # target
  local t=$1
  if [[ -z "${port1_of[$t]:-}" ]]; then  # a pair of ports per target, kept across restarts
    port1_of[$t]=$(free_port "$next_port"); port2_of[$t]=$(free_port $((port1_of[$t] + 1)))
    next_port=$((port2_of[$t] + 1))
  fi
  peer_of[$t]=$t-n2
  start_pair_node "$t" 1 "${port1_of[$t]}" "${port2_of[$t]}" "$nvlog_size"
  start_pair_node "$t-n2" 2 "${port2_of[$t]}" "${port1_of[$t]}" "$nvlog_size"  # mirror size = ring size
  wait_pair_node "$t"
  wait_pair_node "$t-n2"
}

start_floor() {
  local mnt="$work/floor/mnt" i
  mkdir -p "$mnt" "$shm_prefix.floor"
  mnt_of[floor]=$mnt; dir_of[floor]=$mnt
  "$floor" "$shm_prefix.floor" "$mnt" >>"$work/logs/fuse_floor.log" 2>&1 &
  pid_of[floor]=$!
  for ((i = 0; i < 100; i++)); do
    mountpoint -q "$mnt" && return 0
    kill -0 "${pid_of[floor]}" 2>/dev/null || { cat "$work/logs/fuse_floor.log" >&2; die "fuse_floor exited before mounting"; }
    sleep 0.1
  done
  die "fuse_floor did not mount within 10 s"
}

start_target() {  # target
  case "$(kind_of "$1")" in
    ext4) mkdir -p "$work/ext4/dir"; dir_of[ext4]="$work/ext4/dir" ;;
    floor) start_floor ;;
    wt) start_hafsd "$1" write-through 1 64MiB ;;
    staged) start_hafsd "$1" staged 2 "$nvlog_size" ;;
    mirrored) start_mirrored "$1" ;;
    *) die "unknown target $1 (ext4, floor, wt, staged, mirrored)" ;;
  esac
}

stop_target() {  # target (node 1 first: it destages its log while node 2 still mirrors it)
  stop_hafsd "$1"
  [[ -n "${peer_of[$1]:-}" ]] && stop_hafsd "${peer_of[$1]}"
  return 0
}

# CPU time (user + system, clock ticks) the target's daemons have used so far; 0 for ext4.
pids_of() {  # target: its daemons' pids (a mirrored pair's two), none for ext4
  echo "${pid_of[$1]:-}" ${peer_of[$1]:+"${pid_of[${peer_of[$1]}]:-}"}
}
cpu_ticks() {  # target
  local sum=0 p
  for p in $(pids_of "$1"); do
    sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$sum"
}

# Waits until a target is idle before the next run: for hafsd, until its CPU time stops growing
# (the destager has written back what the last job staged; W3 leaves up to 1 GiB in the NV log),
# at most 120 s; then writes back the ext4 filesystem's dirty pages.
quiesce() {  # target
  local pids prev=-1 cur i calm=0
  pids=$(pids_of "$1")
  if [[ -n "${pids// /}" ]]; then
    for ((i = 0; i < 240 && calm < 2; i++)); do
      cur=$(cpu_ticks "$1")
      if (( cur - prev <= $(wc -w <<<"$pids") )); then calm=$((calm + 1)); else calm=0; fi
      prev=$cur
      sleep 0.5
    done
  fi
  sync -f "$work"
  sleep 0.5
}

# --- lay out the files, then start every target afresh -----------------------------------
log "work directory $work ($fstype); hafsd $hafsd; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in $targets; do
  start_target "$t"
  log "prefill $t (${dir_of[$t]})"
  fio --directory="${dir_of[$t]}" --output="$work/logs/prefill-$t.txt" "$here/prefill.fio"
  if [[ $(kind_of "$t") != ext4 ]]; then
    stop_target "$t"  # destages the whole NV log to the medium before it exits
    start_target "$t"
  fi
done
sync -f "$work"

# --- the measurements: job by job, repetitions interleaving the targets ------------------
for job in $jobs; do
  [[ -f "$here/$job.fio" ]] || die "no job file $here/$job.fio"
  for ((rep = 1; rep <= reps; rep++)); do
    for t in $targets; do
      out="$work/json/$job.$t.$rep.json"
      log "$job rep $rep/$reps on $t (load $(cut -d' ' -f1 /proc/loadavg))"
      c0=$(cpu_ticks "$t"); s0=$(date +%s%N)
      fio --directory="${dir_of[$t]}" --output-format=json --output="$out" "$here/$job.fio"
      c1=$(cpu_ticks "$t"); s1=$(date +%s%N)
      quiesce "$t"
      c2=$(cpu_ticks "$t")
      echo "$((c1 - c0)) $((c2 - c1)) $(( (s1 - s0) / 1000000 ))" >"$work/json/$job.$t.$rep.cpu"
    done
  done
done
for t in $targets; do  # the cost of doing nothing
  c0=$(cpu_ticks "$t"); sleep 5; echo "$(( $(cpu_ticks "$t") - c0 ))" >"$work/json/idle.$t"
done
log "done; load: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- the table -----------------------------------------------------------------------------
python3 - "$work/json" "$reps" "$jobs" "$targets" "$(getconf CLK_TCK)" <<'PY'
import json, os, statistics, sys
d, reps, jobs, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
hz = int(sys.argv[5])

def load(job, t, rep):
    with open(os.path.join(d, f"{job}.{t}.{rep}.json")) as f:
        text = f.read()
    j = json.loads(text[text.index("{"):])  # fio may print notes before the JSON
    job0 = j["jobs"][0]
    ddir = "read" if job0["read"]["io_bytes"] > 0 else "write"
    s = job0[ddir]
    pct = s["clat_ns"].get("percentile", {})
    r = {"iops": s["iops"], "bw": s["bw_bytes"],
         "p50": pct.get("50.000000", 0) / 1e3, "p99": pct.get("99.000000", 0) / 1e3}
    sync = job0.get("sync", {})
    if sync.get("total_ios", 0):
        sp = sync["lat_ns"].get("percentile", {})
        r["fsync_p50"] = sp.get("50.000000", 0) / 1e3
        r["fsync_p99"] = sp.get("99.000000", 0) / 1e3
    # CPU of the daemons: ticks while fio ran, ticks until idle again, fio's wall time (ms). The
    # operations of the whole fio run (ramp included) are estimated as IOPS x wall time.
    with open(os.path.join(d, f"{job}.{t}.{rep}.cpu")) as f:
        during, after, wall_ms = (int(x) for x in f.read().split())
    ops = max(s["iops"] * wall_ms / 1e3, 1)
    r["cpu_us_op"] = during / hz * 1e6 / ops
    r["cpu_after_us_op"] = after / hz * 1e6 / ops
    r["cores"] = during / hz / (wall_ms / 1e3)
    return r

res = {(job, t, rep): load(job, t, rep) for job in jobs for t in targets for rep in range(1, reps + 1)}
med = lambda xs: statistics.median(xs)

def fmt_rate(job, iops, bw):
    return f"{bw / 2**30:.2f} GiB/s" if job == "w3" else f"{iops / 1e3:.2f} k IOPS ({bw / 2**20:.1f} MiB/s)"

def fmt_us(x):
    return f"{x / 1e3:.2f} ms" if x >= 1000 else f"{x:.0f} µs" if x >= 100 else f"{x:.1f} µs"

print(f"\nMedians of {reps} repetitions (targets interleaved). Latency: completion latency of the "
      "write or read call (W1: also the fsync call after it).\n")
print("| job | target | rate | p50 | p99 | W1 fsync p50 / p99 | daemon CPU per op: during + after (cores) | every repetition |")
print("|---|---|---|---|---|---|---|---|")
for job in jobs:
    for t in targets:
        rs = [res[(job, t, rep)] for rep in range(1, reps + 1)]
        m = {k: med([r[k] for r in rs]) for k in rs[0]}
        each = ", ".join((f"{r['bw'] / 2**30:.2f}" if job == "w3" else f"{r['iops'] / 1e3:.2f}") for r in rs)
        fs = f"{fmt_us(m['fsync_p50'])} / {fmt_us(m['fsync_p99'])}" if "fsync_p50" in m else ""
        unit = "MiB" if job == "w3" else "op"
        cpu = "" if t == "ext4" else (f"{m['cpu_us_op']:.1f} + {m['cpu_after_us_op']:.1f} µs/{unit} "
                                     f"({m['cores']:.2f})")
        print(f"| {job.upper()} | {t} | {fmt_rate(job, m['iops'], m['bw'])} | {fmt_us(m['p50'])} | "
              f"{fmt_us(m['p99'])} | {fs} | {cpu} | {each} |")
idle = {t: int(open(os.path.join(d, f"idle.{t}")).read()) for t in targets if t != "ext4"}
if idle:
    print("\nDaemon CPU over 5 s with nothing to do: " +
          ", ".join(f"{t} {ticks / hz * 1e3 / 5:.1f} ms/s" for t, ticks in idle.items()))

def ratio(job, a, b, key="iops"):
    if a not in targets or b not in targets or job not in jobs:
        return None
    return [res[(job, a, rep)][key] / res[(job, b, rep)][key] for rep in range(1, reps + 1)]

print("\nRatios, per repetition (side by side) and their median:\n")
print("| ratio | median | each repetition | target |")
print("|---|---|---|---|")
rows = [("W1 IOPS mirrored / ext4", ratio("w1", "mirrored", "ext4"), ">= 2.5x"),
        ("W1 IOPS mirrored / floor", ratio("w1", "mirrored", "floor"), ">= 0.6x"),
        ("W2 IOPS mirrored / ext4", ratio("w2", "mirrored", "ext4"), ">= 3x"),
        ("W3 bandwidth mirrored / ext4", ratio("w3", "mirrored", "ext4", "bw"), ">= 2x"),
        ("W1 IOPS staged / floor", ratio("w1", "staged", "floor"), ""),
        ("W1 IOPS staged / ext4", ratio("w1", "staged", "ext4"), ""),
        ("W1 IOPS wt / ext4", ratio("w1", "wt", "ext4"), ""),
        ("W2 IOPS staged / ext4", ratio("w2", "staged", "ext4"), ""),
        ("W2 IOPS wt / ext4", ratio("w2", "wt", "ext4"), ""),
        ("W3 bandwidth staged / ext4", ratio("w3", "staged", "ext4", "bw"), ""),
        ("W3 bandwidth wt / ext4", ratio("w3", "wt", "ext4", "bw"), ""),
        ("W4 IOPS wt / staged", ratio("w4", "wt", "staged"), "<= 1.5x"),
        ("W4 IOPS ext4 / wt", ratio("w4", "ext4", "wt"), ""),
        ("W1 IOPS mirrored / staged", ratio("w1", "mirrored", "staged"), ""),
        ("W2 IOPS mirrored / staged", ratio("w2", "mirrored", "staged"), ""),
        ("W3 bandwidth mirrored / staged", ratio("w3", "mirrored", "staged", "bw"), ""),
        ("W4 IOPS wt / mirrored", ratio("w4", "wt", "mirrored"), "")]
for name, xs, target in rows:
    if xs:
        print(f"| {name} | {med(xs):.2f}x | {', '.join(f'{x:.2f}' for x in xs)} | {target} |")
# Variants (NAME-base, NAME@KEY=VAL) against the plain target of their kind, job by job.
for t in targets:
    plain = t.split("@")[0].removesuffix("-base")
    if t != plain and plain in targets:
        for job in jobs:
            xs = ratio(job, t, plain, "bw" if job == "w3" else "iops")
            print(f"| {job.upper()} {t} / {plain} | {med(xs):.2f}x | {', '.join(f'{x:.2f}' for x in xs)} | |")

def diff(job, a, b, key):
    if a not in targets or b not in targets or job not in jobs:
        return None
    return [res[(job, a, rep)].get(key, 0) - res[(job, b, rep)].get(key, 0) for rep in range(1, reps + 1)]

for name, xs, target in [("W1 write p50 mirrored - staged", diff("w1", "mirrored", "staged", "p50"), ""),
                         ("W1 fsync p50 mirrored - staged", diff("w1", "mirrored", "staged", "fsync_p50"), "")]:
    if xs:
        print(f"| {name} | {med(xs):+.1f} µs | {', '.join(f'{x:+.1f}' for x in xs)} | {target} |")
if "w1" in jobs and "mirrored" in targets:
    for name, key, target in [("W1 mirrored write p99", "p99", "<= 250 µs"),
                              ("W1 mirrored daemon CPU per write + fsync (during)", "cpu_us_op", "<= 50 µs")]:
        xs = [res[("w1", "mirrored", rep)][key] for rep in range(1, reps + 1)]
        print(f"| {name} | {med(xs):.1f} µs | {', '.join(f'{x:.1f}' for x in xs)} | {target} |")
PY
