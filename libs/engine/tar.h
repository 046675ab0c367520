#pragma once

// Tar archives (POSIX ustar, with PAX headers for long names and large
// files) for build contexts sent to the container engine: small ones built in
// memory (TarWriter), a checkout's tree streamed from disk (TreeTar).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace c2d::engine {

class TarWriter {
 public:
  // Entries are added under `path` (relative, '/'-separated, no "..").
  void AddFile(absl::string_view path, absl::string_view content, int mode = 0644);
  void AddDirectory(absl::string_view path, int mode = 0755);
  void AddSymlink(absl::string_view path, absl::string_view target);

  // The archive, with its end-of-archive marker.
  std::string Finish();
  int64_t size() const { return static_cast<int64_t>(out_.size()); }

 private:
  void Pad();

  std::string out_;
};

// The tree below a directory as a tar stream read piece by piece, so that a
// context of any size costs a few buffers of memory. Directories, regular
// files and symlinks (stored as links, never followed) with paths relative to
// the directory; `.git` and anything else (sockets, fifos, devices) are left
// out. Files are opened with O_NOFOLLOW as they are reached.
class TreeTar {
 public:
  // Scans `dir` (the directory itself is not followed if it is a symlink).
  // `extra` files (path → content) are added as regular files, replacing any
  // entry of the tree at the same path. ResourceExhausted when the archive
  // would be larger than `max_bytes`.
  static absl::StatusOr<std::unique_ptr<TreeTar>> Open(
      const std::string& dir, int64_t max_bytes,
      const std::map<std::string, std::string>& extra = {});
  ~TreeTar();

  // The archive's exact size, end marker included.
  int64_t size() const { return size_; }
  // Up to n bytes of the archive into buf; 0 at the end. A file that changed
  // type or vanished since Open is an error; one that changed size is cut or
  // padded with zeros to the size Open saw.
  absl::StatusOr<size_t> Read(char* buf, size_t n);

  // One member of the archive, as Open found it.
  struct Entry {
    std::string path;  // relative
    char type;         // '0', '2', '5'
    int mode;
    int64_t size;
    std::string link_target;
    int extra = -1;  // index into extra_ for generated files
  };

 private:
  TreeTar() = default;
  // Moves to the next entry: its header into pending_, its file opened.
  absl::Status Next();

  std::string dir_;
  std::vector<Entry> entries_;
  std::vector<std::string> extra_;
  int64_t size_ = 0;
  size_t next_ = 0;      // index of the entry after the current one
  std::string pending_;  // bytes to hand out before the current file's content
  size_t pending_at_ = 0;
  int fd_ = -1;  // the current file, while its content is read
  int64_t content_left_ = 0;
  int64_t padding_left_ = 0;
  const std::string* extra_content_ = nullptr;
  bool finished_ = false;
};

// The ustar header block(s) of one entry, with a PAX header before it when
// the path, the link target or the size does not fit ustar.
std::string TarHeader(absl::string_view path, char type, int mode, int64_t size,
                      absl::string_view link_target);

}  // namespace c2d::engine
