#include "services/dns/records.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <regex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/common/status.h"
#include "libs/rpc/status.h"

namespace c2d::dns {
namespace {

constexpr int kDefaultTtl = 60;
constexpr int kMaxTtl = 86400;
constexpr int kMaxValues = 100;

// A hostname a CNAME or SRV record may point at: letters, digits and
// hyphens, at least two labels.
bool ValidTarget(absl::string_view name) {
  static const std::regex kTarget(
      "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$");
  return name.size() <= 253 && std::regex_match(name.begin(), name.end(), kTarget);
}

bool ValidPort(absl::string_view text, int* out) {
  return absl::SimpleAtoi(text, out) && *out >= 0 && *out <= 65535;
}

// One value checked for its type; `value` is put in canonical form.
absl::Status NormalizeValue(v1::RecordType type, std::string& value, const std::string& field) {
  switch (type) {
    case v1::RECORD_TYPE_A: {
      in_addr a;
      if (inet_pton(AF_INET, value.c_str(), &a) != 1) {
        return rpc::InvalidField(field, "is not an IPv4 address");
      }
      return absl::OkStatus();
    }
    case v1::RECORD_TYPE_AAAA: {
      in6_addr a;
      char text[INET6_ADDRSTRLEN];
      if (inet_pton(AF_INET6, value.c_str(), &a) != 1) {
        return rpc::InvalidField(field, "is not an IPv6 address");
      }
      value = inet_ntop(AF_INET6, &a, text, sizeof text);
      return absl::OkStatus();
    }
    case v1::RECORD_TYPE_CNAME:
      value = absl::AsciiStrToLower(value);
      if (!ValidTarget(value)) return rpc::InvalidField(field, "is not a hostname");
      return absl::OkStatus();
    case v1::RECORD_TYPE_TXT:
      if (value.empty() || value.size() > 255 ||
          !std::all_of(value.begin(), value.end(),
                       [](char c) { return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'; })) {
        return rpc::InvalidField(
            field, "must be 1-255 printable ASCII characters without quotes or backslashes");
      }
      return absl::OkStatus();
    case v1::RECORD_TYPE_SRV: {
      std::vector<std::string> f = absl::StrSplit(value, ' ');
      int n = 0;
      if (f.size() != 4 || !ValidPort(f[0], &n) || !ValidPort(f[1], &n) || !ValidPort(f[2], &n)) {
        return rpc::InvalidField(field, "is not \"<priority> <weight> <port> <target>\"");
      }
      f[3] = absl::AsciiStrToLower(f[3]);
      if (!ValidTarget(f[3])) return rpc::InvalidField(field, "has a target that is no hostname");
      value = absl::StrJoin(f, " ");
      return absl::OkStatus();
    }
    default:
      return rpc::InvalidField(field, "has no record type");
  }
}

std::string Absolute(absl::string_view name) { return absl::StrCat(name, "."); }

bool SameRRset(const RRset& a, const RRset& b) {
  if (a.ttl != b.ttl || a.tag != b.tag || a.records.size() != b.records.size()) return false;
  std::vector<std::string> x = a.records, y = b.records;
  std::sort(x.begin(), x.end());
  std::sort(y.begin(), y.end());
  return x == y;
}

}  // namespace

std::string TypeColumn(v1::RecordType type) {
  switch (type) {
    case v1::RECORD_TYPE_A:
      return "a";
    case v1::RECORD_TYPE_AAAA:
      return "aaaa";
    case v1::RECORD_TYPE_CNAME:
      return "cname";
    case v1::RECORD_TYPE_TXT:
      return "txt";
    case v1::RECORD_TYPE_SRV:
      return "srv";
    default:
      return "";
  }
}

v1::RecordType TypeFromColumn(absl::string_view column) {
  for (v1::RecordType t : {v1::RECORD_TYPE_A, v1::RECORD_TYPE_AAAA, v1::RECORD_TYPE_CNAME,
                           v1::RECORD_TYPE_TXT, v1::RECORD_TYPE_SRV}) {
    if (TypeColumn(t) == column) return t;
  }
  return v1::RECORD_TYPE_UNSPECIFIED;
}

std::string ZoneKindColumn(v1::ZoneKind kind) {
  switch (kind) {
    case v1::ZONE_KIND_PUBLIC:
      return "public";
    case v1::ZONE_KIND_INTERNAL:
      return "internal";
    case v1::ZONE_KIND_INGRESS:
      return "ingress";
    default:
      return "";
  }
}

v1::ZoneKind ZoneKindFromColumn(absl::string_view column) {
  for (v1::ZoneKind k : {v1::ZONE_KIND_PUBLIC, v1::ZONE_KIND_INTERNAL, v1::ZONE_KIND_INGRESS}) {
    if (ZoneKindColumn(k) == column) return k;
  }
  return v1::ZONE_KIND_UNSPECIFIED;
}

bool ValidRecordName(absl::string_view name) {
  static const std::regex kName(
      "^(\\*\\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$");
  return !name.empty() && name.size() <= 253 && std::regex_match(name.begin(), name.end(), kName);
}

bool ValidOwner(absl::string_view owner) {
  static const std::regex kOwner("^(service|database|certificate|system):[A-Za-z0-9_.-]{1,64}$");
  return std::regex_match(owner.begin(), owner.end(), kOwner);
}

std::string ZoneOf(absl::string_view name, const std::vector<std::string>& zones) {
  std::string best;
  for (const std::string& z : zones) {
    bool inside = name == z || absl::EndsWith(name, absl::StrCat(".", z));
    if (inside && z.size() > best.size()) best = z;
  }
  return best;
}

absl::Status NormalizeRecord(v1::Record& record, int index) {
  const std::string at = absl::StrCat("records[", index, "].");
  record.set_name(absl::AsciiStrToLower(record.name()));
  if (!ValidRecordName(record.name())) {
    return rpc::InvalidField(at + "name", "is not a lower-case DNS name of at most 253 characters");
  }
  if (TypeColumn(record.type()).empty()) return rpc::InvalidField(at + "type", "is required");
  if (record.ttl() == 0) record.set_ttl(kDefaultTtl);
  if (record.ttl() < 1 || record.ttl() > kMaxTtl) {
    return rpc::InvalidField(at + "ttl", "must be 1-86400 seconds");
  }
  if (record.values().empty() || record.values_size() > kMaxValues) {
    return rpc::InvalidField(at + "values", "must hold 1-100 values");
  }
  if (record.type() == v1::RECORD_TYPE_CNAME && record.values_size() != 1) {
    return rpc::InvalidField(at + "values", "must hold exactly one name for a CNAME");
  }
  for (int i = 0; i < record.values_size(); ++i) {
    C2D_RETURN_IF_ERROR(NormalizeValue(record.type(), *record.mutable_values(i),
                                       absl::StrCat(at, "values[", i, "]")));
  }
  if (!ValidOwner(record.owner())) {
    return rpc::InvalidField(at + "owner",
                             "must be \"<service|database|certificate|system>:<id>\"");
  }
  return absl::OkStatus();
}

RRset ToRRset(const v1::Record& record) {
  RRset out{Absolute(record.name()),
            absl::AsciiStrToUpper(TypeColumn(record.type())),
            record.ttl(),
            {},
            ""};
  for (const std::string& v : record.values()) {
    switch (record.type()) {
      case v1::RECORD_TYPE_CNAME:
      case v1::RECORD_TYPE_SRV:
        out.records.push_back(Absolute(v));
        break;
      case v1::RECORD_TYPE_TXT:
        out.records.push_back(absl::StrCat("\"", v, "\""));
        break;
      default:
        out.records.push_back(v);
    }
  }
  return out;
}

std::vector<RRset> Diff(const std::vector<RRset>& desired, const std::vector<RRset>& actual,
                        const std::string& tag) {
  std::map<std::pair<std::string, std::string>, const RRset*> have;
  for (const RRset& r : actual) have[{r.name, r.type}] = &r;
  std::vector<RRset> changes;
  std::map<std::pair<std::string, std::string>, bool> wanted;
  for (RRset want : desired) {
    want.tag = tag;
    wanted[{want.name, want.type}] = true;
    auto it = have.find({want.name, want.type});
    if (it == have.end() || !SameRRset(want, *it->second)) changes.push_back(std::move(want));
  }
  for (const RRset& r : actual) {
    if (r.tag == tag && !wanted.count({r.name, r.type})) {
      changes.push_back(RRset{r.name, r.type, r.ttl, {}, tag});
    }
  }
  return changes;
}

}  // namespace c2d::dns
