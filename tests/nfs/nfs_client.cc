#include "tests/nfs/nfs_client.h"

#include <fcntl.h>
#include <poll.h>

#include <chrono>
#include <cstring>

extern "C" {
#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>
#include <nfsc/libnfs-raw-nfs4.h>
}

namespace hafs::testing {

namespace {
constexpr int kRpcTimeoutMs = 30000;  // a hung server fails the test instead of hanging it

std::string url_of(const NfsTarget& t) {
  std::string url = "nfs://" + t.server + t.export_path + "?version=" + std::to_string(t.version) +
                    "&nfsport=" + std::to_string(t.nfs_port);
  if (t.version == 3) url += "&mountport=" + std::to_string(t.mount_port);
  return url;
}
}  // namespace

// ---- NfsClient ------------------------------------------------------------------------------

std::unique_ptr<NfsClient> NfsClient::connect(const NfsTarget& target, std::string* why) {
  nfs_context* nfs = nfs_init_context();
  if (!nfs) {
    *why = "nfs_init_context failed";
    return nullptr;
  }
  nfs_set_timeout(nfs, kRpcTimeoutMs);
  const std::string url_text = url_of(target);
  nfs_url* url = nfs_parse_url_dir(nfs, url_text.c_str());
  if (!url) {
    *why = "bad URL " + url_text + ": " + nfs_get_error(nfs);
    nfs_destroy_context(nfs);
    return nullptr;
  }
  const int rc = nfs_mount(nfs, url->server, url->path);
  nfs_destroy_url(url);
  if (rc != 0) {
    *why = "mount " + url_text + ": " + nfs_get_error(nfs);
    nfs_destroy_context(nfs);
    return nullptr;
  }
  return std::unique_ptr<NfsClient>(new NfsClient(nfs, target.version));
}

NfsClient::~NfsClient() { nfs_destroy_context(nfs_); }

std::string NfsClient::error() const {
  const char* e = nfs_get_error(nfs_);
  return e ? e : "";
}

int NfsClient::write_file(const std::string& path, const std::string& data, int mode) {
  nfsfh* fh = nullptr;
  if (int rc = nfs_create(nfs_, path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode, &fh); rc < 0) return rc;
  int rc = 0;
  for (size_t off = 0; off < data.size() && rc >= 0;) {
    const size_t n = std::min(write_chunk(), data.size() - off);
    rc = nfs_pwrite(nfs_, fh, off, n, data.data() + off);
    if (rc == 0) rc = -EIO;  // no progress
    if (rc > 0) off += static_cast<size_t>(rc);
  }
  if (rc >= 0) rc = nfs_fsync(nfs_, fh);
  const int close_rc = nfs_close(nfs_, fh);
  return rc < 0 ? rc : close_rc;
}

int NfsClient::read_file(const std::string& path, std::string* data) {
  nfsfh* fh = nullptr;
  if (int rc = nfs_open(nfs_, path.c_str(), O_RDONLY, &fh); rc < 0) return rc;
  data->clear();
  std::string buf(1 << 20, '\0');
  int rc = 0;
  for (;;) {
    rc = nfs_pread(nfs_, fh, data->size(), buf.size(), buf.data());
    if (rc <= 0) break;
    data->append(buf.data(), static_cast<size_t>(rc));
  }
  nfs_close(nfs_, fh);
  return rc < 0 ? rc : 0;
}

int NfsClient::list_dir(const std::string& path, std::vector<std::string>* names) {
  nfsdir* dir = nullptr;
  if (int rc = nfs_opendir(nfs_, path.c_str(), &dir); rc < 0) return rc;
  names->clear();
  while (nfsdirent* e = nfs_readdir(nfs_, dir)) {
    if (std::strcmp(e->name, ".") != 0 && std::strcmp(e->name, "..") != 0) names->push_back(e->name);
  }
  nfs_closedir(nfs_, dir);
  return 0;
}

// ---- RawNfs ---------------------------------------------------------------------------------

namespace {
// The state one RPC's callback fills in.
struct Call {
  bool done = false;
  int rpc_status = RPC_STATUS_ERROR;
  std::string error;
  int nfs_status = -1;
  std::string handle;  // MOUNT/LOOKUP/GETFH
  RawNfs::Attr attr;
  std::string data;  // READ
  void finish(int status, void* data_ptr) {
    done = true;
    rpc_status = status;
    if (status != RPC_STATUS_SUCCESS)
      error = status == RPC_STATUS_ERROR && data_ptr ? static_cast<const char*>(data_ptr) : "RPC failed";
  }
};

void on_connect(rpc_context*, int status, void* data, void* priv) {
  static_cast<Call*>(priv)->finish(status, data);
}

// NFSv4 attribute values come XDR-encoded, in bitmap order; we only ask for size and fileid.
uint64_t be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void on_compound(rpc_context*, int status, void* data, void* priv) {
  Call* c = static_cast<Call*>(priv);
  c->finish(status, data);
  if (status != RPC_STATUS_SUCCESS) return;
  auto* res = static_cast<COMPOUND4res*>(data);
  c->nfs_status = res->status;
  if (res->status != NFS4_OK) return;
  // libnfs 4.0 hands out the result array at a 4-byte aligned address (its XDR arena), which
  // UBSan rightly flags for a struct with 8-byte members: copy each entry out before reading.
  const char* entries = reinterpret_cast<const char*>(res->resarray.resarray_val);
  for (u_int i = 0; i < res->resarray.resarray_len; ++i) {
    nfs_resop4 op;
    std::memcpy(static_cast<void*>(&op), entries + i * sizeof op, sizeof op);
    if (op.resop == OP_GETFH) {
      const nfs_fh4& fh = op.nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
      c->handle.assign(fh.nfs_fh4_val, fh.nfs_fh4_len);
    } else if (op.resop == OP_GETATTR) {
      const attrlist4& vals = op.nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes.attr_vals;
      if (vals.attrlist4_len >= 16) {
        c->attr.size = be64(vals.attrlist4_val);
        c->attr.fileid = be64(vals.attrlist4_val + 8);
      }
    } else if (op.resop == OP_READ) {
      const READ4resok& ok = op.nfs_resop4_u.opread.READ4res_u.resok4;
      c->data.assign(ok.data.data_val, ok.data.data_len);
    }
  }
}

// A COMPOUND of `ops` starting from the root or from `start` (PUTFH).
struct Compound {
  std::vector<nfs_argop4> ops;
  std::vector<std::string> keep;  // bytes the ops point into
  uint32_t attr_words[2] = {0, 0};

