#include "tests/sim/pausable_transport.h"

#include <thread>
#include <utility>
#include <vector>

namespace hafs::sim {

using Clock = std::chrono::steady_clock;
using interconnect::Acceptor;
using interconnect::Region;
using interconnect::Transport;

bool PausableTransport::Gate::wait(Clock::time_point deadline) {
  std::unique_lock lock(mu);
  if (deadline == Clock::time_point::max()) {
    cv.wait(lock, [&] { return !paused; });
    return true;
  }
  return cv.wait_until(lock, deadline, [&] { return !paused; });
}

bool PausableTransport::Gate::is_paused() {
  std::lock_guard lock(mu);
  return paused;
}

namespace {

class PausableConnection final : public Transport {
 public:
  PausableConnection(std::unique_ptr<Transport> inner, std::shared_ptr<PausableTransport::Gate> gate)
      : inner_(std::move(inner)), gate_(std::move(gate)) {}
  Result<Region> register_region(void* buf, size_t len, bool remote_write, uint64_t key) override {
    return inner_->register_region(buf, len, remote_write, key);
  }
  void unregister(Region& region) override { inner_->unregister(region); }
  bool can_post(size_t requests) override { return !gate_->is_paused() && inner_->can_post(requests); }
  Status send_message(std::span<const std::byte> message) override {
    gate_->wait();
    return inner_->send_message(message);
  }
  Status write(const void* local, size_t len, void* local_desc, const Region& remote,
               uint64_t remote_offset) override {
    gate_->wait();
    return inner_->write(local, len, local_desc, remote, remote_offset);
  }
  Status poll(std::vector<std::vector<std::byte>>* messages, std::chrono::milliseconds timeout,
              std::chrono::microseconds spin) override {
    if (!gate_->wait(Clock::now() + timeout)) return Status::ok();  // paused: nothing arrives
    return inner_->poll(messages, timeout, spin);
  }
  const std::string& peer() const override { return inner_->peer(); }
  const std::string& provider() const override { return inner_->provider(); }

 private:
  std::unique_ptr<Transport> inner_;
  std::shared_ptr<PausableTransport::Gate> gate_;
};

class PausableAcceptor final : public Acceptor {
 public:
  PausableAcceptor(std::unique_ptr<Acceptor> inner, std::shared_ptr<PausableTransport::Gate> gate)
      : inner_(std::move(inner)), gate_(std::move(gate)) {}
  Result<std::unique_ptr<Transport>> accept(std::chrono::milliseconds timeout) override {
    if (!gate_->wait(Clock::now() + timeout))
      return Status::error(Code::kTimedOut, "paused: no connection accepted");
    auto c = inner_->accept(timeout);
    if (!c) return c.status();
    return std::unique_ptr<Transport>(std::make_unique<PausableConnection>(std::move(*c), gate_));
  }

 private:
  std::unique_ptr<Acceptor> inner_;
  std::shared_ptr<PausableTransport::Gate> gate_;
};

}  // namespace

PausableTransport::PausableTransport(interconnect::TransportFactory& inner) : inner_(inner) {}

void PausableTransport::set_paused(bool paused) {
  {
    std::lock_guard lock(gate_->mu);
    gate_->paused = paused;
  }
  gate_->cv.notify_all();
}

Result<std::unique_ptr<Transport>> PausableTransport::connect(const std::string& host, const std::string& port,
                                                              std::chrono::milliseconds timeout) {
  if (!gate_->wait(Clock::now() + timeout)) return Status::error(Code::kTimedOut, "paused: no connect");
  auto c = inner_.connect(host, port, timeout);
  if (!c) return c.status();
  return std::unique_ptr<Transport>(std::make_unique<PausableConnection>(std::move(*c), gate_));
}

Result<std::unique_ptr<Acceptor>> PausableTransport::listen(const std::string& host, const std::string& port) {
  auto a = inner_.listen(host, port);
  if (!a) return a.status();
  return std::unique_ptr<Acceptor>(std::make_unique<PausableAcceptor>(std::move(*a), gate_));
}

}  // namespace hafs::sim
