#include "libs/rpc/validate.h"

#include <algorithm>
#include <regex>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/common/ids.h"
#include "libs/rpc/repo_url.h"

namespace c2d::rpc {

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 39) return false;
  if (name.front() < 'a' || name.front() > 'z' || name.back() == '-') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return !(name.size() >= 4 && name[2] == '-' && name[3] == '-');
}

absl::StatusOr<int> PageSize(const v1::PageRequest& page) {
  constexpr int kDefault = 50, kMax = 200;
  if (page.page_size() < 0) return InvalidField("page.page_size", "must not be negative");
  if (page.page_size() == 0) return kDefault;
  return std::min(page.page_size(), kMax);
}

namespace {

bool InRange(int v, int lo, int hi) { return v >= lo && v <= hi; }

std::string F(absl::string_view prefix, absl::string_view field) {
  return absl::StrCat(prefix, field);
}

// A plain relative path inside a checkout (root_dir, dockerfile_path): no
// leading '/', no "." or ".." components, no empty ones, no control
// characters or '\\'. Symlinks are the builder's to check, in the checkout.
bool PlainRelative(const std::string& p) {
  if (p.size() > 1024 || absl::StartsWith(p, "/")) return false;
  for (char c : p) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\') return false;
  }
  absl::string_view rest = p;
  absl::ConsumeSuffix(&rest, "/");  // "app/" names the directory "app"
  if (p.empty()) return true;
  for (absl::string_view part : absl::StrSplit(rest, '/')) {
    if (part == ".." || part == "." || part.empty()) return false;
  }
  return true;
}

// git's own rules for branch names, the parts that matter for safety.
bool ValidBranch(const std::string& b) {
  if (b.empty() || b.size() > 255 || b[0] == '-' || absl::StrContains(b, "..") ||
      absl::EndsWith(b, "/") || absl::EndsWith(b, ".lock")) {
    return false;
  }
  for (char c : b) {
    if (static_cast<unsigned char>(c) < 0x20 || c == ' ' || c == '~' || c == '^' || c == ':' ||
        c == '?' || c == '*' || c == '[' || c == '\\' || c == 0x7f) {
      return false;
    }
  }
  return true;
}

absl::Status ValidateHealthCheck(const v1::HealthCheck& c) {
  if (!c.path().empty() && (c.path()[0] != '/' || c.path().size() > 1024)) {
    return InvalidField("spec.health_check.path", "must be empty (TCP check) or start with '/'");
  }
  if (!InRange(c.port(), 0, 65535)) {
    return InvalidField("spec.health_check.port", "must be 0 (the app's port) or 1-65535");
  }
  if (!InRange(c.interval_s(), 1, 300)) {
    return InvalidField("spec.health_check.interval_s", "must be 1-300");
  }
  if (!InRange(c.timeout_s(), 1, 60) || c.timeout_s() > c.interval_s()) {
    return InvalidField("spec.health_check.timeout_s", "must be 1-60 and at most interval_s");
  }
  if (!InRange(c.healthy_threshold(), 1, 10)) {
    return InvalidField("spec.health_check.healthy_threshold", "must be 1-10");
  }
  if (!InRange(c.unhealthy_threshold(), 1, 10)) {
    return InvalidField("spec.health_check.unhealthy_threshold", "must be 1-10");
  }
  if (!InRange(c.start_period_s(), 0, 3600)) {
    return InvalidField("spec.health_check.start_period_s", "must be 0-3600");
  }
  return absl::OkStatus();
}

}  // namespace

bool ValidMountPath(absl::string_view p) {
  if (p.size() < 2 || p.size() > 1024 || p[0] != '/') return false;
  for (absl::string_view part : absl::StrSplit(p, '/')) {
    if (part == "..") return false;
  }
  return true;
}

