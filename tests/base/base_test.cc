// base/: CRC32C, Status and Result, and the fault registry every fault-injection test builds on.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <regex>
#include <csignal>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/crc32c.h"
#include "base/fault.h"
#include "base/logger.h"
#include "base/status.h"

namespace hafs {
namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---- CRC32C -------------------------------------------------------------------------------

TEST(Crc32cTest, CheckValueOfTheStandardTestStringMatchesCastagnoli) {
  const char* s = "123456789";
  EXPECT_EQ(crc32c(s, 9), 0xE3069283u);
}

TEST(Crc32cTest, EmptyInputHasCrcZero) {
  EXPECT_EQ(crc32c(nullptr, 0), 0u);
  EXPECT_EQ(crc32c(std::span<const std::byte>{}), 0u);
  EXPECT_EQ(crc32c_extend(0x12345678u, "x", 0), 0x12345678u);
}

TEST(Crc32cTest, KnownVectorsFromRfc3720Match) {
  // iSCSI (RFC 3720, B.4) test patterns.
  std::vector<unsigned char> zeros(32, 0x00), ones(32, 0xff), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[i] = static_cast<unsigned char>(i);
    dec[i] = static_cast<unsigned char>(31 - i);
  }
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(crc32c(inc.data(), inc.size()), 0x46DD794Eu);
  EXPECT_EQ(crc32c(dec.data(), dec.size()), 0x113FDB5Cu);
}

TEST(Crc32cTest, ExtendingInPiecesEqualsOneShotForEverySplit) {
  std::mt19937_64 rng(7);
  std::vector<std::byte> data(1000);
  for (auto& b : data) b = static_cast<std::byte>(rng());
  const uint32_t whole = crc32c(data);
  for (size_t split = 0; split <= data.size(); split += 37) {
    uint32_t c = crc32c_extend(0, data.data(), split);
    c = crc32c_extend(c, data.data() + split, data.size() - split);
    EXPECT_EQ(c, whole) << "split at " << split;
  }
  uint32_t c = 0;  // byte by byte exercises the unaligned tail path
  for (const auto& b : data) c = crc32c_extend(c, &b, 1);
  EXPECT_EQ(c, whole);
}

TEST(Crc32cTest, FlippingAnyBitChangesTheCrc) {
  std::vector<std::byte> data(64, std::byte{0x33});
  const uint32_t base = crc32c(data);
  for (size_t bit = 0; bit < data.size() * 8; ++bit) {
    data[bit / 8] ^= std::byte(1u << (bit % 8));
    EXPECT_NE(crc32c(data), base) << "bit " << bit;
    data[bit / 8] ^= std::byte(1u << (bit % 8));
  }
}

// ---- Status and Result --------------------------------------------------------------------

TEST(StatusTest, DefaultStatusIsOkAndPrintsOk) {
  Status s;
  EXPECT_TRUE(s.is_ok());
  EXPECT_TRUE(static_cast<bool>(s));
  EXPECT_EQ(s.code(), Code::kOk);
  EXPECT_EQ(s.to_errno(), 0);
  EXPECT_EQ(s.to_string(), "ok");
}

TEST(StatusTest, ErrorCarriesCodeMessageAndErrno) {
  Status s = Status::error(Code::kCorruption, "bad magic");
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_EQ(s.message(), "bad magic");
  EXPECT_EQ(s.sys_errno(), 0);
  EXPECT_EQ(s.to_errno(), EIO);
  EXPECT_EQ(s.to_string(), "corruption: bad magic");
}

TEST(StatusTest, FromErrnoMapsTheCodeAndKeepsTheErrno) {
  EXPECT_EQ(Status::from_errno(ENOSPC, "x").code(), Code::kNoSpace);
  EXPECT_EQ(Status::from_errno(EDQUOT, "x").code(), Code::kNoSpace);
  EXPECT_EQ(Status::from_errno(ESTALE, "x").code(), Code::kStale);
  EXPECT_EQ(Status::from_errno(ENOENT, "x").code(), Code::kNotFound);
  EXPECT_EQ(Status::from_errno(EINVAL, "x").code(), Code::kInvalidArgument);
  EXPECT_EQ(Status::from_errno(ETIMEDOUT, "x").code(), Code::kTimedOut);
  Status eio = Status::from_errno(EIO, "pwrite of /v/f");
  EXPECT_EQ(eio.code(), Code::kIoError);
  EXPECT_EQ(eio.sys_errno(), EIO);
  EXPECT_EQ(eio.to_errno(), EIO);
  EXPECT_TRUE(contains(eio.to_string(), "pwrite of /v/f")) << eio.to_string();
  EXPECT_TRUE(contains(eio.to_string(), std::strerror(EIO))) << eio.to_string();
}

