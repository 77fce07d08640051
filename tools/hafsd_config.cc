#include "tools/hafsd_config.h"

#include <climits>
#include <set>
#include <sstream>

#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

namespace hafs::tools {
namespace {

Status bad(const std::string& key, const std::string& why) {
  return Status::error(Code::kInvalidArgument, "setting '" + key + "': " + why);
}

// Splits "a.b.c" and inserts `value` there, creating tables on the way.
Status set_path(toml::table& root, const std::string& key, toml::node&& value) {
  toml::table* t = &root;
  std::string part;
  std::istringstream in(key);
  std::vector<std::string> parts;
  while (std::getline(in, part, '.')) parts.push_back(part);
  if (parts.empty() || key.empty()) return bad(key, "empty key");
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    auto* next = t->get(parts[i]);
    if (!next) next = &t->insert_or_assign(parts[i], toml::table{}).first->second;
    if (!next->is_table()) return bad(key, "'" + parts[i] + "' is not a table");
    t = next->as_table();
  }
  if (auto* v = value.as_integer()) t->insert_or_assign(parts.back(), *v);
  else if (auto* f = value.as_floating_point()) t->insert_or_assign(parts.back(), *f);
  else if (auto* b = value.as_boolean()) t->insert_or_assign(parts.back(), *b);
  else if (auto* s = value.as_string()) t->insert_or_assign(parts.back(), *s);
  else return bad(key, "unsupported value type");
  return Status::ok();
}

Result<VolumeConfig> parse_volume_flag(const std::string& text) {
  // NAME:ID:PATH[:MODE[:HOME[:DEGRADED]]]
  std::vector<std::string> f;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, ':')) f.push_back(part);
  if (f.size() < 3 || f.size() > 6)
    return bad("volume", "expected NAME:ID:PATH[:MODE[:HOME[:DEGRADED]]], got '" + text + "'");
  VolumeConfig v;
  v.name = f[0];
  try {
    size_t used = 0;
    unsigned long id = std::stoul(f[1], &used);
    if (used != f[1].size() || id > UINT32_MAX) throw std::invalid_argument("id");
    v.id = static_cast<uint32_t>(id);
  } catch (const std::exception&) {
    return bad("volume", "id '" + f[1] + "' is not a number");
  }
  v.path = f[2];
  if (f.size() >= 4 && !fs::parse_write_mode(f[3], &v.mode))
    return bad("volume", "mode '" + f[3] + "' is not staged or write-through");
  if (f.size() == 6 && !fs::parse_degraded_policy(f[5], &v.degraded))
    return bad("volume", "degraded policy '" + f[5] + "' is not local-log or write-through");
  if (f.size() >= 5) {
    try {
      size_t used = 0;
      unsigned long home = std::stoul(f[4], &used);
      if (used != f[4].size() || home == 0 || home > (1u << 30)) throw std::invalid_argument("home");
      v.home = static_cast<uint32_t>(home);
    } catch (const std::exception&) {
      return bad("volume", "home node '" + f[4] + "' is not a node id");
    }
  }
  return v;
}

template <typename T>
Result<T> get_int(const toml::node& n, const std::string& key, T lo, T hi) {
  auto v = n.value<int64_t>();
  if (!n.is_integer() || !v) return bad(key, "expected an integer");
  if (*v < static_cast<int64_t>(lo) || *v > static_cast<int64_t>(hi))
    return bad(key, std::to_string(*v) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
  return static_cast<T>(*v);
}

Result<std::string> get_string(const toml::node& n, const std::string& key) {
  if (!n.is_string()) return bad(key, "expected a string");
  return *n.value<std::string>();
}

}  // namespace

Result<uint64_t> parse_size(const std::string& text) {
  size_t used = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(text, &used);
  } catch (const std::exception&) {
    return Status::error(Code::kInvalidArgument, "'" + text + "' is not a size (e.g. 256MiB)");
  }
  std::string unit = text.substr(used);
  uint64_t mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KiB") mult = 1ull << 10;
  else if (unit == "M" || unit == "MiB") mult = 1ull << 20;
  else if (unit == "G" || unit == "GiB") mult = 1ull << 30;
  else if (unit == "T" || unit == "TiB") mult = 1ull << 40;
  else return Status::error(Code::kInvalidArgument, "unknown size unit '" + unit + "' in '" + text + "'");
  if (n > UINT64_MAX / mult) return Status::error(Code::kInvalidArgument, "size '" + text + "' too large");
  return n * mult;
}

