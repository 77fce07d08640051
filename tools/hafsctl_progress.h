// How hafsctl follows a long operation (flush, giveback, takeover): it polls the node's status
// and shows bytes done, rate and ETA — one line redrawn in place on a terminal, a plain line
// per second otherwise (logs, scripts, CI) — until the operation has finished, failed, or the
// wait limit ran out.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hafs::tools {

// "12.0 MiB", "512 B".
std::string bytes_text(double bytes);

class ProgressLine {
 public:
  // `tty`: redraw one line with \r; otherwise print a line at most once per second.
  ProgressLine(std::string what, bool tty, std::FILE* out = stdout);
  // `done` of `total` bytes; `note` says what is being waited for when nothing moves.
  void update(uint64_t done, uint64_t total, const std::string& note = "");
  // The last line (ends the redrawn one on a terminal).
  void finish(const std::string& text);

 private:
  std::string render(uint64_t done, uint64_t total, const std::string& note) const;

  const std::string what_;
  const bool tty_;
  std::FILE* const out_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_{};
  size_t last_width_ = 0;
};

// One status poll: the status object, or nothing when the node did not answer.
using StatusPoll = std::function<std::optional<nlohmann::json>()>;

struct WaitResult {
  bool ok = false;
  std::string message;  // what happened, for the last line or the error
};

// After a background flush was started (`runs` is its number in status.flush.runs): waits until
// it has finished; progress = staged bytes destaged since `staged_at_start`.
WaitResult wait_for_flush(const StatusPoll& poll, uint64_t runs, uint64_t staged_at_start,
                          ProgressLine& line, std::chrono::seconds limit);

// After a giveback or hand-over of `volumes` was queued: waits until this node shows every one
// of them owned by the partner ("partner"); fails when one is served here again without it
// (the hand-over was abandoned or failed) after it had started.
WaitResult wait_for_handover(const StatusPoll& poll, const std::vector<std::string>& volumes,
                             ProgressLine& line, std::chrono::seconds limit);

}  // namespace hafs::tools
