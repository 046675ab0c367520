#include "libs/objstore/objstore.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

#include "absl/strings/str_cat.h"
#include "libs/common/status.h"
#include "libs/crypto/hash.h"

namespace c2d::objstore {
namespace {

namespace fs = std::filesystem;

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, absl::string_view bytes, const std::string& what) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno(what);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

class LocalWriter final : public ObjectWriter {
 public:
  LocalWriter(std::string path, std::string tmp, int fd)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {}
  ~LocalWriter() override {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  absl::Status Write(absl::string_view bytes) override {
    hash_.Update(bytes);
    size_ += static_cast<int64_t>(bytes.size());
    return WriteAll(fd_, bytes, "write " + tmp_);
  }
  absl::StatusOr<ObjectInfo> Commit() override {
    if (::fsync(fd_) != 0) return Errno("fsync " + tmp_);
    ::close(fd_);
    fd_ = -1;
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) return Errno("rename to " + path_);
    committed_ = true;
    return ObjectInfo{size_, hash_.HexDigest()};
  }

 private:
  const std::string path_, tmp_;
  int fd_;
  bool committed_ = false;
  int64_t size_ = 0;
  crypto::Sha256Stream hash_;
};

}  // namespace

absl::Status CheckKey(const std::string& key) {
  static const std::regex kKey("^[a-z0-9_-][a-z0-9._-]*(/[a-z0-9_-][a-z0-9._-]*)*$");
  if (key.size() > 512 || !std::regex_match(key, kKey) || key.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("object key \"", key, "\" is not valid"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LocalObjectStore::PathOf(const std::string& key) const {
  C2D_RETURN_IF_ERROR(CheckKey(key));
  return (fs::path(root_) / key).string();
}

absl::StatusOr<std::unique_ptr<ObjectWriter>> LocalObjectStore::Create(const std::string& key) {
  auto path = PathOf(key);
  if (!path.ok()) return path.status();
  std::error_code ec;
  fs::create_directories(fs::path(*path).parent_path(), ec);
  if (ec)
    return absl::UnavailableError(absl::StrCat("cannot make ", *path, "'s folder: ", ec.message()));
  std::string tmp = *path + ".partXXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) return Errno("create " + tmp);
  return std::make_unique<LocalWriter>(*path, tmp, fd);
}

absl::Status LocalObjectStore::Get(const std::string& key,
                                   const std::function<absl::Status(absl::string_view)>& write) {
  auto path = PathOf(key);
  if (!path.ok()) return path.status();
  int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return absl::NotFoundError(absl::StrCat("no object ", key));
  if (fd < 0) return Errno("open " + *path);
  std::string buf(1 << 20, '\0');
  absl::Status s;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) s = Errno("read " + *path);
    if (n <= 0 || !s.ok()) break;
    s = write(absl::string_view(buf.data(), static_cast<size_t>(n)));
    if (!s.ok()) break;
  }
  ::close(fd);
  return s;
}

absl::Status LocalObjectStore::Delete(const std::string& key) {
  auto path = PathOf(key);
  if (!path.ok()) return path.status();
  if (::unlink(path->c_str()) != 0 && errno != ENOENT) return Errno("delete " + *path);
  return absl::OkStatus();
}

absl::Status ReadVerified(ObjectStore& store, const std::string& key, const std::string& sha256,
                          const std::function<absl::Status(absl::string_view)>& write) {
  crypto::Sha256Stream hash;
  C2D_RETURN_IF_ERROR(store.Get(key, [&](absl::string_view bytes) {
    hash.Update(bytes);
    return write(bytes);
  }));
  if (const std::string got = hash.HexDigest(); got != sha256) {
    return absl::DataLossError(absl::StrCat("the stored object ", key,
                                            " is corrupted: its sha256 is ", got, ", not ", sha256,
                                            " as when it was made"));
  }
  return absl::OkStatus();
}

absl::Status FetchVerified(ObjectStore& store, const std::string& key, const std::string& sha256,
                           const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create " + path);
  absl::Status s = ReadVerified(store, key, sha256, [&](absl::string_view bytes) {
    return WriteAll(fd, bytes, "write " + path);
  });
  ::close(fd);
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

absl::StatusOr<ObjectInfo> PutFile(ObjectStore& store, const std::string& key,
                                   const std::string& path) {
  C2D_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> writer, store.Create(key));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open " + path);
  std::string buffer(size_t{1} << 20, '\0');
  absl::Status s;
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) s = Errno("read " + path);
    if (n <= 0) break;
    s = writer->Write(absl::string_view(buffer.data(), static_cast<size_t>(n)));
    if (!s.ok()) break;
  }
  ::close(fd);
  C2D_RETURN_IF_ERROR(s);
  return writer->Commit();
}

}  // namespace c2d::objstore
