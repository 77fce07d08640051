#include "tests/sim/fs_client.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>

#include "base/check.h"

// A request of the simulator: where its one reply goes, and who asks.
struct fuse_req {
  hafs::sim::Reply* reply;
  fuse_ctx ctx;
};

namespace {
hafs::sim::Reply& reply_of(fuse_req_t req) {
  HAFS_CHECK(!req->reply->replied, "a FUSE request was answered twice");
  req->reply->replied = true;
  return *req->reply;
}
}  // namespace

// ---- the libfuse reply functions the handlers call (fs/fs_*.cc) ----
extern "C" {
int fuse_reply_err(fuse_req_t req, int err) {
  reply_of(req).err = err;
  return 0;
}
int fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param* e) {
  reply_of(req).entry = *e;
  return 0;
}
int fuse_reply_create(fuse_req_t req, const struct fuse_entry_param* e, const struct fuse_file_info* fi) {
  auto& r = reply_of(req);
  r.entry = *e;
  r.fi = *fi;
  return 0;
}
int fuse_reply_attr(fuse_req_t req, const struct stat*, double) {
  reply_of(req);
  return 0;
}
int fuse_reply_readlink(fuse_req_t req, const char* link) {
  reply_of(req).data = link;
  return 0;
}
int fuse_reply_open(fuse_req_t req, const struct fuse_file_info* fi) {
  reply_of(req).fi = *fi;
  return 0;
}
int fuse_reply_write(fuse_req_t req, size_t count) {
  reply_of(req).count = count;
  return 0;
}
int fuse_reply_buf(fuse_req_t req, const char* buf, size_t size) {
  reply_of(req).data.assign(buf, size);
  return 0;
}
int fuse_reply_statfs(fuse_req_t req, const struct statvfs*) {
  reply_of(req);
  return 0;
}
int fuse_reply_xattr(fuse_req_t req, size_t count) {
  reply_of(req).count = count;
  return 0;
}
int fuse_reply_lseek(fuse_req_t req, off_t off) {
  reply_of(req).count = static_cast<size_t>(off);
  return 0;
}
const struct fuse_ctx* fuse_req_ctx(fuse_req_t req) { return &req->ctx; }
}  // extern "C"

namespace hafs::sim {

namespace {
// One request with its reply; the caller is the simulator's own user.
struct Request {
  Reply reply;
  fuse_req req{&reply, fuse_ctx{::getuid(), ::getgid(), ::getpid(), 022}};
  fuse_req_t get() { return &req; }
  int result() const {
    HAFS_CHECK(reply.replied, "a FUSE handler returned without replying");
    return reply.err;
  }
};
}  // namespace

int FsClient::lookup(fuse_ino_t parent, const std::string& name, fuse_entry_param* entry) {
  Request r;
  fs_.lookup(r.get(), parent, name.c_str());
  if (r.result() == 0) *entry = r.reply.entry;
  return r.result();
}

void FsClient::forget(fuse_ino_t ino, uint64_t nlookup) { fs_.forget(ino, nlookup); }

int FsClient::open(fuse_ino_t ino, int flags, fuse_file_info* fi) {
  Request r;
  *fi = fuse_file_info{};
  fi->flags = flags;
  fs_.open(r.get(), ino, fi);
  if (r.result() == 0) fi->fh = r.reply.fi.fh;
  return r.result();
}

int FsClient::create(fuse_ino_t parent, const std::string& name, mode_t mode, fuse_file_info* fi,
                     fuse_entry_param* entry) {
  Request r;
  *fi = fuse_file_info{};
  fi->flags = O_RDWR | O_CREAT;
  fs_.create(r.get(), parent, name.c_str(), mode, fi);
  if (r.result() == 0) {
    *entry = r.reply.entry;
    fi->fh = r.reply.fi.fh;
  }
  return r.result();
}

int FsClient::write(fuse_ino_t ino, fuse_file_info* fi, const std::string& data, off_t offset) {
  Request r;
  fs_.write(r.get(), ino, data.data(), data.size(), offset, fi);
  if (r.result() == 0 && r.reply.count != data.size()) return EIO;  // a short write
  return r.result();
}

int FsClient::read(fuse_ino_t ino, fuse_file_info* fi, size_t size, off_t offset, std::string* out) {
  Request r;
  fs_.read(r.get(), ino, size, offset, fi);
  if (r.result() == 0) *out = std::move(r.reply.data);
  return r.result();
}

int FsClient::truncate(fuse_ino_t ino, off_t size) {
  Request r;
  struct stat attr {};
  attr.st_size = size;
  fs_.setattr(r.get(), ino, &attr, FUSE_SET_ATTR_SIZE, nullptr);
  return r.result();
}

void FsClient::release(fuse_ino_t ino, fuse_file_info* fi) {
  Request r;
  fs_.release(r.get(), ino, fi);
  (void)r.result();
}

}  // namespace hafs::sim
