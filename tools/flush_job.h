// FlushJob: one destage-everything at a time, on a thread of its own, so that the control socket
// keeps answering `status` while it runs (hafsctl flush shows its progress by polling status).
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "nvcache/nvcache.h"

namespace hafs::tools {

class FlushJob {
 public:
  explicit FlushJob(nvcache::NvCache* cache) : cache_(cache) {}
  ~FlushJob() { wait(); }
  FlushJob(const FlushJob&) = delete;
  FlushJob& operator=(const FlushJob&) = delete;

  // Starts a flush; false when one is running already (that one covers what is staged now too:
  // flush_all destages everything staged when it looks).
  bool start();
  // {"running", "runs" (started so far), "last": null or {"ok", "error", "ms", "staged_bytes_after"}}
  nlohmann::json state() const;
  // Waits for the running flush, if any (shutdown, after the control socket closed).
  void wait();

 private:
  nvcache::NvCache* const cache_;
  mutable std::mutex mu_;
  std::thread thread_;        // GUARDED_BY(mu_)
  bool running_ = false;      // GUARDED_BY(mu_)
  uint64_t runs_ = 0;         // GUARDED_BY(mu_)
  nlohmann::json last_;       // GUARDED_BY(mu_)
};

}  // namespace hafs::tools
