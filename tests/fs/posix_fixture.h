// Shared by the POSIX-behaviour tests: one real hafsd (with a real FUSE mount) per test suite,
// a subdirectory per test, helpers to run a step as another user, and a tree snapshot that
// compares what the mount shows with what the storage medium holds.
//
// The daemon serves three volumes: vol0 (staged), vol1 (write-through) and vol2 (staged, for
// EXDEV). Each test checks its own subdirectory on the medium before it ends; the suite's
// teardown stops the daemon cleanly (which destages everything) and checks every volume.
#pragma once

#include <gtest/gtest.h>

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "tests/support/hafsd_process.h"

namespace hafs::testing {

inline constexpr uid_t kNobody = 65534;
inline constexpr gid_t kNogroup = 65534;

// Whole file, binary; empty if it cannot be read.
std::string slurp(const std::string& path);
// Creates or truncates `path` and writes `data`; false on any error.
bool spit(const std::string& path, const std::string& data);
// The bytes of [off, off+len), fewer at EOF; "<pread: strerror>" on an error.
std::string pread_str(int fd, size_t len, off_t off);
bool pwrite_str(int fd, const std::string& data, off_t off);

// Polls `cond` every 20 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& cond,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Runs `step` in a forked child with all ids set to uid/gid and no supplementary groups.
// Returns what `step` returned (0 for success, an errno otherwise), or -1 if the child died.
int as_user(uid_t uid, gid_t gid, const std::function<int()>& step);

// What a tree looks like, entry by entry (relative path -> description). Regular files carry
// their bytes (head and tail only past 8 MiB), symlinks their target, everything its type,
// mode, owner, link count and the medium's inode number (the low bits of hafs' st_ino).
struct EntryView {
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  nlink_t nlink = 0;
  off_t size = 0;
  uint64_t medium_ino = 0;
  std::string data;
  bool operator==(const EntryView&) const = default;
};
using TreeView = std::map<std::string, EntryView>;
TreeView snapshot_tree(const std::string& root);
// Human-readable differences, empty when equal.
std::string diff_trees(const TreeView& mount, const TreeView& medium);

class MountedSuite : public ::testing::Test {
 public:
  static void SetUpTestSuite();
  static void TearDownTestSuite();

 protected:
  static HafsdProcess& node() { return *node_; }
  // Makes a fresh directory for this test in `volume` (through the mount).
  void SetUp() override;
  void TearDown() override;
  // Uses `volume` for this test's directory (call before SetUp runs: from the constructor).
  void use_volume(const std::string& volume) { volume_ = volume; }

  // Paths of this test's directory, through the mount and on the medium.
  std::string mnt(const std::string& rel = "") const;
  std::string medium(const std::string& rel = "") const;
  const std::string& volume() const { return volume_; }
  // Waits (up to 10 s) until the medium holds exactly what the mount shows for this test's
  // directory; adds a failure with the differences otherwise.
  void expect_medium_matches();

  static std::unique_ptr<HafsdProcess> node_;
  std::string volume_ = "vol0";
  std::string rel_;  // this test's directory, relative to the volume
};

}  // namespace hafs::testing
