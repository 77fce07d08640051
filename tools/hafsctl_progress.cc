#include "tools/hafsctl_progress.h"

#include <algorithm>
#include <map>
#include <thread>

namespace hafs::tools {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {
constexpr auto kPollInterval = std::chrono::milliseconds(100);

uint64_t staged_bytes(const json& status) {
  const json& l = status.value("nvlog", json::object());
  return l.value("staged_bytes", uint64_t{0});
}
}  // namespace

std::string bytes_text(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return buf;
}

ProgressLine::ProgressLine(std::string what, bool tty, std::FILE* out)
    : what_(std::move(what)), tty_(tty), out_(out), start_(Clock::now()) {}

std::string ProgressLine::render(uint64_t done, uint64_t total, const std::string& note) const {
  const double secs = std::chrono::duration<double>(Clock::now() - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
  std::string s = what_ + ": ";
  if (tty_ && total > 0) {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(kWidth * std::min(1.0, static_cast<double>(done) / static_cast<double>(total)));
    s += "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(kWidth - filled), '.') + "] ";
  }
  s += bytes_text(static_cast<double>(done)) + " of " + bytes_text(static_cast<double>(total)) + ", " +
       bytes_text(rate) + "/s";
  if (total > done && rate > 0) {
    char eta[32];
    std::snprintf(eta, sizeof eta, ", ETA %.1f s", static_cast<double>(total - done) / rate);
    s += eta;
  }
  if (!note.empty()) s += " (" + note + ")";
  return s;
}

void ProgressLine::update(uint64_t done, uint64_t total, const std::string& note) {
  const auto now = Clock::now();
  if (!tty_ && last_print_ != Clock::time_point{} && now - last_print_ < std::chrono::seconds(1)) return;
  last_print_ = now;
  const std::string s = render(done, total, note);
  if (tty_) {
    std::fprintf(out_, "\r%s%s", s.c_str(), std::string(last_width_ > s.size() ? last_width_ - s.size() : 0, ' ').c_str());
    last_width_ = s.size();
  } else {
    std::fprintf(out_, "%s\n", s.c_str());
  }
  std::fflush(out_);
}

void ProgressLine::finish(const std::string& text) {
  const std::string s = what_ + ": " + text;
  if (tty_) std::fprintf(out_, "\r%s%s\n", s.c_str(), std::string(last_width_ > s.size() ? last_width_ - s.size() : 0, ' ').c_str());
  else std::fprintf(out_, "%s\n", s.c_str());
  std::fflush(out_);
}

WaitResult wait_for_flush(const StatusPoll& poll, uint64_t runs, uint64_t staged_at_start, ProgressLine& line,
                          std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    if (auto s = poll()) {
      const uint64_t staged = staged_bytes(*s);
      const uint64_t done = staged_at_start > staged ? staged_at_start - staged : 0;
      const json& f = s->value("flush", json::object());
      if (!f.value("running", false) && f.value("runs", uint64_t{0}) >= runs && f.contains("last") &&
          f["last"].is_object()) {
        const json& last = f["last"];
        if (!last.value("ok", false)) return {false, "flush failed: " + last.value("error", std::string("?"))};
        line.update(staged_at_start, staged_at_start);
        return {true, "destaged " + bytes_text(static_cast<double>(staged_at_start)) + " in " +
                          std::to_string(last.value("ms", int64_t{0})) + " ms; " +
                          bytes_text(static_cast<double>(last.value("staged_bytes_after", uint64_t{0}))) +
                          " staged since"};
      }
      line.update(done, staged_at_start, "destaging");
    }
    if (Clock::now() > deadline)
      return {false, "still flushing after " + std::to_string(limit.count()) + " s (it goes on in hafsd)"};
    std::this_thread::sleep_for(kPollInterval);
  }
}

WaitResult wait_for_handover(const StatusPoll& poll, const std::vector<std::string>& volumes, ProgressLine& line,
                             std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  std::map<std::string, bool> started;  // seen leaving "serving" (giving-back or partner)
  uint64_t staged_at_start = 0;
  bool first = true;
  for (;;) {
    if (auto s = poll()) {
      const uint64_t staged = staged_bytes(*s);
      if (first) staged_at_start = staged, first = false;
      size_t handed = 0;
      std::string waiting;
      for (const std::string& name : volumes) {
        std::string state = "unknown";
        for (const json& v : s->value("volumes", json::array()))
          if (v.value("name", "") == name) state = v.value("state", "unknown");
        if (state == "partner") {
          ++handed;
        } else if (state == "giving-back") {
          started[name] = true;
        } else if (state == "serving" && started[name]) {
          return {false, "volume " + name + " is served here again: the hand-over was abandoned or failed (see the node's log)"};
        } else if (state != "serving") {
          return {false, "volume " + name + " is " + state + " here, not handed over"};
        }
        if (state == "serving") waiting = "waiting for the node to be NORMAL: it is " +
                                          s->value("membership", json::object()).value("state", std::string("?"));
      }
      const uint64_t done = staged_at_start > staged ? staged_at_start - staged : 0;
      if (handed == volumes.size()) {
        line.update(staged_at_start, staged_at_start);
        return {true, "handed over to the partner (" + bytes_text(static_cast<double>(staged_at_start)) +
                          " destaged first)"};
      }
      line.update(done, staged_at_start, waiting.empty() ? "destaging, then handing over" : waiting);
    }
    if (Clock::now() > deadline)
      return {false, "not handed over after " + std::to_string(limit.count()) + " s (the request stays queued in hafsd)"};
    std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace hafs::tools
