// fsx for hafs: a long seeded random sequence of writes (some past EOF, leaving holes), truncates
// that shrink and extend, reads, fsyncs and reopens on one file of a volume, through a real
// mount, checked against an in-memory reference after every read (bytes and size). At the end
// hafsd stops cleanly and the file on the storage medium must equal the reference (I4).
//
// Reads go to hafsd, not only to the kernel's page cache: half of them use an O_DIRECT
// descriptor, and the size is sometimes fetched with AT_STATX_FORCE_SYNC (a GETATTR to hafsd,
// which adds the staged end). With destage every 5 ms, reads lay staged bytes over a medium
// that is partly destaged; the small-log variant keeps the ring full so writers wait (I6).
//
// The seed is printed and recorded as a test property; HAFS_SEED=<seed> replays a run, and
// HAFS_FSX_OPS=<n> overrides the operation count of every run.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/hafsd_process.h"

namespace hafs::testing {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

uint64_t test_seed() {
  if (const char* s = std::getenv("HAFS_SEED"); s && *s) return std::strtoull(s, nullptr, 0);
  std::random_device rd;
  return (uint64_t{rd()} << 32) | rd();
}

uint64_t op_count(uint64_t default_ops) {
  if (const char* s = std::getenv("HAFS_FSX_OPS"); s && *s) return std::strtoull(s, nullptr, 0);
  return default_ops;
}

// Operation mix, in parts per thousand (the rest are reads).
struct FsxParams {
  uint64_t ops = 100000;
  uint64_t max_file_size = 8 * kMiB;
  uint64_t max_op_bytes = 256 * kKiB;
  int write_pm = 440;
  int truncate_pm = 25;
  int fsync_pm = 20;
  int statx_pm = 25;
  int reopen_pm = 5;
  int verify_pm = 1;
  int large_op_pct = 5;  // ops up to max_op_bytes; 20% up to 32 KiB; the rest up to 4 KiB
};

struct Counts {
  uint64_t writes = 0, reads = 0, truncates = 0, fsyncs = 0, statxs = 0, reopens = 0, verifies = 0;
  uint64_t bytes_written = 0, bytes_read = 0;
  uint64_t size_sum = 0;  // of the file size after each operation
};

class Fsx {
 public:
  Fsx(std::string path, uint64_t seed, FsxParams params)
      : path_(std::move(path)), seed_(seed), p_(params), rng_(seed) {}
  ~Fsx() { close_fds(); }

  // Runs every operation; false (with a gtest failure that says why) at the first mismatch.
  bool run() {
    if (!open_fds(O_CREAT | O_TRUNC)) return false;
    for (op_ = 1; op_ <= p_.ops; ++op_) {
      const int pick = static_cast<int>(rand(1000));
      int edge = 0;
      bool ok;
      if (pick < (edge += p_.write_pm)) ok = do_write();
      else if (pick < (edge += p_.truncate_pm)) ok = do_truncate();
      else if (pick < (edge += p_.fsync_pm)) ok = do_fsync();
      else if (pick < (edge += p_.statx_pm)) ok = do_statx();
      else if (pick < (edge += p_.reopen_pm)) ok = do_reopen();
      else if (pick < (edge += p_.verify_pm)) ok = verify_whole("verify");
      else ok = do_read();
      if (!ok) return false;
      counts_.size_sum += ref_.size();
    }
    return verify_whole("final verify");
  }

  // Closes the descriptors (before hafsd stops).
  void close_fds() {
    if (fd_ >= 0) ::close(fd_);
    if (dfd_ >= 0) ::close(dfd_);
    fd_ = dfd_ = -1;
  }

  const std::vector<char>& reference() const { return ref_; }
  const Counts& counts() const { return counts_; }

  // The first offset where `got` and the reference differ (or where the shorter one ends).
  static std::string describe_diff(const std::vector<char>& want, const char* got, size_t got_len,
                                   uint64_t base, size_t want_len) {
    size_t n = std::min(got_len, want_len);
    for (size_t i = 0; i < n; ++i)
      if (got[i] != want[base + i]) {
        std::ostringstream o;
        o << "first difference at file offset " << base + i << " (byte " << i << " of the range): want 0x"
          << std::hex << (static_cast<unsigned>(want[base + i]) & 0xff) << " got 0x"
          << (static_cast<unsigned>(got[i]) & 0xff) << std::dec;
        size_t run = 0;
        while (i + run < n && got[i + run] != want[base + i + run]) ++run;
        o << "; " << run << " differing bytes from there";
        return o.str();
      }
    if (got_len != want_len)
      return "contents agree up to " + std::to_string(n) + " bytes, lengths differ (want " +
             std::to_string(want_len) + ", got " + std::to_string(got_len) + ")";
    return "no difference";
  }

