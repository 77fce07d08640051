// The control operations of hafsd (status, metrics, flush, faults), answered over the control socket.
// Schema: docs/control-protocol.md.
#pragma once

#include <chrono>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/fault.h"
#include "base/status.h"
#include "fs/volume.h"
#include "interconnect/mirror_receiver.h"
#include "interconnect/mirror_sender.h"
#include "nvcache/nvcache.h"
#include "membership/monitor.h"
#include "tools/flush_job.h"
#include "tools/hafsd_config.h"
#include "node/node_actions.h"

namespace hafs::tools {

// What the control handler may look at and act on. Everything is owned by hafsd's main and
// outlives the control server.
struct NodeView {
  const HafsdConfig* config = nullptr;
  std::chrono::steady_clock::time_point started;
  FaultRegistry* faults = nullptr;
  nvcache::NvCache* cache = nullptr;
  std::vector<fs::Volume*> volumes;
  interconnect::MirrorSender* sender = nullptr;      // null when not mirrored
  interconnect::MirrorReceiver* receiver = nullptr;  // null when not mirrored
  membership::Monitor* monitor = nullptr;            // null without [membership]
  const node::NodeActions* actions = nullptr;        // null without [membership]
  FlushJob* flush = nullptr;                         // background flushes (hafsctl flush)
};

nlohmann::json node_status(const NodeView& node);
Result<nlohmann::json> handle_control(const NodeView& node, const nlohmann::json& request);

}  // namespace hafs::tools
