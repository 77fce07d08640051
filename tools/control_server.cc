#include "tools/control_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <vector>

namespace hafs::tools {
namespace {
constexpr size_t kMaxRequestBytes = 64 * 1024;
constexpr int kRequestTimeoutMs = 5000;  // a client is dropped this long after its last request
constexpr size_t kMaxClients = 64;       // connections served at once; more are refused

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
  if (rc != 0 || ::listen(fd, static_cast<int>(kMaxClients)) != 0) {
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

// One thread, one poll over the listener and every client: an idle or slow client holds only
// its own slot (at most kMaxClients, each dropped kRequestTimeoutMs after its last request), so
// `hafsctl status` is answered whatever other clients do. Requests themselves run one at a time.
void ControlServer::run() {
  struct Client {
    int fd;
    std::string buf;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<Client> clients;
  auto fresh_deadline = [] { return std::chrono::steady_clock::now() + std::chrono::milliseconds(kRequestTimeoutMs); };
  while (!stop_.load()) {
    std::vector<pollfd> fds;
    fds.push_back({fd_, POLLIN, 0});
    for (const auto& c : clients) fds.push_back({c.fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 200) < 0) continue;
    if (fds[0].revents & POLLIN) {
      if (int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC); client >= 0) {
        if (clients.size() >= kMaxClients) {
          write_line(client, {{"version", kControlVersion}, {"ok", false},
                              {"error", "too many clients (" + std::to_string(kMaxClients) + "); try again"}});
          ::close(client);
        } else {
          clients.push_back({client, {}, fresh_deadline()});
        }
      }
    }
    const auto now = std::chrono::steady_clock::now();
    for (size_t i = 0; i < clients.size();) {
      Client& c = clients[i];
      bool keep = now < c.deadline;
      const short revents = i + 1 < fds.size() && fds[i + 1].fd == c.fd ? fds[i + 1].revents : 0;
      if (keep && (revents & (POLLIN | POLLHUP | POLLERR))) {
        char chunk[4096];
        const ssize_t n = ::recv(c.fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
          keep = false;
        } else {
          c.buf.append(chunk, static_cast<size_t>(n));
          if (serve_lines(c.fd, c.buf)) c.deadline = fresh_deadline();
          if (c.buf.size() > kMaxRequestBytes) {
            write_line(c.fd, {{"version", kControlVersion}, {"ok", false}, {"error", "request too long"}});
            keep = false;
          }
        }
      }
      if (keep) {
        ++i;
      } else {
        ::close(c.fd);
        clients.erase(clients.begin() + static_cast<long>(i));
      }
    }
  }
  for (const auto& c : clients) ::close(c.fd);
}

bool ControlServer::serve_lines(int client, std::string& buf) {
  // One connection may send several requests, one per line.
  bool served = false;
  size_t nl;
  while ((nl = buf.find('\n')) != std::string::npos) {
    const std::string line = buf.substr(0, nl);
    buf.erase(0, nl + 1);
    served = true;
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
  return served;
}

}  // namespace hafs::tools
