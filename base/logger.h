// Logger: leveled lines to stderr, each prefixed with a time stamp and the owner's name
// (e.g. "node1"), so that two nodes living in one test process stay readable. A Logger is a
// small value handed to each component by the composition root; there is no global logger.
// Line formats (LogFormat): the time of day (UTC) for tests and terminals; the date and time
// (UTC) for a daemon's log file; a syslog priority prefix ("<3>" for an error) and no time for
// systemd's journal, which stamps lines itself and reads the priority from the prefix.
#pragma once

#include <atomic>
#include <cstdarg>
#include <memory>
#include <string>

namespace hafs {

// kOff is a logger level only (nothing is logged at it): for simulations, where faults make
// errors the normal case.
enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

enum class LogFormat {
  kTime,      // "19:20:01.123456 INFO  node1: ..."
  kDateTime,  // "2026-12-07 19:20:01.123456 INFO  node1: ..."
  kJournal,   // "<6>INFO  node1: ..." (sd-daemon(3) priority prefixes)
};

// Whether stderr is connected to systemd's journal: JOURNAL_STREAM names its device and inode
// (systemd.exec(5)); a stderr redirected elsewhere by the service does not match.
bool stderr_is_journal();

// Parses "debug", "info", "warn", "error"; returns false for anything else.
bool parse_log_level(const std::string& text, LogLevel* out);

class Logger {
 public:
  Logger() : Logger("hafs", LogLevel::kInfo) {}
  Logger(std::string name, LogLevel level);

  // A logger for a sub-component sharing this one's level: node1 -> node1/destage.
  Logger child(const std::string& component) const;
  void set_level(LogLevel level) { state_->level.store(level, std::memory_order_relaxed); }
  // For this logger and its children.
  void set_format(LogFormat format) { state_->format.store(format, std::memory_order_relaxed); }
  bool enabled(LogLevel level) const {
    return level >= state_->level.load(std::memory_order_relaxed);
  }

  void log(LogLevel level, const char* fmt, ...) const __attribute__((format(printf, 3, 4)));
  void debug(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
  void info(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
  void warn(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
  void error(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));

 private:
  struct State {
    std::atomic<LogLevel> level;
    std::atomic<LogFormat> format{LogFormat::kTime};
  };
  Logger(std::string name, std::shared_ptr<State> state)
      : name_(std::move(name)), state_(std::move(state)) {}
  void vlog(LogLevel level, const char* fmt, va_list ap) const;

  std::string name_;
  std::shared_ptr<State> state_;  // shared by a logger and its children
};

}  // namespace hafs
