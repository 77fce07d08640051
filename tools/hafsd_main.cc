// hafsd: the node daemon. It reads the configuration, opens the real parts of a Node (the NV log
// and mirror files, the membership directory, the boot-time clock, libfabric), builds the Node
// (node/node.h: recovery, mirroring, membership, in their order), puts the control socket and the
// FUSE mount in front of it and serves until SIGTERM/SIGINT; then it unmounts and the Node
// destages everything before it stops.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>

#include "base/fault.h"
#include "base/logger.h"
#include "fs/fuse_server.h"
#include "membership/shared_disk.h"
#include "node/node.h"
#include "nvcache/nvcache.h"
#include "tools/cli.h"
#include "tools/control_server.h"
#include "tools/flush_job.h"
#include "tools/hafsd_config.h"
#include "tools/hafsd_control.h"

using namespace hafs;

namespace {

// Every inode the kernel holds a reference to keeps a descriptor open here (fs/inode_table.h), and
// the kernel keeps inodes cached until memory is short: an untar of 20,000 files would meet a
// soft limit of 1,024 (a shell's, or systemd's default) with EMFILE. The soft limit is raised to
// the hard one, and the hard one as far as the kernel's nr_open allows where that is permitted.
void raise_descriptor_limit(const Logger& log) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  rlim_t ceiling = 1 << 20;
  if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "r")) {
    unsigned long long nr_open = 0;
    if (std::fscanf(f, "%llu", &nr_open) == 1 && nr_open > 0) ceiling = nr_open;
    std::fclose(f);
  }
  if (lim.rlim_max < ceiling) {
    const rlimit wanted{ceiling, ceiling};
    if (::setrlimit(RLIMIT_NOFILE, &wanted) == 0) lim = wanted;  // without CAP_SYS_RESOURCE: EPERM
  }
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  }
  if (lim.rlim_cur < 65536)
    log.warn("open files limited to %llu: the kernel's cached inodes each hold one; raise the hard "
             "limit (LimitNOFILE=, ulimit -Hn)", static_cast<unsigned long long>(lim.rlim_cur));
}

// Daemon mode: the parent waits until the child says it serves (or why it could not).
class Readiness {
 public:
  // Forks; returns in the child. The parent exits with the child's verdict.
  void daemonize() {
    if (::pipe(fds_) != 0) {
      std::perror("hafsd: pipe");
      std::exit(1);
    }
    pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("hafsd: fork");
      std::exit(1);
    }
    if (pid > 0) {
      ::close(fds_[1]);
      char verdict = 1;
      if (::read(fds_[0], &verdict, 1) != 1) verdict = 1;
      std::exit(verdict);
    }
    ::close(fds_[0]);
    ::setsid();
    active_ = true;
  }
  void report(bool ok) {
    if (!active_) return;
    char verdict = ok ? 0 : 1;
    if (::write(fds_[1], &verdict, 1) != 1) { /* the parent is gone: nothing to tell */ }
    ::close(fds_[1]);
    active_ = false;
  }

 private:
  int fds_[2] = {-1, -1};
  bool active_ = false;
};

// One message of systemd's notify protocol (hafsd@.service is Type=notify; docs/install.md):
// STATUS=failed, STOPPING=1 from the main thread, the rest from ServiceNotifier. sd_notify does
// nothing when NOTIFY_SOCKET is not set (hafsd not started by systemd).
void notify_service(const std::string& state) { (void)sd_notify(0, state.c_str()); }

