// ControlServer: hafsd's control socket. A Unix stream socket (mode 0600: root by default)
// speaking JSON lines: one request object per line, one response object per line.
//   request:  {"version": 1, "op": "status", ...}
//   response: {"version": 1, "ok": true, "result": {...}} or {"version": 1, "ok": false, "error": "..."}
// The protocol and the status schema are in docs/control-protocol.md. One thread polls every
// connection (at most 64; more are refused with an error line) and serves requests one at a
// time as their lines complete; a request line is at most 64 KiB, and a connection is dropped
// 5 s after it connected or after its last request.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/logger.h"
#include "base/status.h"

namespace hafs::tools {

inline constexpr int kControlVersion = 1;

class ControlServer {
 public:
  // Handles one request (its "op" and arguments); returns the "result" object or an error.
  using Handler = std::function<Result<nlohmann::json>(const nlohmann::json& request)>;

  static Result<std::unique_ptr<ControlServer>> start(const std::string& path, Handler handler,
                                                      Logger logger);
  ~ControlServer();  // stops and removes the socket file

 private:
  ControlServer(std::string path, int fd, Handler handler, Logger logger)
      : path_(std::move(path)), fd_(fd), handler_(std::move(handler)), logger_(std::move(logger)) {}
  void run();
  // Serves every complete request line in `buf` (removing them); true if there was one.
  bool serve_lines(int client, std::string& buf);

  std::string path_;
  int fd_;
  Handler handler_;
  Logger logger_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace hafs::tools
