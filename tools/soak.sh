#!/usr/bin/env bash
# The soak of the randomized acknowledged-write checker (tests/failover/random_test.cc): runs
# TRIALS trials, seeds BASE .. BASE+TRIALS-1, each a real pair with a seeded fault (or sequence
# of faults: two kills, a byte flip then a restart, ...), and prints a summary table (per fault
# kind: trials, passed, failed, how often a trial legitimately stopped service — a node that
# refused its damaged NV log, a node back alone that did not serve a volume whose newest writes
# were on the dead one — and the median duration) plus every failed seed with the command that
# replays it. With --report FILE the table is also written there (docs/reliability.md keeps the
# last one). --faults LIST (comma-separated, e.g. pause,twokills,slowrenew,flip,duplicate; the
# names are in random_test.cc, fault_token) limits the trials to those kinds.
#
# With --sim N it runs N random seeds of the whole-pair simulator instead (tests/sim, hafs-sim:
# every fault kind, byte flips included), in --jobs J processes at once (default 4: a simulation
# mostly waits for its real data-path threads, so several share two CPUs well), prints a line
# per seed, the replay command of each failed one and the simulated seconds per hour; no root
# needed.
#
# Usage: tools/soak.sh [--trials N] [--base SEED] [--faults LIST] [--build-dir DIR] [--report FILE]
#        tools/soak.sh --sim N [--jobs J] [--build-dir DIR]
# Needs root (FUSE, namespaces) and a built failover_test (cmake --build build --target failover_test).
set -euo pipefail
cd "$(dirname "$0")/.."
trials=1000
base=$(( $(date +%s) % 1000000 * 1000 ))
build=build
report=""
faults=""
sim=""
jobs=4
while [[ $# -gt 0 ]]; do
  case "$1" in
    --trials) trials=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --faults) faults=$2; shift 2 ;;
    --sim) sim=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ -n "$sim" ]]; then
  [[ "$sim" =~ ^[0-9]+$ && "$sim" -ge 1 ]] || { echo "soak.sh: --sim needs a positive number" >&2; exit 2; }
  [[ -x "$build/tests/sim/hafs-sim" ]] || { echo "soak.sh: no $build/tests/sim/hafs-sim: build the hafs-sim target first" >&2; exit 1; }
  [[ "$jobs" =~ ^[0-9]+$ && "$jobs" -ge 1 ]] || { echo "soak.sh: --jobs needs a positive number" >&2; exit 2; }
  out=$(mktemp -d /tmp/hafs-simsoak.XXXXXX)
  trap 'rm -rf "$out"' EXIT
  start=$(date +%s)
  echo "sim soak: $sim random seeds in $jobs processes, $(nproc) CPUs"
  for ((j = 0; j < jobs; j++)); do
    n=$(( sim / jobs + (j < sim % jobs ? 1 : 0) ))
    [[ $n -gt 0 ]] && "$build/tests/sim/hafs-sim" --random "$n" --flips >"$out/$j.log" 2>"$out/$j.err" &
  done
  wait || true
  cat "$out"/*.log | grep -v "^[0-9]* runs, "
  secs=$(( $(date +%s) - start ))
  awk -v secs="$secs" '
    /^seed [0-9]+: ok:/ { runs++; ok++ }
    /^seed [0-9]+: FAILED:/ { runs++; failed++ }
    /^seed [0-9]+: / { s = substr($0, index($0, "(") + 1); sim += s + 0 }
    END { printf "%d runs, %d failed; %.0f simulated s in %d s: %.0f simulated s per hour\n", runs, failed, sim, secs, (secs > 0 ? sim / secs * 3600 : 0)
          exit (failed > 0) }' "$out"/*.log
  exit $?
fi
[[ "$trials" =~ ^[0-9]+$ && "$trials" -ge 1 ]] || { echo "soak.sh: --trials needs a positive number" >&2; exit 2; }
bin="$build/tests/failover/failover_test"
[[ -x "$bin" ]] || { echo "soak.sh: no $bin: build the failover_test target first" >&2; exit 1; }

results=$(mktemp /tmp/hafs-soak.XXXXXX)
trap 'rm -f "$results"' EXIT
echo "soak: $trials trials, seeds $base .. $((base + trials - 1))${faults:+, faults $faults}, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((i = 0; i < trials; i++)); do
  seed=$((base + i))
  start=$(date +%s%N)
  out=$(HAFS_FAULTS=$faults HAFS_SEED=$seed "$bin" --gtest_filter='Random/RandomFaultTest.Trial/0' 2>&1) && ok=1 || ok=0
  secs=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  kind=$(echo "$out" | sed -n "s/^seed $seed: \(.*\) on node [12].*/\1/p" | head -1)
  # Service stopped on purpose (printed by the trial as "  outcome: ..."), 0 or 1 each.
  refused=$(echo "$out" | grep -c "^  outcome: .*refused its damaged store" || true)
  unserved=$(echo "$out" | grep -c "^  outcome: .*alone does not serve" || true)
  echo "$seed|${kind:-unknown}|$ok|$secs|$((refused > 0))|$((unserved > 0))" >>"$results"
  printf '%6d  seed %d  %-22s %s  %5.1f s%s\n' "$((i + 1))" "$seed" "${kind:-unknown}" \
    "$([ $ok = 1 ] && echo passed || echo FAILED)" "$secs" \
    "$([ "$refused" -gt 0 ] && echo "  (a node refused its damaged store)")$([ "$unserved" -gt 0 ] && echo "  (a volume waited for its dead owner)")"
  if [ $ok = 0 ]; then
    echo "$out" | grep -E "Failure|Expected|Which is|I2 violated|verify failed" | head -20 | sed 's/^/        /'
  fi
done

table=$(awk -F'|' '
  { n[$2]++; pass[$2] += $3; t[$2, n[$2]] = $4; ref[$2] += $5; uns[$2] += $6; all++; allpass += $3; allref += $5; alluns += $6 }
  END {
    print "| fault | trials | passed | failed | refused a damaged store | volume waited for its dead owner | median s |"
    print "|---|---|---|---|---|---|---|"
    for (k in n) {
      m = n[k]; for (i = 1; i <= m; i++) v[i] = t[k, i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
      printf "| %s | %d | %d | %d | %d | %d | %.1f |\n", k, m, pass[k], m - pass[k], ref[k], uns[k], v[int((m + 1) / 2)]
    }
    printf "| **all** | %d | %d | %d | %d | %d | |\n", all, allpass, all - allpass, allref, alluns
  }' "$results")
replay_env=${faults:+HAFS_FAULTS=$faults }
failed=$(awk -F'|' '$3 == 0 { printf "- seed %s (%s): `%sHAFS_SEED=%s %s --gtest_filter=\x27Random/RandomFaultTest.Trial/0\x27`\n", $1, $2, "'"$replay_env"'", $1, "'"$bin"'" }' "$results")
echo
echo "$table"
[ -n "$failed" ] && { echo; echo "Failed seeds:"; echo "$failed"; }
if [ -n "$report" ]; then
  {
    echo "Soak of $(date -u +%Y-%m-%d): $trials trials, seeds $base .. $((base + trials - 1))${faults:+, faults $faults}, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')."
    echo
    echo "$table"
    echo
    if [ -n "$failed" ]; then echo "Failed seeds:"; echo; echo "$failed"; else echo "No trial failed."; fi
  } >"$report"
  echo "summary written to $report"
fi
awk -F'|' '$3 == 0 { bad = 1 } END { exit bad }' "$results"
