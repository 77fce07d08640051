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
  uint32_t home = 0;  // node that serves it normally (0: this node)
  fs::DegradedPolicy degraded = fs::DegradedPolicy::kLocalLog;  // writes while unmirrored
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
  bool sync_metadata = false;  // false: metadata is logged in the NV log (design.md §9a)
  uint32_t fuse_threads = 16;

  std::vector<VolumeConfig> volumes;

  // Mirroring to the partner ([interconnect]); off when partner_node_id is 0.
  struct Interconnect {
    std::string provider = "tcp";       // libfabric provider: tcp here, verbs on RDMA hardware
    std::string listen_host = "127.0.0.1";
    std::string listen_port;            // where this node's mirror receiver listens
    uint32_t partner_node_id = 0;
    std::string partner_host = "127.0.0.1";
    std::string partner_port;           // where the partner's mirror receiver listens
    std::string key_file;               // 64 hex digits, mode 0600
    std::string key;                    // a passphrase instead of key_file (tests, demos)
    std::string mirror_path;            // the mirror store of the partner's ring (mapped file)
    uint32_t mirror_wait_ms = 3000;     // a write waits this long for the partner, then degrades
    uint32_t heartbeat_ms = 100;
    uint32_t silence_limit_ms = 1000;   // no message from the partner for this long: reconnect
    // Busy-poll of the mirror's progress threads while an ACK or a COMMIT is due, in µs.
    // Measured on 2 vCPUs (docs/performance.md, "Busy-poll"): without it a 4 KiB mirrored write +
    // fsync is 1.5x slower (each wake-up of a sleeping thread costs tens of µs in a VM) for about
    // the same CPU per write; the sender stops spinning by itself when ACKs take longer (large
    // records).
    uint32_t busy_poll_us = 200;
  } interconnect;
  bool mirrored() const { return interconnect.partner_node_id != 0; }

  // Membership ([membership]); off when dir is empty: the node then serves its own volumes and
  // never takes over.
  struct Membership {
    std::string dir;                    // on the shared storage medium, the same for both nodes
    std::string cluster;                // the pair's name; with the key, the cluster id of records
    uint32_t lease_ms = 2000;
    uint32_t margin_ms = 250;
    uint32_t settle_ms = 500;
    uint32_t tick_ms = 500;
    uint32_t partner_silence_ms = 2000;
    uint32_t io_timeout_ms = 250;       // a renewal slower than this counts as failed
    bool auto_giveback = true;
    uint32_t giveback_delay_ms = 30000;
  } membership;
  bool has_membership() const { return !membership.dir.empty(); }
};

// Parses "123", "64KiB", "256MiB", "1GiB", "4K", "8M", "2G" into bytes.
Result<uint64_t> parse_size(const std::string& text);

// Loads `path` (may be empty: then only overrides count), applies each "key=value" override in
// order (dotted keys: nvlog.size=1GiB; volume=NAME:ID:PATH[:MODE[:HOME[:DEGRADED]]] adds a volume), validates.
Result<HafsdConfig> load_config(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace hafs::tools
