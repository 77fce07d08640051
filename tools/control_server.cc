#include "tools/control_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

namespace hafs::tools {
namespace {
constexpr size_t kMaxRequestBytes = 64 * 1024;
constexpr int kRequestTimeoutMs = 5000;

void write_line(int fd, const nlohmann::json& j) {
  // Invalid UTF-8 (e.g. in an error text) is replaced, not thrown on in the serving thread.
  const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::send(fd, line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}
}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::start(const std::string& path, Handler handler,
                                                            Logger logger) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path)
    return Status::error(Code::kInvalidArgument, "control socket path too long: " + path);
  std::error_code ec;
  {
    // hafsd runs with umask 0: a directory made here must not be writable by others, who could
    // otherwise replace the socket with their own.
    const mode_t old = ::umask(0022);
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    ::umask(old);
  }
  // A socket file left by a dead hafsd is replaced; a live one answers and is refused.
  if (struct stat st {}; ::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))  // never remove a file that is not a socket
      return Status::error(Code::kInvalidArgument, "control socket " + path + " exists and is not a socket");
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    const bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(probe);
    if (live)
      return Status::error(Code::kInvalidArgument, "control socket " + path + " is in use by a running hafsd");
    ::unlink(path.c_str());
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::from_errno(errno, "control socket");
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  const mode_t old = ::umask(0177);  // the socket is born 0600
  const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  ::umask(old);
  if (rc != 0 || ::listen(fd, 8) != 0) {
    ::close(fd);
    return Status::from_errno(rc != 0 ? err : errno, "control socket " + path);
  }
  auto s = std::unique_ptr<ControlServer>(new ControlServer(path, fd, std::move(handler), std::move(logger)));
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

ControlServer::~ControlServer() {
  stop_.store(true);
  ::shutdown(fd_, SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
  ::unlink(path_.c_str());
}

void ControlServer::run() {
  while (!stop_.load()) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    serve(client);
    ::close(client);
  }
}

void ControlServer::serve(int client) {
  // One connection may send several requests, one per line, until it closes or idles out.
  std::string buf;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kRequestTimeoutMs);
  for (;;) {
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      const std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      nlohmann::json response = {{"version", kControlVersion}};
      nlohmann::json request = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (request.is_discarded() || !request.is_object()) {
        response["ok"] = false;
        response["error"] = "malformed request: not a JSON object";
      } else if (request.value("version", nlohmann::json(0)) != kControlVersion) {
        // (compared as JSON: a "version" of another type is refused, not thrown on)
        response["ok"] = false;
        response["error"] = "unsupported control protocol version " + request.value("version", nlohmann::json(0)).dump() +
                            " (this hafsd speaks " + std::to_string(kControlVersion) + ")";
      } else {
        try {
          auto r = handler_(request);
          response["ok"] = r.is_ok();
          if (r.is_ok()) response["result"] = std::move(*r);
          else response["error"] = r.status().message();
        } catch (const nlohmann::json::exception& e) {  // a field of the wrong type, e.g. "op": 5
          response["ok"] = false;
          response["error"] = std::string("malformed request: ") + e.what();
        }
      }
      write_line(client, response);
    }
    if (buf.size() > kMaxRequestBytes) {
      write_line(client, {{"version", kControlVersion}, {"ok", false}, {"error", "request too long"}});
      return;
    }
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0 || stop_.load()) return;
    pollfd p{client, POLLIN, 0};
    if (::poll(&p, 1, std::min(left, 200)) <= 0) continue;
    char chunk[4096];
    ssize_t n = ::recv(client, chunk, sizeof chunk, 0);
    if (n <= 0) return;
    buf.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace hafs::tools
