#pragma once

// In-memory tar archives (POSIX ustar, with PAX headers for long names and
// large files) for build contexts sent to the container engine.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace c2d::engine {

class TarWriter {
 public:
  // Entries are added under `path` (relative, '/'-separated, no "..").
  void AddFile(absl::string_view path, absl::string_view content, int mode = 0644);
  void AddDirectory(absl::string_view path, int mode = 0755);
  void AddSymlink(absl::string_view path, absl::string_view target);

  // Adds the tree below `dir` (files, directories, symlinks as links), with
  // paths relative to `dir`. Skips `.git`. Fails when the archive would
  // exceed `max_bytes`.
  absl::Status AddTree(const std::string& dir, int64_t max_bytes);

  // The archive, with its end-of-archive marker.
  std::string Finish();
  int64_t size() const { return static_cast<int64_t>(out_.size()); }

 private:
  void Header(absl::string_view path, char type, int mode, int64_t size,
              absl::string_view link_target);
  void Pad();

  std::string out_;
};

}  // namespace c2d::engine
