// `hafsctl cluster ...`: the local cluster launcher (tools/cluster.h; docs/operations.md "A local
// cluster"). The plumbing (processes, mounts, namespaces, the manifest) is in cluster_host.cc.
#include "tools/cluster.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tools/cluster_host.h"

namespace hafs::tools {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using cluster::Manifest;
using cluster::NodeRecord;
using namespace std::chrono_literals;

constexpr int kExitFailed = 1, kExitUsage = 2, kExitUnreachable = 3;
// The interconnect port of every node when each has a namespace (and so an address) of its own.
constexpr uint16_t kNetnsPort = 7400;
constexpr size_t kLogTailLines = 25;
// How long `down` and `restart-node` give an hafsd for a clean stop (final destage) before SIGKILL.
constexpr auto kStopLimit = 30s;
// Polling the nodes while waiting: one status request per node per round.
constexpr double kPollTimeoutS = 1.0;
constexpr auto kPollInterval = 200ms;

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "hafsctl: cluster: %s\n", message.c_str());
  return code;
}

std::string manifest_path(const std::string& dir) { return dir + "/cluster.json"; }

std::string absolute_dir(const std::string& dir) {
  std::string s = fs::absolute(dir).lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// A TOML basic string.
std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string volume_name(uint32_t id) { return "vol" + std::to_string(id); }

// The node's hafsd.toml: everything but the --set overrides, which are on its command line.
std::string node_config(const Manifest& m, const NodeRecord& n, const NodeRecord& partner,
                        const std::string& nvlog_size, const std::vector<std::string>& sets) {
  std::string t;
  t += "# hafsd configuration of node " + std::to_string(n.id) + ", written by `hafsctl cluster up` (settings:\n";
  t += "# docs/configuration.md). " + m.dir + "/cluster.json lists everything the launcher made;\n";
  t += "# `hafsctl cluster down --dir " + m.dir + "` removes it.\n";
  t += "# hafsd runs as: hafsd -c " + n.config;
  for (const auto& s : sets) t += " --set " + s;
  t += n.netns.empty() ? "\n" : "\n# inside network namespace " + n.netns + "\n";
  t += "node_id = " + std::to_string(n.id) + "\n";
  t += "mount = " + toml_string(n.mount) + "\n";
  t += "control_socket = " + toml_string(n.socket) + "\n";
  t += "\n[nvlog]\npath = " + toml_string(n.nvlog) + "   # emulated NVRAM\n";
  const bool bytes = nvlog_size.find_first_not_of("0123456789") == std::string::npos;
  t += "size = " + (bytes ? nvlog_size : toml_string(nvlog_size)) + "\n";
  for (size_t v = 0; v < m.volumes.size(); ++v) {
    const uint32_t id = static_cast<uint32_t>(v + 1);
    t += "\n[[volume]]\nname = " + toml_string(m.volumes[v]) + "\nid = " + std::to_string(id) + "\n";
    t += "path = " + toml_string(m.medium + "/" + m.volumes[v]) + "\nmode = \"staged\"\n";
    t += "home = " + std::to_string(id) + "\n";
  }
  t += "\n[interconnect]\npartner_node_id = " + std::to_string(partner.id) + "\n";
  t += "listen = " + toml_string(n.address + ":" + std::to_string(n.port)) + "\n";
  t += "partner = " + toml_string(partner.address + ":" + std::to_string(partner.port)) + "\n";
  t += "key_file = " + toml_string(m.key_file) + "\n";
  t += "mirror_path = " + toml_string(n.mirror) + "   # node " + std::to_string(partner.id) +
       "'s NV log, mirrored here\n";
  t += "\n[membership]\ndir = " + toml_string(m.membership_dir) + "\n";
  return t;
}

Status write_file(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Status::from_errno(errno, "cannot write " + path);
  const bool ok = ::fchmod(fd, mode) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int err = errno;
  ::close(fd);
  return ok ? Status::ok() : Status::from_errno(err, "cannot write " + path);
}

// Whether the path exists (an error reading it counts as existing: never overwrite blindly).
bool exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(path, ec)) || (ec && ec != std::errc::no_such_file_or_directory);
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// "NORMAL, serving vol1" from a status object; "" when it is not one.
std::string node_view(const json& st) {
  std::string state = "?";
  if (st.contains("membership") && st["membership"].is_object())
    state = st["membership"].value("state", "?");
  else if (st.contains("node") && st["node"].is_object())
    state = st["node"].value("state", "?");
  std::string serving;
  if (st.contains("volumes") && st["volumes"].is_array())
    for (const auto& v : st["volumes"])
      if (v.is_object() && v.value("state", "") == "serving") serving += (serving.empty() ? "" : " ") + v.value("name", "?");
  return state + ", " + (serving.empty() ? "serving nothing" : "serving " + serving);
}

