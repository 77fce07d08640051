// hafsctl against real hafsd processes, and against sockets that are not hafsd: the table and
// the JSON of `status` (every field of docs/control-protocol.md, with its type), `flush`, the
// fault commands, the exit codes (0 done, 1 hafsd said no, 2 bad command line, 3 not reached or
// not hafsd), the raw control protocol, the socket file rules, and a mirrored pair whose partner
// dies. The real hafsctl binary is run as a child process every time.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/fault.h"
#include "tests/support/hafsd_process.h"
#include "tests/support/run_program.h"
#include "tests/support/wait.h"
#include "tests/tools/prometheus_text.h"

#ifndef HAFSCTL_BIN
#error "HAFSCTL_BIN must name the hafsctl binary"
#endif

namespace hafs::tools {
namespace {

using hafs::testing::free_port;
using hafs::testing::eventually;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using testing::HafsdProcess;
using testing::HafsdSpec;


std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A private scratch directory, removed at the end.
struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/hafsctl-test.XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

using CtlRun = testing::ProgramResult;

// Runs the real hafsctl with `args`; never waits longer than `limit` (then kills it: code -2).
CtlRun hafsctl(const std::vector<std::string>& args, std::chrono::milliseconds limit = 30s) {
  std::vector<std::string> full = {HAFSCTL_BIN};
  full.insert(full.end(), args.begin(), args.end());
  return testing::run_program(full, limit);
}

CtlRun ctl(const HafsdProcess& p, std::vector<std::string> args) {
  args.insert(args.begin(), {"--socket", p.control_socket()});
  return hafsctl(args);
}

json status_json(const HafsdProcess& p) {
  CtlRun r = ctl(p, {"status", "--json"});
  EXPECT_EQ(r.code, 0) << r;
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r;
  return j.is_discarded() ? json::object() : j;
}

// Writes `bytes` bytes (pattern `seed`) to `path` with O_DSYNC, in 64 KiB writes.
bool write_file(const std::string& path, size_t bytes, uint32_t seed) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_DSYNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  std::mt19937 rng(seed);
  std::vector<char> buf(64 * 1024);
  bool ok = true;
  for (size_t done = 0; done < bytes && ok;) {
    const size_t n = std::min(buf.size(), bytes - done);
    for (auto& c : buf) c = static_cast<char>(rng());
    ok = ::pwrite(fd, buf.data(), n, static_cast<off_t>(done)) == static_cast<ssize_t>(n);
    done += n;
  }
  return ::close(fd) == 0 && ok;
}

// ---- the documented status schema (docs/control-protocol.md), checked field by field ----

enum class T { kUnsigned, kInteger, kNumber, kString, kBool, kObject, kObjectOrNull };

bool has_type(const json& v, T t) {
  switch (t) {
    case T::kUnsigned: return v.is_number_unsigned();
    case T::kInteger: return v.is_number_integer();
    case T::kNumber: return v.is_number();
    case T::kString: return v.is_string();
    case T::kBool: return v.is_boolean();
    case T::kObject: return v.is_object();
    case T::kObjectOrNull: return v.is_object() || v.is_null();
  }
  return false;
}

using Schema = std::map<std::string, T>;

const Schema kNode = {{"id", T::kUnsigned}, {"pid", T::kInteger}, {"mount", T::kString},
                      {"uptime_s", T::kInteger}, {"state", T::kString}};
const Schema kNvlog = {{"path", T::kString}, {"mode", T::kString}, {"data_bytes", T::kUnsigned},
                       {"used_bytes", T::kUnsigned}, {"fill_pct", T::kNumber},
                       {"staged_bytes", T::kUnsigned}, {"extents", T::kUnsigned},
                       {"objects", T::kUnsigned}, {"complete_lsn", T::kUnsigned},
                       {"trim_lsn", T::kUnsigned}, {"records_appended", T::kUnsigned},
                       {"bytes_appended", T::kUnsigned}, {"space_waits", T::kUnsigned},
                       {"records_voided", T::kUnsigned}, {"destage", T::kObject}, {"meta", T::kObject}};
const Schema kMeta = {{"records", T::kUnsigned}, {"unsynced", T::kUnsigned}, {"syncs", T::kUnsigned}};
const Schema kDestage = {{"passes", T::kUnsigned}, {"bytes", T::kUnsigned}, {"errors", T::kUnsigned},
                         {"last_error", T::kString}, {"medium_full", T::kBool}};
const Schema kVolume = {{"name", T::kString}, {"id", T::kUnsigned}, {"path", T::kString},
                        {"mode", T::kString}, {"home", T::kUnsigned}, {"degraded_policy", T::kString},
                        {"owner", T::kUnsigned}, {"epoch", T::kUnsigned}, {"state", T::kString},
                        {"blocked", T::kString}, {"kept_extents", T::kUnsigned},
                        {"replay_pending", T::kBool}, {"inode_pool", T::kObject}};
const Schema kInodePool = {{"files", T::kUnsigned}, {"directories", T::kUnsigned}, {"refills", T::kUnsigned},
                           {"refilling", T::kBool}};
const Schema kMirror = {{"partner", T::kUnsigned}, {"state", T::kString}, {"degraded", T::kBool},
                        {"outdated_marked", T::kBool},
                        {"filled_pos", T::kUnsigned}, {"mirrored_pos", T::kUnsigned},
                        {"lag_bytes", T::kUnsigned}, {"lag_lsns", T::kUnsigned},
                        {"resync_bytes_left", T::kUnsigned}, {"resync", T::kObject},
                        {"last_ack_latency_us", T::kInteger}, {"ms_since_heard", T::kInteger},
                        {"connects", T::kUnsigned}, {"bytes_shipped", T::kUnsigned},
                        {"acks", T::kUnsigned}, {"acks_read_by_writers", T::kUnsigned},
                        {"last_error", T::kString}};
const Schema kResync = {{"bytes_total", T::kUnsigned}, {"bytes_done", T::kUnsigned},
                        {"rate_bytes_per_s", T::kNumber}, {"eta_ms", T::kInteger}};
const Schema kMirrorIn = {{"connected", T::kBool}, {"ring_id", T::kString}, {"session", T::kUnsigned},
                          {"acked_pos", T::kUnsigned}, {"trim_lsn", T::kUnsigned},
                          {"commits", T::kUnsigned}, {"acks", T::kUnsigned},
                          {"bytes_committed", T::kUnsigned}, {"refused", T::kUnsigned}, {"last_refusal", T::kString},
                          {"partner_epoch", T::kUnsigned}, {"frozen", T::kBool},
                          {"ms_since_heard", T::kInteger}};
const Schema kFault = {{"site", T::kString}, {"action", T::kString}, {"once", T::kBool},
                       {"probability", T::kNumber}, {"fired", T::kUnsigned}};

// Exactly the documented members, each of its documented type.
void expect_schema(const json& j, const Schema& schema, const std::string& where) {
  ASSERT_TRUE(j.is_object()) << where << " is not an object: " << j.dump();
  for (const auto& [key, type] : schema) {
    ASSERT_TRUE(j.contains(key)) << where << "." << key << " missing: " << j.dump();
    EXPECT_TRUE(has_type(j[key], type)) << where << "." << key << " has the wrong type: " << j[key].dump();
  }
  for (const auto& [key, value] : j.items())
    EXPECT_TRUE(schema.count(key)) << where << "." << key << " is not documented";
}

void expect_status_schema(const json& s, bool mirrored) {
  ASSERT_TRUE(s.is_object());
  const std::set<std::string> top = {"node", "nvlog", "volumes", "mirror", "mirror_in", "membership", "faults",
                                     "flush"};
  for (const auto& [key, value] : s.items()) EXPECT_TRUE(top.count(key)) << key << " is not documented";
  for (const auto& key : top) ASSERT_TRUE(s.contains(key)) << key << " missing";
  expect_schema(s["flush"], {{"running", T::kBool}, {"runs", T::kUnsigned}, {"last", T::kObjectOrNull}}, "flush");
  if (s["flush"]["last"].is_object())
    expect_schema(s["flush"]["last"], {{"ok", T::kBool}, {"error", T::kString}, {"ms", T::kInteger},
                                       {"staged_bytes_after", T::kUnsigned}}, "flush.last");
  expect_schema(s["node"], kNode, "node");
  expect_schema(s["nvlog"], kNvlog, "nvlog");
  expect_schema(s["nvlog"]["destage"], kDestage, "nvlog.destage");
  expect_schema(s["nvlog"]["meta"], kMeta, "nvlog.meta");
  ASSERT_TRUE(s["volumes"].is_array());
  for (const json& v : s["volumes"]) {
    expect_schema(v, kVolume, "volumes[]");
    expect_schema(v["inode_pool"], kInodePool, "volumes[].inode_pool");
  }
  if (mirrored) {
    expect_schema(s["mirror"], kMirror, "mirror");
    expect_schema(s["mirror"]["resync"], kResync, "mirror.resync");
    expect_schema(s["mirror_in"], kMirrorIn, "mirror_in");
    EXPECT_TRUE(std::regex_match(s["mirror_in"]["ring_id"].get<std::string>(), std::regex("[0-9a-f]{16}")))
        << s["mirror_in"].dump();
  } else {
    EXPECT_TRUE(s["mirror"].is_null());
    EXPECT_TRUE(s["mirror_in"].is_null());
  }
  ASSERT_TRUE(s["faults"].is_array());
  for (const json& f : s["faults"]) expect_schema(f, kFault, "faults[]");
}

// ---- one real node ----

class HafsctlTest : public ::testing::Test {
 protected:
  // Starts node 1 with one staged volume vol0; `extra` are more hafsd arguments.
  void start(std::vector<std::string> extra = {}) {
    HafsdSpec spec;
    spec.extra_args = std::move(extra);
    node_ = std::make_unique<HafsdProcess>(spec);
    std::string why;
    ASSERT_TRUE(node_->start(&why)) << why;
  }
  void TearDown() override {
    if (HasFailure() && node_) std::cerr << "---- hafsd log ----\n" << node_->log();
    node_.reset();
  }
  HafsdProcess& node() { return *node_; }
  std::unique_ptr<HafsdProcess> node_;
};

TEST_F(HafsctlTest, StatusPrintsTheTable) {
  start();
  CtlRun r = ctl(node(), {"status"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("node 1 (pid " + std::to_string(node().pid()) + ", up "), std::string::npos) << r;
  EXPECT_NE(r.out.find("normal, mount " + node().mount()), std::string::npos) << r;
  EXPECT_NE(r.out.find("NV log   " + node().nvlog() + " (pmem): "), std::string::npos) << r;
  EXPECT_NE(r.out.find("of 64.0 MiB used"), std::string::npos) << r;
  EXPECT_NE(r.out.find("mirror   none (single node)"), std::string::npos) << r;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("VOLUME +ID +MODE +OWNER +EPOCH +STATE"))) << r;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nvol0 +1 +staged +1 +1 +normal\n"))) << r;
  EXPECT_NE(r.out.find("faults   none armed"), std::string::npos) << r;
  EXPECT_EQ(r.err, "");
}

