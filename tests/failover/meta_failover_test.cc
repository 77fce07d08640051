// Logged metadata across a takeover (design.md §9a, I1): one writer runs a seeded random storm of
// creates (each file holds its own id), renames (replacing), hard links, unlinks, mkdirs, rmdirs
// and directories moved between parents in node 1's vol1, telling the test each operation before it issues it and once it
// returned. Node 1 is killed with SIGKILL in the middle; node 2 takes vol1 over (its replay redoes
// the META records of node 1's mirror where the medium lacks them). Through node 2's mount the
// tree must then be exactly the one the acknowledged operations make, or that plus the one
// operation in flight at the kill: a prefix of the order, holding every acknowledged operation.
// The seed is printed; HAFS_SEED=N replays the workload's choices.
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cinttypes>
#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "tests/failover/failover_pair.h"

namespace hafs::testing::failover {
namespace {

// The tree as the test models it: file path -> content, and the directories.
struct Tree {
  std::map<std::string, std::string> files;
  std::set<std::string> dirs;
  bool operator==(const Tree&) const = default;
};

std::string describe(const Tree& t) {
  std::string s;
  for (const auto& d : t.dirs) s += "  dir  " + d + "\n";
  for (const auto& [p, c] : t.files) s += "  file " + p + " = " + c + "\n";
  return s;
}

// One operation: kind c(reate) r(ename) l(ink) u(nlink) m(kdir) x (rmdir) d (directory moved),
// and its paths.
struct Op {
  char kind = 0;
  std::string a, b;
};

void apply(Tree& t, const Op& op) {
  switch (op.kind) {
    case 'c': t.files[op.a] = op.b; break;
    case 'r': t.files[op.b] = t.files[op.a]; t.files.erase(op.a); break;
    case 'l': t.files[op.b] = t.files[op.a]; break;
    case 'u': t.files.erase(op.a); break;
    case 'm': t.dirs.insert(op.a); break;
    case 'x': t.dirs.erase(op.a); break;
    case 'd': {  // a directory, with all it holds, moved (possibly to another parent)
      auto moved = [&](const std::string& p) {
        return p == op.a ? op.b : p.rfind(op.a + "/", 0) == 0 ? op.b + p.substr(op.a.size()) : p;
      };
      Tree out;
      for (const auto& [p, c] : t.files) out.files[moved(p)] = c;
      for (const auto& d : t.dirs) out.dirs.insert(moved(d));
      t = std::move(out);
      break;
    }
  }
}

// The next operation the writer may issue on `t` (its choice from `rng`).
Op next_op(const Tree& t, std::mt19937_64& rng, uint64_t id) {
  std::vector<std::string> dirs = {""};
  for (const auto& d : t.dirs) dirs.push_back(d);
  auto in = [](const std::string& d, const std::string& n) { return d.empty() ? n : d + "/" + n; };
  for (;;) {
    const std::string dir = dirs[rng() % dirs.size()];
    const std::string name = std::string(1, static_cast<char>('a' + rng() % 6));
    const std::string path = in(dir, name);
    const bool taken = t.files.count(path) || t.dirs.count(path);
    std::vector<std::string> files;
    for (const auto& [p, c] : t.files) files.push_back(p);
    switch (rng() % 8) {
      case 0: case 1: case 2:
        if (!taken) return {'c', path, std::to_string(id)};
        break;
      case 3:
        if (!files.empty() && !t.dirs.count(path)) {
          const std::string from = files[rng() % files.size()];
          if (from != path && !(t.files.count(path) && t.files.at(path) == t.files.at(from))) return {'r', from, path};
        }
        break;
      case 4:
        if (!files.empty() && !taken) return {'l', files[rng() % files.size()], path};
        break;
      case 5:
        if (!files.empty()) return {'u', files[rng() % files.size()], ""};
        break;
      case 6:
        if (!taken && std::count(path.begin(), path.end(), '/') < 2) return {'m', path, ""};
        if (!taken && !t.dirs.empty()) {  // move a directory, never into itself
          std::vector<std::string> ds(t.dirs.begin(), t.dirs.end());
          const std::string from = ds[rng() % ds.size()];
          if (path.rfind(from + "/", 0) != 0 && std::count(path.begin(), path.end(), '/') < 3) return {'d', from, path};
        }
        break;
      case 7: {
        for (const auto& d : t.dirs) {
          bool empty = true;
          for (const auto& [p, c] : t.files) empty = empty && p.rfind(d + "/", 0) != 0;
          for (const auto& sub : t.dirs) empty = empty && sub.rfind(d + "/", 0) != 0;
          if (empty) return {'x', d, ""};
        }
        break;
      }
    }
  }
}

int issue(const std::string& root, const Op& op) {
  const std::string a = root + "/" + op.a, b = root + "/" + op.b;
  int rc = 0;
  switch (op.kind) {
    case 'c': {
      int fd = ::open(a.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (fd < 0) return errno;
      rc = ::write(fd, op.b.data(), op.b.size()) == static_cast<ssize_t>(op.b.size()) ? 0 : -1;
      if (::close(fd) != 0 || rc != 0) return errno ? errno : EIO;
      return 0;
    }
    case 'r':
    case 'd': rc = ::rename(a.c_str(), b.c_str()); break;
    case 'l': rc = ::link(a.c_str(), b.c_str()); break;
    case 'u': rc = ::unlink(a.c_str()); break;
    case 'm': rc = ::mkdir(a.c_str(), 0755); break;
    case 'x': rc = ::rmdir(a.c_str()); break;
  }
  return rc == 0 ? 0 : errno;
}

Tree read_tree(const std::string& root) {
  Tree t;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    const std::string rel = e.path().string().substr(root.size() + 1);
    if (e.is_directory()) t.dirs.insert(rel);
    else t.files[rel] = read_file(e.path());
  }
  return t;
}

TEST_F(FailoverTest, MetadataStormSurvivesATakeoverAsAPrefixOfItsOrder) {
  const char* env = std::getenv("HAFS_SEED");
  const uint64_t seed = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  std::cout << "seed " << seed << " (HAFS_SEED=" << seed << " replays it)\n";
  ASSERT_NO_FATAL_FAILURE(start_pair());
  const uint64_t epoch1 = await_serving(1, "vol1", 0, 10s);
  ASSERT_GT(epoch1, 0u);
  const std::string root1 = node(1).proc->path("vol1") + "/storm";
  ASSERT_EQ(::mkdir(root1.c_str(), 0755), 0);

  // The writer: a child process, so that the kill leaves it to find the dead mount by itself.
  // It reports "I n" before operation n and "A n" once it returned 0.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    std::mt19937_64 rng(seed);
    Tree t;
    for (uint64_t n = 1;; ++n) {
      const Op op = next_op(t, rng, n);
      const std::string intent = "I " + std::to_string(n) + "\n";
      if (::write(fds[1], intent.data(), intent.size()) < 0) ::_exit(1);
      if (issue(root1, op) != 0) ::_exit(0);  // the mount died
      apply(t, op);
      const std::string ack = "A " + std::to_string(n) + "\n";
      if (::write(fds[1], ack.data(), ack.size()) < 0) ::_exit(1);
    }
  }
  ::close(fds[1]);
  // Read the reports; kill node 1 once 400 operations are acknowledged.
  FILE* in = ::fdopen(fds[0], "r");
  uint64_t intended = 0, acked = 0;
  bool killed = false;
  char kind = 0;
  uint64_t n = 0;
  while (std::fscanf(in, " %c %" SCNu64, &kind, &n) == 2) {
    (kind == 'I' ? intended : acked) = n;
    if (!killed && acked >= 400) {
      node(1).proc->kill9();
      killed = true;
    }
  }
  std::fclose(in);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(killed) << "the writer stopped after " << acked << " operations";
  std::cout << "killed node 1 after " << acked << " acknowledged operations (" << intended << " issued)\n";

  ASSERT_GT(await_serving(2, "vol1", epoch1, 20s), epoch1) << dump();
  // The model: the same choices, replayed.
  std::mt19937_64 rng(seed);
  Tree at_ack, with_inflight;
  for (uint64_t i = 1; i <= intended; ++i) {
    const Op op = next_op(at_ack, rng, i);
    with_inflight = at_ack;
    apply(with_inflight, op);
    if (i <= acked) at_ack = with_inflight;
  }
  const Tree seen = read_tree(node(2).proc->path("vol1") + "/storm");
  EXPECT_TRUE(seen == at_ack || seen == with_inflight)
      << "through node 2's mount:\n" << describe(seen) << "after the " << acked << " acknowledged operations:\n"
      << describe(at_ack) << dump();
  watcher_->stop();
  ASSERT_EQ(node(2).proc->stop(), 0);
  const Tree on_medium = read_tree(medium_ + "/vol1/storm");
  EXPECT_TRUE(on_medium == at_ack || on_medium == with_inflight) << "on the medium:\n" << describe(on_medium);
}

}  // namespace
}  // namespace hafs::testing::failover
