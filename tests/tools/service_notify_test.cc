// hafsd under systemd's notify protocol (hafsd@.service is Type=notify; docs/install.md), tested
// without systemd (PID 1 here is not systemd): the test binds a datagram socket of its own and
// points NOTIFY_SOCKET at it, as systemd does for a Type=notify service, then reads what a real
// hafsd tells it.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/hafsd_process.h"

namespace hafs::testing {
namespace {

using namespace std::chrono_literals;

// The receiving end of NOTIFY_SOCKET. A thread reads every datagram as soon as it arrives and
// notes, for each, whether `watched` was a mount point at that moment.
class NotifySocket {
 public:
  NotifySocket() {
    dir_ = std::filesystem::temp_directory_path() / ("hafs-notify-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = dir_ + "/notify";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{0, 1000};  // 1 ms: the reader looks at `stop_` this often
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
    if (fd_ >= 0) ::close(fd_);
    std::filesystem::remove_all(dir_);
  }
  bool bound() const { return bound_; }
  const std::string& path() const { return path_; }

  void start_reading(const std::string& watched) {
    reader_ = std::thread([this, watched] {
      char buf[4096];
      while (!stop_) {
        const ssize_t n = ::recv(fd_, buf, sizeof buf - 1, 0);
        if (n <= 0) continue;
        const bool mounted = is_mounted(watched);
        std::lock_guard lock(mu_);
        messages_.push_back({std::string(buf, static_cast<size_t>(n)), mounted});
      }
    });
  }
  struct Message {
    std::string text;
    bool mounted;  // the watched mount point was mounted when it arrived
  };
  std::vector<Message> messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }
  // Waits up to `limit` for a message containing `part`.
  bool wait_for(const std::string& part, std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      for (const auto& m : messages())
        if (m.text.find(part) != std::string::npos) return true;
      std::this_thread::sleep_for(5ms);  // polling a vector the reader fills
    }
    return false;
  }

 private:
  std::string dir_, path_;
  int fd_ = -1;
  bool bound_ = false;
  std::atomic<bool> stop_{false};
  std::thread reader_;
  std::mutex mu_;
  std::vector<Message> messages_;
};

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// READY=1 comes once the mount serves (never before), with a STATUS naming what it serves; a
// SIGTERM brings STOPPING=1 before the unmount and destage, and a clean exit.
TEST(ServiceNotifyTest, ReadyOnceTheMountServesAndStoppingOnSigterm) {
  NotifySocket sock;
  ASSERT_TRUE(sock.bound());
  ::setenv("NOTIFY_SOCKET", sock.path().c_str(), 1);  // inherited by hafsd
  HafsdProcess p;
  sock.start_reading(p.mount());
  std::string why;
  ASSERT_TRUE(p.start(&why)) << why;
  ASSERT_TRUE(sock.wait_for("READY=1")) << p.log();
  for (const auto& m : sock.messages()) {
    if (!has(m.text, "READY=1")) continue;
    EXPECT_TRUE(m.mounted) << "READY=1 before the mount was there: " << m.text;
    EXPECT_TRUE(has(m.text, "STATUS=serving 1 volumes at " + p.mount())) << m.text;
  }
  // Not the journal (no JOURNAL_STREAM): every line carries its date (operations.md, "Log lines").
  EXPECT_TRUE(std::regex_search(p.log(), std::regex("(^|\n)\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{6} INFO  node1: serving ")))
      << p.log();
  EXPECT_EQ(p.stop(), 0) << p.log();
  EXPECT_TRUE(sock.wait_for("STOPPING=1", 5s)) << p.log();
  ::unsetenv("NOTIFY_SOCKET");
}

// A start that fails says why in STATUS and never READY=1 (systemd then reports the failure with
// that status line, instead of a service that claimed to serve).
TEST(ServiceNotifyTest, AFailedStartSaysWhyAndIsNeverReady) {
  NotifySocket sock;
  ASSERT_TRUE(sock.bound());
  ::setenv("NOTIFY_SOCKET", sock.path().c_str(), 1);
  HafsdProcess p;
  sock.start_reading(p.mount());
  std::vector<std::string> args = p.args();
  args.erase(args.begin());  // the binary: run_to_exit() puts it first itself
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--mount") args[i + 1] = p.dir() + "/no-such-mount-point";
  std::string out;
  EXPECT_EQ(HafsdProcess::run_to_exit(args, &out), 1) << out;
  ASSERT_TRUE(sock.wait_for("STATUS=failed", 5s)) << out;
  for (const auto& m : sock.messages()) EXPECT_FALSE(has(m.text, "READY=1")) << m.text;
  EXPECT_TRUE(sock.wait_for("no-such-mount-point", 1s));
  ::unsetenv("NOTIFY_SOCKET");
}

}  // namespace
}  // namespace hafs::testing