 private:
  uint64_t rand(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  uint64_t op_length() {
    const uint64_t pct = rand(100);
    if (pct < static_cast<uint64_t>(p_.large_op_pct)) return 1 + rand(p_.max_op_bytes);
    if (pct < static_cast<uint64_t>(p_.large_op_pct) + 20) return 1 + rand(32 * kKiB);
    return 1 + rand(4 * kKiB);
  }

  void note(const std::string& what) {
    log_.push_back("#" + std::to_string(op_) + " " + what);
    if (log_.size() > 20) log_.pop_front();
  }

  bool fail(const std::string& what) {
    std::ostringstream o;
    o << "fsx mismatch at op " << op_ << " of " << p_.ops << " (seed " << seed_
      << ", replay with HAFS_SEED=" << seed_ << "): " << what << "\nreference size " << ref_.size()
      << "; last operations:\n";
    for (const auto& l : log_) o << "  " << l << "\n";
    ADD_FAILURE() << o.str();
    return false;
  }

  bool open_fds(int extra_flags) {
    fd_ = ::open(path_.c_str(), O_RDWR | extra_flags, 0644);
    if (fd_ < 0) return fail("open " + path_ + ": " + std::strerror(errno));
    dfd_ = ::open(path_.c_str(), O_RDWR | O_DIRECT);
    if (dfd_ < 0) return fail("open O_DIRECT " + path_ + ": " + std::strerror(errno));
    return true;
  }

  int pick_fd(int direct_pct) { return static_cast<int>(rand(100)) < direct_pct ? dfd_ : fd_; }
  static const char* fd_name(int fd, int dfd) { return fd == dfd ? "direct" : "buffered"; }

  bool check_size(const char* how, bool force_sync) {
    struct stat st {};
    if (force_sync) {
      struct statx sx {};
      if (::statx(fd_, "", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC, STATX_SIZE, &sx) != 0)
        return fail(std::string("statx: ") + std::strerror(errno));
      st.st_size = static_cast<off_t>(sx.stx_size);
    } else if (::fstat(fd_, &st) != 0) {
      return fail(std::string("fstat: ") + std::strerror(errno));
    }
    if (static_cast<uint64_t>(st.st_size) != ref_.size())
      return fail(std::string(how) + ": size " + std::to_string(st.st_size) + ", want " +
                  std::to_string(ref_.size()));
    return true;
  }

  bool do_write() {
    uint64_t len = op_length();
    len = std::min(len, p_.max_file_size);
    const uint64_t size = ref_.size();
    const uint64_t where = rand(100);
    uint64_t off;
    if (where < 85 && size > 0) off = rand(size);           // over existing data
    else if (where < 97) off = size + rand(256 * kKiB);     // past EOF: leaves a hole
    else off = rand(p_.max_file_size);                      // anywhere
    off = std::min(off, p_.max_file_size - len);
    buf_.resize(len);
    // Bytes that name the operation: a misplaced write is recognisable.
    std::mt19937_64 fill(seed_ ^ (op_ * 0x9e3779b97f4a7c15ull));
    for (uint64_t i = 0; i < len; i += 8) {
      uint64_t v = fill();
      std::memcpy(buf_.data() + i, &v, std::min<uint64_t>(8, len - i));
    }
    const int fd = pick_fd(25);
    note("write " + std::string(fd_name(fd, dfd_)) + " off " + std::to_string(off) + " len " +
         std::to_string(len) + " (size " + std::to_string(size) + ")");
    ssize_t n = ::pwrite(fd, buf_.data(), len, static_cast<off_t>(off));
    if (n != static_cast<ssize_t>(len))
      return fail("pwrite returned " + std::to_string(n) + " (" + (n < 0 ? std::strerror(errno) : "short") +
                  "), want " + std::to_string(len));
    if (off + len > ref_.size()) ref_.resize(off + len, 0);
    std::memcpy(ref_.data() + off, buf_.data(), len);
    ++counts_.writes;
    counts_.bytes_written += len;
    return true;
  }

  bool do_read() {
    const uint64_t size = ref_.size();
    const uint64_t len = op_length();
    const uint64_t off = rand(100) < 95 && size > 0 ? rand(size) : rand(size + 64 * kKiB);
    const int fd = pick_fd(50);
    note("read " + std::string(fd_name(fd, dfd_)) + " off " + std::to_string(off) + " len " +
         std::to_string(len));
    buf_.assign(len, '\xa5');
    ssize_t n = ::pread(fd, buf_.data(), len, static_cast<off_t>(off));
    const uint64_t want = off >= size ? 0 : std::min(len, size - off);
    if (n < 0) return fail(std::string("pread: ") + std::strerror(errno));
    if (static_cast<uint64_t>(n) != want ||
        (want > 0 && std::memcmp(buf_.data(), ref_.data() + std::min(off, size), want) != 0))
      return fail("pread returned " + std::to_string(n) + " bytes, want " + std::to_string(want) + "; " +
                  describe_diff(ref_, buf_.data(), static_cast<size_t>(n), std::min(off, size), want));
    ++counts_.reads;
    counts_.bytes_read += want;
    return check_size("fstat after read", false);
  }

  bool do_truncate() {
    const uint64_t size = ref_.size();
    // Shrinks more often than it extends, so the file keeps moving through the size range.
    uint64_t to = rand(10) < 6 ? rand(size + 1)
                               : size + rand(std::min<uint64_t>(2 * kMiB, p_.max_file_size - size) + 1);
    note("ftruncate " + std::to_string(size) + " -> " + std::to_string(to));
    if (::ftruncate(fd_, static_cast<off_t>(to)) != 0)
      return fail(std::string("ftruncate: ") + std::strerror(errno));
    ref_.resize(to, 0);
    ++counts_.truncates;
    return check_size("fstat after ftruncate", rand(2) == 0);
  }

  bool do_fsync() {
    const bool data = rand(2) == 0;
    const int fd = pick_fd(50);
    note(std::string(data ? "fdatasync " : "fsync ") + fd_name(fd, dfd_));
    if ((data ? ::fdatasync(fd) : ::fsync(fd)) != 0)
      return fail(std::string("fsync: ") + std::strerror(errno));
    ++counts_.fsyncs;
    return true;
  }

  bool do_statx() {
    note("statx force-sync");
    ++counts_.statxs;
    return check_size("statx(AT_STATX_FORCE_SYNC)", true);
  }

  bool do_reopen() {
    const bool trunc = rand(10) == 0;
    note(trunc ? "close, reopen O_TRUNC" : "close, reopen");
    close_fds();
    if (!open_fds(trunc ? O_TRUNC : 0)) return false;
    if (trunc) ref_.clear();
    ++counts_.reopens;
    return check_size("fstat after reopen", true);
  }

  bool verify_whole(const char* what) {
    note(what);
    if (!check_size(what, true)) return false;
    const int fd = pick_fd(50);
    std::vector<char> got(ref_.size());
    uint64_t done = 0;
    while (done < got.size()) {
      ssize_t n = ::pread(fd, got.data() + done, std::min<uint64_t>(1 * kMiB, got.size() - done),
                          static_cast<off_t>(done));
      if (n < 0) return fail(std::string(what) + ": pread: " + std::strerror(errno));
      if (n == 0) break;
      done += static_cast<uint64_t>(n);
    }
    if (done != ref_.size() || std::memcmp(got.data(), ref_.data(), done) != 0)
      return fail(std::string(what) + " (" + fd_name(fd, dfd_) + "): " +
                  describe_diff(ref_, got.data(), done, 0, ref_.size()));
    ++counts_.verifies;
    return true;
  }

  const std::string path_;
  const uint64_t seed_;
  const FsxParams p_;
  std::mt19937_64 rng_;
  uint64_t op_ = 0;
  int fd_ = -1, dfd_ = -1;
  std::vector<char> ref_;
  std::vector<char> buf_;
  std::deque<std::string> log_;
  Counts counts_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Starts hafsd with `spec`, runs fsx on vol0/fsx.dat, stops hafsd and compares the medium.
void run_fsx(HafsdSpec spec, FsxParams params) {
  const uint64_t seed = test_seed();
  std::printf("fsx seed %" PRIu64 " (replay: HAFS_SEED=%" PRIu64 "), %" PRIu64 " ops\n", seed, seed,
              params.ops);
  std::fflush(stdout);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  ::testing::Test::RecordProperty("ops", std::to_string(params.ops));

  HafsdProcess node(std::move(spec));
  std::string why;
  ASSERT_TRUE(node.start(&why)) << why;
  const auto t0 = std::chrono::steady_clock::now();
  Fsx fsx(node.path("vol0/fsx.dat"), seed, params);
  const bool ok = fsx.run();
  fsx.close_fds();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const Counts& c = fsx.counts();
  std::printf("fsx: %.1f s; writes %" PRIu64 " (%" PRIu64 " MiB), reads %" PRIu64 " (%" PRIu64
              " MiB), truncates %" PRIu64 ", fsyncs %" PRIu64 ", statx %" PRIu64 ", reopens %" PRIu64
              ", verifies %" PRIu64 "; mean size %" PRIu64 " KiB, final size %zu\n",
              secs, c.writes, c.bytes_written / kMiB, c.reads, c.bytes_read / kMiB, c.truncates,
              c.fsyncs, c.statxs, c.reopens, c.verifies, c.size_sum / std::max<uint64_t>(1, params.ops) / kKiB,
              fsx.reference().size());
  ASSERT_TRUE(ok) << "daemon log tail:\n" << node.log().substr(node.log().size() > 4000 ? node.log().size() - 4000 : 0);
  ASSERT_EQ(node.stop(), 0) << node.log();

  // The medium after the final destage equals the reference exactly (I4).
  const std::string medium = slurp(node.volume_dir("vol0") + "/fsx.dat");
  const auto& ref = fsx.reference();
  EXPECT_EQ(medium.size(), ref.size()) << "seed " << seed;
  EXPECT_TRUE(medium.size() == ref.size() && std::memcmp(medium.data(), ref.data(), ref.size()) == 0)
      << "seed " << seed << ": medium differs from the reference: "
      << Fsx::describe_diff(ref, medium.data(), medium.size(), 0, ref.size());
}

TEST(FsxTest, StagedVolumeWithFrequentDestage) {
  HafsdSpec spec;
  spec.extra_args = {"--set", "nvlog.destage_interval_ms=5"};
  FsxParams params;
  params.ops = op_count(150000);
  run_fsx(spec, params);
}

TEST(FsxTest, WriteThroughVolume) {
  HafsdSpec spec;
  spec.volumes = {{"vol0", "write-through"}};
  FsxParams params;
  params.ops = op_count(20000);
  run_fsx(spec, params);
}

// A 1 MiB ring and a destager that waits long when idle: the ring fills, writers wait for the
// destager under pressure; no write may fail (I6). Larger writes than the other runs, to fill it.
TEST(FsxTest, SmallNvLogBackpressure) {
  HafsdSpec spec;
  spec.nvlog_size = "1MiB";
  spec.extra_args = {"--set", "nvlog.destage_interval_ms=60000"};
  FsxParams params;
  params.ops = op_count(40000);
  params.write_pm = 600;
  params.large_op_pct = 15;
  run_fsx(spec, params);
}

// open(O_TRUNC) of a file with staged data truncates it, and no destage or replay brings the
// staged bytes back (libfuse's default atomic O_TRUNC once bypassed the truncate; fsx found it).
TEST(FsxTest, OpenWithTruncDropsStagedData) {
  HafsdSpec spec;
  spec.extra_args = {"--set", "nvlog.destage_interval_ms=60000"};  // keep the data staged
  HafsdProcess node(spec);
  std::string why;
  ASSERT_TRUE(node.start(&why)) << why;
  const std::string path = node.path("vol0/f");
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "staged bytes", 12, 0), 12);
  ASSERT_EQ(::close(fd), 0);
  fd = ::open(path.c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  struct statx sx {};
  ASSERT_EQ(::statx(fd, "", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC, STATX_SIZE, &sx), 0);
  EXPECT_EQ(sx.stx_size, 0u);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(slurp(path), "");
  node.kill9();  // recovery replays the ring: the FENCE must keep the cut bytes cut
  ASSERT_TRUE(node.start(&why)) << why;
  EXPECT_EQ(slurp(path), "");
  ASSERT_EQ(node.stop(), 0) << node.log();
  EXPECT_EQ(slurp(node.volume_dir("vol0") + "/f"), "");
}

}  // namespace
}  // namespace hafs::testing
