#include "membership/sim_disk.h"

#include <cstring>

namespace hafs::membership {

SimDisk::Port& SimDisk::port(NodeId node) {
  auto& p = ports_[node];
  if (!p) p.reset(new Port(this, node));
  return *p;
}

std::optional<RecordBlock> SimDisk::peek(const std::string& name) const {
  auto it = records_.find(name);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

Status SimDisk::Port::before_op(bool is_write) {
  Millis delay{0};
  if (delay_next_) {
    delay = *delay_next_;
    delay_next_.reset();
  } else if (faults_.delay_ms_max > 0 && disk_->uniform() < faults_.delay_p) {
    delay = Millis(1 + static_cast<int64_t>(disk_->uniform() * faults_.delay_ms_max));
  }
  if (delay.count() > 0 && disk_->delay_hook_) disk_->delay_hook_(delay);
  if (lost_) return Status::error(Code::kIoError, "simulated disk lost", EIO);
  if (!is_write && faults_.read_fail_p > 0 && disk_->uniform() < faults_.read_fail_p)
    return Status::error(Code::kIoError, "simulated read failure", EIO);
  return Status::ok();
}

Status SimDisk::Port::read(const std::string& name, std::span<std::byte, kRecordBlockBytes> out) {
  HAFS_CHECK(valid_record_name(name), "bad record name");
  HAFS_RETURN_IF_ERROR(before_op(/*is_write=*/false));
  auto it = disk_->records_.find(name);
  if (it == disk_->records_.end())
    return Status::error(Code::kNotFound, "no membership record " + name);
  std::memcpy(out.data(), it->second.data(), kRecordBlockBytes);
  return Status::ok();
}

Status SimDisk::Port::write(const std::string& name,
                            std::span<const std::byte, kRecordBlockBytes> data) {
  HAFS_CHECK(valid_record_name(name), "bad record name");
  ++writes_;
  std::optional<AimKind> aimed;
  for (auto it = aimed_.begin(); it != aimed_.end(); ++it) {
    if (it->name != name) continue;
    aimed = it->kind;
    if (it->kind == kAimDelay && disk_->delay_hook_) disk_->delay_hook_(it->delay);
    aimed_.erase(it);
    break;
  }
  Status s = before_op(/*is_write=*/true);
  if (!s.is_ok()) {
    ++failed_writes_;
    return s;
  }
  bool tear = false;
  if (aimed == kAimFail) {
    ++failed_writes_;
    return Status::error(Code::kIoError, "simulated write failure of " + name, EIO);
  } else if (aimed == kAimTear) {
    tear = true;
  } else if (tear_writes_ > 0) {
    --tear_writes_;
    tear = true;
  } else if (fail_writes_ > 0) {
    --fail_writes_;
    ++failed_writes_;
    return Status::error(Code::kIoError, "simulated write failure", EIO);
  } else if (faults_.write_fail_p > 0 && disk_->uniform() < faults_.write_fail_p) {
    ++failed_writes_;
    return Status::error(Code::kIoError, "simulated write failure", EIO);
  } else if (faults_.write_tear_p > 0 && disk_->uniform() < faults_.write_tear_p) {
    tear = true;
  }
  auto [it, inserted] = disk_->records_.try_emplace(name);
  if (inserted) it->second.fill(std::byte{0});
  if (!tear) {
    std::memcpy(it->second.data(), data.data(), kRecordBlockBytes);
    return Status::ok();
  }
  // A prefix lands: somewhere inside the encoded record, so that the tear is visible (a tear
  // beyond the CRC would be indistinguishable from a whole write).
  const size_t prefix = 1 + static_cast<size_t>(disk_->uniform() * 47);
  std::memcpy(it->second.data(), data.data(), prefix);
  ++failed_writes_;
  return Status::error(Code::kIoError, "simulated torn write (" + std::to_string(prefix) +
                                           " bytes landed)", EIO);
}

}  // namespace hafs::membership
