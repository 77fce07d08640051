// Bad input gets a clear error and loses nothing (I6): hafsd refuses bad configurations with a
// message naming the problem and a non-zero exit, leaves existing NV logs alone, refuses busy
// or wrong mount points; names that are too long fail cleanly through the mount; and a failing
// destage target (EIO, ENOSPC injected at destage.before_write) keeps every acknowledged write
// in the NV log until a restart without the fault destages it.
#include <gtest/gtest.h>

#include <algorithm>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "tests/fs/posix_fixture.h"
#include "tests/support/hafsd_process.h"

namespace hafs::testing {
namespace {

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hafs-bad.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    mnt_ = dir_ + "/mnt";
    vol_ = dir_ + "/vol0";
    nvlog_ = "/dev/shm/" + std::filesystem::path(dir_).filename().string() + ".nvlog";
    std::filesystem::create_directories(mnt_);
    std::filesystem::create_directories(vol_);
  }
  void TearDown() override {
    if (is_mounted(mnt_)) ::umount2(mnt_.c_str(), MNT_DETACH);  // only if a refusal failed
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    std::filesystem::remove(nvlog_, ec);
  }

  // A command line that would start a daemon, with `replace` swapped in for its flag.
  std::vector<std::string> args(const std::map<std::string, std::string>& replace = {},
                                const std::vector<std::string>& extra = {}) const {
    std::vector<std::pair<std::string, std::string>> base = {
        {"--node-id", "1"},        {"--mount", mnt_},           {"--nvlog", nvlog_},
        {"--nvlog-size", "1MiB"},  {"--volume", "vol0:1:" + vol_}};
    std::vector<std::string> a;
    for (auto& [flag, value] : base) {
      auto it = replace.find(flag);
      if (it != replace.end() && it->second.empty()) continue;  // dropped
      a.push_back(flag);
      a.push_back(it != replace.end() ? it->second : value);
    }
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // Runs hafsd to its exit; expects a refusal (non-zero, nothing mounted) mentioning every
  // one of `words` on stderr.
  void expect_refused(const std::vector<std::string>& a, const std::vector<std::string>& words) {
    std::string out;
    const int rc = HafsdProcess::run_to_exit(a, &out, std::chrono::seconds(15));
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(rc, -1) << "hafsd did not exit by itself:\n" << out;
    for (const auto& w : words) EXPECT_NE(out.find(w), std::string::npos) << "'" << w << "' not in:\n" << out;
    EXPECT_FALSE(is_mounted(mnt_));
  }

  std::string write_config(const std::string& text) const {
    const std::string path = dir_ + "/hafsd.toml";
    std::ofstream(path) << text;
    return path;
  }
  std::string good_config_body() const {
    return "node_id = 1\n"
           "mount = \"" + mnt_ + "\"\n"
           "[nvlog]\n"
           "path = \"" + nvlog_ + "\"\n"
           "size = \"1MiB\"\n"
           "[[volume]]\n"
           "name = \"vol0\"\n"
           "id = 1\n"
           "path = \"" + vol_ + "\"\n";
  }

  std::string dir_, mnt_, vol_, nvlog_;
};

TEST_F(BadInputTest, MissingConfigFile) {
  expect_refused({"-c", dir_ + "/no-such.toml"}, {"no-such.toml"});
}

TEST_F(BadInputTest, TomlSyntaxErrorNamesTheLine) {
  const std::string path = write_config("node_id = 1\nmount = \"/x\"\n\n[nvlog\nsize = 4\n");
  expect_refused({"-c", path}, {path, "line 4"});
}

TEST_F(BadInputTest, TomlBadValueNamesTheLine) {
  const std::string path = write_config("node_id = 1\nmount = = 3\n");
  expect_refused({"-c", path}, {"line 2"});
}

TEST_F(BadInputTest, UnknownSettings) {
  expect_refused({"-c", write_config(good_config_body() + "colour = \"blue\"\n")}, {"colour", "unknown setting"});
  expect_refused({"-c", write_config(good_config_body() + "[fs]\nthreadz = 4\n")}, {"fs.threadz", "unknown setting"});
  expect_refused(args({}, {"--set", "nvlog.sise=4MiB"}), {"nvlog.sise", "unknown setting"});
  expect_refused(args({}, {"--bogus-flag"}), {"bogus-flag"});
}

TEST_F(BadInputTest, ValuesOfTheWrongTypeOrRange) {
  expect_refused(args({}, {"--set", "fs.threads=0"}), {"fs.threads", "outside"});
  expect_refused(args({}, {"--set", "fs.sync_metadata=maybe"}), {"fs.sync_metadata"});
  expect_refused(args({}, {"--set", "nvlog.destage_interval_ms=-5"}), {"nvlog.destage_interval_ms"});
  expect_refused(args({}, {"--set", "log_level=loud"}), {"log_level", "loud"});
  expect_refused(args({}, {"--set", "interconnect.busy_poll_us=-1"}), {"interconnect.busy_poll_us", "outside"});
  expect_refused(args({{"--nvlog-size", "12XB"}}), {"nvlog.size", "XB"});
  expect_refused(args({}, {"--fault", "no.such.site=fail:EIO"}), {"--fault", "no.such.site"});
  expect_refused(args({}, {"--fault", "destage.before_write=explode"}), {"--fault", "explode"});
}

TEST_F(BadInputTest, MissingNodeId) {
  expect_refused(args({{"--node-id", ""}}), {"node_id", "missing"});
  std::string body = good_config_body();
  body.erase(0, body.find('\n') + 1);
  expect_refused({"-c", write_config(body)}, {"node_id", "missing"});
  expect_refused(args({{"--node-id", "0"}}), {"node_id"});
}

TEST_F(BadInputTest, MountPathRelativeMissingFileOrBusy) {
  expect_refused(args({{"--mount", "relative/mnt"}}), {"mount", "absolute"});
  expect_refused(args({{"--mount", ""}}), {"mount", "missing"});
  expect_refused(args({{"--mount", dir_ + "/no-such-dir"}}), {"mount point", "no-such-dir"});
  const std::string file = dir_ + "/a-file";
  std::ofstream(file) << "not a directory";
  std::string out;
  EXPECT_NE(HafsdProcess::run_to_exit(args({{"--mount", file}}), &out), 0) << out;
  EXPECT_NE(out.find("not a directory"), std::string::npos) << out;
  EXPECT_FALSE(is_mounted(file));
  EXPECT_EQ(slurp(file), "not a directory");
}

TEST_F(BadInputTest, MountPointBusy) {
  HafsdProcess node;
  std::string why;
  ASSERT_TRUE(node.start(&why)) << why;
  ASSERT_TRUE(spit(node.path("vol0/before"), "served"));
  std::string out;
  const int rc = HafsdProcess::run_to_exit(args({{"--mount", node.mount()}}), &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("busy"), std::string::npos) << out;
  // The first daemon still serves its mount, untouched.
  EXPECT_TRUE(node.running());
  EXPECT_EQ(slurp(node.path("vol0/before")), "served");
  ASSERT_TRUE(spit(node.path("vol0/after"), "still served"));
  EXPECT_EQ(slurp(node.path("vol0/after")), "still served");
  EXPECT_EQ(node.stop(), 0) << node.log();
  EXPECT_EQ(slurp(node.volume_dir("vol0") + "/after"), "still served");
}

TEST_F(BadInputTest, VolumeDirectoryMissingOrNotADirectory) {
  expect_refused(args({{"--volume", "vol0:1:" + dir_ + "/no-such-volume"}}),
                 {"vol0", "no-such-volume", "cannot open directory"});
  const std::string file = dir_ + "/plain-file";
  std::ofstream(file) << "x";
  expect_refused(args({{"--volume", "vol0:1:" + file}}), {"vol0", "plain-file"});
  expect_refused(args({{"--volume", ""}}), {"volume", "no volume"});
}

TEST_F(BadInputTest, DuplicateVolumeNamesAndIds) {
  std::filesystem::create_directories(dir_ + "/vol1");
  expect_refused(args({}, {"--volume", "vol0:2:" + dir_ + "/vol1"}), {"vol0", "appears twice"});
  expect_refused(args({}, {"--volume", "vol1:1:" + dir_ + "/vol1"}), {"vol1", "used twice"});
  const std::string body = good_config_body() + "[[volume]]\nname = \"vol0\"\nid = 7\npath = \"" + vol_ + "\"\n";
  expect_refused({"-c", write_config(body)}, {"vol0", "appears twice"});
}

TEST_F(BadInputTest, VolumeIdOutOfRange) {
  expect_refused(args({{"--volume", "vol0:0:" + vol_}}), {"vol0", "1..255"});
  expect_refused(args({{"--volume", "vol0:256:" + vol_}}), {"vol0", "1..255"});
  expect_refused(args({{"--volume", "vol0:x1:" + vol_}}), {"x1", "not a number"});
  expect_refused(args({{"--volume", "vol0:1:" + vol_ + ":fast"}}), {"fast", "staged or write-through"});
  expect_refused(args({{"--volume", "vol0"}}), {"NAME:ID:PATH"});
  std::string body = good_config_body();
  body.replace(body.find("\nid = 1\n"), 8, "\nid = 256\n");
  expect_refused({"-c", write_config(body)}, {"volume.id", "256"});
  body.replace(body.find("\nid = 256\n"), 10, "\nid = 0\n");
  expect_refused({"-c", write_config(body)}, {"volume.id", "0"});
}

TEST_F(BadInputTest, BadVolumeNames) {
  expect_refused(args({{"--volume", "..:1:" + vol_}}), {"'..'", "not a valid directory name"});
  expect_refused(args({{"--volume", std::string(256, 'v') + ":1:" + vol_}}), {"not a valid directory name"});
}

TEST_F(BadInputTest, NvlogSizeTooSmallOrUnaligned) {
  expect_refused(args({{"--nvlog-size", "64KiB"}}), {"nvlog.size", "72KiB"});
  expect_refused(args({{"--nvlog-size", "1000000"}}), {"nvlog.size", "multiple of 4096"});
  expect_refused(args({{"--nvlog-size", "0"}}), {"nvlog.size"});
  struct stat st {};
  EXPECT_NE(::stat(nvlog_.c_str(), &st), 0) << "a refused start created the NV log";
}

TEST_F(BadInputTest, ExistingNvlogOfAnotherSizeIsLeftAlone) {
  const std::string bytes = random_bytes(2 << 20, 7);
  ASSERT_TRUE(spit(nvlog_, bytes));
  expect_refused(args(), {nvlog_, "2097152 bytes", "1048576"});
  EXPECT_TRUE(slurp(nvlog_) == bytes) << "the NV log was modified";
}

TEST_F(BadInputTest, ExistingFileThatIsNotARingIsLeftAlone) {
  {
    ASSERT_TRUE(spit(nvlog_, random_bytes(1 << 20, 8)));
    expect_refused(args(), {"bad ring magic"});
  }
  for (const std::string& bytes : {random_bytes(1 << 20, 8), std::string(1 << 20, '\0')}) {
    ASSERT_TRUE(spit(nvlog_, bytes));
    expect_refused(args(), {"NV log", "no valid ring header"});
    EXPECT_TRUE(slurp(nvlog_) == bytes) << "the NV log was modified";
  }
}

TEST_F(BadInputTest, NvlogInAMissingDirectory) {
  expect_refused(args({{"--nvlog", dir_ + "/no-such-dir/log"}}), {"NV log", "no-such-dir"});
}

TEST_F(BadInputTest, NamesTooLongThroughTheMount) {
  HafsdProcess node;
  std::string why;
  ASSERT_TRUE(node.start(&why)) << why;
  const std::string too_long(256, 'x'), way_too_long(2000, 'y');
  for (const std::string& name : {too_long, way_too_long}) {
    const std::string p = node.path("vol0/" + name);
    errno = 0;
    EXPECT_EQ(::open(p.c_str(), O_CREAT | O_WRONLY, 0644), -1);
    EXPECT_EQ(errno, ENAMETOOLONG);
    errno = 0;
    EXPECT_EQ(::mkdir(p.c_str(), 0755), -1);
    EXPECT_EQ(errno, ENAMETOOLONG);
  }
  // A path longer than PATH_MAX made of short names.
  std::string deep = node.path("vol0");
  while (deep.size() < 5000) deep += "/" + std::string(200, 'd');
  errno = 0;
  EXPECT_EQ(::mkdir(deep.c_str(), 0755), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
  // The daemon is fine afterwards.
  ASSERT_TRUE(spit(node.path("vol0/short"), "ok"));
  EXPECT_EQ(slurp(node.path("vol0/short")), "ok");
  EXPECT_EQ(node.stop(), 0) << node.log();
  std::vector<std::string> names;  // the medium holds "short", and the inode pool (design.md §9a)
  for (const auto& e : std::filesystem::directory_iterator(node.volume_dir("vol0")))
    names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{".hafs-pool", "short"}));
}

