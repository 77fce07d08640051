// hafsd under systemd's notify protocol (hafsd@.service is Type=notify; docs/install.md), tested
// without systemd (PID 1 here is not systemd): the test binds a datagram socket of its own and
// points NOTIFY_SOCKET at it, as systemd does for a Type=notify service, then reads what a real
// hafsd tells it.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/hafsd_process.h"
#include "tests/support/notify_socket.h"

namespace hafs::testing {
namespace {

using namespace std::chrono_literals;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// READY=1 comes once the mount serves (never before), with a STATUS naming what it serves; a
// SIGTERM brings STOPPING=1 before the unmount and destage, and a clean exit.
TEST(ServiceNotifyTest, ReadyOnceTheMountServesAndStoppingOnSigterm) {
  NotifySocket sock;
  ASSERT_TRUE(sock.bound());
  ::setenv("NOTIFY_SOCKET", sock.path().c_str(), 1);  // inherited by hafsd
  HafsdProcess p;
  sock.start_reading(p.mount());
  std::string why;
  ASSERT_TRUE(p.start(&why)) << why;
  ASSERT_TRUE(sock.wait_for("READY=1")) << p.log();
  for (const auto& m : sock.messages()) {
    if (!has(m.text, "READY=1")) continue;
    EXPECT_TRUE(m.mounted) << "READY=1 before the mount was there: " << m.text;
    EXPECT_TRUE(has(m.text, "STATUS=serving 1 volumes at " + p.mount())) << m.text;
  }
  // Not the journal (no JOURNAL_STREAM): every line carries its date (operations.md, "Log lines").
  EXPECT_TRUE(std::regex_search(p.log(), std::regex("(^|\n)\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{6} INFO  node1: serving ")))
      << p.log();
  EXPECT_EQ(p.stop(), 0) << p.log();
  EXPECT_TRUE(sock.wait_for("STOPPING=1", 5s)) << p.log();
  ::unsetenv("NOTIFY_SOCKET");
}

// A start that fails says why in STATUS and never READY=1 (systemd then reports the failure with
// that status line, instead of a service that claimed to serve).
TEST(ServiceNotifyTest, AFailedStartSaysWhyAndIsNeverReady) {
  NotifySocket sock;
  ASSERT_TRUE(sock.bound());
  ::setenv("NOTIFY_SOCKET", sock.path().c_str(), 1);
  HafsdProcess p;
  sock.start_reading(p.mount());
  std::vector<std::string> args = p.args();
  args.erase(args.begin());  // the binary: run_to_exit() puts it first itself
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--mount") args[i + 1] = p.dir() + "/no-such-mount-point";
  std::string out;
  EXPECT_EQ(HafsdProcess::run_to_exit(args, &out), 1) << out;
  ASSERT_TRUE(sock.wait_for("STATUS=failed", 5s)) << out;
  for (const auto& m : sock.messages()) EXPECT_FALSE(has(m.text, "READY=1")) << m.text;
  EXPECT_TRUE(sock.wait_for("no-such-mount-point", 1s));
  ::unsetenv("NOTIFY_SOCKET");
}

}  // namespace
}  // namespace hafs::testing
