#include "base/logger.h"

#include <cstdio>
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

void Logger::vlog(LogLevel level, const char* fmt, va_list ap) const {
  if (!enabled(level)) return;
  static constexpr const char* kNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  char msg[2048];
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm tm_utc{};
  gmtime_r(&ts.tv_sec, &tm_utc);
  char when[32];
  std::strftime(when, sizeof when, "%H:%M:%S", &tm_utc);
  // One fprintf per line: stdio locks the stream, so lines of concurrent threads do not interleave.
  std::fprintf(stderr, "%s.%06ld %-5s %s: %s\n", when, ts.tv_nsec / 1000,
               kNames[static_cast<int>(level)], name_.c_str(), msg);
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
