#include "interconnect/fabric.h"

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include <cstring>
#include <thread>

namespace hafs::interconnect {

// Provider differences the code relies on, in one place:
//   tcp    mr_mode 0: remote addresses are offsets into the region, keys chosen by us (a
//          duplicate key fails with -FI_ENOKEY); no progress thread of its own, so the receiver
//          must poll its completion queue or remote writes are not applied.
//   verbs  FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_PROV_KEY: local buffers need a descriptor,
//          remote addresses are virtual addresses, keys come from the provider. Connection
//          private data is limited to 48 bytes, so the handshake runs in messages instead.
//   both   FI_EP_MSG; a killed peer shows as a completion error or FI_SHUTDOWN; a stopped
//          (SIGSTOP) peer shows nothing: heartbeats and ack timeouts catch it.
namespace {

constexpr uint32_t kFiVersion = FI_VERSION(1, 17);

fi_info* make_hints(const FabricConfig& config) {
  fi_info* hints = fi_allocinfo();
  hints->ep_attr->type = FI_EP_MSG;
  hints->caps = FI_MSG | FI_RMA;
  hints->mode = FI_CONTEXT | FI_CONTEXT2 | FI_RX_CQ_DATA;
  hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
  hints->domain_attr->threading = FI_THREAD_SAFE;
  hints->tx_attr->msg_order = FI_ORDER_SAW;  // a COMMIT never overtakes the write it commits
  hints->rx_attr->msg_order = FI_ORDER_SAW;
  hints->fabric_attr->prov_name = ::strdup(config.provider.c_str());
  return hints;
}

Status fi_status(long rc, const std::string& what) {
  return Status::error(Code::kUnavailable, what + ": " + fabric_error(rc));
}

}  // namespace

std::string fabric_error(long rc) {
  return std::string(fi_strerror(static_cast<int>(rc < 0 ? -rc : rc))) + " (" + std::to_string(rc) + ")";
}

struct Connection::Request {
  fi_context2 ctx;  // first: libfabric hands this address back in the completion
  enum Kind { kRecv, kSend, kWrite } kind = kWrite;
  size_t slot = 0;  // receive or send slot
};

Result<std::unique_ptr<Connection>> Connection::connect(const FabricConfig& config,
                                                        const std::string& host,
                                                        const std::string& port,
                                                        std::chrono::milliseconds timeout) {
  auto c = std::unique_ptr<Connection>(new Connection());
  c->peer_ = host + ":" + port;
  fi_info* hints = make_hints(config);
  long rc = fi_getinfo(kFiVersion, host.c_str(), port.c_str(), 0, hints, &c->info_);
  fi_freeinfo(hints);
  if (rc) return fi_status(rc, "fi_getinfo for " + c->peer_ + " with provider " + config.provider);
  c->provider_ = c->info_->fabric_attr->prov_name;
  if ((rc = fi_fabric(c->info_->fabric_attr, &c->fabric_, nullptr))) return fi_status(rc, "fi_fabric");
  fi_eq_attr eq_attr{};
  eq_attr.wait_obj = FI_WAIT_UNSPEC;
  if ((rc = fi_eq_open(c->fabric_, &eq_attr, &c->eq_, nullptr))) return fi_status(rc, "fi_eq_open");
  if ((rc = fi_domain(c->fabric_, c->info_, &c->domain_, nullptr))) return fi_status(rc, "fi_domain");
  if ((rc = fi_endpoint(c->domain_, c->info_, &c->ep_, nullptr))) return fi_status(rc, "fi_endpoint");
  HAFS_RETURN_IF_ERROR(c->setup(config));
  if ((rc = fi_connect(c->ep_, c->info_->dest_addr, nullptr, 0)))
    return fi_status(rc, "fi_connect to " + c->peer_);
  uint32_t event = 0;
  fi_eq_cm_entry entry{};
  rc = fi_eq_sread(c->eq_, &event, &entry, sizeof entry, static_cast<int>(timeout.count()), 0);
  if (rc == -FI_EAVAIL) {
    fi_eq_err_entry err{};
    fi_eq_readerr(c->eq_, &err, 0);
    return Status::error(Code::kUnavailable, "connect to " + c->peer_ + ": " + fi_strerror(err.err));
  }
  if (rc == -FI_EAGAIN || rc == -FI_ETIMEDOUT)
    return Status::error(Code::kTimedOut, "connect to " + c->peer_ + " timed out");
  if (rc < 0) return fi_status(rc, "connect to " + c->peer_);
  if (event != FI_CONNECTED)
    return Status::error(Code::kUnavailable, "connect to " + c->peer_ + ": unexpected event " + std::to_string(event));
  return c;
}

Status Connection::setup(const FabricConfig& config) {
  post_timeout_ = config.post_timeout;
  fi_cq_attr cq_attr{};
  cq_attr.format = FI_CQ_FORMAT_DATA;
  cq_attr.wait_obj = FI_WAIT_UNSPEC;
  cq_attr.size = config.max_inflight + config.recv_slots + 64;
  long rc;
  if ((rc = fi_cq_open(domain_, &cq_attr, &cq_, nullptr))) return fi_status(rc, "fi_cq_open");
  if ((rc = fi_ep_bind(ep_, &eq_->fid, 0))) return fi_status(rc, "fi_ep_bind(eq)");
  if ((rc = fi_ep_bind(ep_, &cq_->fid, FI_TRANSMIT | FI_RECV))) return fi_status(rc, "fi_ep_bind(cq)");
  if ((rc = fi_enable(ep_))) return fi_status(rc, "fi_enable");

  const size_t send_slots = 32;
  recv_buf_.resize(config.recv_slots * kSlotBytes);
  send_buf_.resize(send_slots * kSlotBytes);
  auto rr = register_region(recv_buf_.data(), recv_buf_.size(), false, 1);
  if (!rr) return rr.status();
  recv_region_ = *rr;
  auto sr = register_region(send_buf_.data(), send_buf_.size(), false, 2);
  if (!sr) return sr.status();
  send_region_ = *sr;
  requests_.reserve(config.recv_slots + config.max_inflight);
  for (size_t i = 0; i < config.recv_slots + config.max_inflight; ++i)
    requests_.push_back(std::make_unique<Request>());
  for (size_t i = config.recv_slots; i < requests_.size(); ++i) free_requests_.push_back(requests_[i].get());
  for (size_t i = 0; i < send_slots; ++i) free_send_slots_.push_back(i);
  for (size_t i = 0; i < config.recv_slots; ++i) {
    requests_[i]->kind = Request::kRecv;
    requests_[i]->slot = i;
    HAFS_RETURN_IF_ERROR(post_recv(i));
  }
  return Status::ok();
}

Connection::~Connection() {
  if (ep_) fi_close(&ep_->fid);
  unregister(recv_region_);
  unregister(send_region_);
  if (cq_) fi_close(&cq_->fid);
  if (eq_) fi_close(&eq_->fid);
  if (domain_) fi_close(&domain_->fid);
  if (fabric_) fi_close(&fabric_->fid);
  if (info_) fi_freeinfo(info_);
}

Result<Region> Connection::register_region(void* buf, size_t len, bool remote_write, uint64_t key) {
  Region r;
  const uint64_t access = remote_write ? (FI_REMOTE_WRITE | FI_REMOTE_READ)
                                       : (FI_SEND | FI_RECV | FI_WRITE | FI_READ);
  long rc = fi_mr_reg(domain_, buf, len, access, 0, key, 0, &r.mr, nullptr);
  if (rc) return fi_status(rc, "fi_mr_reg of " + std::to_string(len) + " bytes");
  r.desc = fi_mr_desc(r.mr);
  r.key = fi_mr_key(r.mr);
  r.base = (info_->domain_attr->mr_mode & FI_MR_VIRT_ADDR) ? reinterpret_cast<uint64_t>(buf) : 0;
  return r;
}

void Connection::unregister(Region& region) {
  if (region.mr) fi_close(&region.mr->fid);
  region = Region{};
}

Status Connection::post_recv(size_t slot) {
  Request* r = requests_[slot].get();
  for (;;) {
    long rc = fi_recv(ep_, recv_buf_.data() + slot * kSlotBytes, kSlotBytes, recv_region_.desc, 0, &r->ctx);
    if (rc == 0) return Status::ok();
    if (rc != -FI_EAGAIN) return fi_status(rc, "fi_recv");
    fi_cq_read(cq_, nullptr, 0);  // make progress
  }
}

Connection::Request* Connection::take_request(Status* why) {
  std::unique_lock lock(mu_);
  if (!freed_.wait_for(lock, post_timeout_, [&] { return !free_requests_.empty() || dead_; })) {
    *why = Status::error(Code::kTimedOut, "no request completed on the connection to " + peer_ + " within " +
                                              std::to_string(post_timeout_.count()) + " ms: the peer takes no bytes");
    return nullptr;
  }
  if (dead_) {
    *why = Status::error(Code::kUnavailable, "connection to " + peer_ + " is closed");
    return nullptr;
  }
  Request* r = free_requests_.back();
  free_requests_.pop_back();
  return r;
}

void Connection::give_request(Request* r) {
  {
    std::lock_guard lock(mu_);
    if (r->kind == Request::kSend) free_send_slots_.push_back(r->slot);
    free_requests_.push_back(r);
  }
  freed_.notify_all();
}

bool Connection::can_post(size_t requests) {
  std::lock_guard lock(mu_);
  return !dead_ && free_requests_.size() >= requests && !free_send_slots_.empty();
}

Status Connection::send_message(std::span<const std::byte> message) {
  HAFS_CHECK(message.size() <= kSlotBytes, "message larger than a slot");
  const auto deadline = std::chrono::steady_clock::now() + post_timeout_;
  Status why;
  Request* r = take_request(&why);
  if (!r) return why;
  {
    std::unique_lock lock(mu_);
    const bool got = freed_.wait_until(lock, deadline, [&] { return !free_send_slots_.empty() || dead_; });
    if (dead_ || !got) {
      free_requests_.push_back(r);
      return dead_ ? Status::error(Code::kUnavailable, "connection to " + peer_ + " is closed")
                   : Status::error(Code::kTimedOut, "no send slot freed on the connection to " + peer_ +
                                                        " within " + std::to_string(post_timeout_.count()) + " ms");
    }
    r->slot = free_send_slots_.back();
    free_send_slots_.pop_back();
  }
  r->kind = Request::kSend;
  std::byte* buf = send_buf_.data() + r->slot * kSlotBytes;
  std::memcpy(buf, message.data(), message.size());
  for (;;) {
    long rc = fi_send(ep_, buf, message.size(), send_region_.desc, 0, &r->ctx);
    if (rc == 0) return Status::ok();
    if (rc != -FI_EAGAIN) {
      give_request(r);
      return fi_status(rc, "fi_send to " + peer_);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      give_request(r);
      return Status::error(Code::kTimedOut, "fi_send to " + peer_ + " stayed busy for " +
                                                std::to_string(post_timeout_.count()) + " ms");
    }
    fi_cq_read(cq_, nullptr, 0);  // drive the provider's progress (consumes no completion)
    std::this_thread::yield();
  }
}

Status Connection::write(const void* local, size_t len, void* local_desc, const Region& remote,
                         uint64_t remote_offset) {
  const auto deadline = std::chrono::steady_clock::now() + post_timeout_;
  Status why;
  Request* r = take_request(&why);
  if (!r) return why;
  r->kind = Request::kWrite;
  for (;;) {
    long rc = fi_write(ep_, local, len, local_desc, 0, remote.base + remote_offset, remote.key, &r->ctx);
    if (rc == 0) return Status::ok();
    if (rc != -FI_EAGAIN) {
      give_request(r);
      return fi_status(rc, "fi_write to " + peer_);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      give_request(r);
      return Status::error(Code::kTimedOut, "fi_write to " + peer_ + " stayed busy for " +
                                                std::to_string(post_timeout_.count()) + " ms");
    }
    fi_cq_read(cq_, nullptr, 0);  // drive the provider's progress (consumes no completion)
    std::this_thread::yield();
  }
}

Status Connection::check_shutdown() {
  uint32_t event = 0;
  fi_eq_cm_entry entry{};
  long rc = fi_eq_read(eq_, &event, &entry, sizeof entry, 0);
  if (rc == -FI_EAVAIL) {
    fi_eq_err_entry err{};
    fi_eq_readerr(eq_, &err, 0);
    return Status::error(Code::kUnavailable, "connection to " + peer_ + ": " + fi_strerror(err.err));
  }
  if (rc > 0 && event == FI_SHUTDOWN)
    return Status::error(Code::kUnavailable, "peer " + peer_ + " closed the connection");
  return Status::ok();
}

Status Connection::poll(std::vector<std::vector<std::byte>>* messages,
                        std::chrono::milliseconds timeout, std::chrono::microseconds spin) {
  auto fail = [&](Status s) {
    {
      std::lock_guard lock(mu_);
      dead_ = true;
    }
    freed_.notify_all();
    return s;
  };
  if (dead_) return Status::error(Code::kUnavailable, "connection to " + peer_ + " is closed");
  fi_cq_data_entry entries[32];
  long n = fi_cq_read(cq_, entries, 32);
  if (n == -FI_EAGAIN && spin.count() > 0) {
    const auto until = std::chrono::steady_clock::now() + spin;
    while (n == -FI_EAGAIN && std::chrono::steady_clock::now() < until) {
      std::this_thread::yield();  // give way to runnable threads: this machine has two cores
      n = fi_cq_read(cq_, entries, 32);
    }
  }
  if (n == -FI_EAGAIN && timeout.count() > 0) {
    n = fi_cq_sread(cq_, entries, 32, nullptr, static_cast<int>(timeout.count()));
    if (n == -FI_ETIMEDOUT) n = -FI_EAGAIN;
  }
  if (n == -FI_EAVAIL) {
    fi_cq_err_entry err{};
    fi_cq_readerr(cq_, &err, 0);
    return fail(Status::error(Code::kUnavailable, "completion error on " + peer_ + ": " +
                                                      fi_strerror(err.err)));
  }
  if (n < 0 && n != -FI_EAGAIN) return fail(fi_status(n, "fi_cq_read"));
  for (long i = 0; i < n; ++i) {
    auto* r = reinterpret_cast<Request*>(entries[i].op_context);
    if (r->kind == Request::kRecv) {
      const std::byte* buf = recv_buf_.data() + r->slot * kSlotBytes;
      if (messages) messages->emplace_back(buf, buf + std::min(entries[i].len, kSlotBytes));
      if (Status s = post_recv(r->slot); !s.is_ok()) return fail(s);
    } else {
      give_request(r);
    }
  }
  if (Status s = check_shutdown(); !s.is_ok()) return fail(s);
  return Status::ok();
}

Result<std::unique_ptr<Listener>> Listener::listen(const FabricConfig& config,
                                                   const std::string& host, const std::string& port) {
  auto l = std::unique_ptr<Listener>(new Listener());
  l->config_ = config;
  fi_info* hints = make_hints(config);
  long rc = fi_getinfo(kFiVersion, host.c_str(), port.c_str(), FI_SOURCE, hints, &l->info_);
  fi_freeinfo(hints);
  if (rc) return fi_status(rc, "fi_getinfo to listen on " + host + ":" + port + " with provider " + config.provider);
  if ((rc = fi_fabric(l->info_->fabric_attr, &l->fabric_, nullptr))) return fi_status(rc, "fi_fabric");
  fi_eq_attr eq_attr{};
  eq_attr.wait_obj = FI_WAIT_UNSPEC;
  if ((rc = fi_eq_open(l->fabric_, &eq_attr, &l->eq_, nullptr))) return fi_status(rc, "fi_eq_open");
  if ((rc = fi_passive_ep(l->fabric_, l->info_, &l->pep_, nullptr))) return fi_status(rc, "fi_passive_ep");
  if ((rc = fi_pep_bind(l->pep_, &l->eq_->fid, 0))) return fi_status(rc, "fi_pep_bind");
  if ((rc = fi_listen(l->pep_))) return fi_status(rc, "fi_listen on " + host + ":" + port);
  return l;
}

Listener::~Listener() {
  if (pep_) fi_close(&pep_->fid);
  if (eq_) fi_close(&eq_->fid);
  if (fabric_) fi_close(&fabric_->fid);
  if (info_) fi_freeinfo(info_);
}

Result<std::unique_ptr<Transport>> Listener::accept(std::chrono::milliseconds timeout) {
  uint32_t event = 0;
  // A CM entry with room for private data (the handshake does not use any).
  alignas(fi_eq_cm_entry) std::byte cm_buf[sizeof(fi_eq_cm_entry) + 64]{};
  auto& cm = *reinterpret_cast<fi_eq_cm_entry*>(cm_buf);
  long rc = fi_eq_sread(eq_, &event, cm_buf, sizeof cm_buf, static_cast<int>(timeout.count()), 0);
  if (rc == -FI_EAGAIN || rc == -FI_ETIMEDOUT) return Status::error(Code::kTimedOut, "no connection request");
  if (rc == -FI_EAVAIL) {
    fi_eq_err_entry err{};
    fi_eq_readerr(eq_, &err, 0);
    return Status::error(Code::kUnavailable, std::string("listener: ") + fi_strerror(err.err));
  }
  if (rc < 0) return fi_status(rc, "listener fi_eq_sread");
  if (event != FI_CONNREQ) {
    if (cm.info) fi_freeinfo(cm.info);
    return Status::error(Code::kTimedOut, "listener: ignored event " + std::to_string(event));
  }
  auto c = std::unique_ptr<Connection>(new Connection());
  c->info_ = cm.info;  // the connection owns it now
  c->provider_ = c->info_->fabric_attr->prov_name;
  c->peer_ = "incoming";
  if ((rc = fi_fabric(c->info_->fabric_attr, &c->fabric_, nullptr))) return fi_status(rc, "fi_fabric");
  fi_eq_attr eq_attr{};
  eq_attr.wait_obj = FI_WAIT_UNSPEC;
  if ((rc = fi_eq_open(c->fabric_, &eq_attr, &c->eq_, nullptr))) return fi_status(rc, "fi_eq_open");
  if ((rc = fi_domain(c->fabric_, c->info_, &c->domain_, nullptr))) {
    fi_reject(pep_, c->info_->handle, nullptr, 0);
    return fi_status(rc, "fi_domain");
  }
  if ((rc = fi_endpoint(c->domain_, c->info_, &c->ep_, nullptr))) {
    fi_reject(pep_, c->info_->handle, nullptr, 0);
    return fi_status(rc, "fi_endpoint");
  }
  if (Status s = c->setup(config_); !s.is_ok()) {
    fi_reject(pep_, c->info_->handle, nullptr, 0);
    return s;
  }
  if ((rc = fi_accept(c->ep_, nullptr, 0))) return fi_status(rc, "fi_accept");
  rc = fi_eq_sread(c->eq_, &event, cm_buf, sizeof cm_buf, 5000, 0);
  if (rc < 0 || event != FI_CONNECTED)
    return Status::error(Code::kUnavailable, "accepted connection did not complete: " + fabric_error(rc));
  return std::unique_ptr<Transport>(std::move(c));
}

Result<std::unique_ptr<Transport>> FabricTransportFactory::connect(const std::string& host,
                                                                   const std::string& port,
                                                                   std::chrono::milliseconds timeout) {
  auto c = Connection::connect(config_, host, port, timeout);
  if (!c) return c.status();
  return std::unique_ptr<Transport>(std::move(*c));
}

Result<std::unique_ptr<Acceptor>> FabricTransportFactory::listen(const std::string& host,
                                                                 const std::string& port) {
  auto l = Listener::listen(config_, host, port);
  if (!l) return l.status();
  return std::unique_ptr<Acceptor>(std::move(*l));
}

}  // namespace hafs::interconnect
