// Host plumbing of the local cluster launcher (tools/cluster.cc, docs/operations.md "A local
// cluster"): the manifest DIR/cluster.json, daemon processes, mounts, network namespaces and the
// emulated NVRAM files on /dev/shm. Everything here acts only on what a manifest names, and on a
// process only after /proc/PID/cmdline showed it is the hafsd of that manifest's node: the
// launcher never signals, unmounts or deletes anything it did not make.
//
// Linux only. Creating namespaces, mounting and signalling root's daemons needs root; reading a
// manifest does not. Not thread-safe: one hafsctl process at a time per cluster directory.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"

namespace hafs::tools::cluster {

// cluster.json's "version": a launcher refuses a manifest of another version (it would not know
// what that launcher made).
inline constexpr int kManifestVersion = 1;
// Every NV log and mirror the launcher makes starts with this; `down` removes nothing else there.
inline constexpr char kShmPrefix[] = "/dev/shm/hafs-cluster-";

// One node as started by `cluster up`; paths are absolute.
struct NodeRecord {
  uint32_t id = 0;
  pid_t pid = 0;  // the hafsd process (0: not started yet); may be dead by now
  std::string dir;      // DIR/nodeN
  std::string mount;    // DIR/nodeN/mnt
  std::string socket;   // DIR/nodeN/control.sock
  std::string log;      // DIR/nodeN/hafsd.log: hafsd's stderr, appended across restarts
  std::string config;   // DIR/nodeN/hafsd.toml
  std::string netns;    // "" on loopback; else the namespace the node runs in
  std::string veth;     // the node's end of the veth pair ("" on loopback)
  std::string address;  // its interconnect address (127.0.0.1 on loopback)
  uint16_t port = 0;    // its interconnect port
  std::string nvlog;    // its NV log, under kShmPrefix
  std::string mirror;   // its mirror of the partner's NV log, under kShmPrefix
  std::vector<std::string> argv;  // hafsd's command line (argv[0] absolute), without the namespace
};

// What one `cluster up` made: written before anything else is made, and rewritten whenever a
// node's pid changes, so that `down` can clean up after a crash at any point of `up`.
struct Manifest {
  int version = kManifestVersion;
  std::string dir;             // DIR, absolute
  bool dir_created = false;    // `up` made DIR itself (`down --purge` then removes it when empty)
  std::string tag;             // random hex digits naming the namespaces and /dev/shm files
  std::string hafsd;           // the hafsd binary
  bool netns = false;          // nodes run in network namespaces
  std::string medium;          // DIR/medium: the shared storage medium (one directory per volume)
  std::string membership_dir;  // DIR/medium/.membership
  std::string key_file;        // DIR/pair.key: the interconnect key (mode 0600)
  std::vector<std::string> volumes;  // medium/<name>; volume i + 1's home is node i + 1
  std::vector<NodeRecord> nodes;
};

nlohmann::json to_json(const Manifest& m);
// kNotFound when `path` does not exist; kCorruption when it is not a manifest of this version.
Result<Manifest> load_manifest(const std::string& path);
// Written to PATH.tmp, synced and renamed over PATH.
Status save_manifest(const Manifest& m, const std::string& path);

// The executable `name` in $PATH or in /usr/sbin, /sbin, /usr/bin, /bin; "" when there is none.
std::string find_program(const std::string& name);

// Runs argv (argv[0] absolute) to completion within `limit`, stdout and stderr collected into
// *output. OK when it exited 0; else an error carrying the exit status and its output.
Status run_program(const std::vector<std::string>& argv, std::string* output,
                   std::chrono::milliseconds limit = std::chrono::seconds(30));

// Starts argv as a daemon: a new session, stdin /dev/null, stdout and stderr appended to
// `log_path` (created 0600), inside network namespace `netns` (/run/netns/NETNS) when it is not
// empty. Returns the pid once exec succeeded; the process is this one's child until it exits.
Result<pid_t> spawn_daemon(const std::vector<std::string>& argv, const std::string& log_path,
                           const std::string& netns);

// If `pid` is this process's child and has exited, reaps it and returns true with its wait
// status in *status. False while it runs, or when it is not our child.
bool reap_child(pid_t pid, int* status);
// A running (not zombie) process.
bool process_alive(pid_t pid);
// `pid` is a running hafsd (its argv[0]'s file name starts with "hafsd") whose command line
// names `config` (the node's -c file).
bool is_node_process(pid_t pid, const std::string& config);
// Every running hafsd of this node: its recorded pid and any other hafsd started with its config
// (a start whose pid never reached the manifest).
std::vector<pid_t> node_processes(const NodeRecord& node);
// SIGTERM, then waits up to `term_limit`; SIGKILL and up to 10 s more if needed. True when the
// process is gone; *killed says whether SIGKILL was needed.
bool stop_process(pid_t pid, std::chrono::milliseconds term_limit, bool* killed);

// Whether `path` is a mount point now (/proc/mounts).
bool is_mounted(const std::string& path);
// Lazy unmount (MNT_DETACH), as `fusermount3 -uz` does.
Status lazy_unmount(const std::string& path);

// /run/netns/NAME exists.
bool netns_exists(const std::string& name);
// Namespaces ns[0] and ns[1], joined by a veth pair dev[0] <-> dev[1] with addr[i]/24 on dev[i],
// loopback and the veth up in both. Uses `ip` at `ip_path`.
Status netns_make_pair(const std::string& ip_path, const std::string (&ns)[2], const std::string (&dev)[2],
                       const std::string (&addr)[2]);
// `ip netns del NAME` (which also removes the veth end inside it).
Status netns_delete(const std::string& ip_path, const std::string& name);

// A TCP port on 127.0.0.1 nothing listened on a moment ago (the kernel's choice); 0 on failure.
uint16_t free_loopback_port();
// `n` random hex digits.
std::string random_hex(size_t n);
// The last `lines` lines of a file ("" when it cannot be read), at most 64 KiB of it.
std::string tail_file(const std::string& path, size_t lines);
// The directory of this executable (/proc/self/exe).
std::string self_dir();

}  // namespace hafs::tools::cluster
