#include "tests/nfs/nfs_env.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/support/run_program.h"
#include "tests/support/wait.h"

#ifndef HAFS_NFS_SCRIPT
#error "HAFS_NFS_SCRIPT must name tools/hafs-nfs.sh"
#endif

namespace hafs::testing {

std::string hafs_nfs_script() { return HAFS_NFS_SCRIPT; }

bool enter_private_netns(std::string* why) {
  if (::unshare(CLONE_NEWNET) != 0) {
    *why = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) + " (the nfs tests need root)";
    return false;
  }
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = fd >= 0 && ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  ok = ok && ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  if (!ok) *why = std::string("bringing lo up: ") + std::strerror(errno);
  if (fd >= 0) ::close(fd);
  return ok;
}

RunResult run_command(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  const ProgramResult p = run_program(argv, timeout);
  return RunResult{p.code == -2 ? -1 : p.code, p.out + p.err};
}

int live_pid_in(const std::string& pid_file) {
  std::ifstream in(pid_file);
  int pid = -1;
  if (!(in >> pid) || pid <= 0) return -1;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return -1;
  // "pid (comm) S ...": the state follows the last ')'.
  const size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return -1;
  const char state = line[close + 2];
  return state == 'Z' || state == 'X' ? -1 : pid;
}

GaneshaNode::GaneshaNode() {
  char tmpl[] = "/tmp/hafs-nfs.XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  nfs_port_ = std::stoi(free_port());
  do mount_port_ = std::stoi(free_port());
  while (mount_port_ == nfs_port_);
}

GaneshaNode::~GaneshaNode() {
  down();
  for (const char* name : {"/ganesha.pid", "/rpcbind.pid"}) {
    const int pid = live_pid_in(dir_ + name);
    if (pid > 0) {  // what down could not stop: ours, by pid
      ::kill(pid, SIGKILL);
      eventually([&] { return live_pid_in(dir_ + name) < 0; }, std::chrono::seconds(10));
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

RunResult GaneshaNode::script(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {hafs_nfs_script()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

RunResult GaneshaNode::up(const std::string& mount, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"up", "--dir", dir_, "--mount", mount, "--port",
                                   std::to_string(nfs_port_), "--mount-port", std::to_string(mount_port_)};
  args.insert(args.end(), extra.begin(), extra.end());
  return script(args);
}

RunResult GaneshaNode::down() { return script({"down", "--dir", dir_}); }

std::string GaneshaNode::log() const {
  std::ifstream in(dir_ + "/ganesha.log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace hafs::testing
