// MetaLog's redo of META records (fs/meta_log.h, docs/design.md §9a), on a real directory.
//
// A random sequence of metadata operations is written as records. For every crash point k the
// medium holds exactly operations 1..k (executed live, stamped), or 1..k+1 with the stamp still at
// k (the one record whose redo must find out by itself that it is done), or, for a create, its
// rename without the mode and owner that follow it. Redoing every record in order must then give
// the tree the whole sequence gives, with the same inodes (handle keys) under the same names:
// that is what keeps inode numbers and NFS handles valid across a crash. Seeded; the seed is
// printed (HAFS_SEED=N replays one).
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "fs/meta_log.h"
#include "fs/meta_op.h"
#include "fs/volume.h"
#include "tests/support/wait.h"

namespace hafs::fs {
namespace {

constexpr uint64_t kRing = 0x5eed;

struct Attr {
  uint32_t mode = 0;
  uint64_t size = 0;
  bool dir = false;
  std::string xattr;  // the value of user.t; empty: absent
};

constexpr const char* kXattr = "user.t";

// What the tree should be: names (relative to the volume root) -> handle key, and each inode's attributes.
struct Model {
  std::map<std::string, std::string> names;
  std::map<std::string, Attr> inodes;
  std::map<std::string, std::string> dir_keys;  // directory path -> key ("" = the root)
};

class MetaLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hafs-metalog-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(base_); }

  std::unique_ptr<Volume> fresh_volume(const std::string& name) {
    const std::string path = base_ + "/" + name;
    std::filesystem::create_directory(path);
    auto vol = Volume::open(name, 1, path, WriteMode::kStaged);
    EXPECT_TRUE(vol.is_ok()) << vol.status().to_string();
    if (vol.is_ok()) (*vol)->meta().set_refill_batch(8);  // several refills per sequence
    return vol.is_ok() ? std::move(*vol) : nullptr;
  }

  std::string base_;
};

int open_dir(Volume& vol, const std::string& key) {
  auto fd = vol.open_by_key(key, O_RDONLY | O_DIRECTORY);
  return fd ? *fd : -1;
}

// Executes `op` on the medium the way the filesystem does it live (no stamp).
void execute(Volume& vol, const MetaOp& op) {
  switch (op.kind) {
    case MetaKind::kCreate:
    case MetaKind::kMkdir:
      ASSERT_TRUE(vol.meta().execute_create(op).is_ok());
      return;
    case MetaKind::kUnlink:
    case MetaKind::kRmdir: {
      int d = open_dir(vol, op.parent);
      ASSERT_EQ(::unlinkat(d, op.name.c_str(), op.kind == MetaKind::kRmdir ? AT_REMOVEDIR : 0), 0) << op.name;
      ::close(d);
      return;
    }
    case MetaKind::kRename: {
      int a = open_dir(vol, op.parent), b = open_dir(vol, op.new_parent);
      ASSERT_EQ(::syscall(SYS_renameat2, a, op.name.c_str(), b, op.new_name.c_str(), op.flags), 0);
      ::close(a);
      ::close(b);
      return;
    }
    case MetaKind::kLink: {
      auto src = vol.open_by_key(op.object, O_PATH);
      ASSERT_TRUE(src.is_ok());
      int b = open_dir(vol, op.new_parent);
      ASSERT_EQ(::linkat(*src, "", b, op.new_name.c_str(), AT_EMPTY_PATH), 0);
      ::close(*src);
      ::close(b);
      return;
    }
    case MetaKind::kSetattr:
      ASSERT_TRUE(vol.meta().set_attrs(op).is_ok());
      return;
    case MetaKind::kSynced:  // a marker: nothing on the medium
      return;
    case MetaKind::kSetxattr:
    case MetaKind::kRemovexattr:
    case MetaKind::kFallocate: {
      auto obj = vol.open_by_key(op.object, op.kind == MetaKind::kFallocate ? O_WRONLY : O_RDONLY);
      ASSERT_TRUE(obj.is_ok());
      const int rc = op.kind == MetaKind::kSetxattr ? ::fsetxattr(*obj, op.name.c_str(), op.value.data(), op.value.size(), 0)
                     : op.kind == MetaKind::kRemovexattr
                         ? ::fremovexattr(*obj, op.name.c_str())
                         : ::fallocate(*obj, static_cast<int>(op.flags), static_cast<off_t>(op.offset),
                                       static_cast<off_t>(op.length));
      ASSERT_EQ(rc, 0) << meta_kind_name(op.kind) << ": " << std::strerror(errno);
      ::close(*obj);
      return;
    }
  }
}

