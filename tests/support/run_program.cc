#include "tests/support/run_program.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace hafs::testing {

namespace {
std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

ProgramResult run_program(const std::vector<std::string>& args, std::chrono::milliseconds limit) {
  using Clock = std::chrono::steady_clock;
  char tmpl[] = "/tmp/hafs-test-run.XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string out = dir + "/out", err = dir + "/err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ProgramResult r;
  const auto start = Clock::now();
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) == 0) {
    int status = 0;
    for (;;) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        break;
      }
      if (Clock::now() - start > limit) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        r.code = -2;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  } else {
    r.err = "cannot start " + args[0];
  }
  r.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  posix_spawn_file_actions_destroy(&fa);
  r.out = slurp(out);
  r.err += slurp(err);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return r;
}

std::ostream& operator<<(std::ostream& o, const ProgramResult& r) {
  return o << "[exit " << r.code << "]\n--- stdout ---\n" << r.out << "--- stderr ---\n" << r.err;
}

}  // namespace hafs::testing
