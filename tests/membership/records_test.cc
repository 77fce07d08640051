// The membership records (membership/records.h), the SharedDisk implementations and the
// configuration checks: round trips, every reason a decode refuses its input, real files.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "base/crc32c.h"
#include "membership/monitor.h"
#include "membership/records.h"
#include "membership/shared_disk.h"
#include "membership/sim_disk.h"

namespace hafs::membership {
namespace {

bool contains(const std::string& s, const std::string& what) {
  return s.find(what) != std::string::npos;
}

template <typename T>
void put_le(RecordBlock& b, size_t off, T v) {
  for (size_t i = 0; i < sizeof(T); ++i)
    b[off + i] = static_cast<std::byte>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
}

OwnershipRecord sample_ownership() {
  OwnershipRecord r;
  r.volume_id = 7;
  r.owner = 2;
  r.home = 1;
  r.epoch = 0x0102030405060708ull;
  r.renew_counter = 99;
  r.lease_ms = 2000;
  r.flags = kOwnFlagHandover;
  r.cluster_id = 0x1122334455667788ull;
  r.replay_node = 1;
  r.replay_epoch = 3;
  r.replay_next_lsn = 4242;
  r.run_epoch = 0x0102030405060700ull;
  r.replay_from_epoch = 2;
  r.owner_ring = 0x5eedf00du;
  r.replay_ring = 0xfeedbeefu;
  return r;
}

// Rewrites a field and recomputes the CRC, so that only the field itself is wrong.
template <typename T>
void set_own_field(RecordBlock& b, size_t off, T v) {
  put_le<T>(b, off, v);
  put_le<uint32_t>(b, own_off::kCrc, crc32c(b.data(), own_off::kCrc));
}

void expect_own_error(const RecordBlock& b, const std::string& what) {
  auto r = decode_ownership(b);
  ASSERT_FALSE(r.is_ok()) << "decoded although " << what << " is expected";
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_TRUE(contains(r.status().message(), what)) << r.status().message();
}

TEST(RecordsTest, OwnershipRoundTripAndLayout) {
  RecordBlock b{};
  encode_ownership(sample_ownership(), b);
  auto r = decode_ownership(b);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(*r, sample_ownership());
  // The documented bytes: magic "HAFSOWN1", little-endian fields at their offsets.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), 8), "HAFSOWN1");
  EXPECT_EQ(std::to_integer<int>(b[own_off::kEpoch]), 0x08);
  EXPECT_EQ(std::to_integer<int>(b[own_off::kEpoch + 7]), 0x01);
  EXPECT_EQ(std::to_integer<int>(b[own_off::kClusterId]), 0x88);
  EXPECT_EQ(std::to_integer<int>(b[own_off::kReplayNextLsn]), 4242 & 0xff);
  EXPECT_EQ(std::to_integer<int>(b[own_off::kOwnerRing]), 0x0d);
  EXPECT_EQ(std::to_integer<int>(b[own_off::kOwnerRing + 3]), 0x5e);
  EXPECT_EQ(std::to_integer<int>(b[own_off::kReplayRing]), 0xef);
  EXPECT_EQ(std::to_integer<int>(b[own_off::kReplayRing + 3]), 0xfe);
  for (size_t i = kEncodedOwnership; i < kRecordBlockBytes; ++i)
    ASSERT_EQ(std::to_integer<int>(b[i]), 0) << "byte " << i << " after the record";
}

TEST(RecordsTest, HeartbeatRoundTripAndLayout) {
  HeartbeatRecord h;
  h.node_id = 3;
  h.counter = 12345;
  h.incarnation = 0xfeedfacecafebeefull;
  h.state = 4;
  h.cluster_id = 77;
  RecordBlock b{};
  encode_heartbeat(h, b);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), 8), "HAFSNHB1");
  auto r = decode_heartbeat(b);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->node_id, 3u);
  EXPECT_EQ(r->counter, 12345u);
  EXPECT_EQ(r->incarnation, h.incarnation);
  EXPECT_EQ(r->state, 4u);
  EXPECT_EQ(r->cluster_id, 77u);
}

