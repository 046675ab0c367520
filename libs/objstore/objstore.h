#pragma once

// Object storage for database backups (DESIGN point 15): a small interface
// with a local-filesystem store (the embedded default); Swift comes with the
// OpenStack provider. Objects are written as a stream and appear whole or
// not at all; their size and SHA-256 are computed on the way in.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace c2d::objstore {

struct ObjectInfo {
  int64_t size = 0;
  std::string sha256;  // lower-case hex
};

// One object being written; dropped without Commit, nothing is stored.
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  virtual absl::Status Write(absl::string_view bytes) = 0;
  // Stores the object under its key (replacing one there).
  virtual absl::StatusOr<ObjectInfo> Commit() = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // InvalidArgument for a key that is not lower-case letters, digits and
  // "._-" in "/"-separated parts (no "." or ".." parts).
  virtual absl::StatusOr<std::unique_ptr<ObjectWriter>> Create(const std::string& key) = 0;
  // The object's bytes, in order, to `write` (its error stops the read);
  // NotFound when there is none.
  virtual absl::Status Get(const std::string& key,
                           const std::function<absl::Status(absl::string_view)>& write) = 0;
  // Deleting what is not there is OK.
  virtual absl::Status Delete(const std::string& key) = 0;
};

// Objects as files below `root` (made on first use); a write goes to a
// temporary file, fsynced and renamed into place on Commit.
class LocalObjectStore final : public ObjectStore {
 public:
  explicit LocalObjectStore(std::string root) : root_(std::move(root)) {}
  absl::StatusOr<std::unique_ptr<ObjectWriter>> Create(const std::string& key) override;
  absl::Status Get(const std::string& key,
                   const std::function<absl::Status(absl::string_view)>& write) override;
  absl::Status Delete(const std::string& key) override;
  // The file that holds `key` (tests corrupt backups through it).
  absl::StatusOr<std::string> PathOf(const std::string& key) const;

 private:
  const std::string root_;
};

// OK for a key every store takes (see ObjectStore::Create), else InvalidArgument.
absl::Status CheckKey(const std::string& key);

// Reads the object whole to `write`, then checks its SHA-256 against
// `sha256`: DataLoss when they differ (what was written is then not it).
absl::Status ReadVerified(ObjectStore& store, const std::string& key, const std::string& sha256,
                          const std::function<absl::Status(absl::string_view)>& write);

// ReadVerified into the file `path`; no file is left when it fails.
absl::Status FetchVerified(ObjectStore& store, const std::string& key, const std::string& sha256,
                           const std::string& path);

// Stores the local file `path` as `key`, streamed in 1 MiB reads.
absl::StatusOr<ObjectInfo> PutFile(ObjectStore& store, const std::string& key,
                                   const std::string& path);

}  // namespace c2d::objstore
