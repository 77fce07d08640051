// `hafsctl cluster up | down | status | restart-node`: a local hafs pair on this machine, each node
// with its config, mount, control socket, log, NV log and mirror (emulated NVRAM on /dev/shm),
// optionally each in a network namespace joined by a veth pair so that interconnect cuts are
// real. Everything it makes is listed in DIR/cluster.json before it is made, so that `down`
// removes it even after a crash of `up` or of the nodes. docs/operations.md "A local cluster";
// the commands and exit codes: docs/control-protocol.md §6.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace hafs::tools {

// One request to an hafsd control socket, made as hafsctl makes it (docs/control-protocol.md):
// exit_code 0 with the result object, or hafsctl's exit code (1 hafsd answered with an error,
// 3 unreachable or not hafsd) with the error text.
struct ControlReply {
  int exit_code = 0;
  std::string error;
  nlohmann::json result;
};
using ControlCall =
    std::function<ControlReply(const std::string& socket, double timeout_s, const nlohmann::json& request)>;

// The `cluster` subcommand of hafsctl. Construct it before parsing (it adds its subcommands and
// binds their options to itself, so it must outlive the parse); after parsing, run() it when
// chosen(). Single-threaded.
class ClusterCommand {
 public:
  explicit ClusterCommand(CLI::App& app);
  ClusterCommand(const ClusterCommand&) = delete;
  ClusterCommand& operator=(const ClusterCommand&) = delete;

  bool chosen() const { return cluster_->parsed(); }
  // Runs the chosen subcommand; returns hafsctl's exit code: 0 done, 1 failed, 2 bad command
  // line, 3 (status) a node could not be reached.
  int run(const ControlCall& call);

 private:
  struct Options {
    std::string dir;
    unsigned nodes = 2;
    bool netns = false;
    std::string nvlog_size = "256MiB";
    std::string hafsd;              // "" = the hafsd next to this hafsctl
    std::vector<std::string> sets;  // KEY=VALUE, passed to every hafsd as --set
    double wait_s = 60;             // up, restart-node: how long to wait for the nodes
    bool purge = false;             // down: remove the logs (and DIR, if up made it) too
    unsigned node = 0;              // restart-node
  };
  int up(const ControlCall& call);
  int down();
  int status(const ControlCall& call);
  int restart_node(const ControlCall& call);

  Options opt_;
  CLI::App* cluster_ = nullptr;
  CLI::App* up_ = nullptr;
  CLI::App* down_ = nullptr;
  CLI::App* status_ = nullptr;
  CLI::App* restart_ = nullptr;
};

}  // namespace hafs::tools