TEST(RecordsTest, MirrorMarkRoundTripAndRules) {
  MirrorMarkRecord m;
  m.node_id = 2;
  m.cluster_id = 9;
  m.ring_id = 0xabcdef;
  m.outdated = true;
  m.from_pos = 4096;
  m.lag_bytes = 12288;
  m.counter = 3;
  RecordBlock b{};
  encode_mirror_mark(m, b);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), 8), "HAFSMMK1");
  auto r = decode_mirror_mark(b);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->node_id, 2u);
  EXPECT_TRUE(r->outdated);
  EXPECT_EQ(r->from_pos, 4096u);
  EXPECT_EQ(r->lag_bytes, 12288u);
  EXPECT_EQ(r->ring_id, 0xabcdefu);
  RecordBlock c = b;
  put_le<uint32_t>(c, mark_off::kOutdated, 2);
  put_le<uint32_t>(c, mark_off::kCrc, crc32c(c.data(), mark_off::kCrc));
  EXPECT_TRUE(contains(decode_mirror_mark(c).status().message(), "outdated is 2"));
  c = b;
  c[mark_off::kFromPos] ^= std::byte{1};
  EXPECT_TRUE(contains(decode_mirror_mark(c).status().message(), "CRC mismatch"));
  EXPECT_EQ(mirror_mark_record_name(2), "node-2.mirror");
  EXPECT_TRUE(valid_record_name(mirror_mark_record_name(2)));
}

TEST(RecordsTest, EveryTornPrefixOfAnOwnershipRecordIsRefused) {
  RecordBlock old_block{};
  OwnershipRecord old_rec = sample_ownership();
  old_rec.epoch = 5;
  old_rec.run_epoch = 5;
  old_rec.renew_counter = 1;
  encode_ownership(old_rec, old_block);
  RecordBlock new_block{};
  encode_ownership(sample_ownership(), new_block);
  for (size_t prefix = 1; prefix < kEncodedOwnership; ++prefix) {
    RecordBlock torn = old_block;
    std::copy(new_block.begin(), new_block.begin() + prefix, torn.begin());
    auto r = decode_ownership(torn);
    // Either the old record (the prefix changed nothing) or a refusal, never a mix.
    if (r.is_ok())
      EXPECT_EQ(*r, old_rec) << "prefix " << prefix;
    else
      EXPECT_EQ(r.status().code(), Code::kCorruption);
  }
}

