#include "base/logger.h"

#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace hafs {

bool parse_log_level(const std::string& text, LogLevel* out) {
  if (text == "debug") *out = LogLevel::kDebug;
  else if (text == "info") *out = LogLevel::kInfo;
  else if (text == "warn" || text == "warning") *out = LogLevel::kWarn;
  else if (text == "error") *out = LogLevel::kError;
  else return false;
  return true;
}

Logger::Logger(std::string name, LogLevel level)
    : name_(std::move(name)), state_(std::make_shared<State>()) {
  state_->level.store(level);
}

Logger Logger::child(const std::string& component) const {
  return Logger(name_ + "/" + component, state_);
}

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (!stream) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  return ::fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

void Logger::vlog(LogLevel level, const char* fmt, va_list ap) const {
  if (!enabled(level)) return;
  static constexpr const char* kNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  static constexpr const char* kPriorities[] = {SD_DEBUG, SD_INFO, SD_WARNING, SD_ERR};
  const char* name = kNames[static_cast<int>(level)];
  char msg[2048];
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  // One fprintf per line: stdio locks the stream, so lines of concurrent threads do not interleave.
  const LogFormat format = state_->format.load(std::memory_order_relaxed);
  if (format == LogFormat::kJournal) {
    std::fprintf(stderr, "%s%-5s %s: %s\n", kPriorities[static_cast<int>(level)], name, name_.c_str(), msg);
    return;
  }
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm tm_utc{};
  gmtime_r(&ts.tv_sec, &tm_utc);
  char when[32];
  std::strftime(when, sizeof when, format == LogFormat::kDateTime ? "%Y-%m-%d %H:%M:%S" : "%H:%M:%S", &tm_utc);
  std::fprintf(stderr, "%s.%06ld %-5s %s: %s\n", when, ts.tv_nsec / 1000, name, name_.c_str(), msg);
}

void Logger::log(LogLevel level, const char* fmt, ...) const {
  va_list ap;
  va_start(ap, fmt);
  vlog(level, fmt, ap);
  va_end(ap);
}

#define HAFS_LOGGER_LEVEL_FN(fn, lvl)        \
  void Logger::fn(const char* fmt, ...) const { \
    va_list ap;                              \
    va_start(ap, fmt);                       \
    vlog(lvl, fmt, ap);                      \
    va_end(ap);                              \
  }
HAFS_LOGGER_LEVEL_FN(debug, LogLevel::kDebug)
HAFS_LOGGER_LEVEL_FN(info, LogLevel::kInfo)
HAFS_LOGGER_LEVEL_FN(warn, LogLevel::kWarn)
HAFS_LOGGER_LEVEL_FN(error, LogLevel::kError)
#undef HAFS_LOGGER_LEVEL_FN

}  // namespace hafs
