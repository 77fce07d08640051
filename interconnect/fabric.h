// The libfabric layer: one reliable connected endpoint (FI_EP_MSG) with everything it needs;
// the real Transport (transport.h) under mirroring.
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
#include "interconnect/transport.h"

struct fi_info;
struct fid_fabric;
struct fid_domain;
struct fid_eq;
struct fid_cq;
struct fid_ep;
struct fid_pep;

namespace hafs::interconnect {

struct FabricConfig {
  std::string provider = "tcp";
  size_t max_inflight = 256;    // requests (RMA writes + sends) posted and not yet completed
  size_t recv_slots = 64;       // receive buffers posted at all times
  // send_message() and write() wait at most this long for a free request or send slot (a peer
  // that stopped taking bytes): then kTimedOut, and the caller drops the connection. Shorter
  // than the mirror's mirror_wait, so that writers degrade in time whatever the partner does.
  std::chrono::milliseconds post_timeout{1000};
};

// The contracts of the methods are Transport's (transport.h).
class Connection final : public Transport {
 public:
  // Connects to a listening peer; waits for the connection at most `timeout`.
  static Result<std::unique_ptr<Connection>> connect(const FabricConfig& config,
                                                     const std::string& host, const std::string& port,
                                                     std::chrono::milliseconds timeout);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Result<Region> register_region(void* buf, size_t len, bool remote_write, uint64_t key) override;
  void unregister(Region& region) override;
  bool can_post(size_t requests) override;
  // Blocks while all send slots are in use, at most post_timeout (then kTimedOut).
  Status send_message(std::span<const std::byte> message) override;
  // Blocks while max_inflight requests are outstanding, at most post_timeout (then kTimedOut).
  Status write(const void* local, size_t len, void* local_desc, const Region& remote,
               uint64_t remote_offset) override;
  Status poll(std::vector<std::vector<std::byte>>* messages, std::chrono::milliseconds timeout,
              std::chrono::microseconds spin = std::chrono::microseconds(0)) override;

  const std::string& peer() const override { return peer_; }
  const std::string& provider() const override { return provider_; }

 private:
  friend class Listener;
  struct Request;
  Connection() = default;
  // After fi_endpoint: binds, enables, registers the slot pools and posts the receives.
  Status setup(const FabricConfig& config);
  Status post_recv(size_t slot);
  // A free request, waiting up to post_timeout_; null with *why set when closed or timed out.
  Request* take_request(Status* why);
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
  std::chrono::milliseconds post_timeout_{1000};

  static constexpr size_t kSlotBytes = 256;
  std::vector<std::byte> recv_buf_, send_buf_;
  Region recv_region_, send_region_;
  std::vector<std::unique_ptr<Request>> requests_;  // the whole pool, preallocated

  std::mutex mu_;                  // guards the free lists below
  std::condition_variable freed_;
  std::vector<Request*> free_requests_;
  std::vector<size_t> free_send_slots_;
};

class Listener final : public Acceptor {
 public:
  static Result<std::unique_ptr<Listener>> listen(const FabricConfig& config,
                                                  const std::string& host, const std::string& port);
  ~Listener() override;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  // Waits up to `timeout` for a connection request and accepts it. Returns kTimedOut when none
  // came.
  Result<std::unique_ptr<Transport>> accept(std::chrono::milliseconds timeout) override;

 private:
  Listener() = default;
  FabricConfig config_;
  fi_info* info_ = nullptr;
  fid_fabric* fabric_ = nullptr;
  fid_eq* eq_ = nullptr;
  fid_pep* pep_ = nullptr;
};

// The default TransportFactory: libfabric endpoints with `config`.
class FabricTransportFactory final : public TransportFactory {
 public:
  explicit FabricTransportFactory(FabricConfig config) : config_(std::move(config)) {}
  Result<std::unique_ptr<Transport>> connect(const std::string& host, const std::string& port,
                                             std::chrono::milliseconds timeout) override;
  Result<std::unique_ptr<Acceptor>> listen(const std::string& host, const std::string& port) override;

 private:
  const FabricConfig config_;
};

// libfabric's error text for a negative return code.
std::string fabric_error(long rc);

}  // namespace hafs::interconnect
