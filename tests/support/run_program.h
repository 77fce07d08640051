// Running a program to completion from a test: its exit status and what it printed, never
// waiting longer than a limit (then it is killed). One helper for every test that drives a
// command-line tool (hafsctl, hafs-ackcheck, ip).
#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

namespace hafs::testing {

struct ProgramResult {
  int code = -1;  // exit status; -1 killed by a signal, -2 did not end within the limit
  std::string out, err;
  std::chrono::milliseconds took{0};
};

// Runs `args` (args[0] an absolute path) with stdin closed, at most `limit`.
ProgramResult run_program(const std::vector<std::string>& args,
                          std::chrono::milliseconds limit = std::chrono::seconds(60));

std::ostream& operator<<(std::ostream& o, const ProgramResult& r);

}  // namespace hafs::testing