// What hafsd tells systemd beyond a failed start (hafsd@.service; docs/install.md), from a thread
// of its own: sd_notify can block on a full socket, and the membership tick must never wait for
// systemd.
//   READY=1 once the mount serves and, with membership, once the node has left STARTING (its
//     home volumes are claimed or known to be the partner's);
//   STATUS= with what it serves and the membership state, whenever that changes;
//   WATCHDOG=1 (WatchdogSec=; docs/membership.md, "The systemd watchdog"): with membership, only
//     when the membership thread has ticked since the previous ping, so that a thread that
//     stalls stops both its lease renewals and the pings, and systemd kills and restarts the
//     node before its lease runs out. Before the first tick (recovery, which may be long) and on
//     a node without membership, unconditionally.
class ServiceNotifier {
 public:
  explicit ServiceNotifier(bool membership) : membership_(membership) {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0) period_ = std::chrono::microseconds(usec);
    if (std::getenv("NOTIFY_SOCKET")) thread_ = std::thread([this] { run(); });
  }
  ~ServiceNotifier() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  std::chrono::microseconds watchdog_period() const { return period_; }
  // The mount serves; `what` says what (READY=1 follows once membership has decided).
  void serving(std::string what) {
    std::lock_guard lock(mu_);
    serving_ = std::move(what);
    cv_.notify_all();
  }
  // The membership thread, after each tick: never waits for more than this mutex.
  void ticked(const membership::MonitorStatus& status) {
    std::string state = std::string("membership: node ") + membership::node_state_name(status.state) +
                        (status.degraded ? " (degraded)" : "");
    std::lock_guard lock(mu_);
    ++ticks_;
    decided_ = decided_ || status.state != membership::NodeState::kStarting;
    state_ = std::move(state);
  }

 private:
  void run() {
    const auto interval = period_.count() > 0 ? period_ / 4 : std::chrono::microseconds(250000);
    uint64_t pinged_at_tick = 0;
    bool ready = false;
    std::string told;
    std::unique_lock lock(mu_);
    while (!stop_) {
      const bool ping = period_.count() > 0 && (ticks_ == 0 || ticks_ != pinged_at_tick);
      pinged_at_tick = ticks_;
      std::string message;
      if (!ready && !serving_.empty() && (!membership_ || decided_)) {
        ready = true;
        message = "READY=1\n";
      }
      const std::string status = serving_ + (serving_.empty() || state_.empty() ? "" : "; ") + state_;
      if (status != told) message += "STATUS=" + status + "\n";
      told = status;
      if (ping) message += "WATCHDOG=1\n";
      lock.unlock();
      if (!message.empty()) notify_service(message);
      lock.lock();
      cv_.wait_for(lock, interval, [&] { return stop_; });
    }
  }
  const bool membership_;
  std::chrono::microseconds period_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string serving_;    // set once the mount serves
  bool decided_ = false;   // membership has left STARTING
  uint64_t ticks_ = 0;
  std::string state_;      // the newest membership state, for STATUS=
  std::thread thread_;
};

// Exit statuses (docs/configuration.md, "Exit status"): 3 for an NV log damaged inside (what it
// acknowledged cannot all be read back), 4 for a node identity held by another process.
constexpr int kExitDamaged = 3;
constexpr int kExitIdentityTaken = 4;

int fail(Readiness& ready, const Logger& log, const Status& s) {
  log.error("%s", s.to_string().c_str());
  ready.report(false);
  notify_service("STATUS=failed: " + s.to_string());
  switch (s.code()) {
    case Code::kDataLoss: return kExitDamaged;
    case Code::kBusy: return kExitIdentityTaken;
    default: return 1;
  }
}

Status format_nvlog(nvcache::Store& store, uint32_t node_id) {
  std::random_device rd;
  return nvcache::Log::format(store, node_id, (uint64_t{rd()} << 32) | rd());
}

// The NV log: create and format a new one; an existing one must match the configuration.
Result<std::unique_ptr<nvcache::Store>> open_nvlog(const tools::HafsdConfig& cfg, bool format, const Logger& log) {
  struct stat st {};
  const bool exists = ::stat(cfg.nvlog_path.c_str(), &st) == 0 && st.st_size > 0;
  if (exists && static_cast<uint64_t>(st.st_size) != cfg.nvlog_size && !format)
    return Status::error(Code::kInvalidArgument,
        "NV log " + cfg.nvlog_path + " has " + std::to_string(st.st_size) + " bytes but nvlog.size is " +
        std::to_string(cfg.nvlog_size) + "; it may hold records: destage it with the old size first");
  if (format && exists) ::unlink(cfg.nvlog_path.c_str());
  auto store = nvcache::open_store(cfg.nvlog_mode, cfg.nvlog_path, cfg.nvlog_size);
  if (!store) return store.status().with_context("NV log");
  if (!exists || format) {
    HAFS_RETURN_IF_ERROR(format_nvlog(**store, cfg.node_id).with_context("formatting the NV log"));
    log.info("formatted a new NV log %s (%" PRIu64 " bytes, %s store)", cfg.nvlog_path.c_str(),
             cfg.nvlog_size, nvcache::store_mode_name(cfg.nvlog_mode));
  }
  return store;
}

