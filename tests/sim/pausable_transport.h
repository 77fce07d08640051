// PausableTransport: a node's view of the simulated interconnect that the simulator can pause,
// as a paused process (SIGSTOP, a VM stopped by its hypervisor) would be: while paused, nothing
// it posts leaves (send_message and write wait), nothing reaches it (poll returns nothing,
// accept accepts nothing), and what the partner sent waits in the link. Its partner sees
// silence, and drops the connection after its silence limit, as with a real paused process.
// Unpausing lets everything go on where it stood.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "interconnect/transport.h"

namespace hafs::sim {

class PausableTransport final : public interconnect::TransportFactory {
 public:
  explicit PausableTransport(interconnect::TransportFactory& inner);
  // False wakes every thread waiting in a post.
  void set_paused(bool paused);

  Result<std::unique_ptr<interconnect::Transport>> connect(const std::string& host, const std::string& port,
                                                           std::chrono::milliseconds timeout) override;
  Result<std::unique_ptr<interconnect::Acceptor>> listen(const std::string& host, const std::string& port) override;

  // Shared with the connections and acceptors made (they may outlive nothing, but a shared
  // gate keeps the lifetime question out of the way).
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool paused = false;  // GUARDED_BY(mu)
    // Waits while paused; true once not paused. With a deadline, false when it passed first.
    bool wait(std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max());
    bool is_paused();
  };

  // The gate itself: the simulator pauses a node's other real-thread paths with it (its
  // data path's reads and writes of the membership disk).
  std::shared_ptr<Gate> gate() const { return gate_; }

 private:
  interconnect::TransportFactory& inner_;
  std::shared_ptr<Gate> gate_ = std::make_shared<Gate>();
};

}  // namespace hafs::sim
