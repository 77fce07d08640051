#include "fs/meta_op.h"

#include <cstring>

#include "base/endian.h"

namespace hafs::fs {

namespace {
constexpr uint8_t kMetaOpVersion = 1;
constexpr size_t kFixedBytes = 48;  // version, kind, 2 reserved, flags, mode, uid, gid, size, atime, mtime, 4 reserved

// Integers go through base/endian.h (little-endian on any host, log-format.md §6a); strings are
// copied with resize + memcpy (GCC 12 at -O3 warns, wrongly, that vector::insert of a few bytes
// overflows, and the tree builds with -Werror).
template <typename T>
void put(std::vector<std::byte>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof v);
  put_le<T>(out, at, v);
}
template <typename Len = uint16_t>
void put_string(std::vector<std::byte>& out, const std::string& s) {
  put<Len>(out, static_cast<Len>(s.size()));
  const size_t at = out.size();
  out.resize(at + s.size());
  if (!s.empty()) std::memcpy(out.data() + at, s.data(), s.size());
}

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  template <typename T>
  bool get(T* v) {
    if (in_.size() - at_ < sizeof *v) return false;
    *v = get_le<T>(in_, at_);
    at_ += sizeof *v;
    return true;
  }
  template <typename Len = uint16_t>
  bool get_string(std::string* s) {
    Len len = 0;
    if (!get(&len) || in_.size() - at_ < len) return false;
    s->assign(reinterpret_cast<const char*>(in_.data() + at_), len);
    at_ += len;
    return true;
  }
  bool done() const { return at_ == in_.size(); }

 private:
  std::span<const std::byte> in_;
  size_t at_ = 0;
};
}  // namespace

const char* meta_kind_name(MetaKind kind) {
  switch (kind) {
    case MetaKind::kCreate: return "create";
    case MetaKind::kMkdir: return "mkdir";
    case MetaKind::kUnlink: return "unlink";
    case MetaKind::kRmdir: return "rmdir";
    case MetaKind::kRename: return "rename";
    case MetaKind::kSetattr: return "setattr";
    case MetaKind::kLink: return "link";
    case MetaKind::kSetxattr: return "setxattr";
    case MetaKind::kRemovexattr: return "removexattr";
    case MetaKind::kFallocate: return "fallocate";
    case MetaKind::kSynced: return "synced";
  }
  return "unknown";
}

std::vector<std::byte> encode_meta_op(const MetaOp& op) {
  std::vector<std::byte> out;
  out.reserve(kFixedBytes + 12 + op.object.size() + op.parent.size() + op.name.size() +
              op.new_parent.size() + op.new_name.size() + op.pool_name.size());
  put<uint8_t>(out, kMetaOpVersion);
  put<uint8_t>(out, static_cast<uint8_t>(op.kind));
  put<uint16_t>(out, 0);
  put<uint32_t>(out, op.flags);
  put<uint32_t>(out, op.mode);
  put<uint32_t>(out, op.uid);
  put<uint32_t>(out, op.gid);
  put<uint64_t>(out, op.size);
  put<int64_t>(out, op.atime_ns);
  put<int64_t>(out, op.mtime_ns);
  put<uint32_t>(out, 0);
  for (const std::string* s : {&op.object, &op.parent, &op.name, &op.new_parent, &op.new_name, &op.pool_name})
    put_string(out, *s);
  // What the kinds after link carry besides (log-format.md §6a); kinds 1-7 end here.
  if (op.kind == MetaKind::kSetxattr) {
    put_string<uint32_t>(out, op.value);
  } else if (op.kind == MetaKind::kFallocate) {
    put<uint64_t>(out, op.offset);
    put<uint64_t>(out, op.length);
  }
  return out;
}

Result<MetaOp> decode_meta_op(std::span<const std::byte> bytes) {
  auto bad = [](const std::string& why) {
    return Status::error(Code::kCorruption, "metadata record: " + why);
  };
  Reader r(bytes);
  MetaOp op;
  uint8_t version = 0, kind = 0;
  uint16_t reserved16 = 0;
  uint32_t reserved32 = 0;
  if (!r.get(&version) || !r.get(&kind) || !r.get(&reserved16) || !r.get(&op.flags) ||
      !r.get(&op.mode) || !r.get(&op.uid) || !r.get(&op.gid) || !r.get(&op.size) ||
      !r.get(&op.atime_ns) || !r.get(&op.mtime_ns) || !r.get(&reserved32))
    return bad("shorter than its fixed part");
  if (version != kMetaOpVersion) return bad("unsupported version " + std::to_string(version));
  if (kind < static_cast<uint8_t>(MetaKind::kCreate) || kind > static_cast<uint8_t>(MetaKind::kSynced))
    return bad("unknown operation " + std::to_string(kind));
  op.kind = static_cast<MetaKind>(kind);
  for (std::string* s : {&op.object, &op.parent, &op.name, &op.new_parent, &op.new_name, &op.pool_name})
    if (!r.get_string(s)) return bad("a name or key runs past the end");
  if (op.kind == MetaKind::kSetxattr && !r.get_string<uint32_t>(&op.value)) return bad("the value runs past the end");
  if (op.kind == MetaKind::kFallocate && (!r.get(&op.offset) || !r.get(&op.length)))
    return bad("the range runs past the end");
  if (!r.done()) return bad("bytes after the last field");
  return op;
}

}  // namespace hafs::fs
