// Planned operations driven by hafsctl on a real pair: a takeover OF node 1 (it destages and
// hands its volume to node 2, which serves it at the next epoch), a flush and a giveback on
// command, each followed by hafsctl's progress output — plain lines when not on a terminal, one
// redrawn bar on a terminal (run under script(1)).
#include "tests/failover/failover_pair.h"

namespace hafs::testing::failover {
namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST_F(FailoverTest, PlannedTakeoverFlushAndGivebackWithProgress) {
  ASSERT_NO_FATAL_FAILURE(start_pair());
  const uint64_t epoch1 = await_serving(1, "vol1", 0, 10s);
  AckWriter& w = new_writer(node(1).proc->path("vol1"), 71);
  ASSERT_NO_FATAL_FAILURE(await_acks(w, 200));
  w.stop();  // clients leave node 1 before its planned takeover (a later write there gets EIO)

  RunResult t = run({HAFSCTL_BIN, "--socket", node(1).socket, "takeover", "--wait", "60"}, 90s);
  ASSERT_EQ(t.code, 0) << t.out << t.err;
  EXPECT_TRUE(contains(t.out, "takeover: ")) << t.out;
  EXPECT_TRUE(contains(t.out, "handed over to the partner")) << t.out;
  EXPECT_FALSE(contains(t.out, "\r")) << "no redrawn line when stdout is not a terminal";
  const uint64_t epoch2 = await_serving(2, "vol1", epoch1, 10s);
  ASSERT_EQ(epoch2, epoch1 + 1) << dump();
  {
    auto s = status(1);
    ASSERT_TRUE(s);
    EXPECT_EQ(volume_row(*s, "vol1").value("state", ""), "partner");
    EXPECT_EQ(volume_row(*s, "vol2").value("state", ""), "partner");
  }
  verify(w, node(2).proc->path("vol1"), "through node 2's mount after the planned takeover");

  // A takeover of a node that holds nothing is refused, clearly.
  RunResult none = run({HAFSCTL_BIN, "--socket", node(1).socket, "takeover"});
  EXPECT_EQ(none.code, 1) << none.out << none.err;
  EXPECT_TRUE(contains(none.err, "holds no volume")) << none.err;

  // Staged data on node 2, then a flush followed on a terminal: the bar is redrawn with \r.
  std::filesystem::create_directory(node(2).proc->path("vol1/second"));
  AckWriter& w2 = new_writer(node(2).proc->path("vol1/second"), 72);
  ASSERT_NO_FATAL_FAILURE(await_acks(w2, 200));
  w2.stop();
  const std::string cmd = std::string(HAFSCTL_BIN) + " --socket " + node(2).socket + " flush";
  RunResult f = run({"/usr/bin/script", "-qec", cmd, "/dev/null"}, 60s);
  ASSERT_EQ(f.code, 0) << f.out << f.err;
  EXPECT_TRUE(contains(f.out, "\rflush: ")) << f.out;
  EXPECT_TRUE(contains(f.out, "destaged ")) << f.out;
  {
    auto s = status(2);
    ASSERT_TRUE(s);
    EXPECT_EQ((*s)["nvlog"].value("staged_bytes", uint64_t{1}), 0u) << "flush returned before destaging";
  }

  // No automatic giveback after a planned takeover (the pair's default would allow one, but
  // the tests run with auto_giveback off anyway); on command it goes home at the next epoch.
  RunResult g = run({HAFSCTL_BIN, "--socket", node(2).socket, "giveback", "vol1", "--wait", "60"}, 90s);
  ASSERT_EQ(g.code, 0) << g.out << g.err;
  EXPECT_TRUE(contains(g.out, "giveback vol1: ")) << g.out;
  const uint64_t epoch3 = await_serving(1, "vol1", epoch2, 10s);
  EXPECT_EQ(epoch3, epoch2 + 1) << dump();
  verify(w, node(1).proc->path("vol1"), "through node 1's mount after the giveback");
  verify(w2, node(1).proc->path("vol1/second"), "node 2's writes through node 1's mount after the giveback");
  expect_one_writer();
}

}  // namespace
}  // namespace hafs::testing::failover
