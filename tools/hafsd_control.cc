#include "tools/hafsd_control.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <optional>

#include "tools/metrics_text.h"

namespace hafs::tools {

using json = nlohmann::json;

namespace {

// Freezes this whole process for `seconds`, 100 ms from now (time for the answer to go out): a
// grandchild sends SIGSTOP, then SIGCONT. The drill for a hung node: it neither serves, nor
// heartbeats, nor renews, and wakes up with whatever it believed (`hafsctl fault hang`).
Status hang_self(unsigned seconds) {
  const pid_t self = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) return Status::from_errno(errno, "fork for fault.hang");
  if (child == 0) {
    // Only async-signal-safe calls from here: this is a copy of a multi-threaded process.
    if (::fork() != 0) ::_exit(0);  // the grandchild is adopted by init; nobody waits for it
    ::close_range(0, ~0U, 0);       // hold none of hafsd's descriptors (the FUSE device, sockets)
    timespec t{0, 100'000'000};
    while (::nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
    ::kill(self, SIGSTOP);
    timespec h{static_cast<time_t>(seconds), 0};
    while (::nanosleep(&h, &h) != 0 && errno == EINTR) {
    }
    ::kill(self, SIGCONT);
    ::_exit(0);
  }
  ::waitpid(child, nullptr, 0);
  return Status::ok();
}

std::string fault_action_text(const FaultSpec& s) {
  switch (s.action) {
    case FaultAction::kCrash: return "crash";
    case FaultAction::kDelay: return "delay:" + std::to_string(s.delay_ms);
    case FaultAction::kFail: return "fail:" + std::to_string(s.errno_value);
  }
  return "?";
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

json faults_json(const FaultRegistry& faults) {
  json out = json::array();
  for (const auto& f : faults.armed())
    out.push_back({{"site", fault_site_name(f.site)}, {"action", fault_action_text(f.spec)},
                   {"once", f.spec.once}, {"probability", f.spec.probability}, {"fired", f.fired}});
  return out;
}

}  // namespace

// The volume's inode pool (logged creates take their inodes from it: fs/meta_log.h).
json inode_pool_json(const fs::Volume& v) {
  const fs::MetaLog::PoolState p = v.meta().pool_state();
  return {{"files", p.files}, {"directories", p.directories}, {"refills", p.refills}, {"refilling", p.refilling}};
}

json node_status(const NodeView& n) {
  const HafsdConfig& c = *n.config;
  const auto up = std::chrono::steady_clock::now() - n.started;
  // One snapshot of the mirror for the whole answer: every field agrees, one lock taken.
  const std::optional<interconnect::MirrorStats> mirror =
      n.sender ? std::optional(n.sender->stats()) : std::nullopt;
  const bool degraded = mirror && mirror->degraded;
  json s;
  s["node"] = {{"id", c.node_id}, {"pid", ::getpid()}, {"mount", c.mount},
               {"uptime_s", std::chrono::duration_cast<std::chrono::seconds>(up).count()},
               {"state", degraded ? "degraded" : "normal"}};
  const nvcache::NvCacheStats st = n.cache->stats();
  s["nvlog"] = {{"path", c.nvlog_path},
                {"mode", nvcache::store_mode_name(c.nvlog_mode)},
                {"data_bytes", st.data_bytes},
                {"used_bytes", st.used_bytes},
                {"fill_pct", st.data_bytes ? 100.0 * double(st.used_bytes) / double(st.data_bytes) : 0.0},
                {"staged_bytes", st.staged_bytes},
                {"extents", st.extents},
                {"objects", st.objects},
                {"complete_lsn", st.complete_lsn},
                {"trim_lsn", st.trim_lsn},
                {"records_appended", st.records_appended},
                {"bytes_appended", st.bytes_appended},
                {"space_waits", st.space_waits},
                {"destage", {{"passes", st.destage_passes},
                             {"bytes", st.destaged_bytes},
                             {"errors", st.destage_errors},
                             {"last_error", st.last_destage_error},
                             {"medium_full", st.medium_full}}},
                {"records_voided", st.records_voided},
                {"meta", {{"records", st.meta_records},
                          {"unsynced", st.meta_unsynced},
                          {"syncs", st.meta_syncs}}}};
  json vols = json::array();
  if (n.monitor) {
    const membership::MonitorStatus ms = n.monitor->status();
    s["node"]["state"] = membership::node_state_name(ms.state);
    for (const fs::Volume* v : n.volumes) {
      json row = {{"name", v->name()}, {"id", v->id()}, {"path", v->path()},
                  {"mode", fs::write_mode_name(v->mode())}, {"home", v->home_node()},
                  {"degraded_policy", fs::degraded_policy_name(v->degraded_policy())},
                  {"owner", 0}, {"epoch", 0}, {"state", "unknown"}, {"blocked", ""},
                  {"kept_extents", 0}, {"replay_pending", false}};
      for (const auto& mv : ms.volumes)
        if (mv.id == v->id()) {
          // The snapshot is published at the end of a tick: a node that just woke from a freeze
          // still shows "serving" until its first tick fences. Its data path refuses already
          // (lease_valid), so report what it does: a serving volume whose lease ran out is fenced.
          const bool expired = mv.state == membership::VolumeState::kServing &&
                               membership::SteadyClock().now() >= mv.lease_valid_until;
          row.update({{"owner", mv.owner}, {"epoch", mv.epoch},
                      {"state", expired        ? "fenced"
                                : mv.releasing ? "giving-back"
                                               : membership::volume_state_name(mv.state)},
                      {"blocked", mv.blocked}, {"kept_extents", mv.kept_extents},
                      {"replay_pending", mv.replay_pending}});
        }
      row["inode_pool"] = inode_pool_json(*v);
      vols.push_back(row);
    }
    s["membership"] = {{"state", membership::node_state_name(ms.state)},
                       {"partner_disk_alive", ms.partner_disk_alive},
                       {"interconnect_alive", ms.interconnect_alive},
                       {"degraded", ms.degraded},
                       {"transitions", ms.transitions},
                       {"slowest_renewal_ms", ms.slowest_renewal_ms},
                       {"partner_mirror_outdated", ms.partner_mirror_outdated},
                       {"partner_mirror_lag_bytes", ms.partner_mirror_lag_bytes},
                       {"mirror_frozen", ms.mirror_frozen},
                       {"identity_conflict", ms.identity_conflict},
                       {"last_takeover", n.actions ? n.actions->last_takeover() : json()}};
  } else {
    for (const fs::Volume* v : n.volumes)
      vols.push_back({{"name", v->name()}, {"id", v->id()}, {"path", v->path()},
                      {"mode", fs::write_mode_name(v->mode())}, {"home", v->home_node()},
                      {"degraded_policy", fs::degraded_policy_name(v->degraded_policy())},
                      {"owner", c.node_id}, {"epoch", v->epoch()},
                      {"state", degraded ? "degraded" : "normal"}, {"blocked", ""},
                      {"kept_extents", 0}, {"replay_pending", false}, {"inode_pool", inode_pool_json(*v)}});
    s["membership"] = nullptr;
  }
  s["volumes"] = vols;
  if (mirror) {
    const interconnect::MirrorStats& m = *mirror;
    s["mirror"] = {{"partner", c.interconnect.partner_node_id},
                   {"state", interconnect::mirror_state_name(m.state)},
                   {"degraded", m.degraded},
                   {"outdated_marked", m.outdated_marked},
                   {"filled_pos", m.filled_pos},
                   {"mirrored_pos", m.mirrored_pos},
                   {"lag_bytes", m.lag_bytes},
                   {"lag_lsns", m.lag_lsns},
                   {"resync_bytes_left", m.resync_bytes_left},
                   {"resync", {{"bytes_total", m.resync_bytes_total},
                               {"bytes_done", m.resync_bytes_done},
                               {"rate_bytes_per_s", m.resync_rate_bytes_per_s},
                               {"eta_ms", m.resync_eta_ms}}},
                   {"last_ack_latency_us", m.last_ack_latency_us},
                   {"ms_since_heard", m.ms_since_heard},
                   {"connects", m.connects},
                   {"bytes_shipped", m.bytes_shipped}, {"acks", m.acks},
                   {"acks_read_by_writers", m.acks_read_by_writers},
                   {"last_error", m.last_error}};
  } else {
    s["mirror"] = nullptr;
  }
  if (n.receiver) {
    const auto r = n.receiver->stats();
    s["mirror_in"] = {{"connected", r.connected}, {"ring_id", hex64(r.ring_id)},
                      {"session", r.session}, {"acked_pos", r.acked_pos},
                      {"trim_lsn", r.trim_lsn}, {"commits", r.commits}, {"acks", r.acks},
                      {"bytes_committed", r.bytes_committed}, {"refused", r.refused},
                      {"last_refusal", r.last_refusal}, {"partner_epoch", r.partner_epoch},
                      {"frozen", r.frozen},
                      {"ms_since_heard", r.ms_since_heard}};
  } else {
    s["mirror_in"] = nullptr;
  }
  s["faults"] = faults_json(*n.faults);
  s["flush"] = n.flush ? n.flush->state() : json();
  return s;
}

Result<json> handle_control(const NodeView& n, const json& request) {
  const std::string op = request.value("op", "");
  if (op == "status") return node_status(n);
  if (op == "metrics") return json{{"text", node_metrics_text(n, node_status(n))}};
  if (op == "flush") {
    const std::string volume = request.value("volume", "");
    if (!volume.empty()) {
      bool known = false;
      for (const fs::Volume* v : n.volumes) known |= v->name() == volume;
      if (!known) return Status::error(Code::kNotFound, "no volume '" + volume + "' on this node");
    }
    // Destaging is per ring, not per volume: flushing one volume flushes everything complete.
    if (request.value("background", false)) {
      if (!n.flush) return Status::error(Code::kInvalidArgument, "no background flush here");
      const bool started = n.flush->start();
      return json{{"started", started}, {"flush", n.flush->state()}};
    }
    HAFS_RETURN_IF_ERROR(n.cache->flush_all());
    const auto st = n.cache->stats();
    return json{{"staged_bytes", st.staged_bytes}, {"trim_lsn", st.trim_lsn}};
  }
  if (op == "giveback") {
    if (!n.monitor) return Status::error(Code::kInvalidArgument, "this node runs without membership");
    const std::string volume = request.value("volume", "");
    for (const fs::Volume* v : n.volumes)
      if (v->name() == volume) {
        HAFS_RETURN_IF_ERROR(n.monitor->request_giveback(v->id()));
        return json{{"giveback", volume}, {"queued", true}};
      }
    return Status::error(Code::kNotFound, "no volume '" + volume + "' in this pair");
  }
  if (op == "accept_loss") {
    // hafsctl takeover --accept-loss VOLUME, on the survivor: take the volume over although the
    // partner's mirror is marked outdated or damaged (what it lacks is lost).
    if (!n.monitor) return Status::error(Code::kInvalidArgument, "this node runs without membership");
    const std::string volume = request.value("volume", "");
    for (const fs::Volume* v : n.volumes)
      if (v->name() == volume) {
        HAFS_RETURN_IF_ERROR(n.monitor->request_accept_loss(v->id()));
        const membership::MonitorStatus ms = n.monitor->status();
        return json{{"accept_loss", volume}, {"queued", true},
                    {"partner_mirror_outdated", ms.partner_mirror_outdated},
                    {"lag_bytes", ms.partner_mirror_lag_bytes}};
      }
    return Status::error(Code::kNotFound, "no volume '" + volume + "' in this pair");
  }
  if (op == "handover") {
    // A planned takeover by the partner: hand it the named volume, or every volume held here.
    if (!n.monitor) return Status::error(Code::kInvalidArgument, "this node runs without membership");
    const std::string volume = request.value("volume", "");
    const membership::MonitorStatus ms = n.monitor->status();
    json queued = json::array();
    for (const fs::Volume* v : n.volumes) {
      if (!volume.empty() && v->name() != volume) continue;
      bool held = false;
      for (const auto& mv : ms.volumes)
        held |= mv.id == v->id() && (mv.state == membership::VolumeState::kServing ||
                                     mv.state == membership::VolumeState::kTakingOver);
      if (!held) {
        if (!volume.empty())
          return Status::error(Code::kInvalidArgument, "volume '" + volume + "' is not held by this node");
        continue;
      }
      HAFS_RETURN_IF_ERROR(n.monitor->request_handover(v->id()));
      queued.push_back(v->name());
    }
    if (queued.empty())
      return Status::error(volume.empty() ? Code::kInvalidArgument : Code::kNotFound,
                           volume.empty() ? "this node holds no volume to hand over"
                                          : "no volume '" + volume + "' in this pair");
    return json{{"handover", queued}, {"queued", true}};
  }
  if (op == "fault.hang") {
    const int64_t seconds = request.value("seconds", int64_t{0});
    if (seconds < 1 || seconds > 3600)
      return Status::error(Code::kInvalidArgument, "fault.hang needs seconds from 1 to 3600");
    HAFS_RETURN_IF_ERROR(hang_self(static_cast<unsigned>(seconds)));
    return json{{"hang_s", seconds}};
  }
  if (op == "fault.list") {
    json sites = json::array();
    for (const auto& info : kFaultSites) sites.push_back({{"site", info.name}, {"what", info.what}});
    return json{{"sites", sites}, {"armed", faults_json(*n.faults)}};
  }
  if (op == "fault.arm") {
    std::string spec = request.value("site", "") + "=" + request.value("action", "");
    if (request.value("always", false)) spec += ",always";
    if (request.contains("probability")) spec += ",p=" + request["probability"].dump();
    auto arm = parse_fault_arm(spec);
    if (!arm) return arm.status();
    n.faults->arm(arm->site, arm->spec);
    return json{{"armed", spec}};
  }
  if (op == "fault.clear") {
    const std::string site = request.value("site", "");
    if (site.empty() || site == "all") {
      n.faults->clear_all();
      return json{{"cleared", "all"}};
    }
    auto s = fault_site_by_name(site);
    if (!s) return Status::error(Code::kNotFound, "unknown fault site '" + site + "'");
    n.faults->clear(*s);
    return json{{"cleared", site}};
  }
  return Status::error(Code::kInvalidArgument, "unknown operation '" + op + "'");
}

}  // namespace hafs::tools