// A bad mount point is refused before anything (NV log, control socket) is touched.
Status check_mount_point(const std::string& mount) {
  struct stat mst {};
  if (::stat(mount.c_str(), &mst) != 0) return Status::from_errno(errno, "mount point " + mount);
  if (!S_ISDIR(mst.st_mode))
    return Status::error(Code::kInvalidArgument, "mount point " + mount + " is not a directory");
  if (fs::is_mount_point(mount))
    return Status::error(Code::kInvalidArgument, "mount point " + mount + " is busy (something is mounted there)");
  return Status::ok();
}

// What the command line asks for, besides the configuration it overrides.
struct CommandLine {
  std::string config_path, log_file;
  std::vector<std::string> overrides;  // KEY=VALUE, applied over the configuration file
  std::vector<std::string> faults;
  uint64_t fault_seed = 1;
  bool daemon = false, format_nvlog = false, accept_loss = false;
};

constexpr int kGoOn = -1;  // parse_command_line: no exit status, start the node

// Parses argv into `out`; returns kGoOn, or the exit status (0 for --help, 2 for an error).
int parse_command_line(int argc, char** argv, CommandLine* out) {
  CLI::App app{"hafsd: the hafs node daemon (configuration: docs/configuration.md)"};
  std::vector<std::string> sets, volumes;
  std::string node_id, mount, nvlog, nvlog_size, nvlog_mode, log_level;
  app.add_option("-c,--config", out->config_path, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_option("--set", sets, "override a setting: KEY=VALUE (e.g. nvlog.size=1GiB)");
  app.add_option("--volume", volumes, "add a volume: NAME:ID:PATH[:MODE[:HOME[:DEGRADED]]]");
  app.add_option("--node-id", node_id, "node_id");
  app.add_option("--mount", mount, "mount point (mount)");
  app.add_option("--nvlog", nvlog, "NV log file (nvlog.path)");
  app.add_option("--nvlog-size", nvlog_size, "NV log size, e.g. 256MiB (nvlog.size)");
  app.add_option("--nvlog-mode", nvlog_mode, "pmem or file (nvlog.mode)");
  app.add_option("--log-level", log_level, "debug, info, warn or error (log_level)");
  app.add_flag("--daemon", out->daemon, "run in the background once serving");
  app.add_option("--log-file", out->log_file, "with --daemon: append logs here instead of discarding them");
  app.add_option("--fault", out->faults, "arm a fault site at start: SITE=ACTION[,always][,p=P]");
  app.add_option("--fault-seed", out->fault_seed, "seed of fault probabilities");
  app.add_flag("--format-nvlog", out->format_nvlog,
               "format the NV log even if it exists (DISCARDS its records)");
  app.add_flag("--accept-loss", out->accept_loss,
               "serve although writes this node acknowledged without its mirror are lost with an "
               "NV log that is gone (exit 3 otherwise)");
  HAFS_CLI_PARSE(app, argc, argv);

  auto add = [&](const char* key, const std::string& v) {
    if (!v.empty()) out->overrides.push_back(std::string(key) + "=" + v);
  };
  add("node_id", node_id);
  add("mount", mount.empty() ? "" : "\"" + mount + "\"");
  add("nvlog.path", nvlog.empty() ? "" : "\"" + nvlog + "\"");
  add("nvlog.size", nvlog_size);
  add("nvlog.mode", nvlog_mode.empty() ? "" : "\"" + nvlog_mode + "\"");
  add("log_level", log_level.empty() ? "" : "\"" + log_level + "\"");
  for (auto& s : sets) out->overrides.push_back(s);
  for (auto& v : volumes) out->overrides.push_back("volume=" + v);
  return kGoOn;
}

Status arm_faults(FaultRegistry& registry, const std::vector<std::string>& faults, const Logger& log) {
  for (const auto& f : faults) {
    auto arm = parse_fault_arm(f);
    if (!arm) return arm.status().with_context("--fault");
    registry.arm(arm->site, arm->spec);
    log.warn("fault armed at start: %s", f.c_str());
  }
  return Status::ok();
}

// --daemon: fork (the parent waits for the verdict), and point the standard streams away.
void detach(Readiness& ready, const std::string& log_file) {
  ready.daemonize();
  int null_fd = ::open("/dev/null", O_RDWR);
  ::dup2(null_fd, STDIN_FILENO);
  ::dup2(null_fd, STDOUT_FILENO);
  int err_fd = log_file.empty() ? null_fd : ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (err_fd >= 0) ::dup2(err_fd, STDERR_FILENO);
}

// The real parts of a Node: the NV log and mirror files, the membership directory on the shared
// medium, the boot-time clock. (libfabric is the Node's default transport.) Not movable: the
// NodeEnv points into it.
struct RealParts {
  std::unique_ptr<nvcache::Store> nvlog, mirror;
  std::unique_ptr<membership::DirectoryDisk> disk;
  membership::SteadyClock clock;
};

Result<std::unique_ptr<RealParts>> open_real_parts(const tools::HafsdConfig& cfg, bool format, const Logger& log) {
  auto parts = std::make_unique<RealParts>();
  auto nvlog = open_nvlog(cfg, format, log);
  if (!nvlog) return nvlog.status();
  parts->nvlog = std::move(*nvlog);
  if (cfg.mirrored()) {
    auto ms = nvcache::open_store(nvcache::StoreMode::kPmem, cfg.interconnect.mirror_path, cfg.nvlog_size);
    if (!ms) return ms.status().with_context("mirror store");
    parts->mirror = std::move(*ms);
  }
  if (cfg.has_membership()) {
    auto d = membership::DirectoryDisk::open(cfg.membership.dir);
    if (!d) return d.status().with_context("membership.dir");
    parts->disk = std::move(*d);
  }
  return parts;
}

// Serves `node` until a signal or an unmount: the control socket (hafsctl) first, so that a
// start-up that hangs in the mount can still be looked at, then the FUSE mount; afterwards the
// node destages everything. Returns the exit status.
int serve(node::Node& node, const tools::HafsdConfig& cfg, FaultRegistry& faults, Readiness& ready,
          ServiceNotifier& notifier, const sigset_t& signals, const Logger& log) {
  const std::string socket_path = cfg.control_socket.empty()
                                      ? "/run/hafs/hafsd-" + std::to_string(cfg.node_id) + ".sock"
                                      : cfg.control_socket;
  tools::FlushJob flush_job(&node.cache());
  tools::NodeView view;
  view.config = &cfg;
  view.started = std::chrono::steady_clock::now();
  view.faults = &faults;
  view.cache = &node.cache();
  view.volumes = node.volumes();
  view.sender = node.sender();
  view.receiver = node.receiver();
  view.monitor = node.monitor();
  view.actions = node.actions();
  view.flush = &flush_job;
  auto control = tools::ControlServer::start(
      socket_path, [&view](const nlohmann::json& r) { return tools::handle_control(view, r); },
      log.child("control"));
  if (!control) return fail(ready, log, control.status());

  fs::FuseServerOptions fuse_opts;
  fuse_opts.max_threads = cfg.fuse_threads;
  auto server = fs::FuseServer::mount(node.filesystem(), cfg.mount, fuse_opts);
  if (!server) return fail(ready, log, server.status());

  std::mutex server_mu;
  bool stopping = false;  // GUARDED_BY(server_mu)
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::lock_guard lock(server_mu);
    if (stopping) return;
    log.info("signal %d: stopping", sig);
    (*server)->exit();
  });
  std::string names;
  for (fs::Volume* v : node.volumes())
    names += (names.empty() ? "" : ", ") + v->name() + " (" + fs::write_mode_name(v->mode()) + ")";
  log.info("serving %zu volumes at %s: %s", node.volumes().size(), cfg.mount.c_str(), names.c_str());
  ready.report(true);
  notifier.serving("serving " + std::to_string(node.volumes().size()) + " volumes at " + cfg.mount +
                   (names.empty() ? "" : ": " + names));

  Status loop = (*server)->run();
  if (!loop.is_ok()) log.error("%s", loop.to_string().c_str());
  notify_service("STOPPING=1\nSTATUS=unmounting, then destaging everything");
  {
    std::lock_guard lock(server_mu);
    stopping = true;
    server->reset();  // unmounted
  }
  control->reset();
  flush_job.wait();  // a flush hafsctl started; none can start now
  log.info("unmounted; destaging everything");
  Status flushed = node.shutdown();
  // The signal thread may still wait if the loop ended by an external unmount.
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  log.info("stopped");
  if (Status why = node.fatal(); !why.is_ok()) {
    const int status = why.code() == Code::kBusy ? kExitIdentityTaken : kExitDamaged;
    log.error("stopped itself: %s (exit %d)", why.to_string().c_str(), status);
    return status;
  }
  return loop.is_ok() && flushed.is_ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CommandLine cl;
  if (int status = parse_command_line(argc, argv, &cl); status != kGoOn) return status;
  auto config = tools::load_config(cl.config_path, cl.overrides);
  if (!config) {
    std::fprintf(stderr, "hafsd: %s\n", config.status().to_string().c_str());
    return 2;
  }
  const tools::HafsdConfig& cfg = *config;
  Logger log("node" + std::to_string(cfg.node_id), cfg.log_level);
  FaultRegistry faults(cl.fault_seed);
  if (Status s = arm_faults(faults, cl.faults, log); !s.is_ok()) {
    std::fprintf(stderr, "hafsd: %s\n", s.to_string().c_str());
    return 2;
  }

  Readiness ready;
  if (cl.daemon) detach(ready, cl.log_file);
  // The journal stamps lines and reads their priority; anywhere else a line carries its date.
  log.set_format(stderr_is_journal() ? LogFormat::kJournal : LogFormat::kDateTime);
  // Signals are taken by one thread with sigwait; block them before any other thread exists.
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::umask(0);  // the kernel has applied the caller's umask to every mode it sends
  raise_descriptor_limit(log);

  if (Status s = check_mount_point(cfg.mount); !s.is_ok()) return fail(ready, log, s);
  auto parts = open_real_parts(cfg, cl.format_nvlog, log);
  if (!parts) return fail(ready, log, parts.status());
  node::NodeEnv env;
  env.clock = &(*parts)->clock;
  env.disk = (*parts)->disk.get();
  env.nvlog = (*parts)->nvlog.get();
  env.mirror = (*parts)->mirror.get();
  env.faults = &faults;
  env.accept_loss = cl.accept_loss;
  env.format_nvlog = [&cfg](nvcache::Store& s) { return format_nvlog(s, cfg.node_id); };
  // The signal thread stops the node; the exit status says why (node.fatal(): 3 or 4).
  env.on_fatal = [](const Status&) { ::kill(::getpid(), SIGTERM); };
  ServiceNotifier notifier(cfg.has_membership());
  if (const auto period = notifier.watchdog_period(); period.count() > 0) {
    const long long watchdog_ms = std::chrono::duration_cast<std::chrono::milliseconds>(period).count();
    log.info("systemd watchdog: every %lld ms", watchdog_ms);
    const auto& mc = cfg.membership;
    const long long lease_left_ms = static_cast<long long>(mc.lease_ms) - mc.margin_ms - mc.io_timeout_ms;
    if (cfg.has_membership() && watchdog_ms > lease_left_ms)
      log.warn("the systemd watchdog (%lld ms) is longer than lease_ms - margin_ms - io_timeout_ms (%lld ms): "
               "a stalled node would be killed only after its lease ran out (membership.md, \"The systemd watchdog\")",
               watchdog_ms, lease_left_ms);
  }
  env.on_tick = [&notifier](const membership::MonitorStatus& s) { notifier.ticked(s); };
  auto node = node::Node::open(cfg, std::move(env), log);
  if (!node) return fail(ready, log, node.status());
  return serve(**node, cfg, faults, ready, notifier, signals, log);
}
