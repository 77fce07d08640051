// Small helpers shared by the tests: awaiting a condition (never a fixed sleep as
// synchronisation) and picking a free loopback port.
#pragma once

#include <chrono>
#include <string>
#include <thread>

namespace hafs::testing {

// Polls `done` every 5 ms until it is true or `limit` has passed; returns its last answer.
template <typename F>
bool eventually(F done, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// A TCP port on 127.0.0.1 that nothing listened on a moment ago (the kernel's choice).
std::string free_port();

}  // namespace hafs::testing