TEST(StatusTest, ToErrnoFollowsTheCodeWhenThereIsNoErrno) {
  EXPECT_EQ(Status::error(Code::kInvalidArgument, "").to_errno(), EINVAL);
  EXPECT_EQ(Status::error(Code::kNotFound, "").to_errno(), ENOENT);
  EXPECT_EQ(Status::error(Code::kNoSpace, "").to_errno(), ENOSPC);
  EXPECT_EQ(Status::error(Code::kStale, "").to_errno(), ESTALE);
  EXPECT_EQ(Status::error(Code::kTimedOut, "").to_errno(), ETIMEDOUT);
  EXPECT_EQ(Status::error(Code::kUnavailable, "").to_errno(), EAGAIN);
  EXPECT_EQ(Status::error(Code::kStaleEpoch, "").to_errno(), EIO);
}

TEST(StatusTest, WithContextPrefixesTheMessageAndKeepsCodeAndErrno) {
  Status s = Status::from_errno(ENOSPC, "pwrite").with_context("destage of volume 3");
  EXPECT_EQ(s.code(), Code::kNoSpace);
  EXPECT_EQ(s.sys_errno(), ENOSPC);
  EXPECT_EQ(s.message(), "destage of volume 3: pwrite");
  EXPECT_TRUE(Status::ok().with_context("anything").is_ok());
}

TEST(StatusTest, EveryCodeHasAName) {
  for (int c = 0; c <= static_cast<int>(Code::kAborted); ++c)
    EXPECT_STRNE(code_name(static_cast<Code>(c)), "unknown") << c;
}

Status fails_early(bool fail, int* reached) {
  HAFS_RETURN_IF_ERROR(fail ? Status::error(Code::kAborted, "stop") : Status::ok());
  ++*reached;
  return Status::ok();
}

TEST(StatusTest, ReturnIfErrorReturnsTheFailureAndGoesOnOnOk) {
  int reached = 0;
  EXPECT_EQ(fails_early(true, &reached).code(), Code::kAborted);
  EXPECT_EQ(reached, 0);
  EXPECT_TRUE(fails_early(false, &reached).is_ok());
  EXPECT_EQ(reached, 1);
}

TEST(ResultTest, ValueResultIsOkAndGivesTheValue) {
  Result<std::string> r(std::string("hello"));
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(r.status().is_ok());
  EXPECT_EQ(*r, "hello");
  EXPECT_EQ(r->size(), 5u);
  std::string moved = std::move(r).value();
  EXPECT_EQ(moved, "hello");
}

TEST(ResultTest, ErrorResultCarriesItsStatus) {
  Result<int> r(Status::error(Code::kNotFound, "no such volume"));
  EXPECT_FALSE(r.is_ok());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_EQ(r.status().message(), "no such volume");
}

TEST(ResultDeathTest, ValueOfAnErrorResultCrashes) {
  Result<int> r(Status::error(Code::kNotFound, "no such volume"));
  EXPECT_DEATH({ (void)r.value(); }, "no such volume");
}

TEST(ResultDeathTest, ResultBuiltFromOkStatusCrashes) {
  EXPECT_DEATH({ Result<int> r(Status::ok()); (void)r; }, "OK status");
}

// ---- fault actions ------------------------------------------------------------------------

TEST(ParseFaultActionTest, CrashParses) {
  auto r = parse_fault_action("crash");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->action, FaultAction::kCrash);
}

TEST(ParseFaultActionTest, DelayParsesMilliseconds) {
  auto r = parse_fault_action("delay:250");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->action, FaultAction::kDelay);
  EXPECT_EQ(r->delay_ms, 250u);
  auto zero = parse_fault_action("delay:0");
  ASSERT_TRUE(zero.is_ok());
  EXPECT_EQ(zero->delay_ms, 0u);
}

TEST(ParseFaultActionTest, FailParsesErrnoNamesAndNumbers) {
  auto eio = parse_fault_action("fail:EIO");
  ASSERT_TRUE(eio.is_ok());
  EXPECT_EQ(eio->action, FaultAction::kFail);
  EXPECT_EQ(eio->errno_value, EIO);
  auto enospc = parse_fault_action("fail:ENOSPC");
  ASSERT_TRUE(enospc.is_ok());
  EXPECT_EQ(enospc->errno_value, ENOSPC);
  auto five = parse_fault_action("fail:5");
  ASSERT_TRUE(five.is_ok());
  EXPECT_EQ(five->errno_value, 5);
}

