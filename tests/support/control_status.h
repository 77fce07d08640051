// A running hafsd's status, as `hafsctl status --json` prints it (docs/control-protocol.md §4),
// for tests that wait for a state the daemon reports. The including test target defines
// HAFSCTL_BIN (the hafsctl binary's path).
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tests/support/run_program.h"

namespace hafs::testing {

// `hafsctl --socket S status --json`, or nothing when the node does not answer in time.
inline std::optional<nlohmann::json> status_of(const std::string& socket, double timeout_s = 2) {
  ProgramResult r =
      run_program({HAFSCTL_BIN, "--socket", socket, "--timeout", std::to_string(timeout_s), "status", "--json"},
                  std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000) + 5000));
  if (r.code != 0) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// No volume's inode pool is being refilled: the refills' syncs of the medium are behind us (a
// test that needs the medium to commit nothing from here on waits for this first).
inline bool inode_pools_settled(const std::string& socket) {
  auto s = status_of(socket);
  if (!s || !s->contains("volumes")) return false;
  for (const auto& v : (*s)["volumes"])
    if (v.contains("inode_pool") && v["inode_pool"].value("refilling", true)) return false;
  return true;
}

}  // namespace hafs::testing
