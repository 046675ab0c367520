// Names, env keys, paths, repository URLs, Dockerfiles and registry scopes:
// the checks every tenant's string passes before it reaches git, the engine,
// the registry or the filesystem. The input is split into fields at NUL
// bytes; the specs are the input read as protobuf messages. Never throws,
// never crashes; what a check accepts keeps its promises.

#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "libs/oci/access.h"
#include "libs/rpc/repo_url.h"
#include "libs/rpc/validate.h"
#include "services/builder/dockerfile.h"

namespace {

// A ".." path segment.
bool HasDotDot(const std::string& path) {
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return true;
  }
  return false;
}

// Invalid UTF-8 in a string field is an expected parse failure, not news.
const bool kQuietProtobuf = [] {
  google::protobuf::SetLogHandler(nullptr);
  return true;
}();

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string> f = absl::StrSplit(input, absl::ByChar('\0'));
  const std::string& text = f[0];

  if (c2d::rpc::ValidName(text)) {
    // A DNS label: no dot, no slash, nothing a path or a host could use.
    if (text.find_first_of("./:@ \\") != std::string::npos || text.size() > 39) std::abort();
  }
  if (c2d::rpc::ValidMountPath(text) && HasDotDot(text)) std::abort();
  (void)c2d::rpc::IsCommitSha(text);
  (void)c2d::rpc::RedactUrl(text);
  if (auto url = c2d::rpc::ParseRepoUrl(text, f.size() > 1 ? f[1] : "/srv/repos"); url.ok()) {
    if (url->kind == c2d::rpc::RepoUrl::Kind::kLocal && HasDotDot(url->path)) std::abort();
  }
  (void)c2d::builder::CheckDockerfile(text);
  (void)c2d::oci::ParseScope(text);

  c2d::v1::Source source;
  if (source.ParseFromString(input)) (void)c2d::rpc::ValidateSource(source, "source.", "/srv");
  c2d::v1::BuildSettings settings;
  if (settings.ParseFromString(input)) (void)c2d::rpc::ValidateBuildSettings(settings, "build.");
  c2d::v1::ServiceSpec spec;
  if (spec.ParseFromString(input)) (void)c2d::rpc::ValidateServiceSpec(spec);
  return 0;
}
