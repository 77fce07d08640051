// MetaOp: a metadata operation as the payload of a META record of the NV log (RecordType::kMeta;
// the byte layout is in docs/log-format.md §6a). Objects are named by their handle keys, never by
// paths: a replay finds them wherever later renames put them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

namespace hafs::fs {

enum class MetaKind : uint8_t {
  kCreate = 1,   // pool entry `pool_name` (= `object`) renamed to parent/name, then mode, owner, times
  kMkdir = 2,    // the same, for a directory
  kUnlink = 3,   // parent/name, which named `object`, removed
  kRmdir = 4,    // parent/name, the directory `object`, removed
  kRename = 5,   // parent/name (`object`) renamed to new_parent/new_name with renameat2 `flags`
  kSetattr = 6,  // `object`'s attributes in `flags` (kSet* below) set to the values here
  kLink = 7,     // `object` linked as new_parent/new_name
  kSetxattr = 8,     // `object`'s extended attribute `name` set to `value`
  kRemovexattr = 9,  // `object`'s extended attribute `name` removed
  kFallocate = 10,   // fallocate(`flags` = mode 0 or FALLOC_FL_KEEP_SIZE, `offset`, `length`) of `object`
  kSynced = 11,      // no operation: every earlier META record of the volume is durable on the
                     // medium (appended after a syncfs, when a stamp could not be written)
};
const char* meta_kind_name(MetaKind kind);

// Which attributes a kSetattr sets (also what a create sets after its rename: mode, owner, times).
inline constexpr uint32_t kSetMode = 1u << 0;
inline constexpr uint32_t kSetUid = 1u << 1;
inline constexpr uint32_t kSetGid = 1u << 2;
inline constexpr uint32_t kSetSize = 1u << 3;
inline constexpr uint32_t kSetAtime = 1u << 4;
inline constexpr uint32_t kSetMtime = 1u << 5;
inline constexpr uint32_t kAttrBits = kSetMode | kSetUid | kSetGid | kSetSize | kSetAtime | kSetMtime;

struct MetaOp {
  MetaKind kind = MetaKind::kSetattr;
  uint32_t flags = 0;  // kRename: renameat2 flags; kSetattr, kCreate, kMkdir: kSet* bits; kFallocate: its mode
  uint32_t mode = 0;   // permission bits (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  std::string object;      // handle key of the inode the operation is about
  std::string parent;      // handle key of the directory of `name`
  std::string name;        // kSetxattr, kRemovexattr: the attribute's name
  std::string new_parent;  // kRename, kLink
  std::string new_name;
  std::string pool_name;   // kCreate, kMkdir
  std::string value;       // kSetxattr
  uint64_t offset = 0;     // kFallocate
  uint64_t length = 0;     // kFallocate
};

std::vector<std::byte> encode_meta_op(const MetaOp& op);
// kCorruption with the reason when the bytes are not a whole MetaOp (they passed the record's
// CRC, so this means a writer of another format, never a torn record).
Result<MetaOp> decode_meta_op(std::span<const std::byte> bytes);

}  // namespace hafs::fs
