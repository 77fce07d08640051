// The transport seam under mirroring: one connected, reliable endpoint with registered memory,
// one-sided writes and small messages, and the factory that makes endpoints.
//
// The composition root (tools/hafsd) hands a TransportFactory to MirrorSender and MirrorReceiver;
// when none is given they use libfabric (FabricTransportFactory, fabric.h). Tests hand in the
// in-process LoopbackNetwork (loopback_transport.h) to drive the protocol state machine with
// seeded faults, and use the real one in the integration tests.
//
// Contracts every implementation keeps (the protocol relies on them):
//   - ordering (FI_ORDER_SAW): a message sent after a write is delivered after that write has
//     landed in the peer's region, so a COMMIT never overtakes the bytes it commits;
//   - a dead connection stays dead: poll() returns kUnavailable from then on, and both ends see
//     it (a completion error, a shutdown from the peer, a write to an unknown key);
//   - completions are read only in poll(): slots freed by completions come back there.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

struct fid_mr;

namespace hafs::interconnect {

// A registered memory region as the peer needs to address it.
struct Region {
  fid_mr* mr = nullptr;     // libfabric's handle (null for other transports)
  void* desc = nullptr;     // local descriptor for operations using this memory
  uint64_t key = 0;         // remote key
  uint64_t base = 0;        // remote address of byte 0 (0 when the provider uses offsets)
};

// One connected endpoint.
// Threading: send_message() and write() may be called from any thread; poll() is called by ONE
// thread (the owner's progress thread).
class Transport {
 public:
  virtual ~Transport() = default;

  // Registers [buf, buf + len). `remote_write` lets the peer write into it; `key` is the key
  // asked for (providers that choose keys themselves ignore it).
  virtual Result<Region> register_region(void* buf, size_t len, bool remote_write, uint64_t key) = 0;
  // Unregisters a region from register_region(); a default (never registered) Region is a no-op.
  virtual void unregister(Region& region) = 0;

  // Whether `requests` operations (one of them a message) can be posted without waiting.
  // Callers that also drive poll() check this first: waiting for a slot only the poller frees
  // would deadlock.
  virtual bool can_post(size_t requests) = 0;
  // Sends one message (at most 256 bytes). Blocks while all send slots are in use.
  virtual Status send_message(std::span<const std::byte> message) = 0;
  // Writes `len` bytes from registered local memory into the peer's region at `remote_offset`.
  // Blocks while the bound of outstanding requests is reached.
  virtual Status write(const void* local, size_t len, void* local_desc, const Region& remote,
                       uint64_t remote_offset) = 0;

  // Reads completions for up to `timeout` (0: just look). Received messages are appended to
  // *messages (dropped when it is null). A completion error or a shutdown from the peer returns
  // kUnavailable: the connection is dead and must be dropped.
  // `spin`: read the queue in a busy loop for up to this long before sleeping in the kernel
  // (a wake-up costs tens of microseconds here; spin while an answer is expected soon).
  virtual Status poll(std::vector<std::vector<std::byte>>* messages, std::chrono::milliseconds timeout,
                      std::chrono::microseconds spin = std::chrono::microseconds(0)) = 0;

  virtual const std::string& peer() const = 0;
  virtual const std::string& provider() const = 0;
};

// A listening address.
class Acceptor {
 public:
  virtual ~Acceptor() = default;
  // Waits up to `timeout` for a connection request and accepts it. Returns kTimedOut when none
  // came.
  virtual Result<std::unique_ptr<Transport>> accept(std::chrono::milliseconds timeout) = 0;
};

// Makes endpoints. Must outlive every MirrorSender / MirrorReceiver it is handed to, and the
// Transports and Acceptors it made. Thread safe.
class TransportFactory {
 public:
  virtual ~TransportFactory() = default;
  // Connects to a listening peer; waits for the connection at most `timeout`.
  virtual Result<std::unique_ptr<Transport>> connect(const std::string& host, const std::string& port,
                                                     std::chrono::milliseconds timeout) = 0;
  virtual Result<std::unique_ptr<Acceptor>> listen(const std::string& host, const std::string& port) = 0;
};

}  // namespace hafs::interconnect