// Polls every node in `which` until ready(node, status) holds for all of them; fails early when
// one exits. On failure *why says what was last seen.
bool await_nodes(Manifest& m, const std::vector<size_t>& which, const ControlCall& call, double limit_s,
                 const std::function<bool(const NodeRecord&, const json&)>& ready, std::string* why) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit_s));
  for (;;) {
    bool all = true;
    std::string seen;
    for (size_t i : which) {
      const NodeRecord& n = m.nodes[i];
      int wait_status = 0;
      if (cluster::reap_child(n.pid, &wait_status) || !cluster::process_alive(n.pid)) {
        *why = "node " + std::to_string(n.id) + " (pid " + std::to_string(n.pid) + ") exited" +
               (wait_status ? " with " + describe_wait_status(wait_status) : std::string()) + " while starting";
        return false;
      }
      ControlReply r = call(n.socket, kPollTimeoutS, json{{"op", "status"}});
      const bool ok = r.exit_code == 0 && ready(n, r.result);
      all = all && ok;
      seen += "; node " + std::to_string(n.id) + ": " + (r.exit_code == 0 ? node_view(r.result) : r.error);
    }
    if (all) return true;
    if (Clock::now() > deadline) {
      char limit[32];
      std::snprintf(limit, sizeof limit, "%g", limit_s);
      *why = std::string("not ready within ") + limit + " s (--wait)" + seen;
      return false;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

void print_log_tails(const Manifest& m) {
  for (const auto& n : m.nodes) {
    std::fprintf(stderr, "---- node %u: last lines of %s ----\n%s", n.id, n.log.c_str(),
                 cluster::tail_file(n.log, kLogTailLines).c_str());
  }
}

// Removes what the manifest names, whatever state it is in (nodes running, dead or never
// started; namespaces and files there or not). True when nothing is left but, without `purge`,
// the logs; cluster.json is removed only then, so that a failed teardown can be repeated.
bool teardown(const Manifest& m, bool purge) {
  bool clean = true;
  std::error_code ec;
  std::vector<std::pair<const NodeRecord*, pid_t>> running;
  for (const auto& n : m.nodes)
    for (pid_t pid : cluster::node_processes(n)) {
      ::kill(pid, SIGTERM);  // all of them first: one node must not take over from another that stops
      running.emplace_back(&n, pid);
    }
  for (const auto& [n, pid] : running) {
    bool killed = false;
    if (!cluster::stop_process(pid, kStopLimit, &killed)) {
      std::printf("node %u: hafsd pid %d is still there after SIGKILL\n", n->id, pid);
      clean = false;
    } else if (killed) {
      std::printf("node %u: hafsd pid %d did not stop within %lld s of SIGTERM: killed (SIGKILL)\n", n->id, pid,
                  static_cast<long long>(kStopLimit.count()));
    } else {
      std::printf("node %u: stopped hafsd pid %d\n", n->id, pid);
    }
  }
  for (const auto& n : m.nodes) {
    if (!cluster::is_mounted(n.mount)) continue;
    if (Status s = cluster::lazy_unmount(n.mount); !s) {
      std::printf("node %u: %s\n", n.id, s.message().c_str());
      clean = false;
    } else {
      std::printf("node %u: unmounted %s (lazily: it was left by a dead hafsd)\n", n.id, n.mount.c_str());
    }
  }
  const std::string ip = cluster::find_program("ip");
  for (const auto& n : m.nodes) {
    if (!cluster::netns_exists(n.netns)) continue;
    Status s = ip.empty() ? Status::error(Code::kNotFound, "no `ip` command to delete it with")
                          : cluster::netns_delete(ip, n.netns);
    if (s) std::printf("node %u: deleted network namespace %s\n", n.id, n.netns.c_str());
    else std::printf("node %u: network namespace %s: %s\n", n.id, n.netns.c_str(), s.message().c_str());
    clean = clean && s.is_ok();
  }
  size_t shm_files = 0;
  for (const auto& n : m.nodes)
    for (const std::string& f : {n.nvlog, n.mirror})
      if (f.rfind(cluster::kShmPrefix, 0) == 0 && fs::remove(f, ec)) ++shm_files;
  // What up made under DIR, never recursively into a mount point: a mount point is only rmdir'ed.
  for (const auto& n : m.nodes) {
    for (const std::string& f : {n.socket, n.config}) fs::remove(f, ec);
    if (!cluster::is_mounted(n.mount)) fs::remove(n.mount, ec);
    if (purge) {
      fs::remove(n.log, ec);
      fs::remove(n.dir, ec);  // only when empty
    }
  }
  fs::remove(m.key_file, ec);
  if (m.medium == m.dir + "/medium" && (fs::remove_all(m.medium, ec), ec)) {  // the volumes' data too
    std::printf("cannot remove %s: %s\n", m.medium.c_str(), ec.message().c_str());
    clean = false;
  }
  if (clean) fs::remove(manifest_path(m.dir), ec);
  if (clean && purge && m.dir_created) fs::remove(m.dir, ec);  // only when empty
  std::printf("removed %zu NV log and mirror files on /dev/shm, the medium %s, configs, key and mount points\n",
              shm_files, m.medium.c_str());
  return clean;
}

}  // namespace

ClusterCommand::ClusterCommand(CLI::App& app) {
  cluster_ = app.add_subcommand("cluster", "a local hafs pair on this machine (docs/operations.md, A local cluster)");
  cluster_->require_subcommand(1);
  up_ = cluster_->add_subcommand("up", "make and start a two-node pair under DIR (root)");
  up_->footer(
      "Makes DIR/medium/{vol1,vol2,.membership} (the shared medium; vol1's home is node 1, vol2's node 2),\n"
      "DIR/nodeN/{hafsd.toml,mnt,control.sock,hafsd.log}, DIR/pair.key, and each node's NV log and mirror\n"
      "as /dev/shm/hafs-cluster-TAG-nodeN.{nvlog,mirror}; lists all of it in DIR/cluster.json before making\n"
      "it. Waits until both nodes are NORMAL, each serving its home volume. On failure it prints the tails\n"
      "of the node logs and removes what it made (the logs stay). Exit: 0 ready, 1 failed, 2 bad command line.");
  up_->add_option("--dir", opt_.dir, "the cluster directory (created if missing)")->required();
  up_->add_option("--nodes", opt_.nodes, "number of nodes: hafs runs two-node HA pairs, so only 2");
  up_->add_flag("--netns", opt_.netns,
                "run each node in a network namespace of its own, joined by a veth pair (10.201.X.1 <-> .2, "
                "port 7400), so that interconnect cuts are real (needs `ip`); default: loopback, free ports");
  up_->add_option("--nvlog-size", opt_.nvlog_size, "size of each NV log and mirror (default 256MiB)");
  up_->add_option("--hafsd", opt_.hafsd, "the hafsd binary (default: the hafsd next to this hafsctl)");
  up_->add_option("--set", opt_.sets, "KEY=VALUE for every hafsd (repeatable; docs/configuration.md)")
      ->allow_extra_args(false);
  up_->add_option("--wait", opt_.wait_s, "seconds to wait for the pair to be NORMAL (default 60)")
      ->check(CLI::Range(1.0, 3600.0));
  down_ = cluster_->add_subcommand("down", "stop the cluster in DIR and remove what up made (root)");
  down_->footer(
      "Stops every hafsd of DIR/cluster.json (SIGTERM; SIGKILL after 30 s; a process is signalled only if\n"
      "/proc/PID/cmdline shows it is that node's hafsd), lazily unmounts mounts left by dead nodes, deletes\n"
      "the network namespaces and the /dev/shm files, DIR/medium (the volumes' data), the configs, key,\n"
      "sockets, mount points and cluster.json. Keeps DIR/nodeN/hafsd.log unless --purge. Works after a crash\n"
      "of up or of the nodes; without cluster.json there is nothing to do (exit 0). Exit 1: something is\n"
      "left (cluster.json is kept: run down again).");
  down_->add_option("--dir", opt_.dir, "the cluster directory")->required();
  down_->add_flag("--purge", opt_.purge, "remove the logs too, and DIR itself if `up` made it and it is empty");
  status_ = cluster_->add_subcommand("status", "one line per node: pid, state, served volumes, mount, socket, network");
  status_->footer("Exit: 0 every node answered, 1 no cluster in DIR, 3 a node is not running or does not answer.");
  status_->add_option("--dir", opt_.dir, "the cluster directory")->required();
  restart_ = cluster_->add_subcommand("restart-node", "start node N again, as up started it (root)");
  restart_->footer(
      "Stops node N if it runs (SIGTERM, SIGKILL after 30 s), lazily unmounts the mount a dead node left,\n"
      "starts hafsd again with the same command line (in the same namespace), and waits until it answers\n"
      "on its control socket and is mounted. Exit: 0 started, 1 failed, 2 bad command line.");
  restart_->add_option("node", opt_.node, "the node id (1 or 2)")->required();
  restart_->add_option("--dir", opt_.dir, "the cluster directory")->required();
  restart_->add_option("--wait", opt_.wait_s, "seconds to wait for the node (default 60)")
      ->check(CLI::Range(1.0, 3600.0));
}

int ClusterCommand::run(const ControlCall& call) {
  if (opt_.dir.empty()) return fail(kExitUsage, "--dir must not be empty");
  opt_.dir = absolute_dir(opt_.dir);
  if (up_->parsed()) return up(call);
  if (down_->parsed()) return down();
  if (status_->parsed()) return status(call);
  return restart_node(call);
}

int ClusterCommand::up(const ControlCall& call) {
  if (opt_.nodes != 2)
    return fail(kExitUsage, "--nodes " + std::to_string(opt_.nodes) +
                                ": hafs runs two-node HA pairs (each node mirrors into its partner); only "
                                "--nodes 2 is supported");
  for (const auto& s : opt_.sets)
    if (s.find('=') == std::string::npos || s.front() == '=') return fail(kExitUsage, "--set " + s + ": expected KEY=VALUE");
  if (opt_.nvlog_size.empty()) return fail(kExitUsage, "--nvlog-size must not be empty");
  const std::string dir = opt_.dir;
  if ((dir + "/node2/control.sock").size() >= 108)
    return fail(kExitUsage, "--dir " + dir + " is too long: the control sockets (DIR/nodeN/control.sock) must be "
                            "shorter than 108 bytes; choose a shorter DIR");
  if (::geteuid() != 0)
    return fail(kExitFailed, "up needs root (FUSE mounts with allow_other, network namespaces, /dev/shm stores)");
  const std::string hafsd = fs::absolute(opt_.hafsd.empty() ? cluster::self_dir() + "/hafsd" : opt_.hafsd).string();
  if (fs::path(hafsd).filename().string().rfind("hafsd", 0) != 0)
    return fail(kExitUsage, "--hafsd " + hafsd + ": the binary's name must start with 'hafsd' (down recognizes "
                            "the nodes' processes by it)");
  if (::access(hafsd.c_str(), X_OK) != 0)
    return fail(kExitFailed, "no hafsd binary at " + hafsd + ": " + std::strerror(errno) +
                                 " (build it, e.g. cmake --build build --target hafsd, or give --hafsd PATH)");
  const std::string ip = cluster::find_program("ip");
  if (opt_.netns && ip.empty())
    return fail(kExitFailed, "--netns needs the `ip` command (iproute2), which is not installed; "
                             "leave out --netns to run the nodes on loopback");

  // DIR: made if missing, writable, holding no cluster (running or left over) and no medium.
  std::error_code ec;
  const bool dir_created = !exists(dir);
  if (dir_created && !fs::create_directories(dir, ec) && ec)
    return fail(kExitFailed, "cannot make " + dir + ": " + ec.message());
  if (!fs::is_directory(dir, ec)) return fail(kExitFailed, dir + " is not a directory");
  {
    const std::string probe = dir + "/.hafs-cluster-probe";
    if (Status s = write_file(probe, "", 0600); !s) return fail(kExitFailed, dir + " is not writable: " + s.message());
    fs::remove(probe, ec);
  }
  if (auto old = cluster::load_manifest(manifest_path(dir)); old || old.status().code() != Code::kNotFound) {
    std::string running;
    if (old)
      for (const auto& n : old->nodes)
        for (pid_t pid : cluster::node_processes(n))
          running += (running.empty() ? "" : ", ") + std::string("node ") + std::to_string(n.id) + " pid " + std::to_string(pid);
    if (!running.empty())
      return fail(kExitFailed, dir + " already holds a running cluster (" + running + "); stop it first: hafsctl cluster down --dir " + dir);
    return fail(kExitFailed, dir + " holds what is left of an earlier cluster (" + manifest_path(dir) +
                                 "); remove it first: hafsctl cluster down --dir " + dir);
  }
  if (exists(dir + "/medium"))
    return fail(kExitFailed, dir + "/medium exists (not made by a cluster of this directory); choose another --dir");

  // The plan, recorded before anything is made.
  Manifest m;
  m.dir = dir;
  m.dir_created = dir_created;
  m.hafsd = hafsd;
  m.netns = opt_.netns;
  m.medium = dir + "/medium";
  m.membership_dir = m.medium + "/.membership";
  m.key_file = dir + "/pair.key";
  for (int attempt = 0; attempt < 16; ++attempt) {  // a tag no namespace or store uses yet
    m.tag = cluster::random_hex(6);
    const std::string prefix = std::string(cluster::kShmPrefix) + m.tag;
    if (!cluster::netns_exists("hafs-cluster-" + m.tag + "-node1") && !exists(prefix + "-node1.nvlog")) break;
  }
  const int subnet = std::stoi(m.tag.substr(0, 2), nullptr, 16);
  for (uint32_t id = 1; id <= opt_.nodes; ++id) {
    m.volumes.push_back(volume_name(id));
    NodeRecord n;
    n.id = id;
    n.dir = dir + "/node" + std::to_string(id);
    n.mount = n.dir + "/mnt";
    n.socket = n.dir + "/control.sock";
    n.log = n.dir + "/hafsd.log";
    n.config = n.dir + "/hafsd.toml";
    n.nvlog = std::string(cluster::kShmPrefix) + m.tag + "-node" + std::to_string(id) + ".nvlog";
    n.mirror = std::string(cluster::kShmPrefix) + m.tag + "-node" + std::to_string(id) + ".mirror";
    if (opt_.netns) {
      n.netns = "hafs-cluster-" + m.tag + "-node" + std::to_string(id);
      n.veth = "hafs" + m.tag + "n" + std::to_string(id);
      n.address = "10.201." + std::to_string(subnet) + "." + std::to_string(id);
      n.port = kNetnsPort;
    } else {
      n.address = "127.0.0.1";
      n.port = cluster::free_loopback_port();
      if (n.port == 0 || (id > 1 && n.port == m.nodes[0].port))
        return fail(kExitFailed, "cannot find a free TCP port on 127.0.0.1");
    }
    n.argv = {hafsd, "-c", n.config};
    for (const auto& s : opt_.sets) n.argv.insert(n.argv.end(), {"--set", s});
    m.nodes.push_back(n);
  }
  const std::string manifest = manifest_path(dir);
  if (Status s = cluster::save_manifest(m, manifest); !s) return fail(kExitFailed, s.message());

  // From here on a failure removes what was made (the logs stay).
  auto give_up = [&](const std::string& why, bool tails) {
    std::fprintf(stderr, "hafsctl: cluster: up failed: %s\n", why.c_str());
    if (tails) print_log_tails(m);
    std::printf("removing what up made (logs kept in %s/node*/hafsd.log):\n", dir.c_str());
    teardown(m, false);
    return kExitFailed;
  };
  for (const auto& d : {m.medium, m.membership_dir}) fs::create_directories(d, ec);
  for (const auto& v : m.volumes) fs::create_directories(m.medium + "/" + v, ec);
  for (const auto& n : m.nodes) fs::create_directories(n.mount, ec);
  if (ec) return give_up("cannot make the directories under " + dir + ": " + ec.message(), false);
  if (Status s = write_file(m.key_file, cluster::random_hex(64) + "\n", 0600); !s) return give_up(s.message(), false);
  for (size_t i = 0; i < m.nodes.size(); ++i)
    if (Status s = write_file(m.nodes[i].config, node_config(m, m.nodes[i], m.nodes[1 - i], opt_.nvlog_size, opt_.sets), 0644); !s)
      return give_up(s.message(), false);
  if (opt_.netns) {
    const std::string ns[2] = {m.nodes[0].netns, m.nodes[1].netns};
    const std::string dev[2] = {m.nodes[0].veth, m.nodes[1].veth};
    const std::string addr[2] = {m.nodes[0].address, m.nodes[1].address};
    if (Status s = cluster::netns_make_pair(ip, ns, dev, addr); !s)
      return give_up("cannot make the network namespaces: " + s.message() + " (leave out --netns to use loopback)", false);
  }
  for (auto& n : m.nodes) {
    auto pid = cluster::spawn_daemon(n.argv, n.log, n.netns);
    if (!pid) return give_up("node " + std::to_string(n.id) + ": " + pid.status().message(), true);
    n.pid = *pid;
    if (Status s = cluster::save_manifest(m, manifest); !s) return give_up(s.message(), false);
  }
  std::printf("cluster %s: medium %s (%s, .membership), interconnect %s\n", dir.c_str(), m.medium.c_str(),
              (m.volumes[0] + ", " + m.volumes[1]).c_str(),
              opt_.netns ? "over a veth pair between two network namespaces" : "on loopback");
  for (const auto& n : m.nodes)
    std::printf("node %u: pid %d, interconnect %s:%u%s%s%s; mount, socket, config and log in %s\n", n.id, n.pid,
                n.address.c_str(), n.port, n.netns.empty() ? "" : " (netns ", n.netns.c_str(),
                n.netns.empty() ? "" : ")", n.dir.c_str());
  std::printf("waiting up to %g s for both nodes to be NORMAL, each serving its home volume\n", opt_.wait_s);
  std::fflush(stdout);
  const auto started = Clock::now();
  std::string why;
  const bool ready = await_nodes(m, {0, 1}, call, opt_.wait_s, [](const NodeRecord& n, const json& st) {
    if (!st.contains("membership") || !st["membership"].is_object() || st["membership"].value("state", "") != "NORMAL")
      return false;
    for (const auto& v : st.value("volumes", json::array()))
      if (v.is_object() && v.value("name", "") == volume_name(n.id)) return v.value("state", "") == "serving";
    return false;
  }, &why);
  if (!ready) return give_up(why, true);
  std::printf("cluster ready in %.1f s: node 1 serves vol1, node 2 serves vol2; stop it with: hafsctl cluster down "
              "--dir %s\n",
              std::chrono::duration<double>(Clock::now() - started).count(), dir.c_str());
  return 0;
}

int ClusterCommand::down() {
  if (::geteuid() != 0) return fail(kExitFailed, "down needs root (it stops root's hafsd, unmounts, deletes namespaces)");
  auto m = cluster::load_manifest(manifest_path(opt_.dir));
  if (!m && m.status().code() == Code::kNotFound) {
    std::error_code ec;
    if (opt_.purge)  // what an earlier down kept: the logs
      for (int id = 1; id <= 2; ++id) {
        const std::string node_dir = opt_.dir + "/node" + std::to_string(id);
        fs::remove(node_dir + "/hafsd.log", ec);
        fs::remove(node_dir, ec);  // only when empty
      }
    std::printf("nothing to do: no cluster in %s (no cluster.json)\n", opt_.dir.c_str());
    return 0;
  }
  if (!m) return fail(kExitFailed, m.status().message() + " (remove the cluster by hand)");
  if (!teardown(*m, opt_.purge))
    return fail(kExitFailed, "some of the cluster is left (above); cluster.json is kept: run down again");
  std::printf("cluster %s is down%s%s%s\n", opt_.dir.c_str(), opt_.purge ? "" : "; logs kept in ",
              opt_.purge ? "" : opt_.dir.c_str(), opt_.purge ? "" : "/node*/hafsd.log (down --purge removes them)");
  return 0;
}

int ClusterCommand::status(const ControlCall& call) {
  auto m = cluster::load_manifest(manifest_path(opt_.dir));
  if (!m) return fail(kExitFailed, "no cluster in " + opt_.dir + ": " + m.status().message());
  std::printf("cluster %s: medium %s, membership %s, %s\n", m->dir.c_str(), m->medium.c_str(),
              m->membership_dir.c_str(), m->netns ? "network namespaces" : "loopback");
  int code = 0;
  for (const auto& n : m->nodes) {
    const bool running = cluster::is_node_process(n.pid, n.config);
    std::string state = "-";
    if (running) {
      ControlReply r = call(n.socket, 2.0, json{{"op", "status"}});
      state = r.exit_code == 0 ? node_view(r.result) : "no answer (" + r.error + ")";
      if (r.exit_code != 0) code = kExitUnreachable;
    } else {
      code = kExitUnreachable;
    }
    const bool mounted = cluster::is_mounted(n.mount);
    std::printf("node %u: pid %d %s, %s; mount %s%s, socket %s, %s %s:%u\n", n.id, n.pid,
                running ? "running" : "not running", state.c_str(), n.mount.c_str(),
                !mounted ? " (not mounted)" : running ? "" : " (dead: left by the dead node)", n.socket.c_str(),
                n.netns.empty() ? "loopback" : ("netns " + n.netns).c_str(), n.address.c_str(), n.port);
  }
  return code;
}

int ClusterCommand::restart_node(const ControlCall& call) {
  if (::geteuid() != 0) return fail(kExitFailed, "restart-node needs root");
  auto m = cluster::load_manifest(manifest_path(opt_.dir));
  if (!m) return fail(kExitFailed, "no cluster in " + opt_.dir + ": " + m.status().message());
  size_t index = m->nodes.size();
  for (size_t i = 0; i < m->nodes.size(); ++i)
    if (m->nodes[i].id == opt_.node) index = i;
  if (index == m->nodes.size())
    return fail(kExitUsage, "no node " + std::to_string(opt_.node) + " in " + manifest_path(opt_.dir));
  NodeRecord& n = m->nodes[index];
  for (pid_t pid : cluster::node_processes(n)) {
    bool killed = false;
    if (!cluster::stop_process(pid, kStopLimit, &killed))
      return fail(kExitFailed, "node " + std::to_string(n.id) + ": hafsd pid " + std::to_string(pid) + " does not stop");
    std::printf("node %u: stopped hafsd pid %d%s\n", n.id, pid, killed ? " (SIGKILL)" : "");
  }
  if (cluster::is_mounted(n.mount)) {
    if (Status s = cluster::lazy_unmount(n.mount); !s) return fail(kExitFailed, s.message());
    std::printf("node %u: unmounted the dead mount %s (lazily)\n", n.id, n.mount.c_str());
  }
  if (!n.netns.empty() && !cluster::netns_exists(n.netns))
    return fail(kExitFailed, "network namespace " + n.netns + " is gone: the cluster is half down; run down, then up");
  auto pid = cluster::spawn_daemon(n.argv, n.log, n.netns);
  if (!pid) return fail(kExitFailed, "node " + std::to_string(n.id) + ": " + pid.status().message());
  n.pid = *pid;
  if (Status s = cluster::save_manifest(*m, manifest_path(opt_.dir)); !s) return fail(kExitFailed, s.message());
  std::printf("node %u: started hafsd pid %d (log %s)\n", n.id, n.pid, n.log.c_str());
  std::fflush(stdout);
  std::string why;
  const bool ready = await_nodes(*m, {index}, call, opt_.wait_s, [](const NodeRecord& node, const json&) {
    return cluster::is_mounted(node.mount);
  }, &why);
  if (!ready) {
    std::fprintf(stderr, "hafsctl: cluster: node %u: %s\n---- last lines of %s ----\n%s", n.id, why.c_str(),
                 n.log.c_str(), cluster::tail_file(n.log, kLogTailLines).c_str());
    return kExitFailed;
  }
  std::printf("node %u: answering and mounted at %s\n", n.id, n.mount.c_str());
  return 0;
}

}  // namespace hafs::tools