TEST(RecordsTest, EveryFlippedBitIsRefused) {
  RecordBlock b{};
  encode_ownership(sample_ownership(), b);
  for (size_t bit = 0; bit < kEncodedOwnership * 8; ++bit) {
    RecordBlock c = b;
    c[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
    EXPECT_FALSE(decode_ownership(c).is_ok()) << "bit " << bit;
  }
}

TEST(RecordsTest, OwnershipFieldRulesAreChecked) {
  RecordBlock b{};
  encode_ownership(sample_ownership(), b);
  {
    RecordBlock c = b;
    put_le<uint64_t>(c, own_off::kMagic, kHeartbeatMagic);
    expect_own_error(c, "bad ownership magic");
  }
  {
    RecordBlock c = b;
    // Version 1 records (no cluster id, no replay fields) are refused, not misread.
    set_own_field<uint32_t>(c, own_off::kVersion, 1);
    expect_own_error(c, "unsupported ownership version 1");
    // So are version 2 records (no run epoch): a replay could miss records of the owner's run.
    set_own_field<uint32_t>(c, own_off::kVersion, 2);
    expect_own_error(c, "unsupported ownership version 2");
  }
  {
    // Versions 3 and 4 end before the replay ring, their CRC at 96: read, with the replay's ring
    // unknown. Version 3 had offset 60 reserved (0): the owner's ring unknown too (rule 8 skips
    // both).
    for (uint32_t version : {4u, 3u}) {
      RecordBlock c = b;
      put_le<uint32_t>(c, own_off::kVersion, version);
      if (version == 3) put_le<uint32_t>(c, own_off::kOwnerRing, 0);
      put_le<uint32_t>(c, own_off::kCrc, 0);
      put_le<uint32_t>(c, own_off::kCrcV4, crc32c(c.data(), own_off::kCrcV4));
      auto r = decode_ownership(c);
      ASSERT_TRUE(r.is_ok()) << "version " << version << ": " << r.status().to_string();
      EXPECT_EQ(r->owner_ring, version == 3 ? 0u : sample_ownership().owner_ring);
      EXPECT_EQ(r->replay_ring, 0u);
      EXPECT_EQ(r->run_epoch, sample_ownership().run_epoch);
    }
  }
  {
    RecordBlock c = b;
    set_own_field<uint64_t>(c, own_off::kRunEpoch, 0);
    expect_own_error(c, "run epoch 0 outside");
    set_own_field<uint64_t>(c, own_off::kRunEpoch, sample_ownership().epoch + 1);
    expect_own_error(c, "outside 1..");
  }
  {
    RecordBlock c = b;
    set_own_field<uint64_t>(c, own_off::kReplayFromEpoch, 4);
    expect_own_error(c, "replay epochs 4..3");
  }
  {
    RecordBlock c = b;
    set_own_field<uint32_t>(c, own_off::kFlags, kOwnFlagReplayPending);
    set_own_field<uint32_t>(c, own_off::kReplayNode, 0);
    expect_own_error(c, "pending replay of node 0");
  }
  {
    RecordBlock c = b;
    set_own_field<uint32_t>(c, own_off::kHome, 0);
    expect_own_error(c, "without a home node");
  }
  {
    RecordBlock c = b;
    set_own_field<uint32_t>(c, own_off::kFlags, 0x80);
    expect_own_error(c, "unknown flags");
  }
  {
    RecordBlock c = b;
    set_own_field<uint32_t>(c, own_off::kOwner, 0);
    expect_own_error(c, "epoch without owner");
  }
  {
    RecordBlock c = b;
    put_le<uint32_t>(c, own_off::kCrc, 0);
    expect_own_error(c, "CRC mismatch");
  }
  expect_own_error(RecordBlock{}, "bad ownership magic");
  EXPECT_FALSE(decode_ownership(std::span<const std::byte>(b.data(), 20)).is_ok());
}

TEST(RecordsTest, HeartbeatFieldRulesAreChecked) {
  HeartbeatRecord h;
  h.node_id = 1;
  RecordBlock b{};
  encode_heartbeat(h, b);
  RecordBlock c = b;
  put_le<uint32_t>(c, hb_off::kNodeId, 0);
  put_le<uint32_t>(c, hb_off::kCrc, crc32c(c.data(), hb_off::kCrc));
  EXPECT_TRUE(contains(decode_heartbeat(c).status().message(), "node 0"));
  c = b;
  c[hb_off::kCounter] ^= std::byte{1};
  EXPECT_TRUE(contains(decode_heartbeat(c).status().message(), "CRC mismatch"));
  c = b;
  put_le<uint32_t>(c, hb_off::kVersion, 9);
  put_le<uint32_t>(c, hb_off::kCrc, crc32c(c.data(), hb_off::kCrc));
  EXPECT_TRUE(contains(decode_heartbeat(c).status().message(), "version 9"));
  EXPECT_FALSE(decode_heartbeat(RecordBlock{}).is_ok());
}

TEST(RecordsTest, NamesAreValidRecordNames) {
  EXPECT_EQ(heartbeat_record_name(2), "node-2.hb");
  EXPECT_EQ(ownership_record_name(17), "volume-17.own");
  EXPECT_TRUE(valid_record_name(heartbeat_record_name(4294967295u)));
  EXPECT_TRUE(valid_record_name(ownership_record_name(0)));
  EXPECT_FALSE(valid_record_name(""));
  EXPECT_FALSE(valid_record_name("../x"));
  EXPECT_FALSE(valid_record_name(".hidden"));
  EXPECT_FALSE(valid_record_name("a/b"));
  EXPECT_FALSE(valid_record_name(std::string(65, 'a')));
}

class DirectoryDiskTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    std::string tmpl = std::string(GetParam()) + "/hafs-membership-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_;
};