  explicit Compound(const RawNfs::Handle* start) {
    keep.reserve(16);
    nfs_argop4 op{};
    if (start) {
      op.argop = OP_PUTFH;
      keep.push_back(*start);
      op.nfs_argop4_u.opputfh.object.nfs_fh4_len = static_cast<u_int>(keep.back().size());
      op.nfs_argop4_u.opputfh.object.nfs_fh4_val = keep.back().data();
    } else {
      op.argop = OP_PUTROOTFH;
    }
    ops.push_back(op);
  }
  void lookup(const std::string& name) {
    nfs_argop4 op{};
    op.argop = OP_LOOKUP;
    keep.push_back(name);
    op.nfs_argop4_u.oplookup.objname.utf8string_len = static_cast<u_int>(keep.back().size());
    op.nfs_argop4_u.oplookup.objname.utf8string_val = keep.back().data();
    ops.push_back(op);
  }
  void getfh() {
    nfs_argop4 op{};
    op.argop = OP_GETFH;
    ops.push_back(op);
  }
  void getattr_size_fileid() {
    attr_words[0] = 1u << FATTR4_SIZE;
    attr_words[0] |= 1u << FATTR4_FILEID;
    nfs_argop4 op{};
    op.argop = OP_GETATTR;
    op.nfs_argop4_u.opgetattr.attr_request.bitmap4_len = 1;
    op.nfs_argop4_u.opgetattr.attr_request.bitmap4_val = attr_words;
    ops.push_back(op);
  }
  void read(uint64_t offset, uint32_t count) {
    nfs_argop4 op{};
    op.argop = OP_READ;  // the all-zero stateid: an anonymous read
    op.nfs_argop4_u.opread.offset = offset;
    op.nfs_argop4_u.opread.count = count;
    ops.push_back(op);
  }
};

std::string path_component(const std::string& export_path) {
  return export_path.size() > 1 && export_path[0] == '/' ? export_path.substr(1) : export_path;
}
}  // namespace

std::unique_ptr<RawNfs> RawNfs::connect(const NfsTarget& target, std::string* why) {
  rpc_context* rpc = rpc_init_context();
  if (!rpc) {
    *why = "rpc_init_context failed";
    return nullptr;
  }
  rpc_set_auth(rpc, libnfs_authunix_create_default());
  std::unique_ptr<RawNfs> raw(new RawNfs(target, rpc));
  Call c;
  if (rpc_connect_async(rpc, target.server.c_str(), target.nfs_port, on_connect, &c) != 0 ||
      !raw->wait(&c.done) || c.rpc_status != RPC_STATUS_SUCCESS) {
    *why = "connect to " + target.server + ":" + std::to_string(target.nfs_port) + ": " +
           (c.error.empty() ? raw->error_ : c.error);
    return nullptr;
  }
  return raw;
}

RawNfs::~RawNfs() { rpc_destroy_context(rpc_); }

bool RawNfs::wait(const bool* done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kRpcTimeoutMs);
  while (!*done) {
    if (std::chrono::steady_clock::now() > deadline) {
      error_ = "no answer within the timeout";
      return false;
    }
    pollfd pfd{rpc_get_fd(rpc_), static_cast<short>(rpc_which_events(rpc_)), 0};
    if (::poll(&pfd, 1, 100) < 0 && errno != EINTR) {
      error_ = std::string("poll: ") + std::strerror(errno);
      return false;
    }
    if (rpc_service(rpc_, pfd.revents) < 0) {
      error_ = std::string("rpc_service: ") + rpc_get_error(rpc_);
      return false;
    }
  }
  return true;
}

