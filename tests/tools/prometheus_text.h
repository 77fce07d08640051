// A strict reader of the Prometheus text exposition format 0.0.4, for tests of `hafsctl metrics`:
// it parses every line and reports each deviation from the format (and from what hafs promises:
// every family has # HELP and # TYPE before its samples; histogram buckets are cumulative and
// end with le="+Inf" equal to _count).
#pragma once

#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace hafs::testing {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct PromText {
  std::map<std::string, std::string> help, type;  // family -> text
  std::vector<PromSample> samples;
  std::vector<std::string> errors;  // empty: the text is valid

  // The value of the sample `name` with exactly `labels`, if there is one.
  std::optional<double> value(const std::string& name,
                              const std::map<std::string, std::string>& labels = {}) const {
    for (const PromSample& s : samples)
      if (s.name == name && s.labels == labels) return s.value;
    return std::nullopt;
  }
  bool has_family(const std::string& family) const { return type.count(family) > 0; }
};

namespace prom_detail {

inline std::string family_of(const std::string& name, const std::map<std::string, std::string>& type) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string sfx = suffix;
    if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
      const std::string base = name.substr(0, name.size() - sfx.size());
      auto t = type.find(base);
      if (t != type.end() && t->second == "histogram") return base;
    }
  }
  return name;
}

// Parses `k="v",k2="v2"` (escapes \\ \" \n); false on a syntax error.
inline bool parse_labels(const std::string& s, std::map<std::string, std::string>* out) {
  static const std::regex kName("[a-zA-Z_][a-zA-Z0-9_]*");
  size_t i = 0;
  while (i < s.size()) {
    const size_t eq = s.find('=', i);
    if (eq == std::string::npos || !std::regex_match(s.substr(i, eq - i), kName)) return false;
    const std::string key = s.substr(i, eq - i);
    if (eq + 1 >= s.size() || s[eq + 1] != '"') return false;
    std::string value;
    size_t j = eq + 2;
    for (; j < s.size() && s[j] != '"'; ++j) {
      if (s[j] == '\\') {
        if (++j >= s.size()) return false;
        if (s[j] == 'n') value += '\n';
        else if (s[j] == '\\' || s[j] == '"') value += s[j];
        else return false;
      } else {
        value += s[j];
      }
    }
    if (j >= s.size() || out->count(key)) return false;
    (*out)[key] = value;
    i = j + 1;
    if (i < s.size() && s[i++] != ',') return false;
  }
  return true;
}

inline std::optional<double> parse_value(const std::string& v) {
  if (v == "+Inf") return std::numeric_limits<double>::infinity();
  if (v == "-Inf") return -std::numeric_limits<double>::infinity();
  if (v == "NaN") return std::numeric_limits<double>::quiet_NaN();
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0') return std::nullopt;
  return d;
}

}  // namespace prom_detail

inline PromText parse_prometheus_text(const std::string& text) {
  using namespace prom_detail;
  static const std::regex kHelp("# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)");
  static const std::regex kType("# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)");
  static const std::regex kSample("([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{(.*)\\})? (\\S+)");
  PromText p;
  if (text.empty() || text.back() != '\n') p.errors.push_back("the text does not end with a newline");
  std::istringstream in(text);
  std::string line;
  std::set<std::string> families_with_samples;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string at = "line " + std::to_string(n) + " '" + line + "': ";
    std::smatch m;
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (std::regex_match(line, m, kHelp)) {
        if (!p.help.emplace(m[1], m[2]).second) p.errors.push_back(at + "second # HELP");
      } else if (std::regex_match(line, m, kType)) {
        if (families_with_samples.count(m[1])) p.errors.push_back(at + "# TYPE after samples");
        if (!p.type.emplace(m[1], m[2]).second) p.errors.push_back(at + "second # TYPE");
      }
      continue;  // other comments are allowed
    }
    if (!std::regex_match(line, m, kSample)) {
      p.errors.push_back(at + "not 'name{labels} value'");
      continue;
    }
    PromSample s;
    s.name = m[1];
    if (m[2].matched && !parse_labels(m[3], &s.labels)) p.errors.push_back(at + "bad labels");
    const auto v = parse_value(m[4]);
    if (!v) p.errors.push_back(at + "bad value");
    s.value = v.value_or(0);
    const std::string family = family_of(s.name, p.type);
    if (!p.type.count(family)) p.errors.push_back(at + "no # TYPE for " + family);
    if (!p.help.count(family)) p.errors.push_back(at + "no # HELP for " + family);
    families_with_samples.insert(family);
    p.samples.push_back(std::move(s));
  }
  // Histograms: buckets in increasing le, cumulative counts never decreasing, +Inf last and
  // equal to _count, a _sum.
  for (const auto& [family, t] : p.type) {
    if (t != "histogram") continue;
    double last_le = -1, last_count = 0;
    bool inf = false;
    for (const PromSample& s : p.samples) {
      if (s.name != family + "_bucket") continue;
      auto le = s.labels.find("le");
      const auto bound = le == s.labels.end() ? std::nullopt : parse_value(le->second);
      if (!bound || inf) {
        p.errors.push_back(family + ": bucket without a valid le, or after +Inf");
        continue;
      }
      if (*bound <= last_le) p.errors.push_back(family + ": le not increasing at " + le->second);
      if (s.value < last_count) p.errors.push_back(family + ": bucket count decreases at le=" + le->second);
      last_le = *bound;
      last_count = s.value;
      inf = le->second == "+Inf";
    }
    const auto count = p.value(family + "_count");
    if (!inf) p.errors.push_back(family + ": no le=\"+Inf\" bucket");
    if (!count || *count != last_count) p.errors.push_back(family + ": +Inf bucket differs from _count");
    if (!p.value(family + "_sum")) p.errors.push_back(family + ": no _sum");
  }
  for (const auto& [family, t] : p.type)
    if (!p.help.count(family)) p.errors.push_back(family + ": # TYPE without # HELP");
  return p;
}

}  // namespace hafs::testing