Result<HafsdConfig> load_config(const std::string& path, const std::vector<std::string>& overrides) {
  toml::table root;
  if (!path.empty()) {
    try {
      root = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
      std::ostringstream msg;
      msg << "config " << path << ": " << e.description();
      if (e.source().begin.line) msg << " (line " << e.source().begin.line << ")";
      return Status::error(Code::kInvalidArgument, msg.str());
    }
  }
  HafsdConfig c;
  std::vector<VolumeConfig> flag_volumes;
  for (const std::string& o : overrides) {
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) return bad(o, "an override is key=value");
    const std::string key = o.substr(0, eq), value = o.substr(eq + 1);
    if (key == "volume") {
      auto v = parse_volume_flag(value);
      if (!v) return v.status();
      flag_volumes.push_back(*v);
      continue;
    }
    // A value that parses as TOML keeps its type (numbers, booleans, quoted strings); anything
    // else is a string (paths, sizes like 1GiB).
    toml::table parsed;
    try {
      parsed = toml::parse("v = " + value);
    } catch (const toml::parse_error&) {
      parsed.insert_or_assign("v", value);
    }
    HAFS_RETURN_IF_ERROR(set_path(root, key, std::move(*parsed.get("v"))));
  }

  static const std::set<std::string> kTop = {"node_id", "mount", "control_socket", "log_level",
                                             "nvlog", "fs", "volume", "interconnect", "membership"};
  static const std::set<std::string> kMembership = {"dir", "cluster", "lease_ms", "margin_ms", "settle_ms", "tick_ms",
                                                    "partner_silence_ms", "io_timeout_ms", "auto_giveback",
                                                    "giveback_delay_ms"};
  static const std::set<std::string> kInterconnect = {
      "provider", "listen", "partner_node_id", "partner", "key_file", "key", "mirror_path",
      "mirror_wait_ms", "heartbeat_ms", "silence_limit_ms", "busy_poll_us"};
  static const std::set<std::string> kNvlog = {"path", "size", "mode", "destage_interval_ms"};
  static const std::set<std::string> kFs = {"attr_timeout_s", "sync_metadata", "threads"};
  static const std::set<std::string> kVolume = {"name", "id", "path", "mode", "home", "degraded"};

  for (auto&& [k, node] : root) {
    const std::string key(k.str());
    if (!kTop.count(key)) return bad(key, "unknown setting");
    if (key == "node_id") {
      auto v = get_int<uint32_t>(node, key, 1, 1u << 30);
      if (!v) return v.status();
      c.node_id = *v;
    } else if (key == "mount") {
      auto v = get_string(node, key);
      if (!v) return v.status();
      c.mount = *v;
    } else if (key == "control_socket") {
      auto v = get_string(node, key);
      if (!v) return v.status();
      c.control_socket = *v;
    } else if (key == "log_level") {
      auto v = get_string(node, key);
      if (!v) return v.status();
      if (!parse_log_level(*v, &c.log_level)) return bad(key, "'" + *v + "' is not debug, info, warn or error");
    } else if (key == "nvlog" || key == "fs") {
      if (!node.is_table()) return bad(key, "expected a table");
      for (auto&& [k2, n2] : *node.as_table()) {
        const std::string sub = key + "." + std::string(k2.str());
        const std::string name(k2.str());
        if (!(key == "nvlog" ? kNvlog : kFs).count(name)) return bad(sub, "unknown setting");
        if (sub == "nvlog.path") {
          auto v = get_string(n2, sub);
          if (!v) return v.status();
          c.nvlog_path = *v;
        } else if (sub == "nvlog.size") {
          if (n2.is_integer() && *n2.value<int64_t>() < 0) return bad(sub, "a size cannot be negative");
          Result<uint64_t> v = n2.is_integer() ? Result<uint64_t>(static_cast<uint64_t>(*n2.value<int64_t>()))
                                               : n2.is_string() ? parse_size(*n2.value<std::string>())
                                                                : Result<uint64_t>(bad(sub, "expected a size"));
          if (!v) return v.status().with_context("setting 'nvlog.size'");
          c.nvlog_size = *v;
        } else if (sub == "nvlog.mode") {
          auto v = get_string(n2, sub);
          if (!v) return v.status();
          if (!nvcache::parse_store_mode(*v, &c.nvlog_mode) || c.nvlog_mode == nvcache::StoreMode::kMemory)
            return bad(sub, "'" + *v + "' is not pmem or file");
        } else if (sub == "nvlog.destage_interval_ms") {
          auto v = get_int<uint32_t>(n2, sub, 1, 60000);
          if (!v) return v.status();
          c.destage_interval_ms = *v;
        } else if (sub == "fs.attr_timeout_s") {
          auto v = n2.value<double>();
          if (!v || *v < 0 || *v > 3600) return bad(sub, "expected seconds from 0 to 3600");
          c.attr_timeout_s = *v;
        } else if (sub == "fs.sync_metadata") {
          if (!n2.is_boolean()) return bad(sub, "expected true or false");
          c.sync_metadata = *n2.value<bool>();
        } else if (sub == "fs.threads") {
          auto v = get_int<uint32_t>(n2, sub, 1, 256);
          if (!v) return v.status();
          c.fuse_threads = *v;
        }
      }
    } else if (key == "interconnect") {
      if (!node.is_table()) return bad(key, "expected a table");
      auto& ic = c.interconnect;
      for (auto&& [k2, n2] : *node.as_table()) {
        const std::string name(k2.str()), sub = "interconnect." + name;
        if (!kInterconnect.count(name)) return bad(sub, "unknown setting");
        if (name == "partner_node_id") {
          auto v = get_int<uint32_t>(n2, sub, 1, 1u << 30);
          if (!v) return v.status();
          ic.partner_node_id = *v;
        } else if (name == "busy_poll_us") {
          auto v = get_int<uint32_t>(n2, sub, 0, 10000);
          if (!v) return v.status();
          ic.busy_poll_us = *v;
        } else if (name == "mirror_wait_ms" || name == "heartbeat_ms" || name == "silence_limit_ms") {
          auto v = get_int<uint32_t>(n2, sub, 1, 3600000);
          if (!v) return v.status();
          (name == "mirror_wait_ms" ? ic.mirror_wait_ms : name == "heartbeat_ms" ? ic.heartbeat_ms
                                                                                : ic.silence_limit_ms) = *v;
        } else {
          auto v = get_string(n2, sub);
          if (!v) return v.status();
          if (name == "listen" || name == "partner") {
            const auto colon = v->rfind(':');
            if (colon == std::string::npos || colon + 1 == v->size())
              return bad(sub, "'" + *v + "' is not HOST:PORT");
            (name == "listen" ? ic.listen_host : ic.partner_host) = v->substr(0, colon);
            (name == "listen" ? ic.listen_port : ic.partner_port) = v->substr(colon + 1);
          } else if (name == "provider") {
            ic.provider = *v;
          } else if (name == "key_file") {
            ic.key_file = *v;
          } else if (name == "key") {
            ic.key = *v;
          } else {
            ic.mirror_path = *v;
          }
        }
      }
    } else if (key == "membership") {
      if (!node.is_table()) return bad(key, "expected a table");
      auto& m = c.membership;
      for (auto&& [k2, n2] : *node.as_table()) {
        const std::string name(k2.str()), sub = "membership." + name;
        if (!kMembership.count(name)) return bad(sub, "unknown setting");
        if (name == "dir") {
          auto v = get_string(n2, sub);
          if (!v) return v.status();
          m.dir = *v;
        } else if (name == "cluster") {
          auto v = get_string(n2, sub);
          if (!v) return v.status();
          m.cluster = *v;
        } else if (name == "auto_giveback") {
          if (!n2.is_boolean()) return bad(sub, "expected true or false");
          m.auto_giveback = *n2.value<bool>();
        } else {
          auto v = get_int<uint32_t>(n2, sub, 1, 3600000);
          if (!v) return v.status();
          (name == "lease_ms" ? m.lease_ms : name == "margin_ms" ? m.margin_ms : name == "settle_ms" ? m.settle_ms
           : name == "tick_ms" ? m.tick_ms : name == "partner_silence_ms" ? m.partner_silence_ms
           : name == "io_timeout_ms" ? m.io_timeout_ms : m.giveback_delay_ms) = *v;
        }
      }
    } else if (key == "volume") {
      if (!node.is_array_of_tables()) return bad(key, "expected [[volume]] tables");
      for (auto& el : *node.as_array()) {
        VolumeConfig v;
        for (auto&& [k2, n2] : *el.as_table()) {
          const std::string sub = "volume." + std::string(k2.str());
          if (!kVolume.count(std::string(k2.str()))) return bad(sub, "unknown setting");
          if (sub == "volume.name") {
            auto s = get_string(n2, sub);
            if (!s) return s.status();
            v.name = *s;
          } else if (sub == "volume.id") {
            auto i = get_int<uint32_t>(n2, sub, 1, fs::kMaxVolumeId);
            if (!i) return i.status();
            v.id = *i;
          } else if (sub == "volume.path") {
            auto s = get_string(n2, sub);
            if (!s) return s.status();
            v.path = *s;
          } else if (sub == "volume.home") {
            auto i = get_int<uint32_t>(n2, sub, 1, 1u << 30);
            if (!i) return i.status();
            v.home = *i;
          } else if (sub == "volume.mode") {
            auto s = get_string(n2, sub);
            if (!s) return s.status();
            if (!fs::parse_write_mode(*s, &v.mode)) return bad(sub, "'" + *s + "' is not staged or write-through");
          } else if (sub == "volume.degraded") {
            auto s = get_string(n2, sub);
            if (!s) return s.status();
            if (!fs::parse_degraded_policy(*s, &v.degraded))
              return bad(sub, "'" + *s + "' is not local-log or write-through");
          }
        }
        c.volumes.push_back(v);
      }
    }
  }
  for (auto& v : flag_volumes) c.volumes.push_back(v);
  for (auto& v : c.volumes)
    if (v.home == 0) v.home = c.node_id;

  // Cross-checks.
  if (c.node_id == 0) return bad("node_id", "missing (1..2^30)");
  if (c.mount.empty() || c.mount[0] != '/') return bad("mount", "missing or not an absolute path");
  if (c.nvlog_path.empty()) return bad("nvlog.path", "missing");
  if (c.nvlog_size % 4096 != 0 || c.nvlog_size < (72u << 10) || c.nvlog_size > (1ull << 40))
    return bad("nvlog.size", std::to_string(c.nvlog_size) +
                                 " bytes is not a multiple of 4096 between 72KiB and 1TiB");
  if (c.volumes.empty()) return bad("volume", "no volume configured");
  for (const auto& v : c.volumes) {
    if (v.home == c.node_id) continue;
    if (!c.has_membership() || v.home != c.interconnect.partner_node_id)
      return bad("volume.home", "volume '" + v.name + "' has home node " + std::to_string(v.home) +
                                    ": a volume of another node needs [membership] and that node as the partner");
  }
  if (c.has_membership() && !c.mirrored())
    return bad("membership.dir", "membership needs a partner ([interconnect])");
  if (c.mirrored()) {
    const auto& ic = c.interconnect;
    if (ic.partner_node_id == c.node_id) return bad("interconnect.partner_node_id", "is this node's own id");
    if (ic.listen_port.empty()) return bad("interconnect.listen", "missing (HOST:PORT)");
    if (ic.partner_port.empty()) return bad("interconnect.partner", "missing (HOST:PORT)");
    if (ic.mirror_path.empty()) return bad("interconnect.mirror_path", "missing");
    if (ic.key_file.empty() == ic.key.empty())
      return bad("interconnect.key_file", "give exactly one of key_file and key");
    if (ic.heartbeat_ms >= ic.silence_limit_ms)
      return bad("interconnect.heartbeat_ms", "must be below interconnect.silence_limit_ms");
  }
  std::set<std::string> names;
  std::set<uint32_t> ids;
  for (const auto& v : c.volumes) {
    const std::string where = "volume '" + v.name + "'";
    if (v.name.empty() || v.name == "." || v.name == ".." || v.name.find('/') != std::string::npos ||
        v.name.size() > NAME_MAX)
      return bad("volume.name", "'" + v.name + "' is not a valid directory name");
    if (v.id == 0 || v.id > fs::kMaxVolumeId) return bad(where + ".id", "missing or outside 1..255");
    if (v.path.empty()) return bad(where + ".path", "missing");
    if (!names.insert(v.name).second) return bad("volume.name", "'" + v.name + "' appears twice");
    if (!ids.insert(v.id).second) return bad(where + ".id", std::to_string(v.id) + " is used twice");
  }
  return c;
}

}  // namespace hafs::tools
