// Host plumbing of the local cluster launcher; contracts in tools/cluster_host.h.
#include "tools/cluster_host.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace hafs::tools::cluster {
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

json node_to_json(const NodeRecord& n) {
  return {{"id", n.id},         {"pid", n.pid},         {"dir", n.dir},       {"mount", n.mount},
          {"socket", n.socket}, {"log", n.log},         {"config", n.config}, {"netns", n.netns},
          {"veth", n.veth},     {"address", n.address}, {"port", n.port},     {"nvlog", n.nvlog},
          {"mirror", n.mirror}, {"argv", n.argv}};
}

NodeRecord node_from_json(const json& j) {
  NodeRecord n;
  n.id = j.at("id").get<uint32_t>();
  n.pid = j.at("pid").get<pid_t>();
  n.dir = j.at("dir").get<std::string>();
  n.mount = j.at("mount").get<std::string>();
  n.socket = j.at("socket").get<std::string>();
  n.log = j.at("log").get<std::string>();
  n.config = j.at("config").get<std::string>();
  n.netns = j.at("netns").get<std::string>();
  n.veth = j.at("veth").get<std::string>();
  n.address = j.at("address").get<std::string>();
  n.port = j.at("port").get<uint16_t>();
  n.nvlog = j.at("nvlog").get<std::string>();
  n.mirror = j.at("mirror").get<std::string>();
  n.argv = j.at("argv").get<std::vector<std::string>>();
  return n;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// /proc/mounts escapes space, tab, newline and backslash as \ooo.
std::string unescape_mount_field(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The process state letter of /proc/PID/stat ('\0' when there is no such process).
char process_state(pid_t pid) {
  const std::string stat = read_all("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '\0' : stat[paren + 2];
}

}  // namespace

json to_json(const Manifest& m) {
  json nodes = json::array();
  for (const auto& n : m.nodes) nodes.push_back(node_to_json(n));
  return {{"version", m.version}, {"dir", m.dir},       {"dir_created", m.dir_created},
          {"tag", m.tag},         {"hafsd", m.hafsd},   {"netns", m.netns},
          {"medium", m.medium},   {"membership_dir", m.membership_dir},
          {"key_file", m.key_file}, {"volumes", m.volumes}, {"nodes", nodes}};
}

Result<Manifest> load_manifest(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::error(Code::kNotFound, path + " does not exist");
  const json j = json::parse(read_all(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::error(Code::kCorruption, path + " is not JSON");
  try {
    Manifest m;
    m.version = j.at("version").get<int>();
    if (m.version != kManifestVersion)
      return Status::error(Code::kCorruption, path + " is of version " + std::to_string(m.version) +
                                                  "; this hafsctl reads version " + std::to_string(kManifestVersion));
    m.dir = j.at("dir").get<std::string>();
    m.dir_created = j.at("dir_created").get<bool>();
    m.tag = j.at("tag").get<std::string>();
    m.hafsd = j.at("hafsd").get<std::string>();
    m.netns = j.at("netns").get<bool>();
    m.medium = j.at("medium").get<std::string>();
    m.membership_dir = j.at("membership_dir").get<std::string>();
    m.key_file = j.at("key_file").get<std::string>();
    m.volumes = j.at("volumes").get<std::vector<std::string>>();
    for (const auto& n : j.at("nodes")) m.nodes.push_back(node_from_json(n));
    return m;
  } catch (const json::exception& e) {
    return Status::error(Code::kCorruption, path + " is not a cluster manifest: " + e.what());
  }
}

Status save_manifest(const Manifest& m, const std::string& path) {
  const std::string tmp = path + ".tmp";
  const std::string text = to_json(m).dump(2) + "\n";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno(errno, "cannot write " + tmp);
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!written) return Status::from_errno(err, "cannot write " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::from_errno(errno, "cannot rename " + tmp);
  return Status::ok();
}

std::string find_program(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream s(path);
    for (std::string d; std::getline(s, d, ':');)
      if (!d.empty()) dirs.push_back(d);
  }
  for (const char* d : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) dirs.push_back(d);
  for (const auto& d : dirs) {
    const std::string candidate = d + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

Status run_program(const std::vector<std::string>& argv, std::string* output, std::chrono::milliseconds limit) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status::from_errno(errno, "pipe");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return Status::from_errno(err, "fork");
  }
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, 0);
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  const auto deadline = Clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{fds[0], POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buf[4096];
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    if (out.size() < (1u << 20)) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  bool ended = false;
  while (!(ended = ::waitpid(pid, &status, WNOHANG) == pid) && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  if (!ended) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  if (output) *output = out;
  std::string what = argv[0];
  for (size_t i = 1; i < argv.size(); ++i) what += " " + argv[i];
  if (!ended) return Status::error(Code::kTimedOut, what + ": no end within " + std::to_string(limit.count()) + " ms");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::ok();
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return Status::error(Code::kIoError, what + ": " +
                                           (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                                              : std::string("killed by a signal")) +
                                           (out.empty() ? "" : ": " + out));
}

Result<pid_t> spawn_daemon(const std::vector<std::string>& argv, const std::string& log_path, const std::string& netns) {
  // Everything the child needs is prepared before the fork; the child reports a failure before
  // exec as (step, errno) through a close-on-exec pipe, which reads as EOF once exec succeeded.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string ns_path = netns.empty() ? "" : "/run/netns/" + netns;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status::from_errno(errno, "pipe");
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return Status::from_errno(err, "fork");
  }
  if (pid == 0) {
    ::close(fds[0]);
    auto fail = [&](int step) {
      const int report[2] = {step, errno};
      (void)!::write(fds[1], report, sizeof report);
      ::_exit(127);
    };
    ::setsid();
    if (!ns_path.empty()) {
      const int ns_fd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns_fd < 0 || ::setns(ns_fd, CLONE_NEWNET) != 0) fail(1);
      ::close(ns_fd);
    }
    const int null_fd = ::open("/dev/null", O_RDONLY);
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (null_fd < 0 || log_fd < 0) fail(2);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::close(null_fd);
    ::close(log_fd);
    // Nothing else the launcher inherited (a caller's pipe, say) may stay open in the daemon: a
    // reader waiting for that pipe's end would wait as long as the node runs.
    ::close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
    // Signals the launcher may have blocked or ignored are the daemon's to handle.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execv(args[0], args.data());
    fail(3);
  }
  ::close(fds[1]);
  int report[2] = {0, 0};
  const ssize_t n = ::read(fds[0], report, sizeof report);
  ::close(fds[0]);
  if (n == static_cast<ssize_t>(sizeof report)) {
    ::waitpid(pid, nullptr, 0);
    const char* step = report[0] == 1 ? "cannot enter network namespace " : report[0] == 2 ? "cannot open log " : "cannot run ";
    const std::string what = report[0] == 1 ? ns_path : report[0] == 2 ? log_path : argv[0];
    return Status::from_errno(report[1], step + what);
  }
  return pid;
}

bool reap_child(pid_t pid, int* status) {
  int st = 0;
  if (pid <= 0 || ::waitpid(pid, &st, WNOHANG) != pid) return false;
  if (status) *status = st;
  return true;
}

bool process_alive(pid_t pid) {
  if (pid <= 0) return false;
  const char state = process_state(pid);
  return state != '\0' && state != 'Z' && state != 'X';
}

bool is_node_process(pid_t pid, const std::string& config) {
  if (!process_alive(pid)) return false;
  const std::string cmdline = read_all("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> args;
  for (size_t start = 0; start < cmdline.size();) {
    const size_t end = cmdline.find('\0', start);
    args.push_back(cmdline.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (args.empty() || fs::path(args[0]).filename().string().rfind("hafsd", 0) != 0) return false;
  for (size_t i = 1; i < args.size(); ++i)
    if (args[i] == config) return true;
  return false;
}

std::vector<pid_t> node_processes(const NodeRecord& node) {
  std::vector<pid_t> pids;
  if (is_node_process(node.pid, node.config)) pids.push_back(node.pid);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (pid != node.pid && is_node_process(pid, node.config)) pids.push_back(pid);
  }
  return pids;
}

bool stop_process(pid_t pid, std::chrono::milliseconds term_limit, bool* killed) {
  *killed = false;
  auto gone_within = [pid](std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      reap_child(pid, nullptr);  // our child (restart-node, a failed up): leave no zombie
      if (!process_alive(pid)) return true;
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
  };
  if (::kill(pid, SIGTERM) != 0 && errno == ESRCH) return true;
  if (gone_within(term_limit)) return true;
  *killed = true;
  ::kill(pid, SIGKILL);
  return gone_within(10s);
}

bool is_mounted(const std::string& path) {
  std::ifstream in("/proc/mounts");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string device, where;
    if (fields >> device >> where && unescape_mount_field(where) == path) return true;
  }
  return false;
}

Status lazy_unmount(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0) return Status::from_errno(errno, "cannot unmount " + path);
  return Status::ok();
}

bool netns_exists(const std::string& name) {
  std::error_code ec;
  return !name.empty() && fs::exists("/run/netns/" + name, ec);
}

Status netns_make_pair(const std::string& ip_path, const std::string (&ns)[2], const std::string (&dev)[2],
                       const std::string (&addr)[2]) {
  std::string out;
  for (const auto& name : ns) HAFS_RETURN_IF_ERROR(run_program({ip_path, "netns", "add", name}, &out));
  HAFS_RETURN_IF_ERROR(run_program(
      {ip_path, "-n", ns[0], "link", "add", dev[0], "type", "veth", "peer", "name", dev[1], "netns", ns[1]}, &out));
  for (int i = 0; i < 2; ++i) {
    HAFS_RETURN_IF_ERROR(run_program({ip_path, "-n", ns[i], "addr", "add", addr[i] + "/24", "dev", dev[i]}, &out));
    HAFS_RETURN_IF_ERROR(run_program({ip_path, "-n", ns[i], "link", "set", "lo", "up"}, &out));
    HAFS_RETURN_IF_ERROR(run_program({ip_path, "-n", ns[i], "link", "set", dev[i], "up"}, &out));
  }
  return Status::ok();
}

Status netns_delete(const std::string& ip_path, const std::string& name) {
  std::string out;
  return run_program({ip_path, "netns", "del", name}, &out);
}

uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

std::string random_hex(size_t n) {
  std::random_device rd;
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += kDigits[rd() % 16];
  return s;
}

std::string tail_file(const std::string& path, size_t lines) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff from = size > 65536 ? size - 65536 : 0;
  in.seekg(from);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (size_t seen = 0; pos > 0; --pos)
    if (text[pos - 1] == '\n' && ++seen == lines) break;
  return text.substr(pos);
}

std::string self_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "." : exe.parent_path().string();
}

}  // namespace hafs::tools::cluster
