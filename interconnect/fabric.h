// The libfabric layer: one reliable connected endpoint (FI_EP_MSG) with everything it needs.
//
// A Connection owns its fabric, domain, event queue, completion queue and endpoint, a pool of
// registered message slots for receives and sends, and a bounded pool of in-flight requests.
// The provider comes from configuration: "tcp" here, "verbs" on RDMA hardware (rdma-core); the
// code path is the same (provider differences: see kProviderNotes in fabric.cc).
//
// Threading: the endpoint is opened FI_THREAD_SAFE; send_message() and write() may be called
// from any thread; poll() is called by ONE thread (the owner's progress thread), the only place
// that reads the completion queue and handles its errors.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

struct fi_info;
struct fid_fabric;
struct fid_domain;
struct fid_eq;
struct fid_cq;
struct fid_ep;
struct fid_pep;
struct fid_mr;

namespace hafs::interconnect {

struct FabricConfig {
  std::string provider = "tcp";
  size_t max_inflight = 256;    // requests (RMA writes + sends) posted and not yet completed
  size_t recv_slots = 64;       // receive buffers posted at all times
};

// A registered memory region as the peer needs to address it.
struct Region {
  fid_mr* mr = nullptr;
  void* desc = nullptr;     // local descriptor for operations using this memory
  uint64_t key = 0;         // remote key
  uint64_t base = 0;        // remote address of byte 0 (0 when the provider uses offsets)
};

class Connection {
 public:
  // Connects to a listening peer; waits for the connection at most `timeout`.
  static Result<std::unique_ptr<Connection>> connect(const FabricConfig& config,
                                                     const std::string& host, const std::string& port,
                                                     std::chrono::milliseconds timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Registers [buf, buf + len). `remote_write` lets the peer write into it; `key` is the key
  // asked for (providers that choose keys themselves ignore it).
  Result<Region> register_region(void* buf, size_t len, bool remote_write, uint64_t key);
  void unregister(Region& region);

  // Whether `requests` operations (one of them a message) can be posted without waiting.
  // Callers that also drive poll() check this first: waiting for a slot only the poller frees
  // would deadlock.
  bool can_post(size_t requests);
  // Sends one message (at most 256 bytes). Blocks while all send slots are in use.
  Status send_message(std::span<const std::byte> message);
  // Writes `len` bytes from registered local memory into the peer's region at `remote_offset`.
  // Blocks while max_inflight requests are outstanding.
  Status write(const void* local, size_t len, void* local_desc, const Region& remote,
               uint64_t remote_offset);

  // Reads completions for up to `timeout` (0: just look). Received messages are appended to
  // *messages (dropped when it is null). A completion error or a shutdown from the peer returns kUnavailable: the
  // connection is dead and must be dropped.
  // `spin`: read the queue in a busy loop for up to this long before sleeping in the kernel
  // (a wake-up costs tens of microseconds here; spin while an answer is expected soon).
  Status poll(std::vector<std::vector<std::byte>>* messages, std::chrono::milliseconds timeout,
              std::chrono::microseconds spin = std::chrono::microseconds(0));

  const std::string& peer() const { return peer_; }
  const std::string& provider() const { return provider_; }

 private:
  friend class Listener;
  struct Request;
  Connection() = default;
  // After fi_endpoint: binds, enables, registers the slot pools and posts the receives.
  Status setup(const FabricConfig& config);
  Status post_recv(size_t slot);
  Request* take_request();
  void give_request(Request* r);
  Status check_shutdown();

  fi_info* info_ = nullptr;
  fid_fabric* fabric_ = nullptr;
  fid_domain* domain_ = nullptr;
  fid_eq* eq_ = nullptr;
  fid_cq* cq_ = nullptr;
  fid_ep* ep_ = nullptr;
  std::string peer_, provider_;
  bool dead_ = false;

  static constexpr size_t kSlotBytes = 256;
  std::vector<std::byte> recv_buf_, send_buf_;
  Region recv_region_, send_region_;
  std::vector<std::unique_ptr<Request>> requests_;  // the whole pool, preallocated

  std::mutex mu_;                  // guards the free lists below
  std::condition_variable freed_;
  std::vector<Request*> free_requests_;
  std::vector<size_t> free_send_slots_;
};

class Listener {
 public:
  static Result<std::unique_ptr<Listener>> listen(const FabricConfig& config,
                                                  const std::string& host, const std::string& port);
  ~Listener();
  // Waits up to `timeout` for a connection request and accepts it. Returns kTimedOut when none
  // came.
  Result<std::unique_ptr<Connection>> accept(std::chrono::milliseconds timeout);

 private:
  Listener() = default;
  FabricConfig config_;
  fi_info* info_ = nullptr;
  fid_fabric* fabric_ = nullptr;
  fid_eq* eq_ = nullptr;
  fid_pep* pep_ = nullptr;
};

// libfabric's error text for a negative return code.
std::string fabric_error(long rc);

}  // namespace hafs::interconnect
