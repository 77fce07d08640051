// hafsctl: look at and drive a running hafsd over its control socket (docs/control-protocol.md).
//
//   hafsctl [--socket PATH | --node N] [--timeout S] status [--json]
//   hafsctl ... metrics
//   hafsctl ... flush [VOLUME] [--no-wait] [--wait S]
//   hafsctl ... giveback VOLUME [--no-wait] [--wait S]
//   hafsctl ... takeover [VOLUME] [--no-wait] [--wait S]   (a planned takeover OF this node)
//   hafsctl ... takeover --accept-loss VOLUME   (on the survivor: take VOLUME over from a mirror
//                                                its dead partner marked outdated, losing what it lacks)
//   hafsctl ... fault list | fault arm SITE ACTION [--always] [--probability P] | fault clear [SITE]
//   hafsctl ... fault hang SECONDS
//   hafsctl cluster up | down | status | restart-node ...   (a local pair: tools/cluster.h)
//
// Exit codes: 0 done; 1 hafsd answered with an error; 2 bad command line; 3 hafsd could not be
// reached or did not answer like hafsd (no socket, refused, timed out, malformed response).
#include "tools/cli.h"
#include "tools/cluster.h"
#include "tools/hafsctl_progress.h"
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>

using json = nlohmann::json;
using hafs::tools::bytes_text;

namespace {

constexpr int kExitServerError = 1, kExitUnreachable = 3;

struct Failure {
  int exit_code;
  std::string message;
};

// Sends one request and returns the response object, or a Failure.
std::variant<json, Failure> call(const std::string& path, double timeout_s, json request) {
  request["version"] = 1;
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) return Failure{2, "socket path too long: " + path};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  // connect() waits while the listen queue is full (hafsd stopped or stuck): bound it, and the
  // send, by the timeout too.
  timeval tv{static_cast<time_t>(timeout_s), static_cast<suseconds_t>((timeout_s - static_cast<time_t>(timeout_s)) * 1e6)};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    return Failure{kExitUnreachable, "cannot reach hafsd at " + path + ": " + std::strerror(err) +
                                         (err == ENOENT ? " (is hafsd running? --socket or --node)"
                                          : err == EAGAIN ? " (no room in its listen queue: hafsd stopped or stuck?)"
                                                          : "")};
  }
  const std::string line = request.dump() + "\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    const int err = errno;
    ::close(fd);
    return Failure{kExitUnreachable, "cannot send to " + path + ": " + std::strerror(err)};
  }
  std::string buf;
  while (buf.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
      ::close(fd);
      return Failure{kExitUnreachable, "no answer from " + path + " within " + std::to_string(timeout_s) + " s"};
    }
    char chunk[65536];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
      ::close(fd);
      return Failure{kExitUnreachable, path + " closed the connection without an answer (not hafsd?)"};
    }
    buf.append(chunk, static_cast<size_t>(n));
    if (buf.size() > (16u << 20)) break;
  }
  ::close(fd);
  json response = json::parse(buf.substr(0, buf.find('\n')), nullptr, false);
  if (response.is_discarded() || !response.is_object() || !response.contains("ok") || !response["ok"].is_boolean())
    return Failure{kExitUnreachable, path + " did not answer like hafsd (malformed response)"};
  if (!response["ok"].get<bool>())
    return Failure{kExitServerError, "hafsd: " + response.value("error", std::string("unknown error"))};
  if (!response.contains("result") || !response["result"].is_object())  // every op's result is an object
    return Failure{kExitUnreachable, path + " did not answer like hafsd (no result object)"};
  return response["result"];
}

template <typename T>
T get(const json& j, const char* key, T fallback) {
  return j.contains(key) && !j[key].is_null() ? j[key].get<T>() : fallback;
}

