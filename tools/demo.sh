#!/usr/bin/env bash
# The main job: installs what hafs needs, builds it, and shows what it does end to end.
# Today (NV log only): a writer appends 4 KiB records to an emulated-NVRAM ring on /dev/shm and
# prints every acknowledged LSN; it is killed with SIGKILL mid-stream; the ring is scanned and
# every acknowledged record is checked to be there.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup-deps.sh
cmake -S . -B build -G Ninja -DHAFS_WERROR=ON >/dev/null
cmake --build build -j "$(nproc)" >/dev/null

work=$(mktemp -d /dev/shm/hafs-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
nvlog=build/tools/hafs-nvlog
echo "== format a 256 MiB NV log ring in $work (pmem store on /dev/shm)"
$nvlog format --store "$work/ring" --size $((256 << 20)) --node 1
echo "== 4 appenders write 4 KiB records; the writer is killed with SIGKILL after 0.5 s"
$nvlog append --store "$work/ring" --count 50000 --threads 4 --payload 4096 >"$work/acks" 2>"$work/append.log" &
pid=$!
sleep 0.5
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
acked=$(wc -l <"$work/acks")
max_acked=$(awk '{print $2}' "$work/acks" | sort -n | tail -1)
echo "   writer acknowledged $acked records (highest LSN ${max_acked:-none}) before it died"
echo "== recovery scan of the ring"
$nvlog scan --store "$work/ring" 2>/dev/null | tee "$work/scan"
found=$(sed -n 's/^\([0-9]*\) valid records.*/\1/p' "$work/scan")
if [ "${found:-0}" -ge "${max_acked:-0}" ]; then
  echo "RESULT: OK: all $acked acknowledged records (LSN <= ${max_acked:-0}) are in the ring ($found valid records)"
else
  echo "RESULT: FAILED: acknowledged LSN ${max_acked} but only $found valid records"
  exit 1
fi
