// Status and Result<T>: the one error type that crosses module boundaries.
//
// A Status is either OK or carries a code, an errno where the cause was a system call, and a
// message for the operator. Errors the world can cause (EIO, ENOSPC, a corrupt record, a dead
// peer) are Statuses; broken invariants are HAFS_CHECK failures (base/check.h). No exceptions.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

#include "base/check.h"

namespace hafs {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // the caller (config, CLI, API use) asked for something impossible
  kNotFound,
  kCorruption,       // bytes on a store failed validation (magic, version, CRC, LSN order)
  kIoError,          // a system call failed; errno() says how
  kNoSpace,          // ENOSPC from the storage medium
  kStale,            // the object no longer exists (ESTALE/ENOENT on reopen by handle)
  kStaleEpoch,       // a fencing token older than the current one
  kUnavailable,      // a peer or service cannot be reached now; retry may work
  kTimedOut,
  kAborted,          // shut down while waiting
  kInProgress,       // started and not finished: ask again later (long membership actions)
  kDataLoss,         // acknowledged data cannot be read back whole (damage inside a log or
                     // mirror, an outdated mirror): what it guards is not served
  kBusy,             // held by another process (a node identity, a locked NV log)
};

const char* code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(Code code, std::string message, int sys_errno = 0) {
    return Status(code, std::move(message), sys_errno);
  }
  // From a failed system call: the code follows errno (ENOSPC -> kNoSpace, ESTALE -> kStale...).
  static Status from_errno(int sys_errno, std::string message);

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  int sys_errno() const { return errno_; }
  const std::string& message() const { return message_; }
  // The errno a POSIX caller should see (EIO when the error had no errno of its own).
  int to_errno() const;
  std::string to_string() const;
  // Prefixes context, keeping code and errno: s.with_context("destage of volume 3").
  Status with_context(const std::string& context) const;

 private:
  Status(Code code, std::string message, int sys_errno)
      : code_(code), errno_(sys_errno), message_(std::move(message)) {}

  Code code_ = Code::kOk;
  int errno_ = 0;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    HAFS_CHECK(!std::get<Status>(v_).is_ok(), "Result built from an OK status");
  }

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    HAFS_CHECK(is_ok(), status().to_string().c_str());
    return std::get<T>(v_);
  }
  const T& value() const& {
    HAFS_CHECK(is_ok(), status().to_string().c_str());
    return std::get<T>(v_);
  }
  T&& value() && {
    HAFS_CHECK(is_ok(), status().to_string().c_str());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace hafs

// Returns early with the Status of an expression that failed.
#define HAFS_RETURN_IF_ERROR(expr)           \
  do {                                       \
    ::hafs::Status hafs_status_ = (expr);    \
    if (!hafs_status_.is_ok()) return hafs_status_; \
  } while (0)
