#!/usr/bin/env bash
# hafs-nfs.sh: serve one hafs node's volumes over NFS with nfs-ganesha (FSAL_VFS over the mount).
#
#   hafs-nfs.sh up     --dir DIR --mount MNT [options]   start ganesha, return once it serves
#   hafs-nfs.sh down   --dir DIR [--timeout S]           SIGTERM ganesha (and our rpcbind), wait
#   hafs-nfs.sh status --dir DIR                         exit 0 when running, 3 when not
#   hafs-nfs.sh config --dir DIR --mount MNT [options]   write DIR/ganesha.conf and print it
#
# DIR is private to one ganesha instance: ganesha.conf, ganesha.log, ganesha.out (stdout/stderr),
# pid files and the NFSv4 recovery directory live there. Every top-level directory of MNT is a
# volume and becomes one export: Export_Id = the volume id, Pseudo = /VOLUME, Filesystem_id =
# 6873.VOLUME_ID and a handle fsid that does not depend on the mount's device number, so both
# nodes of a pair hand out the same handles and a handle survives a move of the service address. Works under `ip netns exec NS` (no Bind_Addr unless --bind is given).
# ganesha (and, for NFSv3, a private rpcbind) run in a private mount namespace whose /run is a
# small tmpfs: two nodes on one machine never meet in /run/rpcbind.sock. docs/nfs.md has the
# details and the grace decision.
set -euo pipefail

readonly FSID_MAJOR=6873  # "hafs" on a phone keypad; the minor number is the volume id
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
  cat >&2 <<EOF
usage: hafs-nfs.sh up|config --dir DIR --mount MNT [--port N] [--mount-port N] [--no-v3]
                          [--bind ADDR] [--grace SECONDS] [--log-level LEVEL] [--timeout S]
       hafs-nfs.sh down --dir DIR [--timeout S]
       hafs-nfs.sh status --dir DIR
  --port N          NFS port (default 2049)
  --mount-port N    NFSv3 MOUNT port (default 20048)
  --no-v3           NFSv4 only (no rpcbind needed)
  --bind ADDR       listen on ADDR only (leave it out inside a namespace with only lo)
  --grace SECONDS   run an NFSv4 grace period after start (default: graceless, see docs/nfs.md)
  --log-level L     ganesha log level, e.g. NIV_EVENT (default), NIV_DEBUG
  --timeout S       how long up waits for ganesha to serve, down for it to exit (default 30)
  --baseline        export the subdirectories of a directory that is NOT an hafs mount, with
                    export ids 1, 2, ... in name order: the plain-filesystem baseline of
                    bench/nfs/run.sh, never for serving hafs
EOF
  exit 2
}

die() {
  echo "hafs-nfs: $*" >&2
  exit 1
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

check_port() {  # name value
  if ! is_uint "$2" || [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
    die "$1 must be a port number (1-65535), not '$2'"
  fi
}

# The state of a process ('' when gone; Z when it exited and waits to be reaped).
proc_state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true; }
alive() { local s; s=$(proc_state "$1"); [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]; }

# A pid from a pid file, if that process is alive and runs the program we expect (a pid file
# left behind by a killed instance may name an unrelated process by now).
live_pid() {  # file comm
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  is_uint "$pid" && alive "$pid" || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
  echo "$pid"
}

# SIGTERM by pid and wait up to `timeout` seconds; SIGKILL after that (and report it).
stop_pid() {  # pid what timeout
  local pid=$1 what=$2 deadline=$((SECONDS + $3))
  kill -TERM "$pid" 2>/dev/null || return 0
  while alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      echo "hafs-nfs: $what (pid $pid) did not stop within $3 s of SIGTERM; killed" >&2
      return 1
    fi
    sleep 0.05
  done
}

# ---- arguments ------------------------------------------------------------------------------
[ $# -ge 1 ] || usage
cmd=$1
shift
dir="" mnt="" nfs_port=2049 mnt_port=20048 v3=1 bind="" grace_s="" log_level=NIV_EVENT timeout_s=30
baseline=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=${2:?}; shift 2 ;;
    --mount) mnt=${2:?}; shift 2 ;;
    --port) nfs_port=${2:?}; shift 2 ;;
    --mount-port) mnt_port=${2:?}; shift 2 ;;
    --no-v3) v3=0; shift ;;
    --bind) bind=${2:?}; shift 2 ;;
    --grace) grace_s=${2:?}; shift 2 ;;
    --log-level) log_level=${2:?}; shift 2 ;;
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --baseline) baseline=1; shift ;;
    -h|--help) usage ;;
    *) echo "hafs-nfs: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$dir" ] || die "--dir DIR is required"