TEST_F(HafsctlTest, StatusJsonHasEveryDocumentedField) {
  start();
  json s = status_json(node());
  expect_status_schema(s, /*mirrored=*/false);
  EXPECT_EQ(s["node"]["id"], 1);
  EXPECT_EQ(s["node"]["pid"], node().pid());
  EXPECT_EQ(s["node"]["mount"], node().mount());
  EXPECT_EQ(s["node"]["state"], "normal");
  EXPECT_EQ(s["nvlog"]["path"], node().nvlog());
  EXPECT_EQ(s["nvlog"]["mode"], "pmem");
  EXPECT_GT(s["nvlog"]["data_bytes"].get<uint64_t>(), 0u);
  EXPECT_LE(s["nvlog"]["data_bytes"].get<uint64_t>(), uint64_t{64} << 20);
  EXPECT_EQ(s["nvlog"]["staged_bytes"], 0);
  ASSERT_EQ(s["volumes"].size(), 1u);
  const json& v = s["volumes"][0];
  EXPECT_EQ(v["name"], "vol0");
  EXPECT_EQ(v["id"], 1);
  EXPECT_EQ(v["path"], node().volume_dir("vol0"));
  EXPECT_EQ(v["mode"], "staged");
  EXPECT_EQ(v["owner"], 1);
  EXPECT_EQ(v["epoch"], 1);
  EXPECT_EQ(v["state"], "normal");
  EXPECT_TRUE(s["faults"].empty());
}

