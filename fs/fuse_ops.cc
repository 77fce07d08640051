// The libfuse operation table: C trampolines that hand each request to the Filesystem whose
// address is the session's userdata. No state here.
#include "fs/filesystem.h"

namespace hafs::fs {
namespace {

Filesystem* self(fuse_req_t req) { return static_cast<Filesystem*>(fuse_req_userdata(req)); }

void op_init(void* userdata, fuse_conn_info* conn) { static_cast<Filesystem*>(userdata)->init(conn); }
void op_lookup(fuse_req_t r, fuse_ino_t p, const char* n) { self(r)->lookup(r, p, n); }
void op_forget(fuse_req_t r, fuse_ino_t i, uint64_t n) {
  self(r)->forget(i, n);
  fuse_reply_none(r);
}
void op_forget_multi(fuse_req_t r, size_t count, fuse_forget_data* f) {
  for (size_t i = 0; i < count; ++i) self(r)->forget(f[i].ino, f[i].nlookup);
  fuse_reply_none(r);
}
void op_getattr(fuse_req_t r, fuse_ino_t i, fuse_file_info*) { self(r)->getattr(r, i); }
void op_setattr(fuse_req_t r, fuse_ino_t i, struct stat* a, int s, fuse_file_info* fi) {
  self(r)->setattr(r, i, a, s, fi);
}
void op_readlink(fuse_req_t r, fuse_ino_t i) { self(r)->readlink(r, i); }
void op_mknod(fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, dev_t d) { self(r)->mknod(r, p, n, m, d); }
void op_mkdir(fuse_req_t r, fuse_ino_t p, const char* n, mode_t m) { self(r)->mkdir(r, p, n, m); }
void op_symlink(fuse_req_t r, const char* l, fuse_ino_t p, const char* n) { self(r)->symlink(r, l, p, n); }
void op_unlink(fuse_req_t r, fuse_ino_t p, const char* n) { self(r)->unlink(r, p, n); }
void op_rmdir(fuse_req_t r, fuse_ino_t p, const char* n) { self(r)->rmdir(r, p, n); }
void op_rename(fuse_req_t r, fuse_ino_t p, const char* n, fuse_ino_t np, const char* nn, unsigned f) {
  self(r)->rename(r, p, n, np, nn, f);
}
void op_link(fuse_req_t r, fuse_ino_t i, fuse_ino_t np, const char* nn) { self(r)->link(r, i, np, nn); }
void op_open(fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { self(r)->open(r, i, fi); }
void op_read(fuse_req_t r, fuse_ino_t i, size_t s, off_t o, fuse_file_info* fi) { self(r)->read(r, i, s, o, fi); }
void op_write(fuse_req_t r, fuse_ino_t i, const char* b, size_t s, off_t o, fuse_file_info* fi) {
  self(r)->write(r, i, b, s, o, fi);
}
void op_flush(fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { self(r)->flush(r, i, fi); }
void op_release(fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { self(r)->release(r, i, fi); }
void op_fsync(fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* fi) { self(r)->fsync(r, i, d, fi); }
void op_opendir(fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { self(r)->opendir(r, i, fi); }
void op_readdir(fuse_req_t r, fuse_ino_t i, size_t s, off_t o, fuse_file_info* fi) {
  self(r)->readdir(r, i, s, o, fi, false);
}
void op_readdirplus(fuse_req_t r, fuse_ino_t i, size_t s, off_t o, fuse_file_info* fi) {
  self(r)->readdir(r, i, s, o, fi, true);
}
void op_releasedir(fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { self(r)->releasedir(r, i, fi); }
void op_fsyncdir(fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* fi) { self(r)->fsyncdir(r, i, d, fi); }
void op_statfs(fuse_req_t r, fuse_ino_t i) { self(r)->statfs(r, i); }
void op_setxattr(fuse_req_t r, fuse_ino_t i, const char* n, const char* v, size_t s, int f) {
  self(r)->setxattr(r, i, n, v, s, f);
}
void op_getxattr(fuse_req_t r, fuse_ino_t i, const char* n, size_t s) { self(r)->getxattr(r, i, n, s); }
void op_listxattr(fuse_req_t r, fuse_ino_t i, size_t s) { self(r)->listxattr(r, i, s); }
void op_removexattr(fuse_req_t r, fuse_ino_t i, const char* n) { self(r)->removexattr(r, i, n); }
void op_create(fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, fuse_file_info* fi) {
  self(r)->create(r, p, n, m, fi);
}
void op_fallocate(fuse_req_t r, fuse_ino_t i, int m, off_t o, off_t l, fuse_file_info* fi) {
  self(r)->fallocate(r, i, m, o, l, fi);
}
void op_lseek(fuse_req_t r, fuse_ino_t i, off_t o, int w, fuse_file_info* fi) { self(r)->lseek(r, i, o, w, fi); }

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.readlink = op_readlink;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.symlink = op_symlink;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.rename = op_rename;
  ops.link = op_link;
  ops.open = op_open;
  ops.read = op_read;
  ops.write = op_write;
  ops.flush = op_flush;
  ops.release = op_release;
  ops.fsync = op_fsync;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
  ops.fsyncdir = op_fsyncdir;
  ops.statfs = op_statfs;
  ops.setxattr = op_setxattr;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.removexattr = op_removexattr;
  ops.create = op_create;
  ops.fallocate = op_fallocate;
  ops.lseek = op_lseek;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& Filesystem::operations() {
  static const fuse_lowlevel_ops kOps = make_ops();  // a constant table, not state
  return kOps;
}

}  // namespace hafs::fs
