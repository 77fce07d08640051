// SharedDisk: the storage-medium seam of membership — named 4 KiB records that both nodes of a
// pair can read and write (membership/records.h defines what goes in them).
//
// DirectoryDisk is the real one: one file per record under a directory on the storage medium,
// written with pwrite from an aligned buffer under O_DIRECT|O_DSYNC, or with pwrite + fdatasync
// where the filesystem refuses O_DIRECT (tmpfs). SimDisk (membership/sim_disk.h) is the test one.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"
#include "membership/records.h"

namespace hafs::membership {

class SharedDisk {
 public:
  virtual ~SharedDisk() = default;
  // Reads the whole record `name`. kNotFound if it was never written; kIoError (errno set) when
  // the medium fails. A torn or corrupt record reads fine here: decoding finds it.
  virtual Status read(const std::string& name, std::span<std::byte, kRecordBlockBytes> out) = 0;
  // Writes the whole record; OK means it is durable (survives a power cut). On an error any
  // prefix of the new bytes may have landed (a torn write): the next reader must validate.
  virtual Status write(const std::string& name,
                       std::span<const std::byte, kRecordBlockBytes> data) = 0;
};

// [a-z0-9.-], 1..64 characters, not starting with '.': what record names are made of.
bool valid_record_name(std::string_view name);

// Thread safe (one mutex around the descriptor table; the I/O itself runs outside it).
// At most kMaxRecords distinct records (a pair has 2 heartbeats + one record per volume).
class DirectoryDisk final : public SharedDisk {
 public:
  static constexpr size_t kMaxRecords = 4096;

  // `dir` must exist. Probes O_DIRECT once: direct_io() says whether it is in use.
  // allow_direct = false forces the pwrite + fdatasync path (tests, filesystems that accept
  // O_DIRECT but misbehave with it).
  static Result<std::unique_ptr<DirectoryDisk>> open(const std::string& dir,
                                                     bool allow_direct = true);
  ~DirectoryDisk() override;

  Status read(const std::string& name, std::span<std::byte, kRecordBlockBytes> out) override;
  Status write(const std::string& name,
               std::span<const std::byte, kRecordBlockBytes> data) override;
  bool direct_io() const { return direct_io_; }

 private:
  DirectoryDisk(std::string dir, int dir_fd, bool direct_io)
      : dir_(std::move(dir)), dir_fd_(dir_fd), direct_io_(direct_io) {}
  // The open descriptor of `name`, creating the file (and syncing the directory) if asked.
  Result<int> fd_of(const std::string& name, bool create);

  const std::string dir_;
  const int dir_fd_;
  const bool direct_io_;
  std::mutex mu_;                   // guards fds_
  std::map<std::string, int> fds_;  // record name -> descriptor, open for the disk's lifetime
};

}  // namespace hafs::membership