TEST_F(HafsctlTest, WritesMoveTheCountersAndFlushDestagesThem) {
  start({"--set", "nvlog.destage_interval_ms=60000"});  // nothing destages by itself meanwhile
  const json before = status_json(node());
  constexpr size_t kBytes = 3 * 64 * 1024;
  ASSERT_TRUE(write_file(node().path("vol0/f"), kBytes, 1));
  const json mid = status_json(node());
  const json &b = before["nvlog"], &m = mid["nvlog"];
  EXPECT_EQ(m["staged_bytes"].get<uint64_t>(), kBytes) << m.dump();
  EXPECT_GE(m["records_appended"].get<uint64_t>(), b["records_appended"].get<uint64_t>() + 3) << m.dump();
  EXPECT_EQ(m["bytes_appended"].get<uint64_t>(), b["bytes_appended"].get<uint64_t>() + kBytes) << m.dump();
  EXPECT_GT(m["used_bytes"].get<uint64_t>(), kBytes) << m.dump();
  EXPECT_GT(m["complete_lsn"].get<uint64_t>(), b["complete_lsn"].get<uint64_t>()) << m.dump();
  EXPECT_GT(m["fill_pct"].get<double>(), 0.0);
  EXPECT_EQ(m["objects"], 1);
  EXPECT_GE(m["extents"].get<uint64_t>(), 1u);

  CtlRun r = ctl(node(), {"flush"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("flush: destaged 192.0 KiB in "), std::string::npos) << r;
  EXPECT_EQ(r.out.find("\r"), std::string::npos) << "not a terminal: plain lines";
  const json after = status_json(node());
  const json& a = after["nvlog"];
  EXPECT_EQ(a["staged_bytes"], 0) << a.dump();
  EXPECT_EQ(a["extents"], 0) << a.dump();
  EXPECT_GE(a["destage"]["bytes"].get<uint64_t>(), kBytes) << a.dump();
  EXPECT_GT(a["destage"]["passes"].get<uint64_t>(), 0u);
  EXPECT_EQ(a["destage"]["errors"], 0);
  EXPECT_GT(a["trim_lsn"].get<uint64_t>(), m["trim_lsn"].get<uint64_t>());
  EXPECT_EQ(std::filesystem::file_size(node().volume_dir("vol0") + "/f"), kBytes);

  r = ctl(node(), {"flush", "vol0"});
  EXPECT_EQ(r.code, 0) << r;
  r = ctl(node(), {"flush", "NOPE"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("hafsctl: hafsd: no volume 'NOPE' on this node"), std::string::npos) << r;
}

TEST_F(HafsctlTest, FaultListNamesEverySite) {
  start();
  CtlRun r = ctl(node(), {"fault", "list"});
  ASSERT_EQ(r.code, 0) << r;
  for (const auto& info : kFaultSites) {
    char line[256];
    std::snprintf(line, sizeof line, "%-28s %s\n", info.name, info.what);
    EXPECT_NE(r.out.find(line), std::string::npos) << info.name << "\n" << r;
  }
  EXPECT_EQ(r.out.find("armed:"), std::string::npos) << r;
}

TEST_F(HafsctlTest, AnArmedDestageFaultShowsAsErrorsUntilCleared) {
  start();  // destage every 100 ms
  CtlRun r = ctl(node(), {"fault", "arm", "destage.before_write", "fail:EIO", "--always"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("destage.before_write=fail:EIO,always"), std::string::npos) << r;
  json s = status_json(node());
  ASSERT_EQ(s["faults"].size(), 1u) << s.dump();
  expect_status_schema(s, false);
  EXPECT_EQ(s["faults"][0]["site"], "destage.before_write");
  EXPECT_EQ(s["faults"][0]["action"], "fail:" + std::to_string(EIO));
  EXPECT_EQ(s["faults"][0]["once"], false);
  EXPECT_EQ(s["faults"][0]["probability"], 1.0);
  r = ctl(node(), {"fault", "list"});
  EXPECT_NE(r.out.find("armed: destage.before_write = fail:5"), std::string::npos) << r;

  ASSERT_TRUE(write_file(node().path("vol0/f"), 100000, 2));
  EXPECT_TRUE(eventually([&] {
    s = status_json(node());
    return s["nvlog"]["destage"]["errors"].get<uint64_t>() > 0;
  }, 20s)) << s.dump(2);
  EXPECT_NE(s["nvlog"]["destage"]["last_error"].get<std::string>().find("injected fault at destage.before_write"),
            std::string::npos) << s.dump(2);
  EXPECT_EQ(s["nvlog"]["staged_bytes"], 100000);
  EXPECT_GT(s["faults"][0]["fired"].get<uint64_t>(), 0u);
  r = ctl(node(), {"status"});
  EXPECT_NE(r.out.find("fault    destage.before_write = fail:5 (always), fired "), std::string::npos) << r;
  EXPECT_NE(r.out.find("; last: "), std::string::npos) << r;
  // A flush meets the same fault: hafsd answers with the error.
  r = ctl(node(), {"flush"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("injected fault at destage.before_write"), std::string::npos) << r;

  r = ctl(node(), {"fault", "clear"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("\"cleared\":\"all\""), std::string::npos) << r;
  EXPECT_TRUE(status_json(node())["faults"].empty());
  // The destager retries with a backoff of at most 5 s.
  EXPECT_TRUE(eventually([&] {
    s = status_json(node());
    return s["nvlog"]["staged_bytes"] == 0 && s["nvlog"]["destage"]["last_error"] == "";
  }, 30s)) << s.dump(2);
  EXPECT_NE(node().log().find("destage recovered"), std::string::npos);
}

TEST_F(HafsctlTest, FaultCommandsRefuseWhatIsWrong) {
  start();
  CtlRun r = ctl(node(), {"fault", "arm", "no.such_site", "crash"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("unknown fault site 'no.such_site'"), std::string::npos) << r;
  r = ctl(node(), {"fault", "arm", "destage.before_write", "explode"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("unknown fault action 'explode' (expected crash, delay:MS or fail:ERRNO)"), std::string::npos) << r;
  r = ctl(node(), {"fault", "arm", "destage.before_write", "fail:EWHAT"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("fail needs an errno name or number"), std::string::npos) << r;
  r = ctl(node(), {"fault", "arm", "destage.before_write", "delay:x"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("delay needs milliseconds"), std::string::npos) << r;
  r = ctl(node(), {"fault", "clear", "no.such_site"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("unknown fault site 'no.such_site'"), std::string::npos) << r;
  EXPECT_TRUE(status_json(node())["faults"].empty());

  // A once fault with a probability, then cleared by name.
  r = ctl(node(), {"fault", "arm", "destage.before_sync", "delay:5", "--probability", "0.5"});
  ASSERT_EQ(r.code, 0) << r;
  json s = status_json(node());
  ASSERT_EQ(s["faults"].size(), 1u);
  EXPECT_EQ(s["faults"][0]["action"], "delay:5");
  EXPECT_EQ(s["faults"][0]["once"], true);
  EXPECT_EQ(s["faults"][0]["probability"], 0.5);
  r = ctl(node(), {"fault", "clear", "destage.before_sync"});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_TRUE(status_json(node())["faults"].empty());
}

// ---- metrics (docs/operations.md, "Metrics") ----

// `hafsctl metrics`, parsed; every deviation from the text format fails the test.
testing::PromText metrics(const HafsdProcess& p) {
  CtlRun r = ctl(p, {"metrics"});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.err, "");
  testing::PromText m = testing::parse_prometheus_text(r.out);
  for (const std::string& e : m.errors) ADD_FAILURE() << e << "\n" << r.out;
  return m;
}

double metric(const testing::PromText& m, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  const auto v = m.value(name, labels);
  EXPECT_TRUE(v.has_value()) << "no sample " << name;
  return v.value_or(-1);
}

TEST_F(HafsctlTest, MetricsArePrometheusTextAndMoveWithWritesAndDestage) {
  start({"--set", "nvlog.destage_interval_ms=60000"});  // nothing destages by itself meanwhile
  const testing::PromText before = metrics(node());
  for (const char* h : {"hafs_write_ack_latency_seconds", "hafs_destage_latency_seconds"})
    EXPECT_EQ(before.type.at(h), "histogram") << h;
  for (const char* c : {"hafs_nvlog_write_records_total", "hafs_nvlog_staged_bytes_total",
                        "hafs_nvlog_space_waits_total", "hafs_destage_passes_total",
                        "hafs_destage_bytes_total", "hafs_destage_errors_total"})
    EXPECT_EQ(before.type.at(c), "counter") << c;
  for (const char* g : {"hafs_nvlog_used_bytes", "hafs_nvlog_capacity_bytes", "hafs_destage_backlog_bytes",
                        "hafs_degraded", "hafs_node_state", "hafs_uptime_seconds", "hafs_volume_epoch",
                        "hafs_volume_served"})
    EXPECT_EQ(before.type.at(g), "gauge") << g;
  EXPECT_FALSE(before.has_family("hafs_mirror_round_trip_seconds"));  // a single node
  EXPECT_FALSE(before.has_family("hafs_mirror_lag_bytes"));
  EXPECT_EQ(metric(before, "hafs_node_state", {{"state", "normal"}}), 1);
  EXPECT_EQ(metric(before, "hafs_degraded"), 0);
  EXPECT_EQ(metric(before, "hafs_volume_epoch", {{"volume", "vol0"}}), 1);
  EXPECT_EQ(metric(before, "hafs_volume_served", {{"volume", "vol0"}}), 1);
  EXPECT_EQ(metric(before, "hafs_nvlog_capacity_bytes"), status_json(node())["nvlog"]["data_bytes"].get<double>());

  constexpr size_t kBytes = 3 * 64 * 1024;  // three O_DSYNC writes
  ASSERT_TRUE(write_file(node().path("vol0/f"), kBytes, 1));
  const testing::PromText mid = metrics(node());
  EXPECT_GE(metric(mid, "hafs_write_ack_latency_seconds_count"),
            metric(before, "hafs_write_ack_latency_seconds_count") + 3);
  EXPECT_GT(metric(mid, "hafs_write_ack_latency_seconds_sum"), metric(before, "hafs_write_ack_latency_seconds_sum"));
  EXPECT_GE(metric(mid, "hafs_nvlog_write_records_total"), metric(before, "hafs_nvlog_write_records_total") + 3);
  EXPECT_EQ(metric(mid, "hafs_nvlog_staged_bytes_total"), metric(before, "hafs_nvlog_staged_bytes_total") + kBytes);
  EXPECT_EQ(metric(mid, "hafs_destage_backlog_bytes"), kBytes);
  EXPECT_GT(metric(mid, "hafs_nvlog_used_bytes"), kBytes);

  ASSERT_EQ(ctl(node(), {"flush"}).code, 0);
  const testing::PromText after = metrics(node());
  EXPECT_GE(metric(after, "hafs_destage_latency_seconds_count"), 1);
  EXPECT_GE(metric(after, "hafs_destage_bytes_total"), kBytes);
  EXPECT_EQ(metric(after, "hafs_destage_errors_total"), 0);
  EXPECT_EQ(metric(after, "hafs_destage_backlog_bytes"), 0);

  CtlRun help = hafsctl({"metrics", "--help"});
  EXPECT_EQ(help.code, 0) << help;
  EXPECT_NE(help.out.find("Prometheus"), std::string::npos) << help;
}

// ---- the raw protocol ----

// A client of a Unix socket speaking lines, with deadlines.
class LineClient {
 public:
  explicit LineClient(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~LineClient() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // The next line, or "<closed>" / "<timeout>".
  std::string line(std::chrono::milliseconds limit = 10s) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{fd_, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return "<timeout>";
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return "<closed>";
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  json response(std::chrono::milliseconds limit = 10s) {
    const std::string l = line(limit);
    json j = json::parse(l, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << l;
    return j;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

TEST_F(HafsctlTest, TheProtocolAsDocumented) {
  start();
  struct stat st {};
  ASSERT_EQ(::lstat(node().control_socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  {
  LineClient c(node().control_socket());
  ASSERT_TRUE(c.connected());
  // Several requests on one connection, even in one write; answers in order.
  ASSERT_TRUE(c.send("{\"version\": 1, \"op\": \"status\"}\n{\"version\": 1, \"op\": \"fault.list\"}\n"));
  json a = c.response(), b = c.response();
  EXPECT_EQ(a["version"], 1);
  EXPECT_EQ(a["ok"], true);
  expect_status_schema(a["result"], false);
  EXPECT_EQ(b["ok"], true);
  EXPECT_EQ(b["result"]["sites"].size(), kFaultSites.size());
  EXPECT_TRUE(b["result"]["armed"].is_array());

  const std::pair<std::string, std::string> refusals[] = {
      {"{\"version\": 2, \"op\": \"status\"}", "unsupported control protocol version 2 (this hafsd speaks 1)"},
      {"{\"op\": \"status\"}", "unsupported control protocol version 0 (this hafsd speaks 1)"},
      {"{\"version\": \"1\", \"op\": \"status\"}", "unsupported control protocol version \"1\" (this hafsd speaks 1)"},
      {"not json", "malformed request: not a JSON object"},
      {"[1, 2]", "malformed request: not a JSON object"},
      {"{\"version\": 1, \"op\": \"reboot\"}", "unknown operation 'reboot'"},
      {"{\"version\": 1, \"op\": 5}", "malformed request: "},
      {"{\"version\": 1, \"op\": \"flush\", \"volume\": 7}", "malformed request: "},
      {"{\"version\": 1, \"op\": \"fault.arm\", \"site\": \"log.after_fill\"}", "unknown fault action ''"},
  };
  for (const auto& [request, error] : refusals) {
    ASSERT_TRUE(c.send(request + "\n"));
    json r = c.response();
    EXPECT_EQ(r["version"], 1) << request;
    EXPECT_EQ(r["ok"], false) << request;
    EXPECT_FALSE(r.contains("result")) << request;
    ASSERT_TRUE(r["error"].is_string()) << request;
    EXPECT_EQ(r["error"].get<std::string>().rfind(error, 0), 0u) << request << " -> " << r.dump();
  }
  // The connection and the server survived every refusal.
  ASSERT_TRUE(c.send("{\"version\": 1, \"op\": \"flush\"}\n"));
  json f = c.response();
  EXPECT_EQ(f["ok"], true) << f.dump();
  EXPECT_EQ(f["result"]["staged_bytes"], 0);
  EXPECT_TRUE(f["result"]["trim_lsn"].is_number_unsigned());
  }

  // A request line longer than 64 KiB is refused and the connection closed.
  LineClient big(node().control_socket());
  ASSERT_TRUE(big.connected());
  ASSERT_TRUE(big.send(std::string(70000, ' ')));
  json t = big.response();
  EXPECT_EQ(t["ok"], false);
  EXPECT_EQ(t["error"], "request too long");
  EXPECT_EQ(big.line(), "<closed>");

  // Clients that send nothing are dropped after 5 s; meanwhile they hold nothing but their own
  // slot: status is answered at once (one idle client used to hold the single server for 5 s,
  // and 300 made hafsctl fail).
  std::vector<std::unique_ptr<LineClient>> idle;
  for (int i = 0; i < 40; ++i) {
    idle.push_back(std::make_unique<LineClient>(node().control_socket()));
    ASSERT_TRUE(idle.back()->connected());
  }
  const auto t0 = Clock::now();
  CtlRun busy = ctl(node(), {"--timeout", "2", "status"});
  EXPECT_EQ(busy.code, 0) << "status with 40 idle clients connected: " << busy;
  EXPECT_EQ(idle.front()->line(15s), "<closed>");
  const auto idled = Clock::now() - t0;
  EXPECT_GT(idled, 3s);
  EXPECT_LT(idled, 8s);
  EXPECT_EQ(ctl(node(), {"status"}).code, 0);
}

TEST_F(HafsctlTest, ClientsBeyondTheLimitAreRefusedWithAReason) {
  start();
  std::vector<std::unique_ptr<LineClient>> held;
  for (int i = 0; i < 64; ++i) held.push_back(std::make_unique<LineClient>(node().control_socket()));
  ASSERT_TRUE(eventually([&] {
    LineClient extra(node().control_socket());
    return extra.connected() && extra.line(2s).find("too many clients") != std::string::npos;
  }, 10s));
  held.clear();
  EXPECT_TRUE(eventually([&] { return ctl(node(), {"status"}).code == 0; }, 10s));
}

// ---- the socket file ----

TEST_F(HafsctlTest, ASocketOfALiveHafsdIsRefusedAStaleOneReplaced) {
  start();
  // A second hafsd on the same control socket: refused, exit 1, the first one untouched.
  HafsdSpec spec;
  spec.node_id = 2;
  spec.extra_args = {"--set", "control_socket=\"" + node().control_socket() + "\""};
  {
    HafsdProcess second(spec);
    std::string why;
    EXPECT_FALSE(second.start(&why, 20s));
    EXPECT_NE(why.find("control socket " + node().control_socket() + " is in use by a running hafsd"),
              std::string::npos) << why;
  }
  EXPECT_EQ(status_json(node())["node"]["id"], 1);

  // kill -9 leaves the socket file behind; the next start replaces it.
  node().kill9();
  ASSERT_TRUE(std::filesystem::exists(node().control_socket()));
  CtlRun down = ctl(node(), {"status"});
  EXPECT_EQ(down.code, 3) << down;
  EXPECT_NE(down.err.find("cannot reach hafsd at " + node().control_socket()), std::string::npos) << down;
  std::string why;
  ASSERT_TRUE(node().start(&why)) << why;
  EXPECT_EQ(status_json(node())["node"]["pid"], node().pid());

  // A path that is not a socket is never removed; the start fails.
  TempDir tmp;
  const std::string file = tmp.path + "/not-a-socket";
  std::ofstream(file) << "keep me\n";
  spec.extra_args = {"--set", "control_socket=\"" + file + "\""};
  {
    HafsdProcess third(spec);
    EXPECT_FALSE(third.start(&why, 20s));
    EXPECT_NE(why.find("exists and is not a socket"), std::string::npos) << why;
  }
  EXPECT_EQ(read_file(file), "keep me\n");

  // Missing directories are made, not writable by others.
  const std::string nested = tmp.path + "/run/hafs/ctl.sock";
  spec.extra_args = {"--set", "control_socket=\"" + nested + "\""};
  {
    HafsdProcess fourth(spec);
    ASSERT_TRUE(fourth.start(&why)) << why;
    struct stat st {};
    ASSERT_EQ(::stat((tmp.path + "/run").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 022, 0u) << std::oct << st.st_mode;
    CtlRun r = hafsctl({"--socket", nested, "status", "--json"});
    EXPECT_EQ(r.code, 0) << r;
  }
  EXPECT_FALSE(std::filesystem::exists(nested));  // a clean stop removes its socket
}

// ---- the command line; unreachable nodes; things that are not hafsd ----

TEST(HafsctlCommandLine, BadCommandLinesExitTwo) {
  TempDir tmp;
  const std::string sock = tmp.path + "/none.sock";
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate"},
      {"status", "--bogus"},
      {"--bogus", "status"},
      {"fault"},
      {"fault", "explode"},
      {"fault", "arm", "destage.before_write"},
      {"fault", "arm", "destage.before_write", "fail:EIO", "--probability", "2"},
      {"flush", "a", "b"},
      {"metrics", "extra"},
      {"--timeout", "0", "status"},
      {"--node", "x", "status"},
  };
  for (auto args : bad) {
    args.insert(args.begin(), {"--socket", sock});
    CtlRun r = hafsctl(args);
    std::string line;
    for (const auto& a : args) line += a + " ";
    EXPECT_EQ(r.code, 2) << line << r;
    EXPECT_NE(r.err, "") << line;
  }
  CtlRun help = hafsctl({"--help"});
  EXPECT_EQ(help.code, 0) << help;
  EXPECT_NE(help.out.find("status"), std::string::npos);
}

TEST(HafsctlCommandLine, ANodeThatIsDownExitsThree) {
  TempDir tmp;
  const std::string sock = tmp.path + "/hafsd-1.sock";
  CtlRun r = hafsctl({"--socket", sock, "status"});
  EXPECT_EQ(r.code, 3) << r;
  EXPECT_NE(r.err.find("cannot reach hafsd at " + sock + ": No such file or directory (is hafsd running?"),
            std::string::npos) << r;
  // A socket file nobody listens on (a crashed hafsd's).
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::close(fd);
  r = hafsctl({"--socket", sock, "fault", "list"});
  EXPECT_EQ(r.code, 3) << r;
  EXPECT_NE(r.err.find("cannot reach hafsd at " + sock + ": Connection refused"), std::string::npos) << r;
  // --node N names /run/hafs/hafsd-N.sock.
  if (!std::filesystem::exists("/run/hafs/hafsd-977.sock")) {
    r = hafsctl({"--node", "977", "status"});
    EXPECT_EQ(r.code, 3) << r;
    EXPECT_NE(r.err.find("cannot reach hafsd at /run/hafs/hafsd-977.sock"), std::string::npos) << r;
  }
}

// A Unix socket server that is not hafsd.
class FakeServer {
 public:
  // kNeverAccepts: listens but never accepts, and its backlog is full (a stopped hafsd with
  // clients queued): even connect() would wait.
  enum class Mode {
    kGarbage, kCloseAtOnce, kReadThenClose, kSilent, kNotAnObject, kWrongTypes, kEmptyResult, kNeverAccepts
  };

  explicit FakeServer(Mode mode) : mode_(mode), path_(tmp_.path + "/fake.sock") {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
          ::listen(fd_, mode == Mode::kNeverAccepts ? 0 : 8) == 0;
    if (ok_ && mode == Mode::kNeverAccepts) {
      for (int i = 0; i < 16; ++i) {  // fill the backlog
        int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        held_.push_back(c);
        if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) break;
      }
    } else if (ok_) {
      thread_ = std::thread([this] { run(); });
    }
  }
  ~FakeServer() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    for (int c : held_) ::close(c);
    ::close(fd_);
  }
  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }

 private:
  void run() {
    while (!stop_.load()) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      if (mode_ == Mode::kCloseAtOnce) {
        ::close(c);
        continue;
      }
      if (mode_ == Mode::kSilent) {  // holds the connection, says nothing
        held_.push_back(c);
        continue;
      }
      read_line(c);
      const char* answer = mode_ == Mode::kGarbage       ? "garbage\n"
                           : mode_ == Mode::kNotAnObject ? "{\"version\": 1, \"ok\": true, \"result\": 5}\n"
                           : mode_ == Mode::kWrongTypes  ? "{\"version\": 1, \"ok\": false, \"error\": {\"no\": \"string\"}}\n"
                           : mode_ == Mode::kEmptyResult ? "{\"version\": 1, \"ok\": true, \"result\": {}}\n"
                                                         : "";
      if (*answer && ::send(c, answer, std::strlen(answer), MSG_NOSIGNAL) < 0) { /* client gone */ }
      ::close(c);
    }
  }
  void read_line(int c) {
    std::string buf;
    const auto deadline = Clock::now() + 5s;
    while (buf.find('\n') == std::string::npos && Clock::now() < deadline && !stop_.load()) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char chunk[4096];
      ssize_t n = ::recv(c, chunk, sizeof chunk, 0);
      if (n <= 0) return;
      buf.append(chunk, static_cast<size_t>(n));
    }
  }

  Mode mode_;
  TempDir tmp_;
  std::string path_;
  int fd_ = -1;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<int> held_;  // only touched by the thread (if any) until it is joined
};

TEST(HafsctlCommandLine, ASocketThatIsNotHafsdExitsThreeAndNeverHangs) {
  struct Case {
    FakeServer::Mode mode;
    std::vector<std::string> args;
    std::vector<std::string> any_of;  // stderr contains one of these
  };
  const Case cases[] = {
      {FakeServer::Mode::kGarbage, {"status"}, {"did not answer like hafsd (malformed response)"}},
      {FakeServer::Mode::kReadThenClose, {"status"}, {"closed the connection without an answer"}},
      {FakeServer::Mode::kCloseAtOnce, {"status"}, {"closed the connection without an answer", "cannot send to"}},
      {FakeServer::Mode::kSilent, {"--timeout", "0.5", "status"}, {"no answer from", "within 0.5"}},
      {FakeServer::Mode::kNotAnObject, {"status"}, {"did not answer like hafsd"}},
      {FakeServer::Mode::kNotAnObject, {"status", "--json"}, {"did not answer like hafsd"}},
      {FakeServer::Mode::kWrongTypes, {"flush"}, {"did not answer like hafsd"}},
      {FakeServer::Mode::kEmptyResult, {"metrics"}, {"did not answer like hafsd"}},  // no "text"
      {FakeServer::Mode::kNeverAccepts, {"--timeout", "0.5", "status"}, {"cannot reach hafsd at"}},
  };
  for (const auto& c : cases) {
    FakeServer server(c.mode);
    ASSERT_TRUE(server.ok());
    std::vector<std::string> args = {"--socket", server.path()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CtlRun r = hafsctl(args, 10s);
    EXPECT_EQ(r.code, 3) << static_cast<int>(c.mode) << r;
    bool found = false;
    for (const auto& s : c.any_of) found |= r.err.find(s) != std::string::npos;
    EXPECT_TRUE(found) << static_cast<int>(c.mode) << r;
    EXPECT_EQ(r.out, "") << static_cast<int>(c.mode);
    EXPECT_LT(r.took, 3s) << static_cast<int>(c.mode);
  }
}

// ---- a mirrored pair ----


class HafsctlPairTest : public ::testing::Test {
 protected:
  void start_pair(const std::vector<std::string>& extra) {
    const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
    std::string port[2];
    for (int i = 0; i < 2; ++i) {
      port[i] = free_port();
      mirror_[i] = "/dev/shm/hafsctl-test-" + tag + "-mirror" + std::to_string(i + 1);
    }
    for (int i = 0; i < 2; ++i) {
      HafsdSpec spec;
      spec.node_id = static_cast<uint32_t>(i + 1);
      spec.volumes = {{"vol" + std::to_string(i + 1), "staged"}};
      spec.extra_args = {"--set", "interconnect.partner_node_id=" + std::to_string(2 - i),
                         "--set", "interconnect.listen=127.0.0.1:" + port[i],
                         "--set", "interconnect.partner=127.0.0.1:" + port[1 - i],
                         "--set", "interconnect.key=hafsctl-test-key",
                         "--set", "interconnect.mirror_path=" + mirror_[i]};
      spec.extra_args.insert(spec.extra_args.end(), extra.begin(), extra.end());
      nodes_[i] = std::make_unique<HafsdProcess>(spec);
    }
    for (auto& n : nodes_) {
      std::string why;
      ASSERT_TRUE(n->start(&why)) << why;
    }
  }
  void TearDown() override {
    for (int i = 0; i < 2; ++i) {
      if (HasFailure() && nodes_[i]) std::cerr << "---- node " << i + 1 << " log ----\n" << nodes_[i]->log();
      nodes_[i].reset();
      if (!mirror_[i].empty()) std::filesystem::remove(mirror_[i]);
    }
  }
  HafsdProcess& node(int id) { return *nodes_[id - 1]; }

  std::unique_ptr<HafsdProcess> nodes_[2];
  std::string mirror_[2];
};

TEST_F(HafsctlPairTest, StatusShowsTheMirrorAndThenDegradedMode) {
  start_pair({"--set", "interconnect.mirror_wait_ms=300"});
  json s[2];
  for (int id = 1; id <= 2; ++id) {
    EXPECT_TRUE(eventually([&] {
      s[id - 1] = status_json(node(id));
      return s[id - 1]["mirror"]["state"] == "mirroring" && s[id - 1]["mirror_in"]["connected"] == true;
    }, 30s)) << "node " << id << ": " << s[id - 1].dump(2);
  }
  for (int id = 1; id <= 2; ++id) {
    const json& j = s[id - 1];
    expect_status_schema(j, /*mirrored=*/true);
    EXPECT_EQ(j["node"]["id"], id);
    EXPECT_EQ(j["node"]["state"], "normal");
    EXPECT_EQ(j["mirror"]["partner"], 3 - id);
    EXPECT_EQ(j["mirror"]["degraded"], false);
    EXPECT_GE(j["mirror"]["connects"].get<uint64_t>(), 1u);
    EXPECT_EQ(j["volumes"][0]["name"], "vol" + std::to_string(id));
    EXPECT_EQ(j["volumes"][0]["state"], "normal");
    CtlRun r = ctl(node(id), {"status"});
    EXPECT_EQ(r.code, 0) << r;
    EXPECT_NE(r.out.find("mirror   -> node " + std::to_string(3 - id) + ": mirroring, lag "), std::string::npos) << r;
    EXPECT_NE(r.out.find("mirror   <- partner: connected, "), std::string::npos) << r;
  }

  // Writes on node 1 are committed into node 2's mirror.
  ASSERT_TRUE(write_file(node(1).path("vol1/a"), 256 * 1024, 3));
  json one, two = status_json(node(2));
  EXPECT_TRUE(eventually([&] {
    one = status_json(node(1));
    return one["mirror"]["lag_bytes"] == 0;
  }, 10s)) << one.dump(2);
  EXPECT_EQ(one["mirror"]["mirrored_pos"], one["mirror"]["filled_pos"]) << one.dump(2);
  EXPECT_GT(one["mirror"]["bytes_shipped"].get<uint64_t>(), 256u * 1024) << one.dump(2);
  EXPECT_GE(one["mirror"]["last_ack_latency_us"].get<int64_t>(), 0);
  EXPECT_GT(two["mirror_in"]["commits"].get<uint64_t>(), 0u) << two.dump(2);
  EXPECT_GT(two["mirror_in"]["bytes_committed"].get<uint64_t>(), 256u * 1024) << two.dump(2);

  // The partner dies; the next write waits mirror_wait_ms and is acknowledged degraded.
  node(2).kill9();
  ASSERT_TRUE(write_file(node(1).path("vol1/b"), 4096, 4));
  EXPECT_TRUE(eventually([&] {
    one = status_json(node(1));
    return one["mirror"]["degraded"] == true;
  }, 30s)) << one.dump(2);
  EXPECT_EQ(one["node"]["state"], "degraded") << one.dump(2);
  EXPECT_EQ(one["volumes"][0]["state"], "degraded") << one.dump(2);
  EXPECT_NE(one["mirror"]["state"], "mirroring") << one.dump(2);
  CtlRun r = ctl(node(1), {"status"});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("(DEGRADED: writes are in this node's NV log only)"), std::string::npos) << r;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nvol1 +1 +staged +1 +1 +degraded\n"))) << r;
  CtlRun dead = ctl(node(2), {"status"});
  EXPECT_EQ(dead.code, 3) << dead;
}

TEST_F(HafsctlPairTest, MetricsShowTheMirrorRoundTrip) {
  start_pair({});
  json s;
  ASSERT_TRUE(eventually([&] {
    s = status_json(node(1));
    return s["mirror"]["state"] == "mirroring";
  }, 30s)) << s.dump(2);
  ASSERT_TRUE(write_file(node(1).path("vol1/a"), 256 * 1024, 5));
  const testing::PromText m = metrics(node(1));
  EXPECT_EQ(m.type.at("hafs_mirror_round_trip_seconds"), "histogram");
  EXPECT_GE(metric(m, "hafs_mirror_round_trip_seconds_count"), 4);  // one COMMIT per 64 KiB write at least
  EXPECT_GT(metric(m, "hafs_mirror_bytes_shipped_total"), 256 * 1024);
  EXPECT_GE(metric(m, "hafs_mirror_connects_total"), 1);
  EXPECT_GE(metric(m, "hafs_mirror_lag_bytes"), 0);
  EXPECT_EQ(metric(m, "hafs_degraded"), 0);
  EXPECT_EQ(metric(m, "hafs_volume_served", {{"volume", "vol1"}}), 1);
  // The write waited for the mirror: its acknowledgement took at least one round trip.
  EXPECT_GE(metric(m, "hafs_write_ack_latency_seconds_count"), 4);
}

}  // namespace
}  // namespace hafs::tools
