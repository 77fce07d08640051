// The systemd watchdog of a node with membership (docs/membership.md, "The systemd watchdog"),
// tested without systemd: node 1 of a real pair runs with NOTIFY_SOCKET pointed at the test's
// socket and WATCHDOG_USEC set, as systemd sets them for WatchdogSec=. Its pings come from the
// membership tick, so a stalled tick (fault membership.tick=delay) stops them: systemd would kill
// and restart the node before its lease runs out.
#include <gtest/gtest.h>

#include "tests/failover/failover_pair.h"
#include "tests/support/notify_socket.h"

namespace hafs::testing::failover {
namespace {

using namespace std::chrono_literals;

class WatchdogTest : public FailoverTest {};

// Counts WATCHDOG=1 pings over `window` (observing their absence or presence is the assertion).
size_t pings_during(NotifySocket& sock, std::chrono::milliseconds window) {
  const size_t before = sock.count("WATCHDOG=1");
  std::this_thread::sleep_for(window);
  return sock.count("WATCHDOG=1") - before;
}

TEST_F(WatchdogTest, PingsComeFromTheMembershipTickAndStopWhileItIsStalled) {
  NotifySocket sock;
  ASSERT_TRUE(sock.bound());
  launchers_[0] = {"/usr/bin/env", "NOTIFY_SOCKET=" + sock.path(), "WATCHDOG_USEC=1000000"};
  sock.start_reading("");  // before the start: systemd reads its socket all the time too
  ASSERT_NO_FATAL_FAILURE(start_pair());
  ASSERT_TRUE(sock.wait_for("READY=1", 10s));
  // READY only once membership has decided what the node serves (it left STARTING), with a
  // STATUS that says so; later STATUS lines follow the node state.
  for (const auto& m : sock.messages()) {
    if (m.text.find("READY=1") == std::string::npos) continue;
    EXPECT_NE(m.text.find("STATUS=serving 2 volumes at "), std::string::npos) << m.text;
    EXPECT_NE(m.text.find("; membership: node "), std::string::npos) << m.text;
    EXPECT_EQ(m.text.find("STARTING"), std::string::npos) << "READY=1 while STARTING: " << m.text;
  }
  EXPECT_TRUE(sock.wait_for("membership: node NORMAL", 10s)) << dump();
  // Healthy: a ping per tick (tick_ms 500), well within the watchdog's second.
  EXPECT_GE(pings_during(sock, 1500ms), 2u);
  // The membership thread stalls for 3 s: no ping for most of it.
  RunResult arm = hafsctl_on(1, {"fault", "arm", "membership.tick", "delay:3000"});
  ASSERT_EQ(arm.code, 0) << arm;
  EXPECT_TRUE(sock.wait_for("WATCHDOG=1", 2s));  // the tick before the stalled one
  EXPECT_EQ(pings_during(sock, 2000ms), 0u) << "pings went on while the membership tick was stalled";
  // The tick comes back, and with it the pings.
  EXPECT_GE(pings_during(sock, 2500ms), 2u);
}

}  // namespace
}  // namespace hafs::testing::failover
