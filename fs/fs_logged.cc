// Filesystem: logged metadata (fs.sync_metadata = false; docs/design.md §9a). An operation is
// executed on the medium without a sync, under the volume's metadata lock, and appended as a
// META record; the volume is stamped with its LSN before the lock is released, so that per
// volume the order of operations on the medium is the order of their records. The reply waits,
// outside the lock, until the partner's mirror holds the record, as a write's does.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "fs/filesystem.h"

namespace hafs::fs {

namespace {
int64_t realtime_ns() {
  timespec t{};
  clock_gettime(CLOCK_REALTIME, &t);
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}
}  // namespace

bool Filesystem::may_change(const Volume& vol) const {
  return volume_by_id(vol.id()) == &vol && (!options_.may_acknowledge || options_.may_acknowledge(vol));
}

bool Filesystem::logs_metadata(const Volume& vol) const {
  if (options_.sync_metadata || !cache_ || vol.mode() != WriteMode::kStaged || vol.meta().failed()) return false;
  // Degraded with the write-through policy the medium must hold every acknowledged operation.
  return !(vol.degraded_policy() == DegradedPolicy::kWriteThrough && options_.mirror_degraded &&
           options_.mirror_degraded());
}

std::unique_lock<std::mutex> Filesystem::meta_lock(Volume& vol) const {
  if (!logs_metadata(vol)) return {};
  return std::unique_lock(vol.meta().mutex());
}

Filesystem::MetaTicket Filesystem::append_logged(Volume& vol, const MetaOp& op) {
  const std::vector<std::byte> payload = encode_meta_op(op);
  auto ticket = cache_->append_meta(vol.id(), vol.epoch(), payload);
  if (!ticket) return ticket.status();
  Status stamped = options_.faults ? options_.faults->hit(FaultSite::kMetaStamp) : Status::ok();
  if (stamped.is_ok()) stamped = vol.meta().stamp(cache_->ring_id(), ticket->reservation.lsn);
  if (!stamped.is_ok()) {
    // Without its stamp the next record's redo could not tell whether the medium holds this
    // one (design.md §9a): the volume's metadata is synced from now on. The record is in the
    // log, so it is completed (a record never completed would hold every later one back).
    options_.logger.error("volume %s: %s; its metadata operations are synced from now on",
                          vol.name().c_str(), stamped.to_string().c_str());
    vol.meta().set_failed();
    if (Status done = cache_->finish_meta(*ticket); !done.is_ok()) return done;
    return append_synced_marker(vol);
  }
  return ticket;
}

Filesystem::MetaTicket Filesystem::append_synced_marker(Volume& vol) {
  // A replay would redo the unstamped record, and with it undo what the synced operations after
  // it change (a create's attributes over a later chmod). So the volume is synced now, which
  // makes the record's operation and every earlier one durable, and a kSynced record says so:
  // every replay skips the volume's records before it (VolumeTarget::apply_metas). Taken under
  // the volume's lock: no synced operation comes before the marker is in the log.
  if (::syncfs(vol.root_fd()) != 0)
    return Status::from_errno(errno, "syncfs of volume " + vol.name() + " after a failed stamp");
  MetaOp marker;
  marker.kind = MetaKind::kSynced;
  return cache_->append_meta(vol.id(), vol.epoch(), encode_meta_op(marker));
}

int Filesystem::finish_logged(Volume& vol, const MetaTicket& ticket) {
  Status s = ticket.is_ok() ? cache_->finish_meta(ticket.value()) : ticket.status();
  if (!s.is_ok()) {
    options_.logger.error("logging a metadata operation on volume %s failed: %s", vol.name().c_str(),
                          s.to_string().c_str());
    return s.to_errno();
  }
  // A volume that left the tree, or a lease that ran out while the record was mirrored: the
  // partner may serve the volume without this operation's record.
  if (!may_change(vol)) return EIO;
  return 0;
}

int Filesystem::remove_logged(const Inode& dir, const char* name, MetaOp* op) {
  auto key = handle_key_at(dir.fd, name);
  if (!key) return key.status().to_errno();
  if (::unlinkat(dir.fd, name, op->kind == MetaKind::kRmdir ? AT_REMOVEDIR : 0) != 0) return errno;
  op->parent = dir.key;
  op->name = name;
  op->object = std::move(*key);
  return 0;
}

int Filesystem::create_logged(fuse_req_t req, const Inode& dir, const char* name, mode_t mode,
                              bool directory, fuse_entry_param* e, int open_flags, int* fd) {
  Volume& vol = *dir.volume;
  const fuse_ctx* ctx = fuse_req_ctx(req);
  struct stat parent {};
  if (::fstat(dir.fd, &parent) != 0) return errno;
  MetaOp op;
  op.kind = directory ? MetaKind::kMkdir : MetaKind::kCreate;
  op.parent = dir.key;
  op.name = name;
  // What mkdirat/openat and chown_new would have given it: the caller's owner, the group of a
  // setgid directory, and for a directory in one the setgid bit too.
  op.mode = mode & 07777;
  if (directory && (parent.st_mode & S_ISGID)) op.mode |= S_ISGID;
  op.uid = ctx->uid;
  op.gid = (parent.st_mode & S_ISGID) ? parent.st_gid : ctx->gid;
  op.atime_ns = op.mtime_ns = realtime_ns();
  op.flags = kSetMode | kSetUid | kSetGid | kSetAtime | kSetMtime;

  std::optional<MetaTicket> ticket;
  {
    std::unique_lock lock(vol.meta().mutex());
    auto entry = vol.meta().take(directory);
    if (!entry) {
      options_.logger.error("volume %s: no inode from the pool: %s", vol.name().c_str(),
                            entry.status().to_string().c_str());
      return entry.status().to_errno();
    }
    op.pool_name = entry->name;
    op.object = entry->key;
    if (Status s = vol.meta().execute_create(op, dir.fd); !s.is_ok()) {
      // EEXIST: the name is taken (a racing creator); the pool inode stays unused.
      if (s.sys_errno() == EEXIST) vol.meta().put_back(std::move(*entry), directory);
      return s.to_errno();
    }
    ticket = append_logged(vol, op);
  }
  // The reply's inode and descriptor are made while the partner takes the record in.
  int err = ticket->is_ok() ? open_created(vol, op.object, e, open_flags, fd) : 0;
  if (int logged = finish_logged(vol, *ticket)) {
    if (ticket->is_ok() && !err) {
      inodes_.forget(e->ino, 1);
      if (fd) ::close(*fd);
    }
    return logged;
  }
  return err;
}

int Filesystem::open_created(Volume& vol, const std::string& key, fuse_entry_param* e, int open_flags, int* fd) {
  auto opened = vol.open_by_key(key, O_PATH | O_NOFOLLOW);
  if (!opened) return opened.status().to_errno();
  if (int err = ref_inode(&vol, *opened, e)) return err;
  if (!fd) return 0;
  auto f = vol.open_by_key(key, open_flags);
  if (!f) {
    inodes_.forget(e->ino, 1);
    return f.status().to_errno();
  }
  *fd = *f;
  return 0;
}

}  // namespace hafs::fs
