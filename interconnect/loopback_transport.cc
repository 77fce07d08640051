#include "interconnect/loopback_transport.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"
#include "interconnect/wire.h"

namespace hafs::interconnect {

using Clock = std::chrono::steady_clock;

struct LoopbackNetwork::Shared {
  std::mutex mu;  // a leaf: taken under a link's mutex, never the other way round
  LoopbackFaults faults;
  LoopbackStats stats;
};

// One connection: two sides, each with what the other end posted to it and its own regions.
struct LoopbackNetwork::Link {
  struct Op {
    bool is_write = false;
    uint64_t key = 0;            // writes: the region key the poster named
    uint64_t offset = 0;         // writes: remote address (the regions use offsets: base 0)
    std::vector<std::byte> bytes;
    Clock::time_point due{};     // not applied before this; never earlier than the op before it
  };
  struct Registered {
    std::byte* buf = nullptr;
    size_t len = 0;
    bool remote_write = false;
  };
  struct Side {
    std::deque<Op> inbound;                  // posted by the other end, not yet applied here
    Clock::time_point last_due{};            // due time of the newest op in `inbound`
    std::map<uint64_t, Registered> regions;  // this end's registered memory, by key
    size_t posted = 0, sends_posted = 0;     // this end's operations holding a slot
    size_t completed = 0, completed_sends = 0;  // applied by the peer, not yet reaped here
  };

  Link(std::shared_ptr<Shared> s, LoopbackConfig c, uint64_t seed)
      : shared(std::move(s)), config(c), rng(seed) {}

  // Marks the connection dead. Of what each side still has queued, a random prefix is
  // delivered (ops posted before the failure may have made it); the rest is lost.
  void kill_locked(const std::string& reason) {
    if (dead) return;
    dead = true;
    why = reason;
    for (auto& s : sides) {
      const size_t keep = s.inbound.empty() ? 0 : rng() % (s.inbound.size() + 1);
      while (s.inbound.size() > keep) s.inbound.pop_back();
    }
    cv.notify_all();
  }
  double draw() { return std::uniform_real_distribution<double>(0, 1)(rng); }

  const std::shared_ptr<Shared> shared;
  const LoopbackConfig config;
  std::mutex mu;
  std::condition_variable cv;  // ops queued, slots freed, the connection died
  std::mt19937_64 rng;         // GUARDED_BY(mu)
  bool dead = false;           // GUARDED_BY(mu)
  std::string why;             // GUARDED_BY(mu)
  Side sides[2];               // GUARDED_BY(mu)
};

namespace {

using Link = LoopbackNetwork::Link;

class LoopbackEnd final : public Transport {
 public:
  LoopbackEnd(std::shared_ptr<Link> link, int side, std::string peer)
      : link_(std::move(link)), side_(side), peer_(std::move(peer)) {}

  // Closes the connection: what this end posted is still delivered to the peer (data before
  // the FIN), then the peer's poll() returns kUnavailable.
  ~LoopbackEnd() override {
    std::lock_guard lock(link_->mu);
    me().inbound.clear();
    me().regions.clear();
    if (!link_->dead) {
      link_->dead = true;
      link_->why = "the other end closed the connection";
    }
    link_->cv.notify_all();
  }

  Result<Region> register_region(void* buf, size_t len, bool remote_write, uint64_t key) override {
    std::lock_guard lock(link_->mu);
    if (me().regions.count(key))
      return Status::error(Code::kUnavailable, "loopback: key " + std::to_string(key) + " is already registered");
    me().regions[key] = Link::Registered{static_cast<std::byte*>(buf), len, remote_write};
    return Region{nullptr, buf, key, 0};  // desc marks the region as registered
  }

  void unregister(Region& region) override {
    if (region.desc) {
      std::lock_guard lock(link_->mu);
      auto it = me().regions.find(region.key);
      if (it != me().regions.end() && it->second.buf == region.desc) me().regions.erase(it);
    }
    region = Region{};
  }

  bool can_post(size_t requests) override {
    std::lock_guard lock(link_->mu);
    return !link_->dead && me().posted + requests <= link_->config.max_inflight &&
           me().sends_posted < link_->config.send_slots;
  }

  Status send_message(std::span<const std::byte> message) override {
    HAFS_CHECK(message.size() <= kMaxMessageBytes, "message larger than a slot");
    Link::Op op;
    op.bytes.assign(message.begin(), message.end());
    return post(std::move(op));
  }