TEST_P(DirectoryDiskTest, WriteReadReopen) {
  RecordBlock b{};
  encode_ownership(sample_ownership(), b);
  {
    auto disk = DirectoryDisk::open(dir_);
    ASSERT_TRUE(disk.is_ok()) << disk.status().to_string();
    std::printf("%s: O_DIRECT %s\n", GetParam(), (*disk)->direct_io() ? "used" : "refused");
    RecordBlock out{};
    EXPECT_EQ((*disk)->read("volume-7.own", out).code(), Code::kNotFound);
    ASSERT_TRUE((*disk)->write("volume-7.own", b).is_ok());
    ASSERT_TRUE((*disk)->read("volume-7.own", out).is_ok());
    EXPECT_EQ(out, b);
    EXPECT_EQ((*disk)->write("../escape", b).code(), Code::kInvalidArgument);
    EXPECT_EQ((*disk)->read("a/b", out).code(), Code::kInvalidArgument);
  }
  EXPECT_EQ(std::filesystem::file_size(dir_ + "/volume-7.own"), kRecordBlockBytes);
  auto disk = DirectoryDisk::open(dir_);  // a second process (or the partner) sees it
  ASSERT_TRUE(disk.is_ok());
  RecordBlock out{};
  ASSERT_TRUE((*disk)->read("volume-7.own", out).is_ok());
  auto rec = decode_ownership(out);
  ASSERT_TRUE(rec.is_ok());
  EXPECT_EQ(*rec, sample_ownership());
}

TEST_P(DirectoryDiskTest, TwoHandlesOnOneDirectorySeeEachOthersWrites) {
  auto a = DirectoryDisk::open(dir_);
  auto b = DirectoryDisk::open(dir_);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  HeartbeatRecord h;
  h.node_id = 1;
  for (uint64_t i = 1; i <= 5; ++i) {
    h.counter = i;
    RecordBlock blk{};
    encode_heartbeat(h, blk);
    ASSERT_TRUE((*a)->write("node-1.hb", blk).is_ok());
    RecordBlock out{};
    ASSERT_TRUE((*b)->read("node-1.hb", out).is_ok());
    EXPECT_EQ(decode_heartbeat(out)->counter, i);
  }
}

TEST_P(DirectoryDiskTest, BufferedFallbackWritesTheSameBytes) {
  auto disk = DirectoryDisk::open(dir_, /*allow_direct=*/false);
  ASSERT_TRUE(disk.is_ok());
  EXPECT_FALSE((*disk)->direct_io());
  RecordBlock b{};
  encode_ownership(sample_ownership(), b);
  ASSERT_TRUE((*disk)->write("volume-7.own", b).is_ok());
  auto direct = DirectoryDisk::open(dir_);
  ASSERT_TRUE(direct.is_ok());
  RecordBlock out{};
  ASSERT_TRUE((*direct)->read("volume-7.own", out).is_ok());
  EXPECT_EQ(out, b);
}

TEST(DirectoryDiskOpenTest, MissingDirectoryIsAClearError) {
  auto d = DirectoryDisk::open("/nonexistent/hafs-membership");
  ASSERT_FALSE(d.is_ok());
  EXPECT_TRUE(contains(d.status().message(), "/nonexistent/hafs-membership"));
}

INSTANTIATE_TEST_SUITE_P(Media, DirectoryDiskTest, ::testing::Values("/tmp", "/dev/shm"));

