#pragma once

// A client for the OCI Distribution API (/v2/) of any registry: Distribution
// (`docker-registry`) locally, Harbor in production. Authenticates with basic
// credentials or, when the registry challenges with
// `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, with a token fetched
// from the realm using those credentials (cached per scope until it expires).
// Retries transport errors and 5xx answers; every call has a deadline.
// Thread-safe.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/http/client.h"

namespace c2d::oci {

struct RegistryOptions {
  std::string url;  // e.g. http://127.0.0.1:5000 (no trailing slash)
  std::string username;
  std::string password;
  std::chrono::milliseconds timeout{30'000};
  int attempts = 3;  // per call, for transport errors and 5xx
};

struct Manifest {
  std::string digest;  // sha256:… of the manifest bytes, as the registry names it
  std::string media_type;
  std::string body;
  // Config plus layers (for an index: the sum over its manifests' own
  // sizes, not their layers).
  int64_t total_size = 0;
  std::vector<std::string> layer_digests;
};

// The sizes and layers of a manifest or index (body, total_size,
// layer_digests; digest and media_type are the caller's). DataLoss for a
// body that is not a JSON object or whose sizes are not non-negative
// integers (fuzzed: tools/fuzz oci_manifest).
absl::StatusOr<Manifest> ParseManifest(const std::string& body);

class Registry {
 public:
  explicit Registry(RegistryOptions options);

  // The host:port part of the URL, as image names start with it.
  std::string host() const;

  absl::Status Ping();
  // The digest `reference` (a tag or a digest) currently names.
  absl::StatusOr<std::string> ResolveDigest(const std::string& repo, const std::string& reference);
  absl::StatusOr<Manifest> GetManifest(const std::string& repo, const std::string& reference);
  // All tags of a repository (follows pagination); NotFound for an unknown
  // repository.
  absl::StatusOr<std::vector<std::string>> ListTags(const std::string& repo);
  // Points `tag` at an existing manifest (the bytes GetManifest returned), so
  // no layer moves: tagging in the registry instead of pushing again.
  absl::Status PutManifest(const std::string& repo, const std::string& tag,
                           const Manifest& manifest);
  // Deletes the manifest; its tags go with it. The registry's own garbage
  // collection frees the blobs later. NotFound when it is already gone.
  absl::Status DeleteManifest(const std::string& repo, const std::string& digest);

 private:
  // Sends with auth (answering one challenge) and retries.
  absl::StatusOr<http::Response> Call(http::Request request, const std::string& scope);
  absl::StatusOr<std::string> FetchToken(const std::string& challenge, const std::string& scope);
  void Authorize(http::Request& request, const std::string& scope);

  const RegistryOptions options_;
  absl::Mutex mu_;
  // "basic", "bearer" or "" (not challenged yet).
  std::string scheme_ ABSL_GUARDED_BY(mu_);
  struct Token {
    std::string value;
    absl::Time expires;
  };
  std::map<std::string, Token> tokens_ ABSL_GUARDED_BY(mu_);  // by scope
};

// Accept header value covering OCI and Docker v2 manifests and indexes.
extern const char kManifestAccept[];

}  // namespace c2d::oci
