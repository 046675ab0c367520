#include "libs/engine/tar.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

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

void TarWriter::Pad() { out_.append((kBlock - out_.size() % kBlock) % kBlock, '\0'); }

void TarWriter::Header(absl::string_view path, char type, int mode, int64_t size,
                       absl::string_view link_target) {
  constexpr int64_t kMaxOctalSize = 077777777777;  // 11 octal digits
  if (path.size() > 100 || link_target.size() > 100 || size > kMaxOctalSize) {
    std::string records;
    if (path.size() > 100) records += PaxRecord("path", path);
    if (link_target.size() > 100) records += PaxRecord("linkpath", link_target);
    if (size > kMaxOctalSize) records += PaxRecord("size", std::to_string(size));
    Header("././@PaxHeader", 'x', 0644, static_cast<int64_t>(records.size()), "");
    out_ += records;
    Pad();
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
  out_.append(h, kBlock);
}

void TarWriter::AddFile(absl::string_view path, absl::string_view content, int mode) {
  Header(path, '0', mode, static_cast<int64_t>(content.size()), "");
  out_.append(content.data(), content.size());
  Pad();
}

void TarWriter::AddDirectory(absl::string_view path, int mode) {
  std::string p(path);
  if (p.empty() || p.back() != '/') p += '/';
  Header(p, '5', mode, 0, "");
}

void TarWriter::AddSymlink(absl::string_view path, absl::string_view target) {
  Header(path, '2', 0777, 0, target);
}

absl::Status TarWriter::AddTree(const std::string& dir, int64_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read ", dir, ": ", ec.message()));
  for (; it != end; it.increment(ec)) {
    if (ec) return absl::InternalError(absl::StrCat("cannot read ", dir, ": ", ec.message()));
    const fs::path& p = it->path();
    std::string rel = fs::relative(p, dir).generic_string();
    if (rel == ".git" || rel.rfind(".git/", 0) == 0) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      AddSymlink(rel, fs::read_symlink(p).string());
    } else if (S_ISDIR(st.st_mode)) {
      AddDirectory(rel, st.st_mode & 07777);
    } else if (S_ISREG(st.st_mode)) {
      if (size() + st.st_size > max_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "build context is larger than ", max_bytes / (1024 * 1024), " MiB (at ", rel, ")"));
      }
      std::ifstream in(p, std::ios::binary);
      std::stringstream content;
      content << in.rdbuf();
      if (!in) return absl::InternalError(absl::StrCat("cannot read ", p.string()));
      AddFile(rel, content.str(), st.st_mode & 07777);
    }
    // Sockets, fifos and devices have no place in a build context.
  }
  return absl::OkStatus();
}

std::string TarWriter::Finish() {
  out_.append(2 * kBlock, '\0');
  return std::move(out_);
}

}  // namespace c2d::engine
