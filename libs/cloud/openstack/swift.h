#pragma once

// Swift (Object Storage v1) as c2d's object store in OpenStack mode: where
// database backups go (DESIGN §1 point 15), behind objstore::ObjectStore.
//
// - Objects up to SwiftOptions::segment_size are one PUT; larger ones (a
//   Swift object stops at 5 GiB) are Static Large Objects: segments of
//   segment_size in "<container>_segments", then a manifest. Every PUT sends
//   the MD5 of its bytes as ETag, so Swift refuses what it did not receive
//   whole (422); the manifest names each segment's ETag and size, so Swift
//   refuses a manifest of anything else.
// - The SHA-256 c2d keeps for a backup is the object's metadata
//   (X-Object-Meta-Sha256) as well.
// - An object replaced or deleted takes its segments with it; a writer
//   dropped without Commit deletes the segments it wrote.
// - Reads are ranged GETs of read_chunk bytes, each retried on its own, so a
//   lost connection costs one chunk, not the object.
//
// - SignGet makes a link anyone may GET one object with until it expires
//   (Swift's tempurl middleware, HMAC-SHA256 under the container's own key,
//   which the store sets on first use): how an instance fetches a file
//   without any credential of c2d's. A container-scoped key lets a link
//   reach its own container only, so a store whose links must serve large
//   objects keeps their segments there too (SwiftOptions::segment_container).
//
// Memory: a writer holds one segment. Thread-safe across objects.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/cloud/openstack/session.h"
#include "libs/objstore/objstore.h"

namespace c2d::cloud::openstack {

struct SwiftOptions {
  std::string container = "c2d-backups";
  int64_t segment_size = int64_t{256} << 20;
  int64_t read_chunk = int64_t{16} << 20;
  // Where large objects' segments go; empty: "<container>_segments".
  std::string segment_container;
};

// A signed GET of one object: the whole URL, and its parts.
struct SignedUrl {
  std::string url;
  std::string signature;  // hex HMAC-SHA256
  int64_t expires = 0;    // Unix seconds
};

class SwiftObjectStore final : public objstore::ObjectStore {
 public:
  SwiftObjectStore(Session& session, SwiftOptions options);

  absl::StatusOr<std::unique_ptr<objstore::ObjectWriter>> Create(const std::string& key) override;
  absl::Status Get(const std::string& key,
                   const std::function<absl::Status(absl::string_view)>& write) override;
  absl::Status Delete(const std::string& key) override;

  struct Listed {
    std::string key;
    int64_t size = 0;
  };
  // Objects whose key starts with `prefix`, in key order, across pages.
  absl::StatusOr<std::vector<Listed>> List(const std::string& prefix);
  // The SHA-256 stored with the object; NotFound when there is none.
  absl::StatusOr<objstore::ObjectInfo> Stat(const std::string& key);

  // A link to GET `key` until `expires`, for anyone who holds it.
  absl::StatusOr<SignedUrl> SignGet(const std::string& key, absl::Time expires);
  // The container's URL (no trailing slash): an object is at "/<key>" below.
  absl::StatusOr<std::string> ContainerUrl();

  const SwiftOptions& options() const { return options_; }
  std::string SegmentContainer() const {
    return options_.segment_container.empty() ? options_.container + "_segments"
                                              : options_.segment_container;
  }

 private:
  friend class SwiftWriter;
  std::string ObjectPath(const std::string& key) const;  // "/container/key"
  absl::Status EnsureContainers();
  // The container's tempurl key, set to a random one when it has none.
  absl::StatusOr<std::string> TempUrlKey();
  // The segment paths ("/container/name") of the SLO at `key`; empty when it
  // is a plain object or none.
  absl::StatusOr<std::vector<std::string>> SegmentsOf(const std::string& key);
  absl::Status DeleteSegments(const std::vector<std::string>& paths,
                              const std::vector<std::string>& keep = {});

  Session& session_;
  const SwiftOptions options_;
  absl::Mutex mu_;
  bool containers_ready_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace c2d::cloud::openstack
