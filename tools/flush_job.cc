#include "tools/flush_job.h"

namespace hafs::tools {

void FlushJob::wait() {
  std::thread t;
  {
    std::lock_guard lock(mu_);
    t = std::move(thread_);
  }
  if (t.joinable()) t.join();
}

bool FlushJob::start() {
  std::lock_guard lock(mu_);
  if (running_) return false;
  if (thread_.joinable()) thread_.join();  // the previous one has finished
  running_ = true;
  ++runs_;
  thread_ = std::thread([this] {
    const auto start = std::chrono::steady_clock::now();
    const Status s = cache_->flush_all();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    const uint64_t after = cache_->stats().staged_bytes;
    std::lock_guard l(mu_);
    last_ = {{"ok", s.is_ok()}, {"error", s.is_ok() ? "" : s.to_string()}, {"ms", ms},
             {"staged_bytes_after", after}};
    running_ = false;
  });
  return true;
}

nlohmann::json FlushJob::state() const {
  std::lock_guard lock(mu_);
  return {{"running", running_}, {"runs", runs_}, {"last", last_}};
}

}  // namespace hafs::tools