TEST(SimDiskTest, FaultsFailTearDelayAndLose) {
  SimDisk disk(42);
  Millis delayed{0};
  disk.set_delay_hook([&](Millis d) { delayed += d; });
  auto& a = disk.port(1);
  auto& b = disk.port(2);
  RecordBlock one{}, two{}, out{};
  encode_ownership(sample_ownership(), one);
  OwnershipRecord r2 = sample_ownership();
  r2.epoch = 77;
  encode_ownership(r2, two);
  ASSERT_TRUE(a.write("volume-7.own", one).is_ok());
  ASSERT_TRUE(b.read("volume-7.own", out).is_ok());
  EXPECT_EQ(out, one) << "ports share the medium";
  a.fail_next_writes(1);
  EXPECT_EQ(a.write("volume-7.own", two).code(), Code::kIoError);
  EXPECT_EQ(*disk.peek("volume-7.own"), one) << "a failed write changes nothing";
  EXPECT_TRUE(b.write("volume-8.own", two).is_ok()) << "faults are per port";
  a.tear_next_write();
  EXPECT_EQ(a.write("volume-7.own", two).code(), Code::kIoError);
  EXPECT_NE(*disk.peek("volume-7.own"), two) << "only a prefix landed";
  a.delay_next_op(Millis(33));
  EXPECT_TRUE(a.read("volume-7.own", out).is_ok());
  EXPECT_EQ(delayed, Millis(33));
  a.set_lost(true);
  EXPECT_EQ(a.read("volume-7.own", out).code(), Code::kIoError);
  EXPECT_EQ(a.write("volume-7.own", one).code(), Code::kIoError);
  EXPECT_TRUE(b.read("volume-7.own", out).is_ok());
  a.set_lost(false);
  a.fail_next_write_of("volume-9.own");
  EXPECT_TRUE(a.write("volume-7.own", one).is_ok());
  EXPECT_FALSE(a.write("volume-9.own", one).is_ok());
  EXPECT_EQ(b.read("volume-9.own", out).code(), Code::kNotFound);
}

TEST(SimClockTest, AdvancesAtItsRate) {
  SimClock fast(Millis(0), 10'000);  // 1 % fast
  SimClock exact(Millis(0));
  fast.advance(Millis(100'000));
  exact.advance(Millis(100'000));
  EXPECT_EQ(exact.now(), Millis(100'000));
  EXPECT_EQ(fast.now(), Millis(101'000));
}

TEST(MonitorConfigTest, ValidationRefusesImpossibleSettings) {
  MonitorConfig c;
  c.node_id = 1;
  c.partner_id = 2;
  c.volumes = {{1, 1}, {2, 2}};
  ASSERT_TRUE(validate(c).is_ok()) << validate(c).to_string();
  auto refused = [&](auto edit, const std::string& what) {
    MonitorConfig d = c;
    edit(d);
    Status s = validate(d);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << what;
    EXPECT_TRUE(contains(s.message(), what)) << s.message();
  };
  refused([](MonitorConfig& d) { d.node_id = 0; }, "must not be 0");
  refused([](MonitorConfig& d) { d.partner_id = 1; }, "its own partner");
  refused([](MonitorConfig& d) { d.volumes.push_back({1, 2}); }, "listed twice");
  refused([](MonitorConfig& d) { d.volumes.push_back({3, 9}); }, "not in this pair");
  refused([](MonitorConfig& d) { d.tick_ms = 600; }, "tick_ms");
  refused([](MonitorConfig& d) { d.io_timeout_ms = 300; }, "io_timeout_ms");
  refused([](MonitorConfig& d) { d.settle_ms = 150; }, "settle_ms must be >= 2");
  refused([](MonitorConfig& d) { d.settle_ms = 1500; }, "claim must be confirmed");
  refused([](MonitorConfig& d) { d.lease_ms = 50; }, "lease_ms");
  refused([](MonitorConfig& d) { d.claim_attempts_max = 0; }, "claim_attempts_max");
  SimClock clock;
  SimDisk disk(1);
  struct NoActions : Actions {
    void fence(VolumeId) override {}
    Status take_over(VolumeId, uint64_t, const TakeoverPlan&, uint64_t*) override { return Status::ok(); }
    Status freeze_partner_mirror() override { return Status::ok(); }
    void thaw_partner_mirror() override {}
    void serve(VolumeId, uint64_t) override {}
    Status release(VolumeId) override { return Status::ok(); }
    uint64_t discard(VolumeId, uint64_t) override { return 0; }
    void set_degraded(bool) override {}
  } actions;
  MonitorConfig bad = c;
  bad.partner_id = 1;
  EXPECT_FALSE(Monitor::create(bad, clock, disk.port(1), actions, Logger()).is_ok());
}

}  // namespace
}  // namespace hafs::membership
