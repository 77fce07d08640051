#include "tests/support/hafsd_process.h"

#include "tests/support/run_program.h"
#include "tests/support/wait.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#ifndef HAFSD_BIN
#error "HAFSD_BIN must name the hafsd binary"
#endif

namespace hafs::testing {

namespace {
bool wait_exit(pid_t pid, std::chrono::milliseconds timeout, int* status) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    pid_t r = ::waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void lazy_unmount(const std::string& path) {
  if (!is_mounted(path)) return;
  pid_t pid = ::fork();
  if (pid == 0) {
    int null_fd = ::open("/dev/null", O_WRONLY);
    ::dup2(null_fd, 2);
    ::execlp("fusermount3", "fusermount3", "-uz", path.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (is_mounted(path)) ::umount2(path.c_str(), MNT_DETACH);
}

pid_t spawn(const std::vector<std::string>& args, const std::string& log_path) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(fd, 2);
    ::dup2(fd, 1);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}
}  // namespace

bool is_mounted(const std::string& path) {
  char real[PATH_MAX];
  if (!::realpath(path.c_str(), real)) return false;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string a, b, c, d, mnt;
    f >> a >> b >> c >> d >> mnt;
    if (mnt == real) return true;
  }
  return false;
}

std::string HafsdProcess::hafsd_binary() { return HAFSD_BIN; }

HafsdProcess::HafsdProcess(HafsdSpec spec) : spec_(std::move(spec)) {
  char tmpl[] = "/tmp/hafs-test.XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  mount_ = dir_ + "/mnt";
  log_path_ = dir_ + "/hafsd.log";
  nvlog_ = !spec_.nvlog_path.empty()
               ? spec_.nvlog_path
               : spec_.nvlog_dir + "/" + std::filesystem::path(dir_).filename().string() + ".nvlog";
  std::filesystem::create_directories(mount_);
  for (const auto& [name, mode] : spec_.volumes) std::filesystem::create_directories(volume_dir(name));
}

HafsdProcess::~HafsdProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGCONT);
    if (stop(std::chrono::seconds(20)) < 0) kill9();
  }
  lazy_unmount(mount_);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  if (spec_.nvlog_path.empty()) std::filesystem::remove(nvlog_, ec);
}

std::vector<std::string> HafsdProcess::args() const {
  std::vector<std::string> a = {HAFSD_BIN, "--node-id", std::to_string(spec_.node_id), "--mount",
                                mount_, "--nvlog", nvlog_, "--nvlog-size", spec_.nvlog_size,
                                "--nvlog-mode", spec_.nvlog_mode, "--log-level", "info",
                                // a private control socket: tests run side by side
                                "--set", "control_socket=\"" + control_socket() + "\""};
  uint32_t id = 1;
  for (const auto& [name, mode] : spec_.volumes) {
    std::string flag = name + ":" + std::to_string(id++) + ":" + volume_dir(name) + ":" + mode;
    for (const auto& [home_name, home] : spec_.volume_homes)
      if (home_name == name) flag += ":" + std::to_string(home);
    for (const auto& [policy_name, policy] : spec_.volume_degraded)
      if (policy_name == name) flag += ":" + policy;
    a.insert(a.end(), {"--volume", flag});
  }
  a.insert(a.end(), spec_.extra_args.begin(), spec_.extra_args.end());
  a.insert(a.begin(), spec_.launcher.begin(), spec_.launcher.end());
  return a;
}

namespace {
int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
}  // namespace

bool HafsdProcess::start(std::string* why, std::chrono::seconds timeout) {
  exit_status_ = -2;
  pid_ = spawn(args(), log_path_);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!is_mounted(mount_)) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_status_ = exit_code(status);
      if (why) *why = "hafsd exited (status " + std::to_string(status) + ") before mounting:\n" + log();
      return false;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      if (why) *why = "hafsd did not mount within the timeout:\n" + log();
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

int HafsdProcess::stop(std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  if (!hafs::testing::wait_exit(pid_, timeout, &status)) return -1;
  pid_ = -1;
  exit_status_ = exit_code(status);
  lazy_unmount(mount_);
  return exit_status_;
}

bool HafsdProcess::wait_exit(std::chrono::milliseconds limit) {
  if (pid_ <= 0) return true;
  int status = 0;
  if (!hafs::testing::wait_exit(pid_, limit, &status)) return false;
  pid_ = -1;
  exit_status_ = exit_code(status);
  lazy_unmount(mount_);
  return true;
}

void HafsdProcess::kill9() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    exit_status_ = exit_code(status);
  }
  lazy_unmount(mount_);
}

void HafsdProcess::pause() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGSTOP);
  // kill() returns before every thread has stopped: a FUSE worker could still take a request the
  // test issues right after. Wait (bounded) until /proc shows each thread stopped.
  const std::string tasks = "/proc/" + std::to_string(pid_) + "/task";
  eventually([&] {
    std::error_code ec;
    for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
      std::ifstream stat(t.path() / "stat");
      std::string line;
      std::getline(stat, line);
      const auto paren = line.rfind(')');
      if (paren == std::string::npos || paren + 2 >= line.size()) continue;  // gone meanwhile
      const char state = line[paren + 2];
      if (state != 'T' && state != 't') return false;
    }
    return !ec;
  }, std::chrono::seconds(2));
}

void HafsdProcess::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

std::string HafsdProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int HafsdProcess::run_to_exit(const std::vector<std::string>& args, std::string* output,
                              std::chrono::seconds timeout) {
  std::vector<std::string> full = args;
  full.insert(full.begin(), HAFSD_BIN);
  const ProgramResult r = run_program(full, timeout);
  if (output) *output = r.out + r.err;
  return r.code == -2 ? -1 : r.code;
}

}  // namespace hafs::testing
