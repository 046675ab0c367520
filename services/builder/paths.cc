#include "services/builder/paths.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace c2d::builder {

namespace fs = std::filesystem;

absl::StatusOr<fs::path> ResolveInside(const fs::path& root, absl::string_view rel, PathKind kind,
                                       absl::string_view what) {
  char real_root[PATH_MAX], real[PATH_MAX];
  if (realpath(root.c_str(), real_root) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot resolve ", root.string()));
  }
  const std::string shown = rel.empty() ? "the repository's root" : absl::StrCat("\"", rel, "\"");
  const fs::path joined =
      rel.empty() ? fs::path(real_root) : fs::path(real_root) / std::string(rel);
  if (realpath(joined.c_str(), real) == nullptr) {
    return absl::NotFoundError(absl::StrCat(what, " ", shown, " does not exist in the repository"));
  }
  const std::string inside(real_root);
  if (inside != real && !absl::StartsWith(real, inside + "/")) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, " ", shown, " is a symlink that leads outside the repository"));
  }
  struct stat st {};
  if (stat(real, &st) != 0 ||
      (kind == PathKind::kDirectory ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
    return absl::NotFoundError(absl::StrCat(what, " ", shown, " is not a ",
                                            kind == PathKind::kDirectory ? "directory" : "file",
                                            " in the repository"));
  }
  return fs::path(real);
}

std::string ReadInside(const fs::path& root, absl::string_view rel, int64_t max_bytes) {
  auto path = ResolveInside(root, rel, PathKind::kRegularFile, "file");
  if (!path.ok()) return "";
  int fd = open(path->c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return "";
  std::string out;
  char buf[65536];
  ssize_t n;
  while (static_cast<int64_t>(out.size()) < max_bytes && (n = read(fd, buf, sizeof(buf))) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (static_cast<int64_t>(out.size()) > max_bytes) out.resize(static_cast<size_t>(max_bytes));
  return out;
}

}  // namespace c2d::builder
