// HafsdProcess: a real hafsd for integration tests. It makes a private directory with volume
// directories and a mount point, an NV log (on /dev/shm unless HafsdSpec::nvlog_dir says
// otherwise), starts the daemon, waits until the mount is there, and on destruction stops it and
// removes everything it made, also when the test failed (lazy unmount of a dead daemon's mount
// included).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace hafs::testing {

struct HafsdSpec {
  uint32_t node_id = 1;
  // name -> mode ("staged" or "write-through"); ids are 1, 2, ... in this order.
  std::vector<std::pair<std::string, std::string>> volumes = {{"vol0", "staged"}};
  std::string nvlog_size = "64MiB";
  std::string nvlog_mode = "pmem";
  // Directory of the NV log file (which the process names after its private directory and
  // removes when it ends): /dev/shm by default; e.g. "/tmp" for a file-mode ring on a disk.
  std::string nvlog_dir = "/dev/shm";
  // The NV log file itself, instead of one named after the private directory in nvlog_dir: for a
  // second process that claims another process's identity (the duplicate-node tests). A file
  // named here belongs to someone else and is never removed by this process.
  std::string nvlog_path;
  std::vector<std::string> extra_args;  // e.g. {"--set", "nvlog.destage_interval_ms=60000"}
  // A storage medium shared with another node (failover tests): when set, every volume's
  // directory is medium_dir/NAME (created if missing, never removed by the process) instead of
  // the private dir()/media/NAME.
  std::string medium_dir;
  // Home node of a volume (name -> node id), passed as the fifth field of --volume; volumes not
  // listed get no home field (hafsd then takes this node).
  std::vector<std::pair<std::string, uint32_t>> volume_homes;
  // Degraded policy of a volume (name -> "local-log" or "write-through"), the sixth field of
  // --volume: only for volumes listed in volume_homes.
  std::vector<std::pair<std::string, std::string>> volume_degraded;
  // Arguments put before the hafsd binary, e.g. {"/usr/bin/nsenter", "--net=/run/netns/NS"};
  // the program must exec hafsd in place (same pid), as nsenter does.
  std::vector<std::string> launcher;
};

class HafsdProcess {
 public:
  explicit HafsdProcess(HafsdSpec spec = {});
  ~HafsdProcess();
  HafsdProcess(const HafsdProcess&) = delete;
  HafsdProcess& operator=(const HafsdProcess&) = delete;

  // Starts hafsd and waits (up to `timeout`) until the mount point is mounted. Returns false,
  // with the reason in *why (including the daemon's log), when it exits or times out first.
  bool start(std::string* why, std::chrono::seconds timeout = std::chrono::seconds(20));
  // SIGTERM, wait for a clean exit (returns its exit status, or -1 on timeout/signal).
  int stop(std::chrono::seconds timeout = std::chrono::seconds(30));
  // Waits up to `limit` for the daemon to end by itself (a refusal after the mount); returns
  // true when it did (its status is then exit_status()), false while it still runs.
  bool wait_exit(std::chrono::milliseconds limit);
  // How the last run ended, once it has: the exit status, or -1 when a signal ended it; -2 while
  // it runs or before the first start. Set by start() when the daemon exits before mounting,
  // by wait_exit(), stop() and kill9().
  int exit_status() const { return exit_status_; }
  // SIGKILL, reap, lazily unmount the dead mount.
  void kill9();
  // SIGSTOP, returning once every thread of the daemon is stopped (at most 2 s); SIGCONT.
  void pause();
  void resume();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  const std::string& dir() const { return dir_; }
  const std::string& mount() const { return mount_; }
  std::string volume_dir(const std::string& name) const {
    return (spec_.medium_dir.empty() ? dir_ + "/media" : spec_.medium_dir) + "/" + name;
  }
  std::string path(const std::string& rel) const { return mount_ + "/" + rel; }
  const std::string& nvlog() const { return nvlog_; }
  std::string control_socket() const { return dir_ + "/control.sock"; }
  std::string log() const;  // everything the daemon wrote to stderr so far
  std::vector<std::string> args() const;  // the command line start() uses
  // Replaces HafsdSpec::extra_args for the next start() (e.g. restart without a fault armed).
  void set_extra_args(std::vector<std::string> extra) { spec_.extra_args = std::move(extra); }

  // Runs hafsd with `args` to completion (for bad-input tests); returns the exit status and
  // fills *output with what it printed (stdout, then stderr).
  static int run_to_exit(const std::vector<std::string>& args, std::string* output,
                         std::chrono::seconds timeout = std::chrono::seconds(20));
  static std::string hafsd_binary();

 private:
  HafsdSpec spec_;
  std::string dir_, mount_, nvlog_, log_path_;
  pid_t pid_ = -1;
  int exit_status_ = -2;
};

// Whether `path` is a mount point now.
bool is_mounted(const std::string& path);

}  // namespace hafs::testing
