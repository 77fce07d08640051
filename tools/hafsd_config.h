// hafsd's configuration: a TOML file (docs/configuration.md), every setting overridable on the
// command line (--set key=value). Parsing checks every setting and names the bad one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/logger.h"
#include "base/status.h"
#include "fs/volume.h"
#include "nvcache/store.h"

namespace hafs::tools {

struct VolumeConfig {
  std::string name;
  uint32_t id = 0;
  std::string path;
  fs::WriteMode mode = fs::WriteMode::kStaged;
};

struct HafsdConfig {
  uint32_t node_id = 0;
  std::string mount;
  std::string control_socket;
  LogLevel log_level = LogLevel::kInfo;

  std::string nvlog_path;
  uint64_t nvlog_size = 256ull << 20;
  nvcache::StoreMode nvlog_mode = nvcache::StoreMode::kPmem;
  uint32_t destage_interval_ms = 100;

  double attr_timeout_s = 1.0;
  bool sync_metadata = true;
  uint32_t fuse_threads = 16;

  std::vector<VolumeConfig> volumes;
};

// Parses "123", "64KiB", "256MiB", "1GiB", "4K", "8M", "2G" into bytes.
Result<uint64_t> parse_size(const std::string& text);

// Loads `path` (may be empty: then only overrides count), applies each "key=value" override in
// order (dotted keys: nvlog.size=1GiB; volume=NAME:ID:PATH[:MODE] adds a volume), validates.
Result<HafsdConfig> load_config(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace hafs::tools