// "dir/name" -> {"dir", "name"}; a name in the root has dir "".
std::pair<std::string, std::string> split(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

// A random sequence of `n` operations against `model`, as records; pool entries come from `vol`.
std::vector<MetaOp> generate(Volume& vol, std::mt19937_64& rng, size_t n, Model* model) {
  std::vector<MetaOp> ops;
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  const std::vector<std::string> base_names = {"a", "b", "c", "d"};
  while (ops.size() < n) {
    std::vector<std::string> dirs, files;
    for (const auto& [d, k] : model->dir_keys) dirs.push_back(d);
    for (const auto& [p, k] : model->names)
      if (!model->inodes[k].dir) files.push_back(p);
    auto path_in = [](const std::string& d, const std::string& n2) { return d.empty() ? n2 : d + "/" + n2; };
    MetaOp op;
    const int what = static_cast<int>(rng() % 10);
    const std::string dir = pick(dirs), name = pick(base_names), target = path_in(dir, name);
    std::unique_lock lock(vol.meta().mutex());
    if (what == 0 || (what == 1 && model->dir_keys.size() < 4)) {  // create / mkdir
      if (model->names.count(target)) continue;
      const bool is_dir = what == 1;
      auto e = vol.meta().take(is_dir);
      EXPECT_TRUE(e.is_ok());
      op.kind = is_dir ? MetaKind::kMkdir : MetaKind::kCreate;
      op.pool_name = e->name;
      op.object = e->key;
      op.parent = model->dir_keys[dir];
      op.name = name;
      op.mode = 0600 + static_cast<uint32_t>(rng() % 0100);
      op.flags = kSetMode;
      model->names[target] = e->key;
      model->inodes[e->key] = Attr{op.mode, 0, is_dir, {}};
      if (is_dir) model->dir_keys[target] = e->key;
    } else if (what == 2 && !files.empty()) {  // unlink
      const std::string victim = pick(files);
      const auto [d, n2] = split(victim);
      op.kind = MetaKind::kUnlink;
      op.parent = model->dir_keys[d];
      op.name = n2;
      op.object = model->names[victim];
      model->names.erase(victim);
    } else if (what == 3 && !files.empty()) {  // rename a file, replacing a file at the target
      const std::string from = pick(files);
      if (from == target || (model->names.count(target) && model->inodes[model->names[target]].dir)) continue;
      if (model->names.count(target) && model->names[target] == model->names[from]) continue;  // POSIX no-op
      const auto [d, n2] = split(from);
      op.kind = MetaKind::kRename;
      op.parent = model->dir_keys[d];
      op.name = n2;
      op.new_parent = model->dir_keys[dir];
      op.new_name = name;
      op.object = model->names[from];
      model->names[target] = op.object;
      model->names.erase(from);
    } else if (what == 4 && !files.empty()) {  // link
      if (model->names.count(target)) continue;
      op.kind = MetaKind::kLink;
      op.object = model->names[pick(files)];
      op.new_parent = model->dir_keys[dir];
      op.new_name = name;
      model->names[target] = op.object;
    } else if (what == 5 && !files.empty()) {  // setattr
      op.kind = MetaKind::kSetattr;
      op.object = model->names[pick(files)];
      op.flags = kSetMode | kSetSize;
      op.mode = 0400 + static_cast<uint32_t>(rng() % 0400);
      op.size = rng() % 10000;
      model->inodes[op.object].mode = op.mode;
      model->inodes[op.object].size = op.size;
    } else if (what == 6 && dirs.size() > 1) {  // rmdir of an empty directory
      const std::string d = pick(dirs);
      if (d.empty()) continue;
      bool empty = true;
      for (const auto& [p, k] : model->names) empty = empty && p.rfind(d + "/", 0) != 0;
      if (!empty || d.find('/') != std::string::npos) continue;
      op.kind = MetaKind::kRmdir;
      op.parent = model->dir_keys[""];
      op.name = d;
      op.object = model->dir_keys[d];
      model->names.erase(d);
      model->dir_keys.erase(d);
    } else if (what == 7 && !files.empty()) {  // setxattr
      op.kind = MetaKind::kSetxattr;
      op.object = model->names[pick(files)];
      op.name = kXattr;
      op.value = "v" + std::to_string(rng() % 1000);
      model->inodes[op.object].xattr = op.value;
    } else if (what == 8 && !files.empty()) {  // removexattr (of one that is there)
      op.object = model->names[pick(files)];
      if (model->inodes[op.object].xattr.empty()) continue;
      op.kind = MetaKind::kRemovexattr;
      op.name = kXattr;
      model->inodes[op.object].xattr.clear();
    } else if (what == 9 && !files.empty()) {  // fallocate: extends the size unless KEEP_SIZE
      op.kind = MetaKind::kFallocate;
      op.object = model->names[pick(files)];
      op.flags = rng() % 2 ? FALLOC_FL_KEEP_SIZE : 0;
      op.offset = rng() % 8192;
      op.length = 1 + rng() % 8192;
      if (op.flags == 0) model->inodes[op.object].size = std::max(model->inodes[op.object].size, op.offset + op.length);
    } else {
      continue;
    }
    ops.push_back(op);
  }
  return ops;
}

// The tree on the medium, as the model describes one (the pool left out).
Model read_tree(Volume& vol) {
  Model m;
  std::function<void(const std::string&)> walk = [&](const std::string& rel) {
    const std::string path = vol.path() + (rel.empty() ? "" : "/" + rel);
    DIR* d = ::opendir(path.c_str());
    if (!d) return;
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..") && !(rel.empty() && !std::strcmp(e->d_name, MetaLog::kPoolDir)))
        names.emplace_back(e->d_name);
    ::closedir(d);
    for (const auto& n : names) {
      const std::string r = rel.empty() ? n : rel + "/" + n;
      int fd = ::open((vol.path() + "/" + r).c_str(), O_PATH | O_NOFOLLOW);
      struct stat st {};
      ::fstat(fd, &st);
      auto key = handle_key_of(fd);
      ::close(fd);
      m.names[r] = key ? *key : "?";
      char value[64];
      const ssize_t vn = ::lgetxattr((vol.path() + "/" + r).c_str(), kXattr, value, sizeof value);
      m.inodes[m.names[r]] = Attr{st.st_mode & 07777, S_ISDIR(st.st_mode) ? 0 : uint64_t(st.st_size), S_ISDIR(st.st_mode),
                                  vn > 0 ? std::string(value, static_cast<size_t>(vn)) : std::string()};
      if (S_ISDIR(st.st_mode)) walk(r);
    }
  };
  walk("");
  return m;
}

std::string diff(const Model& want, const Model& got) {
  std::string out;
  for (const auto& [p, k] : want.names) {
    auto it = got.names.find(p);
    if (it == got.names.end()) out += "  missing " + p + "\n";
    else if (it->second != k) out += "  " + p + " names another inode\n";
    else {
      const Attr& a = want.inodes.at(k);
      const Attr& b = got.inodes.at(k);
      if (a.mode != b.mode || a.size != b.size || a.dir != b.dir || a.xattr != b.xattr)
        out += "  " + p + ": mode " + std::to_string(b.mode) + " size " + std::to_string(b.size) + " " + kXattr +
               " '" + b.xattr + "', want mode " + std::to_string(a.mode) + " size " + std::to_string(a.size) +
               " '" + a.xattr + "'\n";
    }
  }
  for (const auto& [p, k] : got.names)
    if (!want.names.count(p)) out += "  extra " + p + "\n";
  return out;
}

uint64_t seed_from_env() {
  if (const char* s = std::getenv("HAFS_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

enum class Crash { kAtStamp, kOneMoreUnstamped, kCreateWithoutAttrs };

void run_crash_point(Volume& vol, uint64_t seed, size_t n, size_t k, Crash crash) {
  std::mt19937_64 rng(seed);
  Model model;
  auto root_key = handle_key_of(vol.root_fd());
  ASSERT_TRUE(root_key.is_ok());
  model.dir_keys[""] = *root_key;
  const std::vector<MetaOp> ops = generate(vol, rng, n, &model);
  for (size_t i = 0; i < k; ++i) {
    ASSERT_NO_FATAL_FAILURE(execute(vol, ops[i]));
    ASSERT_TRUE(vol.meta().stamp(kRing, i + 1).is_ok());
  }
  if (k < n && crash == Crash::kOneMoreUnstamped) {
    ASSERT_NO_FATAL_FAILURE(execute(vol, ops[k]));
  }
  if (k < n && crash == Crash::kCreateWithoutAttrs && ops[k].kind == MetaKind::kCreate) {
    MetaOp bare = ops[k];
    bare.flags = 0;
    ASSERT_NO_FATAL_FAILURE(execute(vol, bare));
  }
  for (int pass = 0; pass < 2; ++pass) {  // a second replay (a crash during the first) changes nothing
    for (size_t i = 0; i < n; ++i) {
      auto bytes = encode_meta_op(ops[i]);
      Status s = vol.meta().redo(nvcache::MetaRecord{1, 1, kRing, i + 1, bytes});
      ASSERT_TRUE(s.is_ok() || s.code() == Code::kStale) << "record " << i + 1 << " ("
          << meta_kind_name(ops[i].kind) << "): " << s.to_string();
    }
    const std::string d = diff(model, read_tree(vol));
    ASSERT_EQ(d, "") << "seed " << seed << ", crash after " << k << " of " << n << " (kind "
                     << static_cast<int>(crash) << "), replay " << pass + 1 << ":\n" << d;
  }
}

TEST_F(MetaLogTest, RedoFromEveryCrashPointGivesTheWholeSequenceWithTheSameInodes) {
  const uint64_t seed = seed_from_env();
  std::printf("seed %llu (HAFS_SEED=%llu replays it)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  constexpr size_t kOps = 40;
  int volumes = 0;
  for (uint64_t sequence = seed; sequence < seed + 4; ++sequence)
    for (Crash crash : {Crash::kAtStamp, Crash::kOneMoreUnstamped, Crash::kCreateWithoutAttrs})
      for (size_t k = 0; k <= kOps; ++k) {
        auto vol = fresh_volume("v" + std::to_string(volumes++));
        ASSERT_TRUE(vol);
        ASSERT_NO_FATAL_FAILURE(run_crash_point(*vol, sequence, kOps, k, crash));
      }
}

TEST_F(MetaLogTest, ARecordOfAnotherRingIsRedoneWithItsChecks) {
  auto vol = fresh_volume("v");
  ASSERT_TRUE(vol);
  std::unique_lock lock(vol->meta().mutex());
  auto e = vol->meta().take(false);
  ASSERT_TRUE(e.is_ok());
  auto root = handle_key_of(vol->root_fd());
  MetaOp op;
  op.kind = MetaKind::kCreate;
  op.pool_name = e->name;
  op.object = e->key;
  op.parent = *root;
  op.name = "f";
  op.mode = 0640;
  op.flags = kSetMode;
  lock.unlock();
  ASSERT_TRUE(vol->meta().stamp(kRing + 7, 1000).is_ok());  // the other node's last operation
  auto bytes = encode_meta_op(op);
  ASSERT_TRUE(vol->meta().redo(nvcache::MetaRecord{1, 1, kRing, 5, bytes}).is_ok());
  struct stat st {};
  ASSERT_EQ(::stat((vol->path() + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST_F(MetaLogTest, AMalformedRecordIsRefusedWithItsLsn) {
  auto vol = fresh_volume("v");
  ASSERT_TRUE(vol);
  const std::byte junk[5] = {std::byte{1}, std::byte{99}, std::byte{0}, std::byte{0}, std::byte{0}};
  Status s = vol->meta().redo(nvcache::MetaRecord{1, 1, kRing, 42, junk});
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.to_string().find("LSN 42"), std::string::npos) << s.to_string();
}

TEST_F(MetaLogTest, PoolEntriesSurviveAReset) {
  auto vol = fresh_volume("v");
  ASSERT_TRUE(vol);
  std::string first;
  {
    std::unique_lock lock(vol->meta().mutex());
    auto e = vol->meta().take(false);
    ASSERT_TRUE(e.is_ok());
    first = e->key;
    vol->meta().put_back(*e, false);
  }
  vol->meta().reset();
  std::set<std::string> keys;
  std::unique_lock lock(vol->meta().mutex());
  for (size_t i = 0; i < 8; ++i) {
    auto e = vol->meta().take(false);
    ASSERT_TRUE(e.is_ok());
    keys.insert(e->key);
  }
  EXPECT_TRUE(keys.count(first)) << "a pool inode made before the reset is used after it";
  EXPECT_EQ(vol->meta().refills(), 1u) << "the scan found the first batch: no second refill";
}

// The refiller makes batches outside the volume's lock while creates take entries, and a reset or
// scan may come in between (a takeover, a giveback). No pool inode may be handed out twice (two
// creates would share one inode), and the pool is kept at two batches.
TEST_F(MetaLogTest, TheRefillerNeverHandsOutAnInodeTwice) {
  auto vol = fresh_volume("v");
  ASSERT_TRUE(vol);
  vol->meta().start_refiller();
  std::set<std::string> keys;
  for (int i = 0; i < 400; ++i) {
    // A reset while a batch is being made: the next take's scan lists part of that batch.
    if (i % 3 == 0 && vol->meta().pool_state().refilling) vol->meta().reset();
    std::unique_lock lock(vol->meta().mutex());
    const bool dir = i % 5 == 0;
    auto e = vol->meta().take(dir);
    ASSERT_TRUE(e.is_ok()) << e.status().to_string();
    EXPECT_TRUE(keys.insert(e->key).second) << "pool inode " << e->name << " handed out twice";
    // Used: renamed out of the pool, as a create does.
    const std::string to = base_ + "/v/used-" + std::to_string(i);
    ASSERT_EQ(::rename((base_ + "/v/" + MetaLog::kPoolDir + "/" + e->name).c_str(), to.c_str()), 0)
        << e->name << ": " << std::strerror(errno);
  }
  ASSERT_TRUE(hafs::testing::eventually([&] { return !vol->meta().pool_state().refilling; }));
  const MetaLog::PoolState p = vol->meta().pool_state();
  EXPECT_GE(p.files, 8u);  // a batch at least: fewer starts a refill
  EXPECT_GE(p.directories, 8u);
  EXPECT_GT(p.refills, 0u);
}

}  // namespace
}  // namespace hafs::fs