  Status write(const void* local, size_t len, void* local_desc, const Region& remote,
               uint64_t remote_offset) override {
    (void)local_desc;
    Link::Op op;
    op.is_write = true;
    op.key = remote.key;
    op.offset = remote.base + remote_offset;
    {
      std::lock_guard lock(link_->mu);
      // Like FI_MR_LOCAL: the source must lie in memory registered at this end.
      const auto* p = static_cast<const std::byte*>(local);
      const bool registered = std::any_of(me().regions.begin(), me().regions.end(), [&](const auto& r) {
        return p >= r.second.buf && len <= r.second.len && p + len <= r.second.buf + r.second.len;
      });
      if (!registered) {
        link_->kill_locked("loopback: write from unregistered local memory");
        return closed_locked();
      }
    }
    op.bytes.assign(static_cast<const std::byte*>(local), static_cast<const std::byte*>(local) + len);
    return post(std::move(op));
  }

  Status poll(std::vector<std::vector<std::byte>>* messages, std::chrono::milliseconds timeout,
              std::chrono::microseconds spin) override {
    (void)spin;  // waking up costs nothing worth spinning for here
    std::unique_lock lock(link_->mu);
    Link::Side& self = me();
    Link::Side& other = link_->sides[1 - side_];
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (self.completed || self.completed_sends) {  // reap: the slots are free again
        self.posted -= self.completed;
        self.sends_posted -= self.completed_sends;
        self.completed = self.completed_sends = 0;
        link_->cv.notify_all();
      }
      bool delivered = false;
      const auto now = Clock::now();
      while (!self.inbound.empty() && (link_->dead || self.inbound.front().due <= now)) {
        Link::Op op = std::move(self.inbound.front());
        self.inbound.pop_front();
        ++other.completed;
        if (!op.is_write) {
          ++other.completed_sends;
          if (messages) messages->push_back(std::move(op.bytes));
          delivered = true;
          continue;
        }
        auto it = self.regions.find(op.key);
        const char* error = nullptr;
        if (it == self.regions.end()) error = "unknown key";
        else if (!it->second.remote_write) error = "region not open to remote writes";
        else if (op.offset > it->second.len || op.bytes.size() > it->second.len - op.offset)
          error = "past the end of the region";
        if (error) {
          self.inbound.clear();
          {
            std::lock_guard slock(link_->shared->mu);
            ++link_->shared->stats.errors;
          }
          link_->kill_locked("loopback: remote write of " + std::to_string(op.bytes.size()) +
                             " bytes at " + std::to_string(op.offset) + " with key " +
                             std::to_string(op.key) + ": " + error);
          return closed_locked();
        }
        std::memcpy(it->second.buf + op.offset, op.bytes.data(), op.bytes.size());
      }
      if (delivered) {
        link_->cv.notify_all();  // the peer's poll reaps the completions
        return Status::ok();
      }
      if (link_->dead) return closed_locked();
      if (now >= deadline) return Status::ok();
      auto until = deadline;
      if (!self.inbound.empty()) until = std::min(until, self.inbound.front().due);
      link_->cv.wait_until(lock, until);
    }
  }

  const std::string& peer() const override { return peer_; }
  const std::string& provider() const override { return provider_; }

 private:
  Link::Side& me() { return link_->sides[side_]; }
  Status closed_locked() const {
    return Status::error(Code::kUnavailable, "connection to " + peer_ + " is closed: " + link_->why);
  }

  // Queues `op` for the peer, with the faults of the moment.
  Status post(Link::Op op) {
    const bool is_message = !op.is_write;
    std::unique_lock lock(link_->mu);
    Link::Side& self = me();
    Link::Side& other = link_->sides[1 - side_];
    const bool room = link_->cv.wait_for(lock, link_->config.post_timeout, [&] {
      return link_->dead || (self.posted < link_->config.max_inflight &&
                             (!is_message || self.sends_posted < link_->config.send_slots));
    });
    if (link_->dead) return closed_locked();
    if (!room)
      return Status::error(Code::kTimedOut, "no room to post to " + peer_ + " within " +
                                                std::to_string(link_->config.post_timeout.count()) + " ms");
    LoopbackFaults faults;
    {
      std::lock_guard slock(link_->shared->mu);
      faults = link_->shared->faults;
    }
    bool bad_key = false, delayed = false, dropped = false;
    if (op.is_write && faults.bad_key_p > 0 && link_->draw() < faults.bad_key_p) {
      bad_key = true;
      op.key = ~op.key;
      while (other.regions.count(op.key)) ++op.key;
    }
    auto due = Clock::now();
    if (faults.delay_p > 0 && faults.delay_us_max > 0 && link_->draw() < faults.delay_p) {
      delayed = true;
      due += std::chrono::microseconds(1 + link_->rng() % faults.delay_us_max);
    }
    due = std::max(due, other.last_due);  // order: never before the op posted before it
    other.last_due = due;
    op.due = due;
    ++self.posted;
    if (is_message) ++self.sends_posted;
    other.inbound.push_back(std::move(op));
    if (faults.drop_p > 0 && link_->draw() < faults.drop_p) {
      dropped = true;
      link_->kill_locked("loopback fault: connection dropped");
    }
    {
      std::lock_guard slock(link_->shared->mu);
      auto& st = link_->shared->stats;
      ++(is_message ? st.messages : st.writes);
      st.bad_keys += bad_key;
      st.delays += delayed;
      st.drops += dropped;
    }
    link_->cv.notify_all();
    return Status::ok();  // a drop shows in poll(), as a completion error would
  }