bool IsCommitSha(absl::string_view s) {
  if (s.size() != 40 && s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status ValidateSource(const v1::Source& src, absl::string_view prefix,
                            absl::string_view local_repo_root) {
  if (src.repo_url().empty() || src.repo_url().size() > 2048) {
    return InvalidField(F(prefix, "repo_url"), "must be 1 to 2048 characters");
  }
  if (absl::StartsWith(src.repo_url(), "-")) {
    return InvalidField(F(prefix, "repo_url"), "must not start with '-'");
  }
  if (auto url = ParseRepoUrl(src.repo_url(), local_repo_root); !url.ok()) {
    return InvalidField(F(prefix, "repo_url"), url.status().message());
  }
  if (!src.branch().empty() && !ValidBranch(src.branch())) {
    return InvalidField(F(prefix, "branch"), "is not a valid git branch name");
  }
  if (!src.commit().empty() && !IsCommitSha(src.commit())) {
    return InvalidField(F(prefix, "commit"),
                        "must be a full commit id (40 or 64 lower-case hex characters)");
  }
  if (!PlainRelative(src.root_dir())) {
    return InvalidField(F(prefix, "root_dir"),
                        "must be a plain relative path (no leading '/', no '.' or '..')");
  }
  return absl::OkStatus();
}

absl::Status ValidateBuildSettings(const v1::BuildSettings& settings, absl::string_view prefix) {
  const std::string& dockerfile = settings.dockerfile_path();
  if (!PlainRelative(dockerfile) || absl::EndsWith(dockerfile, "/")) {
    return InvalidField(F(prefix, "dockerfile_path"),
                        "must be a plain relative path to a file (no leading '/', no '.' or '..')");
  }
  // The engine runs the C preprocessor over Containerfiles named *.in, which
  // would let #include read the engine's host.
  if (absl::EndsWith(absl::AsciiStrToLower(dockerfile), ".in")) {
    return InvalidField(F(prefix, "dockerfile_path"), "must not end in \".in\"");
  }
  if (settings.build_command().size() > 4096) {
    return InvalidField(F(prefix, "build_command"), "must be at most 4096 characters");
  }
  return absl::OkStatus();
}

bool ValidEnvPrefix(const std::string& prefix) {
  static const std::regex kPrefix("^[A-Z][A-Z0-9_]{0,31}$");
  return std::regex_match(prefix, kPrefix);
}

absl::Status ValidateServiceSpec(const v1::ServiceSpec& spec) {
  static const std::regex kEnvKey("^[A-Za-z_][A-Za-z0-9_]*$");
  if (!ids::Valid(spec.project_id(), "prj")) {
    return InvalidField("spec.project_id", "is not a project id");
  }
  if (!ValidName(spec.project_name())) return InvalidField("spec.project_name", kNameRule);
  if (!ValidName(spec.service_name())) return InvalidField("spec.service_name", kNameRule);
  if (spec.type() != v1::SERVICE_TYPE_WEB && spec.type() != v1::SERVICE_TYPE_WORKER) {
    return InvalidField("spec.type", "must be SERVICE_TYPE_WEB or SERVICE_TYPE_WORKER");
  }
  const v1::RunSettings& run = spec.run();
  if (!InRange(run.instance_count(), 1, 20)) {
    return InvalidField(
        "spec.run.instance_count",
        absl::StrCat("must be 1-20, not ", run.instance_count(), " (StopService stops a service)"));
  }
  if (spec.type() == v1::SERVICE_TYPE_WEB && !InRange(run.port(), 1, 65535)) {
    return InvalidField("spec.run.port", "must be 1-65535 for a web service");
  }
  if (run.memory_mb() != 0 && !InRange(run.memory_mb(), 64, 65536)) {
    return InvalidField("spec.run.memory_mb", "must be 64-65536 (0 = 512)");
  }
  if (run.cpu_millis() != 0 && !InRange(run.cpu_millis(), 50, 16000)) {
    return InvalidField("spec.run.cpu_millis", "must be 50-16000 (0 = 500)");
  }
  if (run.start_command().size() > 4096) {
    return InvalidField("spec.run.start_command", "must be at most 4096 characters");
  }
  if (spec.type() == v1::SERVICE_TYPE_WEB) {
    if (absl::Status s = ValidateHealthCheck(spec.health_check()); !s.ok()) return s;
  } else if (!InRange(spec.health_check().start_period_s(), 0, 3600)) {
    // A worker's only health setting: how long it must run to count as up.
    return InvalidField("spec.health_check.start_period_s", "must be 0-3600");
  }
  std::set<std::string> keys;
  for (const v1::EnvVar& var : spec.env()) {
    if (var.key().size() > 255 || !std::regex_match(var.key(), kEnvKey)) {
      return InvalidField("spec.env", absl::StrCat("\"", var.key().substr(0, 64),
                                                   "\" is not a valid variable name"));
    }
    if (var.key() == "PORT") return InvalidField("spec.env", "PORT is set by c2d");
    if (!keys.insert(var.key()).second) {
      return InvalidField("spec.env", absl::StrCat(var.key(), " is set twice"));
    }
    if (var.value().key_id().empty() || var.value().ciphertext().empty()) {
      return InvalidField("spec.env", absl::StrCat(var.key(), " has no sealed value"));
    }
  }
  std::set<std::string> paths;
  for (const v1::VolumeMount& v : spec.volumes()) {
    if (!ids::Valid(v.volume_id(), "vol")) {
      return InvalidField("spec.volumes",
                          absl::StrCat("\"", v.volume_id(), "\" is not a volume id"));
    }
    if (!ValidMountPath(v.mount_path()) || !paths.insert(v.mount_path()).second) {
      return InvalidField(
          "spec.volumes",
          absl::StrCat("mount path \"", v.mount_path(),
                       "\" must be absolute, not \"/\", without \"..\", and unique"));
    }
  }
  std::set<std::string> prefixes, databases;
  for (const v1::DatabaseLinkRef& l : spec.database_links()) {
    if (!ids::Valid(l.database_id(), "db") || !databases.insert(l.database_id()).second) {
      return InvalidField("spec.database_links",
                          absl::StrCat("\"", l.database_id().substr(0, 64),
                                       "\" is not a database id, or is linked twice"));
    }
    if (!ValidEnvPrefix(l.env_prefix()) || !prefixes.insert(l.env_prefix()).second) {
      return InvalidField("spec.database_links",
                          absl::StrCat("env prefix \"", l.env_prefix().substr(0, 64),
                                       "\" must match ^[A-Z][A-Z0-9_]{0,31}$ and be unique"));
    }
  }
  if (!spec.volumes().empty() && run.instance_count() != 1) {
    return InvalidField("spec.run.instance_count",
                        absl::StrCat("a service with a volume runs exactly one instance, not ",
                                     run.instance_count()));
  }
  return absl::OkStatus();
}

}  // namespace c2d::rpc