TEST(ParseFaultActionTest, BadInputsAreInvalidArgumentsThatQuoteTheInput) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "unknown fault action"},
      {"boom", "unknown fault action"},
      {"CRASH", "unknown fault action"},
      {"crash:1", "unknown fault action"},
      {"delay:", "milliseconds"},
      {"delay:abc", "milliseconds"},
      {"delay:-5", "milliseconds"},
      {"delay:10ms", "milliseconds"},
      {"delay:600001", "milliseconds"},
      {"fail:", "errno name or number"},
      {"fail:EBOGUS", "errno name or number"},
      {"fail:0", "errno name or number"},
      {"fail:-5", "errno name or number"},
      {"fail:99999", "errno name or number"},
      {"fail:5x", "errno name or number"},
  };
  for (const auto& [input, expect] : cases) {
    auto r = parse_fault_action(input);
    ASSERT_FALSE(r.is_ok()) << "'" << input << "' parsed";
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << input;
    EXPECT_TRUE(contains(r.status().message(), expect)) << input << ": " << r.status().message();
    EXPECT_TRUE(contains(r.status().message(), "'" + input + "'")) << r.status().message();
  }
}

TEST(ParseFaultArmTest, SiteAndActionFireOnceByDefault) {
  auto r = parse_fault_arm("log.after_fill=crash");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->site, FaultSite::kLogAfterFill);
  EXPECT_EQ(r->spec.action, FaultAction::kCrash);
  EXPECT_TRUE(r->spec.once);
  EXPECT_EQ(r->spec.probability, 1.0);
}

TEST(ParseFaultArmTest, AlwaysAndProbabilityOptionsParseInAnyOrder) {
  auto r = parse_fault_arm("destage.before_write=fail:ENOSPC,always,p=0.25");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->site, FaultSite::kDestageBeforeWrite);
  EXPECT_EQ(r->spec.errno_value, ENOSPC);
  EXPECT_FALSE(r->spec.once);
  EXPECT_EQ(r->spec.probability, 0.25);
  auto q = parse_fault_arm("log.header_write=delay:5,p=1,always");
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  EXPECT_EQ(q->spec.delay_ms, 5u);
  EXPECT_FALSE(q->spec.once);
}

TEST(ParseFaultArmTest, BadInputsAreInvalidArgumentsWithAClearMessage) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"log.after_fill", "SITE=ACTION"},
      {"log.nope=crash", "unknown fault site 'log.nope'"},
      {"=crash", "unknown fault site ''"},
      {"log.after_fill=explode", "unknown fault action"},
      {"log.after_fill=fail:EIO,sometimes", "unknown fault option 'sometimes'"},
      {"log.after_fill=fail:EIO,", "unknown fault option ''"},
      {"log.after_fill=fail:EIO,p=0", "probability in (0, 1]"},
      {"log.after_fill=fail:EIO,p=1.5", "probability in (0, 1]"},
      {"log.after_fill=fail:EIO,p=half", "probability in (0, 1]"},
  };
  for (const auto& [input, expect] : cases) {
    auto r = parse_fault_arm(input);
    ASSERT_FALSE(r.is_ok()) << "'" << input << "' parsed";
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << input;
    EXPECT_TRUE(contains(r.status().message(), expect)) << input << ": " << r.status().message();
  }
}

// ---- fault sites and the registry ---------------------------------------------------------

TEST(FaultSiteTest, EveryRowRoundTripsThroughItsName) {
  for (size_t i = 0; i < kFaultSites.size(); ++i) {
    const auto& info = kFaultSites[i];
    EXPECT_EQ(static_cast<size_t>(info.site), i) << "rows must follow the enum order";
    auto site = fault_site_by_name(info.name);
    ASSERT_TRUE(site.has_value()) << info.name;
    EXPECT_EQ(*site, info.site);
    EXPECT_STREQ(fault_site_name(info.site), info.name);
    EXPECT_NE(std::string(info.what), "");
  }
}

TEST(FaultSiteTest, UnknownNamesAreNotFound) {
  EXPECT_FALSE(fault_site_by_name("").has_value());
  EXPECT_FALSE(fault_site_by_name("log.nope").has_value());
  EXPECT_FALSE(fault_site_by_name("LOG.AFTER_FILL").has_value());
}

