// LoopbackNetwork: an in-process Transport for unit tests of the mirror protocol (a test seam,
// like membership's SimDisk): named listening addresses, connections made of two ends in the
// same process, registered memory, one-sided writes and messages, and seeded faults.
//
// What it models:
//   - one-sided writes land in the region the peer registered under the key (memcpy), and only
//     when the peer polls (like libfabric's tcp provider, which needs the target to make
//     progress); a write to a key the peer has not registered (or past its end, or into a
//     region not open to remote writes) kills the connection, as a real provider does;
//   - order: every operation one end posts (writes and messages) is applied by the other end in
//     the order posted, delays included (FI_ORDER_SAW: a COMMIT never overtakes its write);
//   - bounded requests: posted operations hold a slot until the poster's poll() reaps their
//     completion (the peer applied them); send_message() and write() block at the bound, so a
//     poller that posts without checking can_post() deadlocks here as it would on libfabric;
//   - a closed or dropped connection: operations already applied stay applied, a random prefix
//     of those still queued is delivered (data before the FIN), then poll() returns kUnavailable
//     on both ends; destroying an end closes the connection for its peer.
// What it does not model: connection setup latency or refusal by a full backlog, partial
// (torn) RMA writes, the local buffer being read after the write was posted (the bytes are
// copied when posted), memory-registration limits, provider-chosen keys, or wire corruption
// (the message codec is tested on its own, and bad_peer_test sends garbage over real libfabric).
//
// Faults (LoopbackFaults) are drawn per posted operation. Each connection draws from its own
// std::mt19937_64, seeded from the network's generator when the connection is made, so a run is
// deterministic given the seed as far as the threads' interleaving allows.
//
// Threading: the network and every end are thread safe in the Transport sense (send_message and
// write from any thread, poll from one). Lifetime: the network must outlive every Acceptor it
// made (checked); ends may outlive it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "interconnect/transport.h"

namespace hafs::interconnect {

struct LoopbackFaults {
  double drop_p = 0;              // chance that a posted operation drops the connection after it
  double delay_p = 0;             // chance that a posted operation is held back (and all after it)
  uint32_t delay_us_max = 0;      // held back by 1..delay_us_max microseconds
  double bad_key_p = 0;           // chance that a write goes to a key the peer never registered
};

struct LoopbackConfig {
  size_t max_inflight = 256;      // operations posted by one end and not yet reaped by its poll
  size_t send_slots = 32;         // of which messages, at most
  // A post waits at most this long for room (then kTimedOut), like FabricConfig::post_timeout.
  std::chrono::milliseconds post_timeout{1000};
};

struct LoopbackStats {
  uint64_t connects = 0;
  uint64_t refused = 0;           // connect() to an address nobody listens at
  uint64_t writes = 0;
  uint64_t messages = 0;
  uint64_t delays = 0;
  uint64_t drops = 0;             // connections killed by a drop fault or drop_all()
  uint64_t bad_keys = 0;          // writes sent to an unknown key by the fault
  uint64_t errors = 0;            // connections killed by a failed write (unknown key, bounds)
};

class LoopbackAcceptor;

class LoopbackNetwork final : public TransportFactory {
 public:
  explicit LoopbackNetwork(uint64_t seed, LoopbackConfig config = {});
  ~LoopbackNetwork() override;
  LoopbackNetwork(const LoopbackNetwork&) = delete;
  LoopbackNetwork& operator=(const LoopbackNetwork&) = delete;

  // Addresses are "host:port" strings; nothing is resolved. A connect to an address nobody
  // listens at fails at once with kUnavailable ("connection refused").
  Result<std::unique_ptr<Transport>> connect(const std::string& host, const std::string& port,
                                             std::chrono::milliseconds timeout) override;
  // kUnavailable when the address is taken. Closing the acceptor frees the address at once.
  Result<std::unique_ptr<Acceptor>> listen(const std::string& host, const std::string& port) override;

  // Applies to operations posted from now on, on every connection.
  void set_faults(const LoopbackFaults& faults);
  // Drops every live connection now (both ends see kUnavailable). Returns how many.
  size_t drop_all(const std::string& why);

  uint64_t seed() const { return seed_; }
  LoopbackStats stats() const;

  struct Link;  // one connection; defined in loopback_transport.cc

 private:
  friend class LoopbackAcceptor;
  struct Shared;  // faults and counters, shared with the links (which may outlive the network)

  const uint64_t seed_;
  const LoopbackConfig config_;
  std::shared_ptr<Shared> shared_;

  // Lock order: mu_ before any link's mutex.
  mutable std::mutex mu_;
  std::condition_variable accept_cv_;                 // a connection request queued
  std::mt19937_64 rng_;                               // GUARDED_BY(mu_): seeds the links
  std::map<std::string, LoopbackAcceptor*> listening_;  // GUARDED_BY(mu_)
  std::vector<std::weak_ptr<Link>> links_;             // GUARDED_BY(mu_): for drop_all
};

}  // namespace hafs::interconnect
