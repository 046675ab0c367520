#include "libs/engine/tar.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace c2d::engine {
namespace {

constexpr size_t kBlock = 512;

// Writes `value` as zero-padded octal into field[0..width-1), NUL-terminated.
void Octal(char* field, size_t width, int64_t value) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%0*llo", static_cast<int>(width - 1),
                static_cast<unsigned long long>(value));
  std::memcpy(field, buf, width - 1);
  field[width - 1] = '\0';
}

// A PAX record "LEN key=value\n", where LEN counts the whole record.
std::string PaxRecord(absl::string_view key, absl::string_view value) {
  size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = body + std::to_string(body).size();
  if (std::to_string(len).size() != std::to_string(body).size()) ++len;
  return absl::StrCat(len, " ", key, "=", value, "\n");
}

}  // namespace

std::string TarHeader(absl::string_view path, char type, int mode, int64_t size,
                      absl::string_view link_target) {
  constexpr int64_t kMaxOctalSize = 077777777777;  // 11 octal digits
  std::string out;
  if (path.size() > 100 || link_target.size() > 100 || size > kMaxOctalSize) {
    std::string records;
    if (path.size() > 100) records += PaxRecord("path", path);
    if (link_target.size() > 100) records += PaxRecord("linkpath", link_target);
    if (size > kMaxOctalSize) records += PaxRecord("size", std::to_string(size));
    out = TarHeader("././@PaxHeader", 'x', 0644, static_cast<int64_t>(records.size()), "");
    out += records;
    out.append((kBlock - out.size() % kBlock) % kBlock, '\0');
    path = path.substr(0, std::min<size_t>(path.size(), 100));
    link_target = link_target.substr(0, std::min<size_t>(link_target.size(), 100));
    if (size > kMaxOctalSize) size = 0;
  }
  char h[kBlock] = {};
  std::memcpy(h, path.data(), std::min<size_t>(path.size(), 100));
  Octal(h + 100, 8, mode & 07777);
  Octal(h + 108, 8, 0);  // uid
  Octal(h + 116, 8, 0);  // gid
  Octal(h + 124, 12, size);
  Octal(h + 136, 12, 0);  // mtime: fixed, so identical trees give identical archives
  h[156] = type;
  std::memcpy(h + 157, link_target.data(), std::min<size_t>(link_target.size(), 100));
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char ch : h) sum += ch;
  std::snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  out.append(h, kBlock);
  return out;
}

void TarWriter::Pad() { out_.append((kBlock - out_.size() % kBlock) % kBlock, '\0'); }

void TarWriter::AddFile(absl::string_view path, absl::string_view content, int mode) {
  out_ += TarHeader(path, '0', mode, static_cast<int64_t>(content.size()), "");
  out_.append(content.data(), content.size());
  Pad();
}

void TarWriter::AddDirectory(absl::string_view path, int mode) {
  std::string p(path);
  if (p.empty() || p.back() != '/') p += '/';
  out_ += TarHeader(p, '5', mode, 0, "");
}

void TarWriter::AddSymlink(absl::string_view path, absl::string_view target) {
  out_ += TarHeader(path, '2', 0777, 0, target);
}

std::string TarWriter::Finish() {
  out_.append(2 * kBlock, '\0');
  return std::move(out_);
}

namespace {

int64_t Padded(int64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

// Lists `rel` (below `root`, opened without following symlinks) into
// `entries`, depth first, names sorted so that archives are reproducible.
absl::Status Scan(const std::string& root, const std::string& rel,
                  const std::map<std::string, std::string>& extra, int64_t max_bytes, int64_t* size,
                  std::vector<TreeTar::Entry>* entries);

}  // namespace

absl::StatusOr<std::unique_ptr<TreeTar>> TreeTar::Open(
    const std::string& dir, int64_t max_bytes, const std::map<std::string, std::string>& extra) {
  std::unique_ptr<TreeTar> t(new TreeTar());
  t->dir_ = dir;
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("cannot read ", dir, ": not a directory"));
  }
  t->size_ = 2 * kBlock;  // the end marker
  for (const auto& [path, content] : extra) {
    t->extra_.push_back(content);
    Entry e{path, '0',
            0644, static_cast<int64_t>(content.size()),
            "",   static_cast<int>(t->extra_.size() - 1)};
    t->size_ +=
        static_cast<int64_t>(TarHeader(e.path, '0', e.mode, e.size, "").size()) + Padded(e.size);
    t->entries_.push_back(std::move(e));
  }
  if (absl::Status s = Scan(dir, "", extra, max_bytes, &t->size_, &t->entries_); !s.ok()) return s;
  if (t->size_ > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("build context is larger than ", max_bytes / (1024 * 1024), " MiB"));
  }
  return t;
}