// `s` is not const: a missing member reads as null instead of being undefined behaviour.
void print_status(json& s) {
  const json& n = s["node"];
  std::printf("node %u (pid %d, up %lld s): %s, mount %s\n", get<unsigned>(n, "id", 0), get<int>(n, "pid", 0),
              get<long long>(n, "uptime_s", 0), get<std::string>(n, "state", "?").c_str(),
              get<std::string>(n, "mount", "?").c_str());
  json& l = s["nvlog"];
  const json& d = l["destage"];
  std::printf("NV log   %s (%s): %.1f%% of %s used, %s staged in %llu extents; destage: %llu passes, "
              "%s written, %llu errors%s%s\n",
              get<std::string>(l, "path", "?").c_str(), get<std::string>(l, "mode", "?").c_str(),
              get<double>(l, "fill_pct", 0), bytes_text(get<double>(l, "data_bytes", 0)).c_str(),
              bytes_text(get<double>(l, "staged_bytes", 0)).c_str(), get<unsigned long long>(l, "extents", 0),
              get<unsigned long long>(d, "passes", 0), bytes_text(get<double>(d, "bytes", 0)).c_str(),
              get<unsigned long long>(d, "errors", 0),
              get<std::string>(d, "last_error", "").empty() ? "" : "; last: ",
              get<std::string>(d, "last_error", "").c_str());
  if (get<bool>(d, "medium_full", false))
    std::printf("         MEDIUM FULL: the last destage got ENOSPC; writes that find the NV log full get "
                "ENOSPC (acknowledged ones stay staged)\n");
  if (s["mirror"].is_object()) {
    json& m = s["mirror"];
    std::printf("mirror   -> node %u: %s%s, lag %s (%llu LSNs), last ack %lld us, heard %lld ms ago%s%s\n",
                get<unsigned>(m, "partner", 0), get<std::string>(m, "state", "?").c_str(),
                get<bool>(m, "degraded", false) ? " (DEGRADED: writes are in this node's NV log only)" : "",
                bytes_text(get<double>(m, "lag_bytes", 0)).c_str(), get<unsigned long long>(m, "lag_lsns", 0),
                get<long long>(m, "last_ack_latency_us", -1), get<long long>(m, "ms_since_heard", -1),
                get<std::string>(m, "last_error", "").empty() ? "" : "; last error: ",
                get<std::string>(m, "last_error", "").c_str());
    if (get<unsigned long long>(m, "resync_bytes_left", 0) > 0) {
      json& r = m["resync"];
      std::printf("         resync: %s of %s left, %s/s, ETA %.1f s\n",
                  bytes_text(get<double>(m, "resync_bytes_left", 0)).c_str(),
                  bytes_text(get<double>(r, "bytes_total", 0)).c_str(),
                  bytes_text(get<double>(r, "rate_bytes_per_s", 0)).c_str(), get<double>(r, "eta_ms", -1) / 1000.0);
    }
  } else {
    std::printf("mirror   none (single node)\n");
  }
  if (s["mirror_in"].is_object()) {
    const json& r = s["mirror_in"];
    std::printf("mirror   <- partner: %s, %llu commits (%s), %llu refused%s%s\n",
                get<bool>(r, "connected", false) ? "connected" : "not connected",
                get<unsigned long long>(r, "commits", 0), bytes_text(get<double>(r, "bytes_committed", 0)).c_str(),
                get<unsigned long long>(r, "refused", 0),
                get<std::string>(r, "last_refusal", "").empty() ? "" : "; last refusal: ",
                get<std::string>(r, "last_refusal", "").c_str());
  }
  std::printf("%-16s %4s %-14s %5s %6s  %s\n", "VOLUME", "ID", "MODE", "OWNER", "EPOCH", "STATE");
  for (const json& v : s["volumes"])
    std::printf("%-16s %4u %-14s %5u %6llu  %s\n", get<std::string>(v, "name", "?").c_str(), get<unsigned>(v, "id", 0),
                get<std::string>(v, "mode", "?").c_str(), get<unsigned>(v, "owner", 0),
                get<unsigned long long>(v, "epoch", 0), get<std::string>(v, "state", "?").c_str());
  if (s["faults"].empty()) {
    std::printf("faults   none armed\n");
  } else {
    for (const json& f : s["faults"])
      std::printf("fault    %s = %s%s, fired %llu\n", get<std::string>(f, "site", "?").c_str(),
                  get<std::string>(f, "action", "?").c_str(), get<bool>(f, "once", true) ? " (once)" : " (always)",
                  get<unsigned long long>(f, "fired", 0));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hafsctl: status, control and fault injection of a running hafsd"};
  app.require_subcommand(1);
  std::string socket_path;
  unsigned node = 0;
  double timeout_s = 5;
  app.add_option("--socket", socket_path, "hafsd's control socket (default: $HAFS_SOCKET, or that of --node)");
  app.add_option("--node", node, "node id: the socket is /run/hafs/hafsd-N.sock");
  app.add_option("--timeout", timeout_s, "seconds to wait for an answer")->check(CLI::Range(0.1, 3600.0));
  bool as_json = false;
  auto* status = app.add_subcommand("status", "the node, its NV log, mirror and volumes");
  status->add_flag("--json", as_json, "print the status object (schema: docs/control-protocol.md)");
  auto* metrics = app.add_subcommand("metrics", "counters, gauges and latency histograms in the Prometheus text format");
  std::string volume;
  bool no_wait = false;
  unsigned wait_s = 300;
  auto add_wait_options = [&](CLI::App* cmd) {
    cmd->add_flag("--no-wait", no_wait, "return once hafsd has queued or started it");
    cmd->add_option("--wait", wait_s, "seconds to follow it before giving up (exit 1; it goes on)")
        ->check(CLI::Range(1u, 86400u));
  };
  auto* flush = app.add_subcommand("flush", "destage everything staged now, showing progress");
  flush->add_option("volume", volume, "a volume of this node (the whole NV log is destaged)");
  add_wait_options(flush);
  std::string giveback_volume;
  auto* giveback = app.add_subcommand("giveback", "hand a taken-over volume back to its home node");
  giveback->add_option("volume", giveback_volume, "the volume (its home is the partner)")->required();
  add_wait_options(giveback);
  std::string takeover_volume;
  auto* takeover = app.add_subcommand(
      "takeover", "planned takeover OF this node: it destages and hands its volumes to its partner");
  takeover->add_option("volume", takeover_volume, "only this volume (default: every volume this node holds)");
  bool accept_loss = false;
  takeover->add_flag("--accept-loss", accept_loss,
                     "on the survivor: take VOLUME over although the dead partner marked its mirror outdated "
                     "(or it is damaged); the writes the mirror lacks are lost");
  add_wait_options(takeover);
  auto* fault = app.add_subcommand("fault", "named fault sites");
  fault->require_subcommand(1);
  auto* fault_list = fault->add_subcommand("list", "every fault site, and the armed ones");
  std::string site, action;
  bool always = false;
  double probability = 1.0;
  auto* fault_arm = fault->add_subcommand("arm", "arm a site: crash, delay:MS or fail:ERRNO");
  fault_arm->add_option("site", site, "fault site (see fault list)")->required();
  fault_arm->add_option("action", action, "crash | delay:MS | fail:EIO")->required();
  fault_arm->add_flag("--always", always, "fire at every hit instead of once");
  fault_arm->add_option("--probability", probability, "chance of firing at each hit")->check(CLI::Range(0.000001, 1.0));
  auto* fault_clear = fault->add_subcommand("clear", "disarm one site, or all");
  fault_clear->add_option("site", site, "fault site (default: all)");
  unsigned hang_s = 0;
  auto* fault_hang = fault->add_subcommand("hang", "freeze the whole node (SIGSTOP) for SECONDS, then resume it");
  fault_hang->add_option("seconds", hang_s, "1..3600")->required()->check(CLI::Range(1u, 3600u));
  hafs::tools::ClusterCommand cluster(app);
  HAFS_CLI_PARSE(app, argc, argv);

  if (cluster.chosen())
    return cluster.run([](const std::string& path, double limit_s, const json& request) {
      auto answer = call(path, limit_s, request);
      if (auto* f = std::get_if<Failure>(&answer)) return hafs::tools::ControlReply{f->exit_code, f->message, {}};
      return hafs::tools::ControlReply{0, "", std::get<json>(answer)};
    });

  if (socket_path.empty()) {
    if (node) socket_path = "/run/hafs/hafsd-" + std::to_string(node) + ".sock";
    else if (const char* env = std::getenv("HAFS_SOCKET")) socket_path = env;
    else socket_path = "/run/hafs/hafsd-1.sock";
  }
  json request;
  if (*status) request = {{"op", "status"}};
  else if (*metrics) request = {{"op", "metrics"}};
  else if (*flush) request = {{"op", "flush"}, {"volume", volume}, {"background", true}};
  else if (*giveback) request = {{"op", "giveback"}, {"volume", giveback_volume}};
  else if (*takeover && accept_loss) {
    if (takeover_volume.empty()) {
      std::fprintf(stderr, "hafsctl: takeover --accept-loss needs the VOLUME\n");
      return 2;
    }
    request = {{"op", "accept_loss"}, {"volume", takeover_volume}};
  } else if (*takeover) request = {{"op", "handover"}, {"volume", takeover_volume}};
  else if (*fault_list) request = {{"op", "fault.list"}};
  else if (*fault_arm) {
    request = {{"op", "fault.arm"}, {"site", site}, {"action", action}, {"always", always}};
    if (probability < 1.0) request["probability"] = probability;
  } else if (*fault_clear) request = {{"op", "fault.clear"}, {"site", site}};
  else if (*fault_hang) request = {{"op", "fault.hang"}, {"seconds", hang_s}};

  // A response of the wrong shape (a member of the wrong type) is a failure to answer like
  // hafsd (exit 3), not a crash of hafsctl.
  try {
    // Long operations are followed by polling status; what was staged when they began is the
    // total of the progress line.
    const hafs::tools::StatusPoll poll = [&]() -> std::optional<json> {
      auto a = call(socket_path, timeout_s, {{"op", "status"}});
      if (auto* j = std::get_if<json>(&a)) return *j;
      return std::nullopt;
    };
    const bool follow = (*flush || *giveback || (*takeover && !accept_loss)) && !no_wait;
    uint64_t staged_before = 0;
    if (follow) {
      if (auto s0 = poll()) staged_before = get<uint64_t>((*s0)["nvlog"], "staged_bytes", 0);
    }
    auto answer = call(socket_path, timeout_s, request);
    if (auto* f = std::get_if<Failure>(&answer)) {
      std::fprintf(stderr, "hafsctl: %s\n", f->message.c_str());
      return f->exit_code;
    }
    json& result = std::get<json>(answer);
    if (*status) {
      if (as_json) std::printf("%s\n", result.dump(2).c_str());
      else print_status(result);
    } else if (*metrics) {
      std::fputs(result["text"].get<std::string>().c_str(), stdout);
    } else if (follow) {
      const bool tty = ::isatty(STDOUT_FILENO) == 1;
      hafs::tools::WaitResult w;
      if (*flush) {
        hafs::tools::ProgressLine line("flush", tty);
        const uint64_t runs = get<uint64_t>(result["flush"], "runs", 0);
        w = hafs::tools::wait_for_flush(poll, runs, staged_before, line, std::chrono::seconds(wait_s));
        line.finish(w.message);
      } else {
        std::vector<std::string> names;
        if (*giveback) names.push_back(giveback_volume);
        else for (const json& n : result["handover"]) names.push_back(n.get<std::string>());
        hafs::tools::ProgressLine line(*giveback ? "giveback " + giveback_volume : "takeover", tty);
        w = hafs::tools::wait_for_handover(poll, names, line, std::chrono::seconds(wait_s));
        line.finish(w.message);
      }
      if (!w.ok) {
        std::fprintf(stderr, "hafsctl: %s\n", w.message.c_str());
        return kExitServerError;
      }
    } else if (*takeover && accept_loss) {
      if (get<bool>(result, "partner_mirror_outdated", false))
        std::printf("%s: takeover from the outdated mirror allowed; the partner had %llu bytes unmirrored when "
                    "it marked it: writes among them are lost\n",
                    takeover_volume.c_str(),
                    static_cast<unsigned long long>(get<uint64_t>(result, "lag_bytes", 0)));
      else
        std::printf("%s: takeover allowed even from an outdated or damaged mirror (the mirror is not marked "
                    "outdated now)\n", takeover_volume.c_str());
    } else if (*flush) {
      std::printf("flush started%s\n", get<bool>(result, "started", false) ? "" : " (one was running: it covers this)");
    } else if (*fault_list) {
      for (const json& s : result["sites"])
        std::printf("%-28s %s\n", get<std::string>(s, "site", "?").c_str(), get<std::string>(s, "what", "").c_str());
      for (const json& a : result["armed"])
        std::printf("armed: %s = %s\n", get<std::string>(a, "site", "?").c_str(), get<std::string>(a, "action", "?").c_str());
    } else {
      std::printf("%s\n", result.dump().c_str());
    }
  } catch (const json::exception& e) {
    std::fprintf(stderr, "hafsctl: %s did not answer like hafsd (malformed response: %s)\n", socket_path.c_str(),
                 e.what());
    return kExitUnreachable;
  }
  return 0;
}
