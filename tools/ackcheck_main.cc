// hafs-ackcheck: the acknowledged-write checker.
//
//   hafs-ackcheck write --dir DIR [--files N] [--blocks B] [--seconds S] [--seed S]
//       writes self-identifying, checksummed 4 KiB blocks at random places of N files with
//       O_DSYNC, and prints "ack FILE BLOCK SEQ" for every write that returned success, at
//       once (stdout is flushed per line, so a reader sees exactly what was acknowledged even
//       if this process or the server dies). Stops at the first failed write (exit 3).
//   hafs-ackcheck verify --dir DIR --acks FILE
//       checks that every acknowledged block is present: magic, CRC, file and block number
//       match, and a sequence number at least the acknowledged one (a later write may have
//       landed). Prints a summary; exit 0 when everything checks, 1 otherwise.
#include "tools/cli.h"
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "base/crc32c.h"

namespace {

constexpr size_t kBlock = 4096;
constexpr char kMagic[8] = {'H', 'A', 'F', 'S', 'B', 'L', 'K', '1'};

struct BlockId {
  uint32_t file, block;
  bool operator<(const BlockId& o) const { return file != o.file ? file < o.file : block < o.block; }
};

std::string file_path(const std::string& dir, uint32_t file) {
  return dir + "/ackcheck-" + std::to_string(file) + ".dat";
}

// Layout: magic[8] | file u32 | block u32 | seq u64 | pattern ... | crc32c u32 (last 4 bytes).
void make_block(uint32_t file, uint32_t block, uint64_t seq, std::vector<char>& buf) {
  std::memcpy(buf.data(), kMagic, 8);
  std::memcpy(buf.data() + 8, &file, 4);
  std::memcpy(buf.data() + 12, &block, 4);
  std::memcpy(buf.data() + 16, &seq, 8);
  std::mt19937 pattern(static_cast<uint32_t>(seq * 2654435761u + file * 40503u + block));
  for (size_t i = 24; i < kBlock - 4; ++i) buf[i] = static_cast<char>(pattern());
  const uint32_t crc = hafs::crc32c(buf.data(), kBlock - 4);
  std::memcpy(buf.data() + kBlock - 4, &crc, 4);
}

int do_write(const std::string& dir, uint32_t files, uint32_t blocks, double seconds, uint64_t seed) {
  std::vector<int> fds;
  for (uint32_t f = 0; f < files; ++f) {
    int fd = ::open(file_path(dir, f).c_str(), O_CREAT | O_WRONLY | O_DSYNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      std::fprintf(stderr, "hafs-ackcheck: open %s: %s\n", file_path(dir, f).c_str(), std::strerror(errno));
      return 2;
    }
    fds.push_back(fd);
  }
  std::mt19937_64 rng(seed);
  std::vector<char> buf(kBlock);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (uint64_t seq = 1; std::chrono::steady_clock::now() < end; ++seq) {
    const uint32_t f = static_cast<uint32_t>(rng() % files), b = static_cast<uint32_t>(rng() % blocks);
    make_block(f, b, seq, buf);
    ssize_t n = ::pwrite(fds[f], buf.data(), kBlock, static_cast<off_t>(b) * kBlock);
    if (n != static_cast<ssize_t>(kBlock)) {
      std::fprintf(stderr, "hafs-ackcheck: write %u/%u seq %" PRIu64 " failed: %s\n", f, b, seq,
                   n < 0 ? std::strerror(errno) : "short write");
      return 3;
    }
    std::printf("ack %u %u %" PRIu64 "\n", f, b, seq);
    std::fflush(stdout);
  }
  return 0;
}

int do_verify(const std::string& dir, const std::string& acks_path) {
  std::ifstream in(acks_path);
  if (!in) {
    std::fprintf(stderr, "hafs-ackcheck: cannot read %s\n", acks_path.c_str());
    return 2;
  }
  std::map<BlockId, uint64_t> newest;  // the newest acknowledged seq of every block
  std::string word;
  uint64_t acks = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream l(line);
    BlockId id{};
    uint64_t seq = 0;
    if (!(l >> word >> id.file >> id.block >> seq) || word != "ack") continue;
    newest[id] = std::max(newest[id], seq);
    ++acks;
  }
  uint64_t ok = 0, missing = 0, torn = 0, older = 0;
  std::vector<char> buf(kBlock);
  for (const auto& [id, seq] : newest) {
    int fd = ::open(file_path(dir, id.file).c_str(), O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : ::pread(fd, buf.data(), kBlock, static_cast<off_t>(id.block) * kBlock);
    if (fd >= 0) ::close(fd);
    if (n != static_cast<ssize_t>(kBlock) || std::memcmp(buf.data(), kMagic, 8) != 0) {
      ++missing;
      std::printf("MISSING file %u block %u (acknowledged seq %" PRIu64 ")\n", id.file, id.block, seq);
      continue;
    }
    uint32_t crc, file, block;
    uint64_t got;
    std::memcpy(&crc, buf.data() + kBlock - 4, 4);
    std::memcpy(&file, buf.data() + 8, 4);
    std::memcpy(&block, buf.data() + 12, 4);
    std::memcpy(&got, buf.data() + 16, 8);
    if (crc != hafs::crc32c(buf.data(), kBlock - 4) || file != id.file || block != id.block) {
      ++torn;
      std::printf("TORN OR FOREIGN file %u block %u\n", id.file, id.block);
    } else if (got < seq) {
      ++older;
      std::printf("OLDER file %u block %u holds seq %" PRIu64 ", acknowledged %" PRIu64 "\n", id.file,
                  id.block, got, seq);
    } else {
      ++ok;
    }
  }
  std::printf("%" PRIu64 " acknowledged writes to %zu blocks: %" PRIu64 " blocks intact, %" PRIu64
              " missing, %" PRIu64 " torn or foreign, %" PRIu64 " older than acknowledged\n",
              acks, newest.size(), ok, missing, torn, older);
  return missing + torn + older == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hafs-ackcheck: write checksummed blocks and verify every acknowledged one"};
  app.require_subcommand(1);
  std::string dir, acks;
  uint32_t files = 4, blocks = 256;
  double seconds = 5;
  uint64_t seed = 1;
  auto* w = app.add_subcommand("write", "write blocks with O_DSYNC, print each acknowledged one");
  w->add_option("--dir", dir, "directory (on the mount)")->required()->check(CLI::ExistingDirectory);
  w->add_option("--files", files, "files")->check(CLI::Range(1u, 1024u));
  w->add_option("--blocks", blocks, "4 KiB blocks per file")->check(CLI::Range(1u, 1u << 20));
  w->add_option("--seconds", seconds, "how long to write")->check(CLI::Range(0.0, 86400.0));
  w->add_option("--seed", seed, "seed of the block choice");
  auto* v = app.add_subcommand("verify", "check every acknowledged block");
  v->add_option("--dir", dir, "directory (the mount, or the volume on the medium)")->required()->check(CLI::ExistingDirectory);
  v->add_option("--acks", acks, "the output of write")->required();
  HAFS_CLI_PARSE(app, argc, argv);
  if (*w) return do_write(dir, files, blocks, seconds, seed);
  return do_verify(dir, acks);
}
