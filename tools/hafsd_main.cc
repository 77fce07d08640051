// hafsd: the node daemon. The composition root: it reads the configuration, opens the volumes
// and the NV log, recovers and destages what the log holds, mounts the FUSE tree and serves it
// until SIGTERM/SIGINT, then unmounts and destages everything before it exits.
//
// Start-up order matters: nothing is served before every recovered record is on the medium.
#include "tools/cli.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <random>
#include <algorithm>
#include <atomic>
#include <functional>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/fault.h"
#include "base/logger.h"
#include "fs/filesystem.h"
#include "fs/fuse_server.h"
#include "fs/volume.h"
#include "interconnect/mirror_receiver.h"
#include "interconnect/mirror_sender.h"
#include "nvcache/nvcache.h"
#include "tools/control_server.h"
#include "tools/hafsd_config.h"
#include "tools/hafsd_control.h"
#include "tools/hafsd_membership.h"
#include "membership/mirror_mark.h"
#include "membership/monitor.h"
#include "membership/shared_disk.h"

using namespace hafs;

namespace {

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

std::string hex_id(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

// Exit statuses (docs/configuration.md, "Exit status"): 3 for an NV log damaged inside (what it
// acknowledged cannot all be read back), 4 for a node identity held by another process.
constexpr int kExitDamaged = 3;
constexpr int kExitIdentityTaken = 4;

int fail(Readiness& ready, const Logger& log, const Status& s) {
  log.error("%s", s.to_string().c_str());
  ready.report(false);
  switch (s.code()) {
    case Code::kDataLoss: return kExitDamaged;
    case Code::kBusy: return kExitIdentityTaken;
    default: return 1;
  }
}

// The NV log is damaged inside (nvcache: RingDamage). Its records were acknowledged, and the
// partner's mirror holds them: once the partner has taken every volume over and replayed this
// node's log past the damage (its ownership records say so), nothing in this log is needed any
// more and it is formatted anew. Until then the node refuses to start (exit 3), which leaves it
// silent, so that the partner takes its volumes over from the mirror (docs/durability.md).
Status damage_covered_by_partner(const tools::HafsdConfig& cfg, membership::SharedDisk& disk,
                                 uint64_t cluster_id, uint64_t last_needed_lsn) {
  for (const auto& v : cfg.volumes) {
    membership::RecordBlock block{};
    Status read = disk.read(membership::ownership_record_name(v.id), block);
    auto rec = read.is_ok() ? membership::decode_ownership(block) : Result<membership::OwnershipRecord>(read);
    const std::string name = "volume " + v.name + ": ";
    if (!rec) return rec.status().with_context(name + "ownership record");
    if (rec->cluster_id != cluster_id)
      return Status::error(Code::kDataLoss, name + "its ownership record is of another cluster");
    if (rec->owner == cfg.node_id)
      return Status::error(Code::kDataLoss, name + "this node still owns it (epoch " +
                                                std::to_string(rec->epoch) + ")");
    if (rec->replay_node == cfg.node_id &&
        (rec->replay_pending() || rec->replay_next_lsn <= last_needed_lsn))
      return Status::error(Code::kDataLoss, name + "node " + std::to_string(rec->owner) +
                                                " has not replayed this log past LSN " +
                                                std::to_string(last_needed_lsn) + " yet");
  }
  return Status::ok();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hafsd: the hafs node daemon (configuration: docs/configuration.md)"};
  std::string config_path, log_file;
  std::vector<std::string> sets, volumes;
  std::string node_id, mount, nvlog, nvlog_size, nvlog_mode, log_level;
  bool daemon = false, format_nvlog = false, accept_loss = false;
  app.add_option("-c,--config", config_path, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_option("--set", sets, "override a setting: KEY=VALUE (e.g. nvlog.size=1GiB)");
  app.add_option("--volume", volumes, "add a volume: NAME:ID:PATH[:MODE[:HOME[:DEGRADED]]]");
  app.add_option("--node-id", node_id, "node_id");
  app.add_option("--mount", mount, "mount point (mount)");
  app.add_option("--nvlog", nvlog, "NV log file (nvlog.path)");
  app.add_option("--nvlog-size", nvlog_size, "NV log size, e.g. 256MiB (nvlog.size)");
  app.add_option("--nvlog-mode", nvlog_mode, "pmem or file (nvlog.mode)");
  app.add_option("--log-level", log_level, "debug, info, warn or error (log_level)");
  app.add_flag("--daemon", daemon, "run in the background once serving");
  app.add_option("--log-file", log_file, "with --daemon: append logs here instead of discarding them");
  std::vector<std::string> faults;
  uint64_t fault_seed = 1;
  app.add_option("--fault", faults, "arm a fault site at start: SITE=ACTION[,always][,p=P]");
  app.add_option("--fault-seed", fault_seed, "seed of fault probabilities");
  app.add_flag("--format-nvlog", format_nvlog,
               "format the NV log even if it exists (DISCARDS its records)");
  app.add_flag("--accept-loss", accept_loss,
               "serve although writes this node acknowledged without its mirror are lost with an "
               "NV log that is gone (exit 3 otherwise)");
  HAFS_CLI_PARSE(app, argc, argv);

  std::vector<std::string> overrides;
  auto add = [&](const char* key, const std::string& v) {
    if (!v.empty()) overrides.push_back(std::string(key) + "=" + v);
  };
  add("node_id", node_id);
  add("mount", mount.empty() ? "" : "\"" + mount + "\"");
  add("nvlog.path", nvlog.empty() ? "" : "\"" + nvlog + "\"");
  add("nvlog.size", nvlog_size);
  add("nvlog.mode", nvlog_mode.empty() ? "" : "\"" + nvlog_mode + "\"");
  add("log_level", log_level.empty() ? "" : "\"" + log_level + "\"");
  for (auto& s : sets) overrides.push_back(s);
  for (auto& v : volumes) overrides.push_back("volume=" + v);

  auto config = tools::load_config(config_path, overrides);
  if (!config) {
    std::fprintf(stderr, "hafsd: %s\n", config.status().to_string().c_str());
    return 2;
  }
  const tools::HafsdConfig& cfg = *config;
  Logger log("node" + std::to_string(cfg.node_id), cfg.log_level);

  FaultRegistry fault_registry(fault_seed);
  for (const auto& f : faults) {
    auto arm = parse_fault_arm(f);
    if (!arm) {
      std::fprintf(stderr, "hafsd: --fault: %s\n", arm.status().to_string().c_str());
      return 2;
    }
    fault_registry.arm(arm->site, arm->spec);
    log.warn("fault armed at start: %s", f.c_str());
  }

  Readiness ready;
  if (daemon) {
    ready.daemonize();
    int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(null_fd, STDOUT_FILENO);
    int err_fd = log_file.empty() ? null_fd : ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (err_fd >= 0) ::dup2(err_fd, STDERR_FILENO);
  }
  // Signals are taken by one thread with sigwait; block them before any other thread exists.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::umask(0);  // the kernel has applied the caller's umask to every mode it sends

  // A bad mount point is refused before anything (NV log, control socket) is touched.
  {
    struct stat mst {};
    if (::stat(cfg.mount.c_str(), &mst) != 0)
      return fail(ready, log, Status::from_errno(errno, "mount point " + cfg.mount));
    if (!S_ISDIR(mst.st_mode))
      return fail(ready, log, Status::error(Code::kInvalidArgument,
                                            "mount point " + cfg.mount + " is not a directory"));
    if (fs::is_mount_point(cfg.mount))
      return fail(ready, log, Status::error(Code::kInvalidArgument,
                                            "mount point " + cfg.mount + " is busy (something is mounted there)"));
  }

  // Volumes.
  std::vector<std::unique_ptr<fs::Volume>> vols;
  for (const auto& v : cfg.volumes) {
    auto vol = fs::Volume::open(v.name, v.id, v.path, v.mode);
    if (!vol) return fail(ready, log, vol.status());
    (*vol)->set_home_node(v.home);
    (*vol)->set_degraded_policy(v.degraded);
    vols.push_back(std::move(*vol));
  }
  auto resolve = [&](uint32_t id) -> fs::Volume* {
    for (auto& v : vols)
      if (v->id() == id) return v.get();
    return nullptr;
  };

  // Membership's shared disk comes first: a damaged NV log is judged by the ownership records.
  std::unique_ptr<membership::DirectoryDisk> disk;
  uint64_t cluster_id = 0;
  if (cfg.has_membership()) {
    auto d = membership::DirectoryDisk::open(cfg.membership.dir);
    if (!d) return fail(ready, log, d.status().with_context("membership.dir"));
    disk = std::move(*d);
    auto id = tools::cluster_id_of(cfg);
    if (!id) return fail(ready, log, id.status());
    cluster_id = *id;
  }

  // The NV log: create and format a new one; an existing one must match the configuration.
  struct stat st {};
  const bool exists = ::stat(cfg.nvlog_path.c_str(), &st) == 0 && st.st_size > 0;
  if (exists && static_cast<uint64_t>(st.st_size) != cfg.nvlog_size && !format_nvlog)
    return fail(ready, log, Status::error(Code::kInvalidArgument,
        "NV log " + cfg.nvlog_path + " has " + std::to_string(st.st_size) + " bytes but nvlog.size is " +
        std::to_string(cfg.nvlog_size) + "; it may hold records: destage it with the old size first"));
  if (format_nvlog && exists) ::unlink(cfg.nvlog_path.c_str());
  auto store = nvcache::open_store(cfg.nvlog_mode, cfg.nvlog_path, cfg.nvlog_size);
  if (!store) return fail(ready, log, store.status().with_context("NV log"));
  if (!exists || format_nvlog) {
    std::random_device rd;
    Status s = nvcache::Log::format(**store, cfg.node_id, (uint64_t{rd()} << 32) | rd());
    if (!s.is_ok()) return fail(ready, log, s.with_context("formatting the NV log"));
    log.info("formatted a new NV log %s (%" PRIu64 " bytes, %s store)", cfg.nvlog_path.c_str(),
             cfg.nvlog_size, nvcache::store_mode_name(cfg.nvlog_mode));
  }

  // With membership the monitor's lease decides what this node may destage (and, below,
  // acknowledge); it is made further down, once the data path exists.
  membership::SteadyClock clock;
  std::unique_ptr<membership::Monitor> monitor;
  fs::VolumeTarget target(resolve, log.child("destage"));
  if (cfg.has_membership())
    target.set_fence([&](const fs::Volume& v) {
      return monitor && monitor->may_destage(v.id(), v.epoch(), clock.now());
    });
  nvcache::NvCacheOptions cache_opts;
  cache_opts.logger = log.child("nvlog");
  cache_opts.destage_interval_ms = cfg.destage_interval_ms;
  cache_opts.faults = &fault_registry;
  nvcache::RecoveryReport report;
  auto cache = nvcache::NvCache::open(**store, target, cache_opts, &report);
  if (!cache && cache.status().code() == Code::kDataLoss && disk && report.ring.damage) {
    Status covered = damage_covered_by_partner(cfg, *disk, cluster_id, report.ring.damage->last_valid_lsn);
    if (!covered.is_ok())
      return fail(ready, log, Status::error(Code::kDataLoss,
          cache.status().message() + ". Not starting: " + covered.message() +
          ". The partner's mirror holds these records: it takes this node's volumes over while "
          "this node is down; start this node again once it has"));
    log.warn("%s; the partner has taken every volume over and replayed this log past the damage: "
             "formatting the NV log anew", cache.status().message().c_str());
    std::random_device rd;
    Status f = nvcache::Log::format(**store, cfg.node_id, (uint64_t{rd()} << 32) | rd());
    if (!f.is_ok()) return fail(ready, log, f.with_context("formatting the damaged NV log"));
    cache = nvcache::NvCache::open(**store, target, cache_opts, &report);
  }
  if (!cache) return fail(ready, log, cache.status());
  // With membership, nothing is destaged before ownership is known: a volume the partner took
  // over while this node was away must have its stale records discarded, never applied.
  if (cfg.has_membership())
    for (auto& v : vols) (*cache)->pause_volume(v->id());
  if (report.records_indexed > 0 && !cfg.has_membership()) {
    log.info("destaging %" PRIu64 " recovered records before serving", report.records_indexed);
    if (Status s = (*cache)->flush_all(); !s.is_ok())
      return fail(ready, log, s.with_context("destaging recovered records (they stay in the NV log)"));
  }
  (*cache)->start_destager();

  // Mirroring: this node's receiver keeps the partner's ring; its sender ships ours.
  std::unique_ptr<nvcache::Store> mirror_store;
  std::unique_ptr<interconnect::MirrorReceiver> receiver;
  std::unique_ptr<interconnect::MirrorSender> sender;
  std::unique_ptr<membership::MirrorMark> mirror_mark;
  if (cfg.mirrored()) {
    const auto& ic = cfg.interconnect;
    interconnect::Key key{};
    if (!ic.key_file.empty()) {
      auto k = interconnect::load_key_file(ic.key_file);
      if (!k) return fail(ready, log, k.status());
      key = *k;
    } else {
      key = interconnect::key_from_passphrase(ic.key);
    }
    auto ms = nvcache::open_store(nvcache::StoreMode::kPmem, ic.mirror_path, cfg.nvlog_size);
    if (!ms) return fail(ready, log, ms.status().with_context("mirror store"));
    mirror_store = std::move(*ms);
    interconnect::FabricConfig fabric;
    fabric.provider = ic.provider;
    interconnect::MirrorReceiverOptions ro;
    ro.logger = log.child("mirror-in");
    ro.fabric = fabric;
    ro.listen_host = ic.listen_host;
    ro.listen_port = ic.listen_port;
    ro.node_id = cfg.node_id;
    ro.partner_node_id = ic.partner_node_id;
    ro.key = key;
    ro.peer_silence_limit = std::chrono::milliseconds(ic.silence_limit_ms);
    ro.faults = &fault_registry;
    auto r = interconnect::MirrorReceiver::start(*mirror_store, ro);
    if (!r) return fail(ready, log, r.status());
    receiver = std::move(*r);
    interconnect::MirrorSenderOptions so;
    so.logger = log.child("mirror-out");
    so.fabric = fabric;
    so.partner_host = ic.partner_host;
    so.partner_port = ic.partner_port;
    so.node_id = cfg.node_id;
    so.partner_node_id = ic.partner_node_id;
    so.key = key;
    so.mirror_wait = std::chrono::milliseconds(ic.mirror_wait_ms);
    so.heartbeat_interval = std::chrono::milliseconds(ic.heartbeat_ms);
    so.peer_silence_limit = std::chrono::milliseconds(ic.silence_limit_ms);
    so.faults = &fault_registry;
    if (disk) {
      // I7: the partner must know its mirror of our log is outdated before we acknowledge a
      // write it lacks (docs/membership.md, "The outdated mirror").
      mirror_mark = std::make_unique<membership::MirrorMark>(*disk, cfg.node_id, cluster_id);
      auto found = mirror_mark->load();
      if (!found) return fail(ready, log, found.status().with_context("outdated-mirror mark"));
      const bool outdated = *found && (*found)->outdated;
      const uint64_t ring_id = (*cache)->log().ring_id();
      if (outdated && (*found)->ring_id != ring_id) {
        // The writes acknowledged without the mirror were in a ring that is gone (a power loss
        // of a /dev/shm store, --format-nvlog): they are nowhere. Serving would serve older data.
        if (!accept_loss)
          return fail(ready, log, Status::error(Code::kDataLoss,
              "the partner's mirror of this node's NV log was marked outdated for ring " + hex_id((*found)->ring_id) +
              " (writes were acknowledged without it, " + std::to_string((*found)->lag_bytes) +
              " bytes unmirrored when marked), and this NV log is ring " + hex_id(ring_id) +
              ": those writes are lost. Not serving older data; start with --accept-loss to serve anyway"));
        log.error("--accept-loss: the writes acknowledged without the mirror in ring %s are lost; serving",
                  hex_id((*found)->ring_id).c_str());
        if (Status c = mirror_mark->clear(ring_id); !c.is_ok()) return fail(ready, log, c);
      } else if (outdated) {
        log.warn("the partner's mirror of this NV log is marked outdated (an earlier life acknowledged "
                 "writes without it): cleared once a resync has caught it up");
      }
      so.outdated_at_start = outdated && (*found)->ring_id == ring_id;
      so.mark_outdated = [&mark = *mirror_mark, ring_id](uint64_t from, uint64_t lag) {
        return mark.set_outdated(ring_id, from, lag);
      };
      so.clear_outdated = [&mark = *mirror_mark, ring_id] { return mark.clear(ring_id); };
    }
    sender = std::make_unique<interconnect::MirrorSender>((*cache)->log(), so);
    sender->start();
    (*cache)->set_replicator(sender.get());
    if (disk) {
      // Damage among the last records of the log reads like a torn tail (log-format.md §9a). The
      // partner's mirror tells: if it holds this ring's last session further than recovery found
      // it valid, records that may have been acknowledged are missing here. (A crash of hafsd
      // never does that: the mirror gets only bytes already in the local ring.) Then this node
      // must not re-claim its volumes from the log: it stops, and the partner takes them over
      // from the mirror, unless it already has, past that point.
      const auto hello = sender->first_hello(std::chrono::milliseconds(2 * ic.silence_limit_ms));
      if (hello && hello->ring_id == report.ring.header.ring_id &&
          hello->session == report.ring.header.session && hello->have_pos > report.ring.next_pos) {
        const std::string lost = "node " + std::to_string(ic.partner_node_id) +
            "'s mirror holds this NV log's session " + std::to_string(hello->session) + " up to position " +
            std::to_string(hello->have_pos) + ", beyond where recovery found it valid (position " +
            std::to_string(report.ring.next_pos) + ", LSN " + std::to_string(report.ring.next_lsn) +
            ": " + report.ring.end_message + "): records that may have been acknowledged are damaged here";
        Status covered = damage_covered_by_partner(cfg, *disk, cluster_id, report.ring.next_lsn);
        if (!covered.is_ok())
          return fail(ready, log, Status::error(Code::kDataLoss, lost + ". Not starting: " + covered.message() +
              ". The partner's mirror holds these records: it takes this node's volumes over while this node "
              "is down; start this node again once it has"));
        log.warn("%s; the partner has taken every volume over and replayed past them", lost.c_str());
      }
    }
    log.info("mirroring to node %u at %s:%s over %s; mirror of its ring in %s",
             ic.partner_node_id, ic.partner_host.c_str(), ic.partner_port.c_str(),
             ic.provider.c_str(), ic.mirror_path.c_str());
  }

  fs::FsOptions fs_opts;
  fs_opts.logger = log.child("fs");
  fs_opts.attr_timeout_s = cfg.attr_timeout_s;
  fs_opts.sync_metadata = cfg.sync_metadata;
  // With membership the lease decides whether a write may be acknowledged.
  if (cfg.has_membership())
    fs_opts.may_acknowledge = [&](const fs::Volume& v) {
      return monitor && monitor->lease_valid(v.id(), v.epoch(), clock.now());
    };
  if (sender) fs_opts.mirror_degraded = [&] { return sender->degraded(); };
  fs::Filesystem filesystem(cache->get(), fs_opts);
  if (!cfg.has_membership())
    for (auto& v : vols) filesystem.add_volume(v.get());

  // Membership: the monitor decides which volumes this node serves; NodeActions carries it out.
  std::unique_ptr<tools::FaultyDisk> faulty_disk;  // the disk with the membership fault sites
  std::unique_ptr<tools::NodeActions> actions;
  std::thread membership_thread;
  std::mutex membership_mu;
  std::condition_variable membership_cv;
  bool membership_stop = false;  // GUARDED_BY(membership_mu)
  bool membership_wake = false;  // GUARDED_BY(membership_mu): tick now (a background action ended)
  std::atomic<bool> identity_taken{false};  // the monitor found a second process with our node id
  // Stops the membership thread: at the end of a run, and on a start-up failure after it began.
  auto stop_membership = [&] {
    if (!membership_thread.joinable()) return;
    {
      std::lock_guard lock(membership_mu);
      membership_stop = true;
    }
    membership_cv.notify_all();
    membership_thread.join();
    actions->wait_for_jobs();  // a takeover replay or giveback destage still under way
  };
  struct OnExit {
    std::function<void()> f;
    ~OnExit() { f(); }
  } membership_guard{stop_membership};
  if (cfg.has_membership()) {
    const auto& mc = cfg.membership;
    faulty_disk = std::make_unique<tools::FaultyDisk>(*disk, &fault_registry);
    std::vector<fs::Volume*> all;
    for (auto& v : vols) all.push_back(v.get());
    actions = std::make_unique<tools::NodeActions>(cfg.node_id, all, &filesystem, cache->get(), &target,
                                                   mirror_store.get(), sender.get(), receiver.get(),
                                                   log.child("membership"), &fault_registry);
    membership::MonitorConfig mcfg;
    mcfg.node_id = cfg.node_id;
    mcfg.partner_id = cfg.interconnect.partner_node_id;
    for (auto& v : cfg.volumes) mcfg.volumes.push_back({v.id, v.home});
    std::random_device rd;
    mcfg.incarnation = (uint64_t{rd()} << 32) | rd();
    mcfg.cluster_id = cluster_id;
    mcfg.lease_ms = mc.lease_ms;
    mcfg.margin_ms = mc.margin_ms;
    mcfg.settle_ms = mc.settle_ms;
    mcfg.tick_ms = mc.tick_ms;
    mcfg.partner_silence_ms = mc.partner_silence_ms;
    mcfg.io_timeout_ms = mc.io_timeout_ms;
    mcfg.auto_giveback = mc.auto_giveback;
    mcfg.giveback_delay_ms = mc.giveback_delay_ms;
    actions->set_wake([&] {
      std::lock_guard lock(membership_mu);
      membership_wake = true;
      membership_cv.notify_all();
    });
    auto m = membership::Monitor::create(mcfg, clock, *faulty_disk, *actions, log.child("membership"));
    if (!m) return fail(ready, log, m.status().with_context("membership"));
    monitor = std::move(*m);
    const auto silence = std::chrono::milliseconds(cfg.interconnect.silence_limit_ms);
    membership_thread = std::thread([&, silence] {
      std::unique_lock lock(membership_mu);
      while (!membership_stop) {
        lock.unlock();
        membership::Observation obs;
        const auto out = sender->link();  // never waits for the data path's locks
        const auto in = receiver->stats();
        const auto heard = [&](int64_t ms) { return ms >= 0 && std::chrono::milliseconds(ms) < silence; };
        obs.interconnect_alive = heard(out.ms_since_heard) || heard(in.ms_since_heard);
        obs.mirror_in_sync = out.state == interconnect::MirrorState::kMirroring && !out.degraded;
        obs.own_mirror_outdated = out.outdated_marked;
        monitor->tick(obs);
        const membership::MonitorStatus status = monitor->status();
        // The interconnect handshake, COMMITs and TRIMs present the newest epoch this node has
        // seen; the receiver requires the newest it holds or claims (a partner that has not
        // learned of a takeover may not change the mirror the takeover replays).
        sender->set_epoch(membership::highest_epoch(status));
        receiver->set_min_epoch(membership::highest_epoch_held(status));
        if (!status.identity_conflict.empty() && !identity_taken.exchange(true))
          ::kill(::getpid(), SIGTERM);  // the signal thread stops the node; exit status 4
        const auto wait = std::clamp(monitor->next_tick_at() - clock.now(), membership::Millis(1),
                                     membership::Millis(cfg.membership.tick_ms));
        lock.lock();
        membership_cv.wait_for(lock, wait, [&] { return membership_stop || membership_wake; });
        membership_wake = false;
      }
    });
  }

  // The control socket (hafsctl) comes up before the mount, so that a start-up that hangs in the
  // mount can still be looked at.
  const std::string socket_path = cfg.control_socket.empty()
                                      ? "/run/hafs/hafsd-" + std::to_string(cfg.node_id) + ".sock"
                                      : cfg.control_socket;
  tools::FlushJob flush_job(cache->get());
  tools::NodeView view;
  view.config = &cfg;
  view.started = std::chrono::steady_clock::now();
  view.faults = &fault_registry;
  view.cache = cache->get();
  for (auto& v : vols) view.volumes.push_back(v.get());
  view.sender = sender.get();
  view.receiver = receiver.get();
  view.monitor = monitor.get();
  view.actions = actions.get();
  view.flush = &flush_job;
  auto control = tools::ControlServer::start(
      socket_path, [&view](const nlohmann::json& r) { return tools::handle_control(view, r); },
      log.child("control"));
  if (!control) return fail(ready, log, control.status());

  fs::FuseServerOptions fuse_opts;
  fuse_opts.max_threads = cfg.fuse_threads;
  auto server = fs::FuseServer::mount(filesystem, cfg.mount, fuse_opts);
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
  for (auto& v : vols) names += (names.empty() ? "" : ", ") + v->name() + " (" + fs::write_mode_name(v->mode()) + ")";
  log.info("serving %zu volumes at %s: %s", vols.size(), cfg.mount.c_str(), names.c_str());
  ready.report(true);

  Status loop = (*server)->run();
  if (!loop.is_ok()) log.error("%s", loop.to_string().c_str());
  {
    std::lock_guard lock(server_mu);
    stopping = true;
    server->reset();  // unmounted
  }
  control->reset();
  flush_job.wait();  // a flush hafsctl started; none can start now
  log.info("unmounted; destaging everything");
  // Destage while the membership thread still renews our leases: a lease that lapsed now would
  // let the partner take over and write while this node is still writing to the medium.
  Status flushed = (*cache)->flush_all();  // also trims the partner's mirror
  stop_membership();  // only now stop renewing: nothing of ours is staged
  (*cache)->set_replicator(nullptr);
  if (sender) sender->stop();
  if (receiver) receiver->stop();
  (*cache)->stop();
  if (!flushed.is_ok()) log.error("final destage: %s (records stay in the NV log)", flushed.to_string().c_str());
  // The signal thread may still wait if the loop ended by an external unmount.
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  log.info("stopped");
  if (identity_taken.load()) {
    log.error("stopped because another process runs with node id %u (exit %d)", cfg.node_id,
              kExitIdentityTaken);
    return kExitIdentityTaken;
  }
  return loop.is_ok() && flushed.is_ok() ? 0 : 1;
}
