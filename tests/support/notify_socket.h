// NotifySocket: the receiving end of systemd's notify protocol for tests (PID 1 here is not
// systemd). Tests point a hafsd's NOTIFY_SOCKET at it, as systemd does for a Type=notify service,
// and read what hafsd says.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/hafsd_process.h"

namespace hafs::testing {

// The receiving end of NOTIFY_SOCKET. A thread reads every datagram as soon as it arrives and
// notes, for each, whether `watched` was a mount point at that moment.
class NotifySocket {
 public:
  NotifySocket() {
    dir_ = std::filesystem::temp_directory_path() / ("hafs-notify-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
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
  // How many messages so far contain `part`.
  size_t count(const std::string& part) {
    size_t n = 0;
    for (const auto& m : messages()) n += m.text.find(part) != std::string::npos;
    return n;
  }
  // Waits up to `limit` for a message containing `part`.
  bool wait_for(const std::string& part, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      for (const auto& m : messages())
        if (m.text.find(part) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling a vector the reader fills
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

}  // namespace hafs::testing
