// ScratchDir: a directory of its own for one test, removed with everything in it when the test
// ends, passed or failed (RAII, so an ASSERT that returns early still cleans up).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "base/check.h"

namespace hafs::nvcache::testing {

class ScratchDir {
 public:
  // `parent` is /dev/shm for pmem rings (emulated NVRAM), /tmp for file stores (a real disk).
  explicit ScratchDir(const std::string& parent) {
    std::string tmpl = parent + "/hafs-test-XXXXXX";
    HAFS_CHECK(::mkdtemp(tmpl.data()) != nullptr, "mkdtemp failed");
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;  // best effort: a destructor must not throw
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace hafs::nvcache::testing