int RawNfs::root(Handle* out) {
  if (target_.version == 4) {
    Compound c4(nullptr);
    c4.lookup(path_component(target_.export_path));
    c4.getfh();
    COMPOUND4args args{};
    args.argarray.argarray_len = static_cast<u_int>(c4.ops.size());
    args.argarray.argarray_val = c4.ops.data();
    Call c;
    if (rpc_nfs4_compound_async(rpc_, on_compound, &args, &c) != 0 || !wait(&c.done)) return -1;
    if (c.rpc_status != RPC_STATUS_SUCCESS) return error_ = c.error, -1;
    if (c.nfs_status == NFS4_OK) *out = c.handle;
    return c.nfs_status;
  }
  // NFSv3: MOUNT on a second connection, to the MOUNT port.
  rpc_context* mnt = rpc_init_context();
  rpc_set_auth(mnt, libnfs_authunix_create_default());
  std::swap(rpc_, mnt);  // wait() services rpc_
  Call c;
  int status = -1;
  if (rpc_connect_async(rpc_, target_.server.c_str(), target_.mount_port, on_connect, &c) == 0 &&
      wait(&c.done) && c.rpc_status == RPC_STATUS_SUCCESS) {
    Call m;
    std::string path = target_.export_path;
    auto on_mnt = [](rpc_context*, int st, void* data, void* priv) {
      Call* call = static_cast<Call*>(priv);
      call->finish(st, data);
      if (st != RPC_STATUS_SUCCESS) return;
      auto* res = static_cast<mountres3*>(data);
      call->nfs_status = res->fhs_status;
      if (res->fhs_status == MNT3_OK) {
        const fhandle3& fh = res->mountres3_u.mountinfo.fhandle;
        call->handle.assign(fh.fhandle3_val, fh.fhandle3_len);
      }
    };
    if (rpc_mount3_mnt_async(rpc_, on_mnt, path.data(), &m) == 0 && wait(&m.done)) {
      if (m.rpc_status == RPC_STATUS_SUCCESS) {
        status = m.nfs_status;
        if (status == 0) *out = m.handle;
      } else {
        error_ = m.error;
      }
    }
  } else if (error_.empty()) {
    error_ = c.error;
  }
  std::swap(rpc_, mnt);
  rpc_destroy_context(mnt);
  return status;
}

