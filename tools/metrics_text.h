// The `metrics` control operation: hafsd's counters, gauges and latency histograms in the
// Prometheus text exposition format 0.0.4. The metric list is in docs/operations.md ("Metrics");
// the operation in docs/control-protocol.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/histogram.h"
#include "tools/hafsd_control.h"

namespace hafs::tools {

// Builds one exposition: each family is written whole (# HELP, # TYPE, its samples) by one call.
// Names must be valid Prometheus metric names; label values and help texts are escaped here.
class PrometheusText {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  void counter(std::string_view name, std::string_view help, uint64_t value);
  void gauge(std::string_view name, std::string_view help, double value);
  // A gauge with one sample per label set.
  void gauge(std::string_view name, std::string_view help,
             const std::vector<std::pair<Labels, double>>& samples);
  // name_bucket{le=...} (cumulative, seconds), name_bucket{le="+Inf"}, name_sum (seconds),
  // name_count.
  void histogram(std::string_view name, std::string_view help, const LatencyHistogram::Snapshot& s);

  const std::string& text() const { return out_; }

 private:
  void header(std::string_view name, std::string_view help, std::string_view type);
  void sample(std::string_view name, const Labels& labels, std::string_view value);

  std::string out_;
};

// The node's metrics. `status` is node_status(node): the counters and gauges are the status
// numbers (one snapshot, so the two agree); the histograms come from the node's objects.
std::string node_metrics_text(const NodeView& node, const nlohmann::json& status);

}  // namespace hafs::tools
