#include "base/status.h"

#include <cstdio>
#include <cstdlib>

namespace hafs {

namespace detail {
void check_failed(const char* file, int line, const char* expr, const char* message) {
  std::fprintf(stderr, "hafs: CHECK failed at %s:%d: %s: %s\n", file, line, expr,
               message ? message : "");
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail

const char* code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kCorruption: return "corruption";
    case Code::kIoError: return "I/O error";
    case Code::kNoSpace: return "no space";
    case Code::kStale: return "stale";
    case Code::kStaleEpoch: return "stale epoch";
    case Code::kUnavailable: return "unavailable";
    case Code::kTimedOut: return "timed out";
    case Code::kAborted: return "aborted";
    case Code::kInProgress: return "in progress";
    case Code::kDataLoss: return "data loss";
    case Code::kBusy: return "busy";
  }
  return "unknown";
}

Status Status::from_errno(int sys_errno, std::string message) {
  Code code = Code::kIoError;
  switch (sys_errno) {
    case ENOSPC: case EDQUOT: code = Code::kNoSpace; break;
    case ESTALE: code = Code::kStale; break;
    case ENOENT: code = Code::kNotFound; break;
    case EINVAL: code = Code::kInvalidArgument; break;
    case ETIMEDOUT: code = Code::kTimedOut; break;
    default: break;
  }
  return Status(code, std::move(message), sys_errno);
}

int Status::to_errno() const {
  if (errno_ != 0) return errno_;
  switch (code_) {
    case Code::kOk: return 0;
    case Code::kInvalidArgument: return EINVAL;
    case Code::kNotFound: return ENOENT;
    case Code::kNoSpace: return ENOSPC;
    case Code::kStale: return ESTALE;
    case Code::kTimedOut: return ETIMEDOUT;
    case Code::kUnavailable: return EAGAIN;
    case Code::kInProgress: return EINPROGRESS;
    case Code::kBusy: return EBUSY;
    default: return EIO;
  }
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  std::string s = std::string(code_name(code_)) + ": " + message_;
  if (errno_ != 0) s += std::string(" (") + std::strerror(errno_) + ")";
  return s;
}

Status Status::with_context(const std::string& context) const {
  if (is_ok()) return *this;
  return Status(code_, context + ": " + message_, errno_);
}

}  // namespace hafs