// The destage target fails (EIO or ENOSPC, every time): writes are still acknowledged and read
// back, the medium does not get them, the daemon logs the failure and retries; a SIGTERM's final
// destage fails too (non-zero exit, records kept); a restart without the fault destages them.
class DestageFaultTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DestageFaultTest, AcknowledgedWritesSurviveAFailingMedium) {
  const std::string err = GetParam();
  HafsdSpec spec;
  spec.extra_args = {"--fault", "destage.before_write=fail:" + err + ",always", "--set",
                     "nvlog.destage_interval_ms=50"};
  HafsdProcess node(spec);
  std::string why;
  ASSERT_TRUE(node.start(&why)) << why;
  const std::string data = random_bytes(300000, 9);
  {
    int fd = ::open(node.path("vol0/f").c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size())) << std::strerror(errno);
    ASSERT_EQ(::write(fd, "tail", 4), 4);
    EXPECT_EQ(::fsync(fd), 0);
    EXPECT_EQ(::close(fd), 0);
  }
  const std::string want = data + "tail";
  EXPECT_TRUE(slurp(node.path("vol0/f")) == want);
  // The daemon reports the failure and retries it.
  EXPECT_TRUE(eventually([&] { return count_of(node.log(), "destage failed") >= 2; },
                         std::chrono::seconds(15)))
      << node.log();
  const std::string log = node.log();
  EXPECT_NE(log.find("injected fault at destage.before_write"), std::string::npos) << log;
  EXPECT_NE(log.find("retry"), std::string::npos) << log;
  EXPECT_NE(log.find(std::strerror(err == "EIO" ? EIO : ENOSPC)), std::string::npos) << log;
  EXPECT_EQ(slurp(node.volume_dir("vol0") + "/f"), "") << "the medium has data the fault should have stopped";
  EXPECT_TRUE(slurp(node.path("vol0/f")) == want);
  struct stat st {};
  ASSERT_EQ(::stat(node.path("vol0/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(want.size()));

  // SIGTERM: the final destage fails as well; the records stay in the NV log.
  EXPECT_NE(node.stop(), 0) << node.log();
  EXPECT_NE(node.log().find("final destage"), std::string::npos) << node.log();
  EXPECT_EQ(slurp(node.volume_dir("vol0") + "/f"), "");
  ASSERT_EQ(::stat(node.nvlog().c_str(), &st), 0);
  EXPECT_GT(st.st_size, 0);

  // Restart without the fault: recovery destages the records before serving.
  node.set_extra_args({});
  ASSERT_TRUE(node.start(&why)) << why;
  EXPECT_TRUE(slurp(node.volume_dir("vol0") + "/f") == want) << "recovery did not destage the records";
  EXPECT_NE(node.log().find("recovered records"), std::string::npos) << node.log();
  EXPECT_TRUE(slurp(node.path("vol0/f")) == want);
  EXPECT_EQ(node.stop(), 0) << node.log();
  EXPECT_TRUE(slurp(node.volume_dir("vol0") + "/f") == want);
}

INSTANTIATE_TEST_SUITE_P(Errnos, DestageFaultTest, ::testing::Values("EIO", "ENOSPC"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace hafs::testing
