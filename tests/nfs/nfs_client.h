// NFS clients for the nfs tests, on libnfs (the real client: this kernel has none).
//
// NfsClient is libnfs's high-level synchronous API on one export, NFSv3 or NFSv4 (libnfs 4.0
// speaks NFSv4.0 only, no 4.1 sessions). RawNfs speaks single RPCs with file handles the test
// keeps as bytes, which is how a handle obtained before a restart is presented to the server
// after it (the high-level API only hands out paths and its own open-file objects).
// Not thread safe: one thread per client.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct nfs_context;
struct rpc_context;

namespace hafs::testing {

struct NfsTarget {
  std::string server = "127.0.0.1";
  std::string export_path;  // the pseudo path, "/VOLUME" (also for NFSv3: Mount_Path_Pseudo)
  int version = 3;          // 3 or 4
  int nfs_port = 2049;
  int mount_port = 20048;   // NFSv3 only
};

class NfsClient {
 public:
  // Mounts `target`; null with the reason in *why when that fails.
  static std::unique_ptr<NfsClient> connect(const NfsTarget& target, std::string* why);
  ~NfsClient();
  NfsClient(const NfsClient&) = delete;
  NfsClient& operator=(const NfsClient&) = delete;

  nfs_context* ctx() { return nfs_; }
  std::string error() const;  // libnfs's message for the last failed call
  int version() const { return version_; }
  // The largest WRITE this client sends: libnfs 4.0 fails to encode NFSv4 WRITEs above ~3.9 KB,
  // so v4 writes go in 3000-byte pieces (docs/nfs.md).
  size_t write_chunk() const { return version_ == 4 ? 3000 : 1 << 20; }

  // Creates (or truncates) `path` with `data`, written in write_chunk() pieces, then fsyncs.
  // Returns 0 or a negative errno, as libnfs does.
  int write_file(const std::string& path, const std::string& data, int mode = 0644);
  int read_file(const std::string& path, std::string* data);
  // Names in a directory, "." and ".." left out.
  int list_dir(const std::string& path, std::vector<std::string>* names);

 private:
  NfsClient(nfs_context* nfs, int version) : nfs_(nfs), version_(version) {}
  nfs_context* nfs_;
  int version_;
};

// Single NFS RPCs on handles. NFSv3: MOUNT for the root handle, then LOOKUP, GETATTR, READ.
// NFSv4: COMPOUNDs (PUTROOTFH/PUTFH, LOOKUP, GETFH, GETATTR, READ with the anonymous stateid),
// minor version 0, no client id needed for these operations.
class RawNfs {
 public:
  using Handle = std::string;  // the opaque handle bytes the server gave
  struct Attr {
    uint64_t size = 0;
    uint64_t fileid = 0;
  };

  static std::unique_ptr<RawNfs> connect(const NfsTarget& target, std::string* why);
  ~RawNfs();
  RawNfs(const RawNfs&) = delete;
  RawNfs& operator=(const RawNfs&) = delete;

  // Each returns the NFS status (0 = NFS3_OK / NFS4_OK, e.g. 70 = STALE) or -1 when the RPC
  // itself failed (reason in error()).
  int root(Handle* out);  // the export's root handle
  int lookup(const Handle& dir, const std::string& name, Handle* out);
  int getattr(const Handle& object, Attr* out);
  int read(const Handle& file, uint64_t offset, uint32_t count, std::string* out);
  const std::string& error() const { return error_; }

 private:
  RawNfs(const NfsTarget& target, rpc_context* rpc) : target_(target), rpc_(rpc) {}
  // Runs the context until `*done` (set by a callback) or the timeout; false on a failure.
  bool wait(const bool* done);
  NfsTarget target_;
  rpc_context* rpc_;
  std::string error_;
};

}  // namespace hafs::testing
