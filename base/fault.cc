#include "base/fault.h"

#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace hafs {

std::optional<FaultSite> fault_site_by_name(std::string_view name) {
  for (const auto& info : kFaultSites)
    if (name == info.name) return info.site;
  return std::nullopt;
}

const char* fault_site_name(FaultSite site) {
  return kFaultSites[static_cast<size_t>(site)].name;
}

namespace {
std::optional<int> parse_errno_name(std::string_view s) {
  static constexpr std::pair<const char*, int> kNames[] = {
      {"EIO", EIO}, {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS},
      {"ESTALE", ESTALE}, {"ENOMEM", ENOMEM}, {"EAGAIN", EAGAIN}, {"ETIMEDOUT", ETIMEDOUT},
      {"ECONNRESET", ECONNRESET}};
  for (auto [n, v] : kNames)
    if (s == n) return v;
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc() && p == s.data() + s.size() && v > 0 && v < 4096) return v;
  return std::nullopt;
}
}  // namespace

Result<FaultSpec> parse_fault_action(std::string_view text) {
  FaultSpec spec;
  if (text == "crash") {
    spec.action = FaultAction::kCrash;
    return spec;
  }
  if (text.starts_with("delay:")) {
    auto ms = text.substr(6);
    uint32_t v = 0;
    auto [p, ec] = std::from_chars(ms.data(), ms.data() + ms.size(), v);
    if (ec != std::errc() || p != ms.data() + ms.size() || v > 600000)
      return Status::error(Code::kInvalidArgument,
                           "delay needs milliseconds from 0 to 600000: '" + std::string(text) + "'");
    spec.action = FaultAction::kDelay;
    spec.delay_ms = v;
    return spec;
  }
  if (text.starts_with("fail:")) {
    auto e = parse_errno_name(text.substr(5));
    if (!e)
      return Status::error(Code::kInvalidArgument,
                           "fail needs an errno name or number (EIO, ENOSPC, 5): '" +
                               std::string(text) + "'");
    spec.action = FaultAction::kFail;
    spec.errno_value = *e;
    return spec;
  }
  return Status::error(Code::kInvalidArgument, "unknown fault action '" + std::string(text) +
                                                   "' (expected crash, delay:MS or fail:ERRNO)");
}

Result<FaultArm> parse_fault_arm(std::string_view text) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos)
    return Status::error(Code::kInvalidArgument,
                         "a fault is SITE=ACTION[,always][,p=P]: '" + std::string(text) + "'");
  auto site = fault_site_by_name(text.substr(0, eq));
  if (!site)
    return Status::error(Code::kInvalidArgument,
                         "unknown fault site '" + std::string(text.substr(0, eq)) + "'");
  std::string_view rest = text.substr(eq + 1);
  const auto comma = rest.find(',');
  auto spec = parse_fault_action(rest.substr(0, comma));
  if (!spec) return spec.status();
  while (comma != std::string_view::npos && !rest.empty()) {
    rest = rest.substr(rest.find(',') + 1);
    const std::string_view opt = rest.substr(0, rest.find(','));
    if (opt == "always") {
      spec->once = false;
    } else if (opt.starts_with("p=")) {
      char* end = nullptr;
      const std::string num(opt.substr(2));
      const double p = std::strtod(num.c_str(), &end);
      if (end != num.c_str() + num.size() || p <= 0 || p > 1)
        return Status::error(Code::kInvalidArgument, "p= needs a probability in (0, 1]: '" +
                                                         std::string(opt) + "'");
      spec->probability = p;
    } else {
      return Status::error(Code::kInvalidArgument, "unknown fault option '" + std::string(opt) +
                                                       "' (expected always or p=P)");
    }
    if (rest.find(',') == std::string_view::npos) break;
  }
  return FaultArm{*site, *spec};
}

void FaultRegistry::arm(FaultSite site, const FaultSpec& spec) {
  std::lock_guard lock(mu_);
  specs_[static_cast<size_t>(site)] = spec;
  fired_[static_cast<size_t>(site)] = 0;
  armed_[static_cast<size_t>(site)].store(true, std::memory_order_release);
}

void FaultRegistry::clear(FaultSite site) {
  std::lock_guard lock(mu_);
  armed_[static_cast<size_t>(site)].store(false, std::memory_order_release);
}

void FaultRegistry::clear_all() {
  std::lock_guard lock(mu_);
  for (auto& a : armed_) a.store(false, std::memory_order_release);
}

std::vector<FaultRegistry::ArmedFault> FaultRegistry::armed() const {
  std::lock_guard lock(mu_);
  std::vector<ArmedFault> out;
  for (size_t i = 0; i < kN; ++i)
    if (armed_[i].load(std::memory_order_relaxed))
      out.push_back({static_cast<FaultSite>(i), specs_[i], fired_[i]});
  return out;
}

uint64_t FaultRegistry::fired_count(FaultSite site) const {
  std::lock_guard lock(mu_);
  return fired_[static_cast<size_t>(site)];
}

Status FaultRegistry::fire(FaultSite site) {
  const size_t i = static_cast<size_t>(site);
  FaultSpec spec;
  {
    std::lock_guard lock(mu_);
    if (!armed_[i].load(std::memory_order_relaxed)) return Status::ok();
    if (spec = specs_[i]; spec.probability < 1.0) {
      std::uniform_real_distribution<double> dist(0.0, 1.0);
      if (dist(rng_) >= spec.probability) return Status::ok();
    }
    ++fired_[i];
    if (spec.once) armed_[i].store(false, std::memory_order_relaxed);
  }
  switch (spec.action) {
    case FaultAction::kCrash:
      ::kill(::getpid(), SIGKILL);
      for (;;) ::pause();
    case FaultAction::kDelay:
      std::this_thread::sleep_for(std::chrono::milliseconds(spec.delay_ms));
      return Status::ok();
    case FaultAction::kFail:
      return Status::from_errno(spec.errno_value,
                                std::string("injected fault at ") + fault_site_name(site));
  }
  return Status::ok();
}

}  // namespace hafs