namespace {

absl::Status Scan(const std::string& root, const std::string& rel,
                  const std::map<std::string, std::string>& extra, int64_t max_bytes, int64_t* size,
                  std::vector<TreeTar::Entry>* entries) {
  const std::string here = rel.empty() ? root : absl::StrCat(root, "/", rel);
  int fd = open(here.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot read ", here, ": ", strerror(errno)));
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return absl::InternalError(absl::StrCat("cannot read ", here));
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || (rel.empty() && name == ".git")) continue;
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  absl::Status result;
  for (const std::string& name : names) {
    const std::string path = rel.empty() ? name : absl::StrCat(rel, "/", name);
    struct stat st {};
    if (fstatat(dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    TreeTar::Entry e{path, 0, static_cast<int>(st.st_mode & 07777), 0, "", -1};
    if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = readlinkat(dirfd(d), name.c_str(), target.data(), target.size());
      if (n < 0) continue;
      target.resize(static_cast<size_t>(n));
      e.type = '2';
      e.mode = 0777;
      e.link_target = std::move(target);
    } else if (S_ISDIR(st.st_mode)) {
      e.type = '5';
      e.path += '/';
    } else if (S_ISREG(st.st_mode)) {
      e.type = '0';
      e.size = st.st_size;
    } else {
      continue;  // sockets, fifos and devices have no place in a build context
    }
    if (e.type != '5' && extra.count(path) > 0) continue;  // replaced by a generated file
    *size += static_cast<int64_t>(TarHeader(e.path, e.type, e.mode, e.size, e.link_target).size()) +
             Padded(e.size);
    if (*size > max_bytes) {
      result = absl::ResourceExhaustedError(absl::StrCat(
          "build context is larger than ", max_bytes / (1024 * 1024), " MiB (at ", path, ")"));
      break;
    }
    const bool is_dir = e.type == '5';
    entries->push_back(std::move(e));
    if (is_dir) {
      result = Scan(root, path, extra, max_bytes, size, entries);
      if (!result.ok()) break;
    }
  }
  closedir(d);
  return result;
}

}  // namespace

TreeTar::~TreeTar() {
  if (fd_ >= 0) close(fd_);
}

absl::Status TreeTar::Next() {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  extra_content_ = nullptr;
  pending_.clear();
  pending_at_ = 0;
  content_left_ = padding_left_ = 0;
  if (next_ == entries_.size()) {
    pending_.assign(2 * kBlock, '\0');
    finished_ = true;
    return absl::OkStatus();
  }
  const Entry& e = entries_[next_++];
  pending_ = TarHeader(e.path, e.type, e.mode, e.size, e.link_target);
  if (e.type != '0') return absl::OkStatus();
  content_left_ = e.size;
  padding_left_ = Padded(e.size) - e.size;
  if (e.extra >= 0) {
    extra_content_ = &extra_[e.extra];
    return absl::OkStatus();
  }
  const std::string path = absl::StrCat(dir_, "/", e.path);
  fd_ = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  struct stat st {};
  if (fd_ < 0 || fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(e.path, " changed while the build context was sent"));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> TreeTar::Read(char* buf, size_t n) {
  size_t out = 0;
  while (out < n) {
    if (pending_at_ < pending_.size()) {
      size_t k = std::min(n - out, pending_.size() - pending_at_);
      std::memcpy(buf + out, pending_.data() + pending_at_, k);
      pending_at_ += k;
      out += k;
    } else if (content_left_ > 0) {
      size_t want = static_cast<size_t>(std::min<int64_t>(content_left_, n - out));
      ssize_t got = 0;
      if (extra_content_ != nullptr) {
        const size_t at = extra_content_->size() - static_cast<size_t>(content_left_);
        std::memcpy(buf + out, extra_content_->data() + at, want);
        got = static_cast<ssize_t>(want);
      } else {
        got = read(fd_, buf + out, want);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
          return absl::InternalError(absl::StrCat("reading the context: ", strerror(errno)));
        if (got == 0) {  // the file shrank: zeros keep the archive consistent
          std::memset(buf + out, 0, want);
          got = static_cast<ssize_t>(want);
        }
      }
      content_left_ -= got;
      out += static_cast<size_t>(got);
    } else if (padding_left_ > 0) {
      size_t k = static_cast<size_t>(std::min<int64_t>(padding_left_, n - out));
      std::memset(buf + out, 0, k);
      padding_left_ -= static_cast<int64_t>(k);
      out += k;
    } else if (finished_) {
      break;
    } else if (absl::Status s = Next(); !s.ok()) {
      return s;
    }
  }
  return out;
}

}  // namespace c2d::engine