FaultSpec fail_spec(int e, bool once = true, double probability = 1.0) {
  FaultSpec spec;
  spec.action = FaultAction::kFail;
  spec.errno_value = e;
  spec.once = once;
  spec.probability = probability;
  return spec;
}

TEST(FaultRegistryTest, UnarmedSiteIsOk) {
  FaultRegistry faults;
  for (const auto& info : kFaultSites) {
    EXPECT_TRUE(faults.hit(info.site).is_ok());
    EXPECT_EQ(faults.fired_count(info.site), 0u);
  }
  EXPECT_TRUE(faults.armed().empty());
}

TEST(FaultRegistryTest, ArmedOnceFiresExactlyOnceThenDisarms) {
  FaultRegistry faults;
  faults.arm(FaultSite::kDestageBeforeSync, fail_spec(ENOSPC));
  ASSERT_EQ(faults.armed().size(), 1u);
  Status s = faults.hit(FaultSite::kDestageBeforeSync);
  EXPECT_EQ(s.code(), Code::kNoSpace);
  EXPECT_EQ(s.sys_errno(), ENOSPC);
  EXPECT_TRUE(contains(s.message(), "destage.before_sync")) << s.message();
  EXPECT_TRUE(faults.hit(FaultSite::kDestageBeforeSync).is_ok());
  EXPECT_TRUE(faults.hit(FaultSite::kDestageBeforeSync).is_ok());
  EXPECT_EQ(faults.fired_count(FaultSite::kDestageBeforeSync), 1u);
  EXPECT_TRUE(faults.armed().empty());
}

TEST(FaultRegistryTest, ArmedFaultOnlyFiresAtItsOwnSite) {
  FaultRegistry faults;
  faults.arm(FaultSite::kLogAfterFill, fail_spec(EIO));
  EXPECT_TRUE(faults.hit(FaultSite::kLogAfterReserve).is_ok());
  EXPECT_TRUE(faults.hit(FaultSite::kDestageAfterSync).is_ok());
  EXPECT_EQ(faults.hit(FaultSite::kLogAfterFill).code(), Code::kIoError);
}

TEST(FaultRegistryTest, RepeatingFaultFiresUntilCleared) {
  FaultRegistry faults;
  faults.arm(FaultSite::kLogAfterLocalPersist, fail_spec(EIO, /*once=*/false));
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(faults.hit(FaultSite::kLogAfterLocalPersist).is_ok());
  EXPECT_EQ(faults.fired_count(FaultSite::kLogAfterLocalPersist), 5u);
  auto armed = faults.armed();
  ASSERT_EQ(armed.size(), 1u);
  EXPECT_EQ(armed[0].site, FaultSite::kLogAfterLocalPersist);
  EXPECT_EQ(armed[0].fired, 5u);
  EXPECT_FALSE(armed[0].spec.once);
  faults.clear(FaultSite::kLogAfterLocalPersist);
  EXPECT_TRUE(faults.hit(FaultSite::kLogAfterLocalPersist).is_ok());
  EXPECT_TRUE(faults.armed().empty());
}

TEST(FaultRegistryTest, ClearAllDisarmsEverySite) {
  FaultRegistry faults;
  for (const auto& info : kFaultSites) faults.arm(info.site, fail_spec(EIO, false));
  EXPECT_EQ(faults.armed().size(), kFaultSites.size());
  faults.clear_all();
  EXPECT_TRUE(faults.armed().empty());
  for (const auto& info : kFaultSites) EXPECT_TRUE(faults.hit(info.site).is_ok());
}

TEST(FaultRegistryTest, RearmingResetsTheFiredCount) {
  FaultRegistry faults;
  faults.arm(FaultSite::kLogHeaderWrite, fail_spec(EIO, false));
  (void)faults.hit(FaultSite::kLogHeaderWrite);
  (void)faults.hit(FaultSite::kLogHeaderWrite);
  EXPECT_EQ(faults.fired_count(FaultSite::kLogHeaderWrite), 2u);
  faults.arm(FaultSite::kLogHeaderWrite, fail_spec(ENOSPC, false));
  EXPECT_EQ(faults.fired_count(FaultSite::kLogHeaderWrite), 0u);
  EXPECT_EQ(faults.hit(FaultSite::kLogHeaderWrite).code(), Code::kNoSpace);
}

TEST(FaultRegistryTest, DelayFaultReturnsOk) {
  FaultRegistry faults;
  FaultSpec spec;
  spec.action = FaultAction::kDelay;
  spec.delay_ms = 1;
  faults.arm(FaultSite::kDestageBeforeWrite, spec);
  EXPECT_TRUE(faults.hit(FaultSite::kDestageBeforeWrite).is_ok());
  EXPECT_EQ(faults.fired_count(FaultSite::kDestageBeforeWrite), 1u);
}

