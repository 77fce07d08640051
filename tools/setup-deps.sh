#!/usr/bin/env bash
# Installs every Debian package hafs needs to build, test and run its demo.
# Idempotent; quiet on success (apt's output goes to a log that is printed on failure).
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config git
  # modules
  libfuse3-dev fuse3                       # fs/: FUSE low-level API
  libfabric-dev libfabric-bin              # interconnect/: libfabric (tcp here, verbs on RDMA)
  libibverbs-dev librdmacm-dev rdma-core   # rdma-core, so the verbs provider can be used
  libboost-dev                             # Boost.Intrusive (staged-extent index)
  libpmem2-dev                             # nvcache/: mapped store persisted through libpmem2
  libtomlplusplus-dev                      # hafsd config files
  libcli11-dev                             # hafsd / hafsctl command lines
  nlohmann-json3-dev                       # control protocol (JSON lines)
  libsodium-dev                            # interconnect/: HMAC-SHA256 peer authentication
  libsystemd-dev                           # hafsd: systemd's notify protocol (sd_notify)
  # the Debian package and its unit (tests/tools/package_test.sh): dpkg-shlibdeps, systemd-analyze
  dpkg-dev systemd
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev fio
  # integration tests: namespaces, process tools
  iproute2 procps util-linux
  # NFS re-export (tools/hafs-nfs.sh, tests/nfs, bench/nfs_load): this kernel has no NFS server or
  # client, so the server is nfs-ganesha with FSAL_VFS over the hafs mount, rpcbind for NFSv3
  # registration, and the client is libnfs (tools and the C library the tests link against)
  nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils libnfs-dev
)

log=$(mktemp /tmp/hafs-setup.XXXXXX.log)
trap 'rm -f "$log"' EXIT
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

export DEBIAN_FRONTEND=noninteractive
if ! { "${sudo_cmd[@]}" apt-get update -q && "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup-deps: apt-get failed installing: ${missing[*]}" >&2
  exit 1
fi
