// What membership's decisions do in hafsd: the membership::Actions of a node, carried out with
// nvcache, interconnect and fs (DESIGN.md: membership decides, the composition root acts).
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/fault.h"
#include "base/logger.h"
#include "fs/filesystem.h"
#include "fs/volume.h"
#include "interconnect/mirror_sender.h"
#include "membership/actions.h"
#include "nvcache/nvcache.h"

namespace hafs::tools {

class NodeActions : public membership::Actions {
 public:
  // Every pointer is owned by hafsd's main and outlives this object. `mirror` (the partner's
  // ring, kept by this node's mirror receiver), `sender` and `faults` may be null. `faults` is
  // hafsd's registry: the takeover replay writes through the destage fault sites like the destager.
  NodeActions(uint32_t node_id, std::vector<fs::Volume*> volumes, fs::Filesystem* filesystem,
              nvcache::NvCache* cache, nvcache::DestageTarget* target, nvcache::Store* mirror,
              interconnect::MirrorSender* sender, Logger logger, FaultRegistry* faults = nullptr);

  void fence(membership::VolumeId volume) override;
  Status take_over(membership::VolumeId volume, uint64_t epoch) override;
  void serve(membership::VolumeId volume, uint64_t epoch) override;
  Status release(membership::VolumeId volume) override;
  void discard(membership::VolumeId volume) override;
  void set_degraded(bool degraded) override;

  // The last takeover of a partner's volume and how long each phase took (for status).
  nlohmann::json last_takeover() const;

 private:
  fs::Volume* find(membership::VolumeId id) const;

  const uint32_t node_id_;
  const std::vector<fs::Volume*> volumes_;
  fs::Filesystem* const fs_;
  nvcache::NvCache* const cache_;
  nvcache::DestageTarget* const target_;
  nvcache::Store* const mirror_;
  interconnect::MirrorSender* const sender_;
  const Logger log_;
  FaultRegistry* const faults_;
  mutable std::mutex mu_;
  nlohmann::json last_takeover_;  // GUARDED_BY(mu_)
};

}  // namespace hafs::tools