// The firings of a probabilistic fault over `hits` hits, as a bit string.
std::string firing_pattern(uint64_t seed, double probability, int hits) {
  FaultRegistry faults(seed);
  faults.arm(FaultSite::kLogAfterFill, fail_spec(EIO, /*once=*/false, probability));
  std::string pattern;
  for (int i = 0; i < hits; ++i) pattern += faults.hit(FaultSite::kLogAfterFill).is_ok() ? '0' : '1';
  EXPECT_EQ(faults.fired_count(FaultSite::kLogAfterFill),
            static_cast<uint64_t>(std::count(pattern.begin(), pattern.end(), '1')));
  return pattern;
}

TEST(FaultRegistryTest, ProbabilisticFaultIsReproducibleFromItsSeed) {
  const std::string a = firing_pattern(1234, 0.3, 400);
  EXPECT_EQ(a, firing_pattern(1234, 0.3, 400));
  EXPECT_NE(a, firing_pattern(4321, 0.3, 400));
  const auto fired = std::count(a.begin(), a.end(), '1');
  EXPECT_GT(fired, 60);   // expectation 120; the bounds are many standard deviations wide
  EXPECT_LT(fired, 180);
}

TEST(FaultRegistryTest, ProbabilityZeroNeverFires) {
  const std::string p = firing_pattern(99, 0.0, 200);
  EXPECT_EQ(std::count(p.begin(), p.end(), '1'), 0);
}

TEST(FaultRegistryDeathTest, CrashFaultKillsTheProcess) {
  EXPECT_EXIT(
      {
        FaultRegistry faults;
        FaultSpec spec;
        spec.action = FaultAction::kCrash;
        faults.arm(FaultSite::kLogAfterLocalPersist, spec);
        (void)faults.hit(FaultSite::kLogAfterLocalPersist);
      },
      ::testing::KilledBySignal(SIGKILL), "");
}

// What `fn` writes to stderr (fd 2 pointed at a temporary file meanwhile).
std::string capture_stderr(const std::function<void()>& fn) {
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  FILE* tmp = std::tmpfile();
  ::dup2(::fileno(tmp), STDERR_FILENO);
  fn();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::rewind(tmp);
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, tmp)) out.append(buf, n);
  std::fclose(tmp);
  return out;
}

// The three line formats (docs/install.md, "Logs"): the time of day by default, the date too for
// a daemon's log file, and for the journal a priority prefix it reads (sd-daemon(3)) and no time.
TEST(LoggerTest, LinesForTerminalsFilesAndTheJournal) {
  Logger log("node7", LogLevel::kDebug);
  const std::string plain = capture_stderr([&] { log.warn("plain %d", 1); });
  EXPECT_TRUE(std::regex_match(plain, std::regex("\\d\\d:\\d\\d:\\d\\d\\.\\d{6} WARN  node7: plain 1\n"))) << plain;
  log.set_format(LogFormat::kDateTime);
  const std::string dated = capture_stderr([&] { log.child("sub").info("dated"); });
  EXPECT_TRUE(std::regex_match(dated, std::regex("\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{6} INFO  node7/sub: dated\n")))
      << dated;
  log.set_format(LogFormat::kJournal);
  const std::string journal = capture_stderr([&] {
    log.error("e");
    log.warn("w");
    log.info("i");
    log.debug("d");
  });
  EXPECT_EQ(journal, "<3>ERROR node7: e\n<4>WARN  node7: w\n<6>INFO  node7: i\n<7>DEBUG node7: d\n");
}

// JOURNAL_STREAM counts only when it names the very file stderr is (systemd.exec(5)): a service
// that redirected its stderr elsewhere is not writing to the journal.
TEST(LoggerTest, StderrIsTheJournalOnlyWhenJournalStreamNamesIt) {
  bool named = true, other = true, unset = true;
  capture_stderr([&] {
    struct stat st {};
    ASSERT_EQ(::fstat(STDERR_FILENO, &st), 0);
    ::setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)).c_str(), 1);
    named = stderr_is_journal();
    ::setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1)).c_str(), 1);
    other = stderr_is_journal();
    ::unsetenv("JOURNAL_STREAM");
    unset = stderr_is_journal();
  });
  EXPECT_TRUE(named);
  EXPECT_FALSE(other);
  EXPECT_FALSE(unset);
}

}  // namespace
}  // namespace hafs