  const std::shared_ptr<Link> link_;
  const int side_;
  const std::string peer_;
  const std::string provider_ = "loopback";
};

}  // namespace

class LoopbackAcceptor final : public Acceptor {
 public:
  LoopbackAcceptor(LoopbackNetwork& net, std::string address) : net_(net), address_(std::move(address)) {}
  ~LoopbackAcceptor() override {
    std::deque<std::unique_ptr<Transport>> unaccepted;  // closed after the lock is released
    std::lock_guard lock(net_.mu_);
    net_.listening_.erase(address_);
    unaccepted.swap(pending_);
  }

  Result<std::unique_ptr<Transport>> accept(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(net_.mu_);
    if (!net_.accept_cv_.wait_for(lock, timeout, [&] { return !pending_.empty(); }))
      return Status::error(Code::kTimedOut, "no connection request");
    auto t = std::move(pending_.front());
    pending_.pop_front();
    return t;
  }

 private:
  friend class LoopbackNetwork;
  LoopbackNetwork& net_;
  const std::string address_;
  std::deque<std::unique_ptr<Transport>> pending_;  // GUARDED_BY(net_.mu_): connected, not accepted
};

LoopbackNetwork::LoopbackNetwork(uint64_t seed, LoopbackConfig config)
    : seed_(seed), config_(config), shared_(std::make_shared<Shared>()), rng_(seed) {}

LoopbackNetwork::~LoopbackNetwork() {
  std::lock_guard lock(mu_);
  HAFS_CHECK(listening_.empty(), "a LoopbackNetwork must outlive its acceptors");
}

Result<std::unique_ptr<Transport>> LoopbackNetwork::connect(const std::string& host, const std::string& port,
                                                            std::chrono::milliseconds timeout) {
  (void)timeout;  // connecting takes no time here
  const std::string address = host + ":" + port;
  std::lock_guard lock(mu_);
  auto it = listening_.find(address);
  if (it == listening_.end()) {
    std::lock_guard slock(shared_->mu);
    ++shared_->stats.refused;
    return Status::error(Code::kUnavailable, "loopback: nothing listens at " + address + " (connection refused)");
  }
  auto link = std::make_shared<Link>(shared_, config_, rng_());
  std::erase_if(links_, [](const auto& w) { return w.expired(); });
  links_.push_back(link);
  it->second->pending_.push_back(std::make_unique<LoopbackEnd>(link, 1, "incoming"));
  accept_cv_.notify_all();
  {
    std::lock_guard slock(shared_->mu);
    ++shared_->stats.connects;
  }
  return std::unique_ptr<Transport>(std::make_unique<LoopbackEnd>(link, 0, address));
}

Result<std::unique_ptr<Acceptor>> LoopbackNetwork::listen(const std::string& host, const std::string& port) {
  const std::string address = host + ":" + port;
  std::lock_guard lock(mu_);
  if (listening_.count(address))
    return Status::error(Code::kUnavailable, "loopback: " + address + " is already in use");
  auto a = std::make_unique<LoopbackAcceptor>(*this, address);
  listening_[address] = a.get();
  return std::unique_ptr<Acceptor>(std::move(a));
}

void LoopbackNetwork::set_faults(const LoopbackFaults& faults) {
  std::lock_guard lock(shared_->mu);
  shared_->faults = faults;
}

size_t LoopbackNetwork::drop_all(const std::string& why) {
  size_t n = 0;
  std::lock_guard lock(mu_);
  for (auto& w : links_) {
    auto link = w.lock();
    if (!link) continue;
    std::lock_guard llock(link->mu);
    if (link->dead) continue;
    link->kill_locked("loopback: " + why);
    ++n;
  }
  std::lock_guard slock(shared_->mu);
  shared_->stats.drops += n;
  return n;
}

LoopbackStats LoopbackNetwork::stats() const {
  std::lock_guard lock(shared_->mu);
  return shared_->stats;
}

}  // namespace hafs::interconnect
