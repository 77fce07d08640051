#!/usr/bin/env bash
# The Debian package (cmake/package.cmake, docs/install.md): `cpack -G DEB` of this build
# directory makes hafs_VERSION_ARCH.deb; the test checks its control fields (the run-time
# dependencies dpkg-shlibdeps found), unpacks it into a scratch root, checks that every file a
# user needs is there and runs, and has systemd-analyze verify the unit in that root (the host's
# unit directory copied beside it, for the targets the unit names). Nothing is installed on
# the host. Usage: package_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/hafs-package-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

(cd "$work" && cpack --config "$build/CPackConfig.cmake" -B "$work" >"$work/cpack.log" 2>&1) ||
  { cat "$work/cpack.log" >&2; echo "FAIL: cpack" >&2; exit 1; }
deb=$(ls "$work"/hafs_*.deb)
echo "package: $(basename "$deb")"

depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
packed=",${depends// /},"  # "fuse3, libc6 (>= 2.34)" -> ",fuse3,libc6(>=2.34),"
for lib in fuse3 libfuse3-3 libfabric1 libpmem2 libsodium23 libsystemd0 libtomlplusplus3; do
  [[ $packed == *",$lib"[,\(]* ]] || fail "Depends lacks $lib"
done

root=$work/root
dpkg-deb -x "$deb" "$root"
for f in usr/sbin/hafsd usr/bin/hafsctl usr/bin/hafs-nvlog usr/bin/hafs-ackcheck \
         usr/libexec/hafs/hafs-nfs.sh; do
  [ -x "$root/$f" ] || fail "/$f missing or not executable"
done
for f in usr/lib/systemd/system/hafsd@.service usr/libexec/hafs/hafs-nfs.conf.in \
         usr/share/doc/hafs/README.md usr/share/doc/hafs/install.md \
         usr/share/doc/hafs/configuration.md usr/share/doc/hafs/examples/node.toml.example; do
  [ -f "$root/$f" ] || fail "/$f missing"
done
# Nothing of the build or the tests leaks into the package.
if dpkg-deb -c "$deb" | grep -E 'test|bench|\.o$|CMake' | grep -v 'share/doc'; then
  fail "build or test files in the package"
fi
# The programs run from the package (their libraries resolve).
for p in usr/sbin/hafsd usr/bin/hafsctl usr/bin/hafs-nvlog; do
  "$root/$p" --help >/dev/null 2>&1 || fail "/$p --help does not run"
done
# The example configuration is one hafsd accepts (up to the paths only a real pair has).
if ! out=$("$root/usr/sbin/hafsd" --config "$root/usr/share/doc/hafs/examples/node.toml.example" \
             --mount /nonexistent-hafs-package-test 2>&1); then
  echo "$out" | grep -q "nonexistent-hafs-package-test" ||
    fail "the example configuration is refused: $out"
fi

# The unit, as systemd would load it from the installed root.
cp -rn /lib/systemd/system/. "$root/usr/lib/systemd/system/" 2>/dev/null || true
if ! out=$(systemd-analyze verify --root="$root" hafsd@node1.service 2>&1) ||
   echo "$out" | grep -q 'hafsd@'; then
  fail "systemd-analyze verify: $out"
fi
grep -q '^Type=notify$' "$root/usr/lib/systemd/system/hafsd@.service" || fail "the unit is not Type=notify"

[ "$failures" -eq 0 ] || exit 1
echo "package ok"
