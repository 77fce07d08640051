#!/usr/bin/env bash
# Installs what hafs needs, builds it with warnings as errors, and runs every test.
# Usage: tools/run-tests.sh [extra ctest arguments, e.g. -L nvcache]
# HAFS_BUILD_DIR (default build) and HAFS_CMAKE_ARGS (e.g. -DHAFS_ASAN=ON) adjust the build.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup-deps.sh
build=${HAFS_BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build" -G Ninja -DHAFS_WERROR=ON ${HAFS_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 600 "$@"
