#include "tests/fs/posix_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace hafs::testing {

namespace {
constexpr uint64_t kMediumInoMask = (uint64_t{1} << 56) - 1;
constexpr off_t kWholeFileMax = 8 << 20;
constexpr size_t kHeadTail = 1 << 20;

void walk(const std::string& root, const std::string& rel, TreeView* out) {
  const std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    (*out)[rel + "/<opendir failed>"] = EntryView{};
    return;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    // The inode pool in a volume's root is hafsd's own (fs/meta_log.h): the mount hides it.
    if (rel.empty() && std::strcmp(e->d_name, ".hafs-pool") == 0) continue;
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  }
  ::closedir(d);
  for (const std::string& name : names) {
    const std::string r = rel.empty() ? name : rel + "/" + name;
    const std::string p = root + "/" + r;
    struct stat st {};
    EntryView v;
    if (::lstat(p.c_str(), &st) != 0) {
      v.data = std::string("<lstat: ") + std::strerror(errno) + ">";
      (*out)[r] = v;
      continue;
    }
    v.mode = st.st_mode;
    v.uid = st.st_uid;
    v.gid = st.st_gid;
    v.nlink = st.st_nlink;
    v.medium_ino = st.st_ino & kMediumInoMask;
    if (S_ISREG(st.st_mode)) {
      v.size = st.st_size;
      int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        v.data = std::string("<open: ") + std::strerror(errno) + ">";
      } else if (st.st_size <= kWholeFileMax) {
        v.data = pread_str(fd, static_cast<size_t>(st.st_size) + 1, 0);
      } else {
        v.data = pread_str(fd, kHeadTail, 0) + "|...|" +
                 pread_str(fd, kHeadTail, st.st_size - static_cast<off_t>(kHeadTail));
      }
      if (fd >= 0) ::close(fd);
    } else if (S_ISLNK(st.st_mode)) {
      char buf[PATH_MAX];
      ssize_t n = ::readlink(p.c_str(), buf, sizeof buf);
      v.data = n < 0 ? "<readlink failed>" : std::string(buf, static_cast<size_t>(n));
    }
    (*out)[r] = v;
    if (S_ISDIR(st.st_mode)) walk(root, r, out);
  }
}

std::string describe(const EntryView& v) {
  std::ostringstream s;
  s << "mode=0" << std::oct << v.mode << std::dec << " uid=" << v.uid << " gid=" << v.gid
    << " nlink=" << v.nlink << " size=" << v.size << " ino=" << v.medium_ino << " data("
    << v.data.size() << ")";
  if (v.data.size() <= 64) s << "='" << v.data << "'";
  return s.str();
}
}  // namespace

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool spit(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = pwrite_str(fd, data, 0);
  return ::close(fd) == 0 && ok;
}

std::string pread_str(int fd, size_t len, off_t off) {
  std::string buf(len, '\0');
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(fd, buf.data() + got, len - got, off + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::string("<pread: ") + std::strerror(errno) + ">";
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  buf.resize(got);
  return buf;
}

bool pwrite_str(int fd, const std::string& data, off_t off) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, off + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int as_user(uid_t uid, gid_t gid, const std::function<int()>& step) {
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0)
      ::_exit(255);
    ::_exit(step());
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TreeView snapshot_tree(const std::string& root) {
  TreeView out;
  walk(root, "", &out);
  return out;
}

std::string diff_trees(const TreeView& mount, const TreeView& medium) {
  std::ostringstream s;
  for (const auto& [path, v] : mount) {
    auto it = medium.find(path);
    if (it == medium.end()) s << "  " << path << ": on the mount, not on the medium\n";
    else if (!(it->second == v))
      s << "  " << path << ":\n    mount:  " << describe(v) << "\n    medium: " << describe(it->second) << "\n";
  }
  for (const auto& [path, v] : medium)
    if (!mount.count(path)) s << "  " << path << ": on the medium, not on the mount\n";
  return s.str();
}

std::unique_ptr<HafsdProcess> MountedSuite::node_;

void MountedSuite::SetUpTestSuite() {
  ::umask(022);
  HafsdSpec spec;
  spec.volumes = {{"vol0", "staged"}, {"vol1", "write-through"}, {"vol2", "staged"}};
#ifdef HAFS_TEST_SYNCED_METADATA
  // The same suite with every metadata operation synced on the medium instead of logged in the
  // NV log (the default; design.md §9, §9a).
  spec.extra_args = {"--set", "fs.sync_metadata=true"};
#endif
  node_ = std::make_unique<HafsdProcess>(spec);
  // mkdtemp made the private directory 0700; tests that run as another user walk through it.
  ::chmod(node_->dir().c_str(), 0755);
  std::string why;
  if (!node_->start(&why)) {
    ADD_FAILURE() << why;
    node_.reset();
  }
}

void MountedSuite::TearDownTestSuite() {
  if (!node_) return;
  // A clean stop destages everything: then the medium must hold exactly what the mount showed.
  std::map<std::string, TreeView> shown;
  for (const char* vol : {"vol0", "vol1", "vol2"}) shown[vol] = snapshot_tree(node_->path(vol));
  const int rc = node_->stop();
  EXPECT_EQ(rc, 0) << node_->log();
  for (const auto& [vol, view] : shown) {
    const std::string diff = diff_trees(view, snapshot_tree(node_->volume_dir(vol)));
    EXPECT_EQ(diff, "") << "medium of " << vol << " after a clean stop differs from the mount:\n"
                        << diff;
  }
  node_.reset();
}

void MountedSuite::SetUp() {
  ASSERT_TRUE(node_) << "hafsd did not start";
  ASSERT_TRUE(node_->running()) << node_->log();
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  rel_ = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : rel_)
    if (c == '/') c = '_';
  ASSERT_EQ(::mkdir(mnt().c_str(), 0755), 0) << mnt() << ": " << std::strerror(errno);
}

void MountedSuite::TearDown() {
  if (node_ && node_->running() && !HasFailure()) expect_medium_matches();
}

std::string MountedSuite::mnt(const std::string& rel) const {
  std::string p = node_->path(volume_ + "/" + rel_);
  return rel.empty() ? p : p + "/" + rel;
}

std::string MountedSuite::medium(const std::string& rel) const {
  std::string p = node_->volume_dir(volume_) + "/" + rel_;
  return rel.empty() ? p : p + "/" + rel;
}

void MountedSuite::expect_medium_matches() {
  const TreeView shown = snapshot_tree(mnt());
  std::string diff;
  const bool same = eventually([&] {
    diff = diff_trees(shown, snapshot_tree(medium()));
    return diff.empty();
  });
  EXPECT_TRUE(same) << "the medium under " << medium() << " does not match the mount:\n" << diff;
}

}  // namespace hafs::testing
