#include "tools/metrics_text.h"

#include <cmath>
#include <cstdio>

namespace hafs::tools {

using json = nlohmann::json;

namespace {

// `whole` + `frac` / 10^digits as a decimal without trailing zeros: exact, unlike a double.
std::string decimal(uint64_t whole, uint64_t frac, int digits) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%llu.%0*llu", static_cast<unsigned long long>(whole), digits,
                static_cast<unsigned long long>(frac));
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

std::string seconds_of_us(uint64_t us) { return decimal(us / 1'000'000, us % 1'000'000, 6); }
std::string seconds_of_ns(uint64_t ns) { return decimal(ns / 1'000'000'000, ns % 1'000'000'000, 9); }

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0)  // 2^53: exact as an integer
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// Label values escape \, " and newline; help texts escape \ and newline (format 0.0.4).
std::string escaped(std::string_view s, bool quote) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '"' && quote) out += "\\\"";
    else out += c;
  }
  return out;
}

template <typename T>
T get(const json& j, const char* key, T fallback) {
  return j.is_object() && j.contains(key) && !j[key].is_null() ? j[key].get<T>() : fallback;
}

}  // namespace

void PrometheusText::header(std::string_view name, std::string_view help, std::string_view type) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escaped(help, false);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void PrometheusText::sample(std::string_view name, const Labels& labels, std::string_view value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) out_ += ',';
      out_ += labels[i].first + "=\"" + escaped(labels[i].second, true) + '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  out_ += value;
  out_ += '\n';
}

void PrometheusText::counter(std::string_view name, std::string_view help, uint64_t value) {
  header(name, help, "counter");
  sample(name, {}, std::to_string(value));
}

void PrometheusText::gauge(std::string_view name, std::string_view help, double value) {
  header(name, help, "gauge");
  sample(name, {}, number(value));
}

void PrometheusText::gauge(std::string_view name, std::string_view help,
                           const std::vector<std::pair<Labels, double>>& samples) {
  header(name, help, "gauge");
  for (const auto& [labels, value] : samples) sample(name, labels, number(value));
}

void PrometheusText::histogram(std::string_view name, std::string_view help,
                               const LatencyHistogram::Snapshot& s) {
  header(name, help, "histogram");
  const std::string n(name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < LatencyHistogram::kBoundsUs.size(); ++i) {
    cumulative += s.buckets[i];
    sample(n + "_bucket", {{"le", seconds_of_us(LatencyHistogram::kBoundsUs[i])}}, std::to_string(cumulative));
  }
  sample(n + "_bucket", {{"le", "+Inf"}}, std::to_string(s.count));
  sample(n + "_sum", {}, seconds_of_ns(s.sum_ns));
  sample(n + "_count", {}, std::to_string(s.count));
}

std::string node_metrics_text(const NodeView& n, const json& status) {
  PrometheusText p;
  const json& node = status["node"];
  const json& nvlog = status["nvlog"];
  const json& destage = nvlog["destage"];
  const json& mirror = status["mirror"];  // null on a single node
  const json& membership = status["membership"];  // null without [membership]

  p.histogram("hafs_write_ack_latency_seconds",
              "Staged write latency from entry to acknowledgement: local persist and the wait for "
              "the partner's mirror (acknowledged writes only).",
              n.cache->write_ack_latency().snapshot());
  p.histogram("hafs_destage_latency_seconds",
              "Latency of one successful destage pass: write and sync of a batch of objects.",
              n.cache->destage_latency().snapshot());
  p.counter("hafs_nvlog_write_records_total",
            "WRITE records appended to the NV log (a write larger than the record limit makes several).",
            get<uint64_t>(nvlog, "records_appended", 0));
  p.counter("hafs_nvlog_staged_bytes_total", "Data bytes staged in the NV log by writes.",
            get<uint64_t>(nvlog, "bytes_appended", 0));
  p.counter("hafs_nvlog_space_waits_total", "Appends that waited for NV log space (backpressure).",
            get<uint64_t>(nvlog, "space_waits", 0));
  p.counter("hafs_destage_passes_total", "Destage passes that had something to write, failed ones included.",
            get<uint64_t>(destage, "passes", 0));
  p.counter("hafs_destage_bytes_total", "Data bytes destaged to the storage medium.",
            get<uint64_t>(destage, "bytes", 0));
  p.counter("hafs_destage_errors_total", "Failed destage passes (the records stay staged and are retried).",
            get<uint64_t>(destage, "errors", 0));
  p.gauge("hafs_nvlog_used_bytes", "NV log bytes between the trim point and the head (not yet trimmed).",
          get<double>(nvlog, "used_bytes", 0));
  p.gauge("hafs_nvlog_capacity_bytes", "Size of the NV log's data area.", get<double>(nvlog, "data_bytes", 0));
  p.gauge("hafs_destage_backlog_bytes", "Live staged bytes not yet on the storage medium.",
          get<double>(nvlog, "staged_bytes", 0));

  if (n.sender && mirror.is_object()) {
    p.histogram("hafs_mirror_round_trip_seconds",
                "Mirror COMMIT to ACK round trip: from sending a COMMIT to hearing the ACK that covers it.",
                n.sender->ack_latency().snapshot());
    p.counter("hafs_mirror_bytes_shipped_total", "NV log bytes written into the partner's mirror.",
              get<uint64_t>(mirror, "bytes_shipped", 0));
    p.counter("hafs_mirror_connects_total", "Connections made to the partner's mirror.",
              get<uint64_t>(mirror, "connects", 0));
    p.gauge("hafs_mirror_lag_bytes", "NV log bytes filled locally and not yet held by the partner.",
            get<double>(mirror, "lag_bytes", 0));
  }

  const bool degraded = membership.is_object() ? get<bool>(membership, "degraded", false)
                                               : get<bool>(mirror, "degraded", false);
  p.gauge("hafs_degraded", "1 while writes are acknowledged without the partner's mirror, else 0.",
          degraded ? 1 : 0);
  p.gauge("hafs_node_state", "The node's state as the label; the value is always 1.",
          {{{{"state", get<std::string>(node, "state", "unknown")}}, 1.0}});
  p.gauge("hafs_uptime_seconds", "Seconds since this hafsd started serving (counters restart at 0).",
          get<double>(node, "uptime_s", 0));

  std::vector<std::pair<PrometheusText::Labels, double>> epochs, served;
  for (const json& v : status["volumes"]) {
    const PrometheusText::Labels labels = {{"volume", get<std::string>(v, "name", "?")}};
    const std::string state = get<std::string>(v, "state", "");
    // Without membership a volume is served whenever hafsd runs (normal or degraded).
    const bool serving = state == "serving" || state == "normal" || state == "degraded";
    epochs.push_back({labels, get<double>(v, "epoch", 0)});
    served.push_back({labels, serving ? 1.0 : 0.0});
  }
  p.gauge("hafs_volume_epoch", "The volume's epoch as this node knows it (0: unknown).", epochs);
  p.gauge("hafs_volume_served", "1 while this node serves the volume, else 0.", served);
  return p.text();
}

}  // namespace hafs::tools
