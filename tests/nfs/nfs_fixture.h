// A served node for the nfs tests: a private network namespace, a real hafsd with two volumes
// (vol0 staged, vol1 write-through) and ganesha exporting them through tools/hafs-nfs.sh.
// Teardown stops ganesha (and its rpcbind) before hafsd, then unmounts and removes everything.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "tests/nfs/nfs_client.h"
#include "tests/nfs/nfs_env.h"
#include "tests/support/hafsd_process.h"

namespace hafs::testing {

class NfsNodeTest : public ::testing::Test {
 protected:
  // `prepare_medium` runs before hafsd starts (e.g. to give a volume a big directory).
  // `spec_tweak` changes the daemon's spec before it is made (e.g. its medium directory).
  void start_node(const std::function<void(HafsdProcess&)>& prepare_medium = {},
                  const std::function<void(HafsdSpec&)>& spec_tweak = {}) {
    std::string why;
    ASSERT_TRUE(enter_private_netns(&why)) << why;
    HafsdSpec spec;
    spec.volumes = {{"vol0", "staged"}, {"vol1", "write-through"}};
    if (spec_tweak) spec_tweak(spec);
    hafsd_ = std::make_unique<HafsdProcess>(spec);
    if (prepare_medium) prepare_medium(*hafsd_);
    ASSERT_TRUE(hafsd_->start(&why)) << why;
    ganesha_ = std::make_unique<GaneshaNode>();
    RunResult up = ganesha_->up(hafsd_->mount());
    ASSERT_EQ(up.code, 0) << up.output << "\n" << ganesha_->log();
  }

  NfsTarget target(int version, const std::string& volume = "vol0") const {
    NfsTarget t;
    t.export_path = "/" + volume;
    t.version = version;
    t.nfs_port = ganesha_->nfs_port();
    t.mount_port = ganesha_->mount_port();
    return t;
  }

  std::unique_ptr<NfsClient> client(int version, const std::string& volume = "vol0") {
    std::string why;
    auto c = NfsClient::connect(target(version, volume), &why);
    EXPECT_TRUE(c) << why << "\n" << ganesha_->log();
    return c;
  }

  // Members are destroyed in reverse order: ganesha goes before the mount it exports.
  std::unique_ptr<HafsdProcess> hafsd_;
  std::unique_ptr<GaneshaNode> ganesha_;
};

}  // namespace hafs::testing
