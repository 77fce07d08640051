// The environment of the nfs tests: a private network namespace per test process (so ganesha's
// ports and rpcbind's port 111 never meet another test's or the host's), running commands, and
// GaneshaNode, which drives tools/hafs-nfs.sh for one node and always cleans up after it.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace hafs::testing {

// Moves this process (and the children it starts from now on) into a new network namespace
// with only `lo`, brought up. False with the reason in *why.
bool enter_private_netns(std::string* why);

struct RunResult {
  int code = -1;       // exit status; -1 when killed by a signal or the timeout
  std::string output;  // stdout, then stderr
};
RunResult run_command(const std::vector<std::string>& argv,
                      std::chrono::seconds timeout = std::chrono::seconds(120));

// Pid from a pid file if that process is alive (not a zombie), else -1.
int live_pid_in(const std::string& pid_file);

// One node's ganesha, started and stopped with tools/hafs-nfs.sh in a private directory with
// free ports. The destructor runs `down` and then, should anything the script started still be
// alive (a failing test, a script bug), kills those processes by pid.
class GaneshaNode {
 public:
  GaneshaNode();
  ~GaneshaNode();
  GaneshaNode(const GaneshaNode&) = delete;
  GaneshaNode& operator=(const GaneshaNode&) = delete;

  // `hafs-nfs.sh up --dir DIR --mount MOUNT --port P --mount-port M EXTRA...`.
  RunResult up(const std::string& mount, const std::vector<std::string>& extra = {});
  RunResult down();
  RunResult script(const std::vector<std::string>& args);  // any other invocation

  const std::string& dir() const { return dir_; }
  int nfs_port() const { return nfs_port_; }
  int mount_port() const { return mount_port_; }
  int ganesha_pid() const { return live_pid_in(dir_ + "/ganesha.pid"); }
  int rpcbind_pid() const { return live_pid_in(dir_ + "/rpcbind.pid"); }
  std::string log() const;  // ganesha's log, for failure messages

 private:
  std::string dir_;
  int nfs_port_, mount_port_;
};

std::string hafs_nfs_script();

}  // namespace hafs::testing