int RawNfs::lookup(const Handle& dir, const std::string& name, Handle* out) {
  Call c;
  if (target_.version == 4) {
    Compound c4(&dir);
    c4.lookup(name);
    c4.getfh();
    COMPOUND4args args{};
    args.argarray.argarray_len = static_cast<u_int>(c4.ops.size());
    args.argarray.argarray_val = c4.ops.data();
    if (rpc_nfs4_compound_async(rpc_, on_compound, &args, &c) != 0 || !wait(&c.done)) return -1;
  } else {
    std::string d = dir, n = name;
    LOOKUP3args args{};
    args.what.dir.data.data_len = static_cast<u_int>(d.size());
    args.what.dir.data.data_val = d.data();
    args.what.name = n.data();
    auto cb = [](rpc_context*, int st, void* data, void* priv) {
      Call* call = static_cast<Call*>(priv);
      call->finish(st, data);
      if (st != RPC_STATUS_SUCCESS) return;
      auto* res = static_cast<LOOKUP3res*>(data);
      call->nfs_status = res->status;
      if (res->status == NFS3_OK) {
        const nfs_fh3& fh = res->LOOKUP3res_u.resok.object;
        call->handle.assign(fh.data.data_val, fh.data.data_len);
      }
    };
    if (rpc_nfs3_lookup_async(rpc_, cb, &args, &c) != 0 || !wait(&c.done)) return -1;
  }
  if (c.rpc_status != RPC_STATUS_SUCCESS) return error_ = c.error, -1;
  if (c.nfs_status == 0) *out = c.handle;
  return c.nfs_status;
}

int RawNfs::getattr(const Handle& object, Attr* out) {
  Call c;
  if (target_.version == 4) {
    Compound c4(&object);
    c4.getattr_size_fileid();
    COMPOUND4args args{};
    args.argarray.argarray_len = static_cast<u_int>(c4.ops.size());
    args.argarray.argarray_val = c4.ops.data();
    if (rpc_nfs4_compound_async(rpc_, on_compound, &args, &c) != 0 || !wait(&c.done)) return -1;
  } else {
    std::string h = object;
    GETATTR3args args{};
    args.object.data.data_len = static_cast<u_int>(h.size());
    args.object.data.data_val = h.data();
    auto cb = [](rpc_context*, int st, void* data, void* priv) {
      Call* call = static_cast<Call*>(priv);
      call->finish(st, data);
      if (st != RPC_STATUS_SUCCESS) return;
      auto* res = static_cast<GETATTR3res*>(data);
      call->nfs_status = res->status;
      if (res->status == NFS3_OK) {
        call->attr.size = res->GETATTR3res_u.resok.obj_attributes.size;
        call->attr.fileid = res->GETATTR3res_u.resok.obj_attributes.fileid;
      }
    };
    if (rpc_nfs3_getattr_async(rpc_, cb, &args, &c) != 0 || !wait(&c.done)) return -1;
  }
  if (c.rpc_status != RPC_STATUS_SUCCESS) return error_ = c.error, -1;
  if (c.nfs_status == 0) *out = c.attr;
  return c.nfs_status;
}

int RawNfs::read(const Handle& file, uint64_t offset, uint32_t count, std::string* out) {
  Call c;
  if (target_.version == 4) {
    Compound c4(&file);
    c4.read(offset, count);
    COMPOUND4args args{};
    args.argarray.argarray_len = static_cast<u_int>(c4.ops.size());
    args.argarray.argarray_val = c4.ops.data();
    if (rpc_nfs4_compound_async(rpc_, on_compound, &args, &c) != 0 || !wait(&c.done)) return -1;
  } else {
    std::string h = file;
    READ3args args{};
    args.file.data.data_len = static_cast<u_int>(h.size());
    args.file.data.data_val = h.data();
    args.offset = offset;
    args.count = count;
    auto cb = [](rpc_context*, int st, void* data, void* priv) {
      Call* call = static_cast<Call*>(priv);
      call->finish(st, data);
      if (st != RPC_STATUS_SUCCESS) return;
      auto* res = static_cast<READ3res*>(data);
      call->nfs_status = res->status;
      if (res->status == NFS3_OK)
        call->data.assign(res->READ3res_u.resok.data.data_val, res->READ3res_u.resok.data.data_len);
    };
    if (rpc_nfs3_read_async(rpc_, cb, &args, &c) != 0 || !wait(&c.done)) return -1;
  }
  if (c.rpc_status != RPC_STATUS_SUCCESS) return error_ = c.error, -1;
  if (c.nfs_status == 0) *out = c.data;
  return c.nfs_status;
}

}  // namespace hafs::testing