is_uint "$timeout_s" || die "--timeout must be a number of seconds, not '$timeout_s'"

conf=$dir/ganesha.conf
log=$dir/ganesha.log
out=$dir/ganesha.out
pid_file=$dir/ganesha.pid        # written by the script (launcher pid = ganesha's pid)
rpcbind_pid_file=$dir/rpcbind.pid

# ---- the hafs mount and its volumes ---------------------------------------------------------

# Whether `path` (canonical) is a mount point whose filesystem type is fuse.hafs (hafsd mounts
# with fsname=hafs,subtype=hafs: fs/fuse_server.cc). Mountinfo escapes space, tab, newline and
# backslash as octal.
is_hafs_mount() {
  local escaped
  escaped=$(printf '%s' "$1" | sed -e 's/\\/\\134/g' -e 's/ /\\040/g' -e 's/\t/\\011/g')
  awk -v mp="$escaped" '
    { for (i = 7; i <= NF; ++i) if ($i == "-") break
      if ($5 == mp) { type = $(i + 1) } }      # the last mount on a path is the visible one
    END { exit type == "fuse.hafs" ? 0 : 1 }' /proc/self/mountinfo
}

# Prints "NAME ID" per volume: each top-level directory of the mount. The id comes from the
# volume root's inode number, whose high byte is the volume id (fs/volume.h, kInodeIdShift).
list_volumes() {
  local d name ino id n=0
  for d in "$mnt"/*/; do
    [ -d "$d" ] || continue
    name=$(basename "$d")
    [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "volume name '$name' cannot be exported (allowed: A-Z a-z 0-9 . _ -)"
    ino=$(stat -c %i "$d") || die "cannot stat volume $d"
    id=$(( (ino >> 56) & 255 ))
    if [ "$baseline" = 1 ]; then n=$((n + 1)); id=$n; fi
    [ "$id" -ge 1 ] || die "$d has inode number $ino: not an hafs volume root (no volume id)"
    echo "$name $id"
  done
}

write_config() {
  check_port --port "$nfs_port"
  check_port --mount-port "$mnt_port"
  [ "$nfs_port" != "$mnt_port" ] || die "--port and --mount-port must differ"
  if [ -n "$grace_s" ]; then
    if ! is_uint "$grace_s" || [ "$grace_s" -lt 1 ] || [ "$grace_s" -gt 180 ]; then
      die "--grace must be 1-180 seconds, not '$grace_s'"
    fi
  fi
  [[ "$log_level" =~ ^NIV_[A-Z_]+$ ]] || die "--log-level must be a ganesha level such as NIV_EVENT, not '$log_level'"
  if [ -n "$bind" ]; then
    [[ "$bind" =~ ^[0-9A-Fa-f.:]+$ ]] || die "--bind must be an IP address, not '$bind'"
  fi
  [ -n "$mnt" ] || die "--mount MNT is required"
  [ -d "$mnt" ] || die "mount point '$mnt' does not exist or is not a directory"
  mnt=$(realpath "$mnt")
  [ "$baseline" = 1 ] || is_hafs_mount "$mnt" || die "$mnt is not an hafs mount (no fuse.hafs filesystem mounted there; start hafsd first: ganesha would export the directory underneath)"
  local template=$here/hafs-nfs.conf.in
  [ -r "$template" ] || die "configuration template $template is missing"

  local volumes
  volumes=$(list_volumes)
  [ -n "$volumes" ] || die "$mnt has no volumes to export (is hafsd serving any?)"
  local dup
  dup=$(awk '{print $2}' <<<"$volumes" | sort | uniq -d | head -1)
  [ -z "$dup" ] || die "two volumes of $mnt have volume id $dup"

  mkdir -p "$dir/recovery" || die "cannot create $dir"
  local protocols="4" bind_line="" graceless=true grace=90 lease=60
  [ "$v3" = 1 ] && protocols="3, 4"
  [ -n "$bind" ] && bind_line="Bind_Addr = $bind;"
  if [ -n "$grace_s" ]; then
    graceless=false grace=$grace_s
    lease=$(( grace_s < 60 ? grace_s : 60 ))  # ganesha wants Grace_Period >= Lease_Lifetime
  fi
  sed -e "s|@PROTOCOLS@|$protocols|g" -e "s|@NFS_PORT@|$nfs_port|g" -e "s|@MNT_PORT@|$mnt_port|g" \
      -e "s|@BIND_ADDR@|$bind_line|g" -e "s|@GRACELESS@|$graceless|g" -e "s|@GRACE_S@|$grace|g" \
      -e "s|@LEASE_S@|$lease|g" -e "s|@RECOVERY_DIR@|$dir/recovery|g" \
       "$template" >"$conf.tmp"
  local name id
  while read -r name id; do
    cat >>"$conf.tmp" <<EOF

EXPORT {
  Export_Id = $id;
  Path = "$mnt/$name";
  Pseudo = "/$name";
  Filesystem_id = $FSID_MAJOR.$id;
  # ganesha puts the filesystem's id in every handle: for a FUSE mount that is its anonymous
  # device number, different on every node and every mount. Major64 keeps only the major (0 for
  # all FUSE mounts), so handles are the same on both nodes (docs/nfs.md, "File handles").
  FSAL { Name = VFS; fsid_type = Major64; }
}
EOF
  done <<<"$volumes"
  mv "$conf.tmp" "$conf"
  exported=$(awk '{printf "%s%s (export %s)", (NR > 1 ? ", " : ""), $1, $2}' <<<"$volumes")
}

# ---- start / stop ---------------------------------------------------------------------------

# Runs in the private mount namespace (bash -c): a tmpfs /run, rpcbind for NFSv3, then ganesha
# in the foreground in place of this shell (same pid).
# shellcheck disable=SC2016
readonly launcher='
set -u
dir=$1 v3=$2 log_level=$3
mount -t tmpfs -o size=1m,mode=0755 hafs-nfs-run /run || { echo "cannot mount a private /run" >&2; exit 3; }
if [ "$v3" = 1 ]; then
  rpcbind -f </dev/null &
  echo $! >"$dir/rpcbind.pid"
  for _ in $(seq 400); do
    [ -S /run/rpcbind.sock ] && break
    kill -0 $! 2>/dev/null || { echo "rpcbind exited at start (is port 111 in use in this network namespace?)" >&2; exit 3; }
    sleep 0.025
  done
  [ -S /run/rpcbind.sock ] || { echo "rpcbind did not start within 10 s" >&2; kill $!; exit 3; }
fi
exec ganesha.nfsd -F -f "$dir/ganesha.conf" -L "$dir/ganesha.log" -p "$dir/ganesha.nfsd.pid" -N "$log_level"
'

# What ganesha said about a failed start: its fatal, critical and major log lines, else the tail.
explain_failure() {
  local lines=""
  # Warnings too: "Cannot bind ... (Address already in use)" is one. Known start-up noise is not.
  [ -f "$log" ] && lines=$(grep -E ':(FATAL|CRIT|MAJ|WARN) :' "$log" | grep -v -E ':(DBUS|NFS CB) :|RADOS|krb5' \
    | sed 's/^.*\] //' | tail -5 || true)
  [ -n "$lines" ] || { [ -f "$log" ] && lines=$(tail -5 "$log"); }
  [ -s "$out" ] && lines=$(printf '%s\n%s' "$(tail -5 "$out")" "$lines")
  printf '%s\n' "$lines" | sed '/^$/d; s/^/  /' >&2
}

stop_all() {  # timeout [launcher pid]; returns non-zero if something had to be killed
  local rc=0 pid
  if [ -n "${2:-}" ] && alive "$2"; then  # up's own child, possibly not ganesha yet
    stop_pid "$2" ganesha "$1" || rc=1
  elif pid=$(live_pid "$pid_file" ganesha.nfsd); then
    stop_pid "$pid" ganesha "$1" || rc=1
  fi
  if pid=$(live_pid "$rpcbind_pid_file" rpcbind); then stop_pid "$pid" rpcbind "$1" || rc=1; fi
  rm -f "$pid_file" "$rpcbind_pid_file"
  return $rc
}

do_up() {
  for tool in ganesha.nfsd unshare; do
    command -v "$tool" >/dev/null || die "$tool not found (run tools/setup-deps.sh)"
  done
  [ "$v3" = 0 ] || command -v rpcbind >/dev/null || die "rpcbind not found (run tools/setup-deps.sh, or use --no-v3)"
  [ -e /usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so ] || [ -n "$(find /usr/lib* -name libfsalvfs.so -print -quit 2>/dev/null)" ] \
    || die "ganesha's VFS FSAL is not installed (package nfs-ganesha-vfs; run tools/setup-deps.sh)"
  local pid
  if pid=$(live_pid "$pid_file" ganesha.nfsd); then die "ganesha already runs for $dir (pid $pid); run down first"; fi
  mkdir -p "$dir" || die "cannot create $dir"
  write_config
  rm -f "$log" "$out" "$rpcbind_pid_file" "$dir/ganesha.nfsd.pid"

  setsid unshare --mount --propagation private -- bash -c "$launcher" hafs-nfs "$dir" "$v3" "$log_level" \
    </dev/null >"$out" 2>&1 &
  pid=$!
  echo "$pid" >"$pid_file"
  local deadline=$((SECONDS + timeout_s))
  until [ -f "$log" ] && grep -q 'NFS SERVER INITIALIZED' "$log"; do
    if ! alive "$pid"; then
      wait "$pid" 2>/dev/null && rc=0 || rc=$?
      echo "hafs-nfs: ganesha failed to start (exit status $rc; log $log):" >&2
      explain_failure
      stop_all 5 "$pid" || true
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "hafs-nfs: ganesha did not finish starting within $timeout_s s (log $log):" >&2
      explain_failure
      stop_all 5 "$pid" || true
      exit 1
    fi
    sleep 0.05
  done
  local ports="port $nfs_port"
  [ "$v3" = 1 ] && ports="$ports, NFSv3 MOUNT port $mnt_port"
  echo "hafs-nfs: ganesha (pid $pid) serves $mnt: $exported on $ports"
}

do_down() {
  if ! live_pid "$pid_file" ganesha.nfsd >/dev/null && ! live_pid "$rpcbind_pid_file" rpcbind >/dev/null; then
    rm -f "$pid_file" "$rpcbind_pid_file"
    echo "hafs-nfs: not running ($dir)"
    return 0
  fi
  stop_all "$timeout_s" || die "stopped, but not cleanly (see $log)"
  echo "hafs-nfs: stopped ($dir)"
}

case "$cmd" in
  up) do_up ;;
  down) do_down ;;
  status)
    if pid=$(live_pid "$pid_file" ganesha.nfsd); then echo "hafs-nfs: running (pid $pid)"; else echo "hafs-nfs: not running"; exit 3; fi ;;
  config)
    write_config
    cat "$conf" ;;
  *) echo "hafs-nfs: unknown command '$cmd'" >&2; usage ;;
esac
