#include "libs/cloud/openstack/swift.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/crypto/hash.h"
#include "libs/crypto/seal.h"
#include "libs/http/client.h"

namespace c2d::cloud::openstack {

using json = nlohmann::json;

constexpr char kService[] = "object-store";
constexpr char kShaHeader[] = "X-Object-Meta-Sha256";
constexpr char kTempUrlKeyHeader[] = "X-Container-Meta-Temp-URL-Key";

// One object being written: bytes gather into a segment; a full segment is
// stored at once, and Commit stores the rest as the object itself (one
// segment in all) or as the last segment and the manifest.
class SwiftWriter final : public objstore::ObjectWriter {
 public:
  SwiftWriter(SwiftObjectStore& store, std::string key)
      : store_(store), key_(std::move(key)), upload_(absl::AsciiStrToLower(ids::New("up"))) {}
  ~SwiftWriter() override {
    if (committed_ || segments_.empty()) return;
    std::vector<std::string> paths;
    for (const json& s : segments_) paths.push_back(s["path"]);
    if (absl::Status s = store_.DeleteSegments(paths); !s.ok()) {
      log::Warn("swift: cannot delete an abandoned upload's segments",
                {{"key", key_}, {"error", s.ToString()}});
    }
  }

  absl::Status Write(absl::string_view bytes) override {
    if (committed_) return absl::FailedPreconditionError("object committed already");
    hash_.Update(bytes);
    size_ += static_cast<int64_t>(bytes.size());
    buffer_.append(bytes.data(), bytes.size());
    const size_t segment = static_cast<size_t>(store_.options().segment_size);
    while (buffer_.size() >= segment) {
      C2D_RETURN_IF_ERROR(PutSegment(buffer_.substr(0, segment)));
      buffer_.erase(0, segment);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<objstore::ObjectInfo> Commit() override {
    if (committed_) return absl::FailedPreconditionError("object committed already");
    const objstore::ObjectInfo info{.size = size_, .sha256 = hash_.HexDigest()};
    C2D_ASSIGN_OR_RETURN(std::vector<std::string> old, store_.SegmentsOf(key_));
    if (segments_.empty()) {
      C2D_RETURN_IF_ERROR(Put(store_.ObjectPath(key_), buffer_, info.sha256, ""));
    } else {
      if (!buffer_.empty()) C2D_RETURN_IF_ERROR(PutSegment(buffer_));
      C2D_RETURN_IF_ERROR(Put(store_.ObjectPath(key_) + "?multipart-manifest=put", segments_.dump(),
                              info.sha256, "manifest"));
    }
    committed_ = true;
    buffer_.clear();
    // The object it replaced, if a large one, leaves its segments behind.
    std::vector<std::string> keep;
    for (const json& s : segments_) keep.push_back(s["path"]);
    if (absl::Status s = store_.DeleteSegments(old, keep); !s.ok()) {
      log::Warn("swift: cannot delete a replaced object's segments",
                {{"key", key_}, {"error", s.ToString()}});
    }
    return info;
  }

 private:
  absl::Status PutSegment(const std::string& bytes) {
    const std::string path = absl::StrCat("/", store_.SegmentContainer(), "/", key_, "/", upload_,
                                          "/", absl::Dec(segments_.size(), absl::kZeroPad8));
    C2D_RETURN_IF_ERROR(Put(path, bytes, "", ""));
    segments_.push_back({{"path", path},
                         {"etag", crypto::Md5Hex(bytes)},
                         {"size_bytes", static_cast<int64_t>(bytes.size())}});
    return absl::OkStatus();
  }

  // A PUT whose ETag is the MD5 of what is sent (for a manifest, Swift
  // checks each segment's instead).
  absl::Status Put(const std::string& path, const std::string& bytes, const std::string& sha256,
                   const std::string& what) {
    CallRequest put{.method = "PUT", .path = path, .raw_body = bytes};
    if (what != "manifest") put.headers.emplace_back("ETag", crypto::Md5Hex(bytes));
    if (!sha256.empty()) put.headers.emplace_back(kShaHeader, sha256);
    put.headers.emplace_back("Content-Type", "application/octet-stream");
    return store_.session_.Call(kService, put).status();
  }

  SwiftObjectStore& store_;
  const std::string key_;
  const std::string upload_;  // this upload's segments are below key/upload/
  std::string buffer_;
  json segments_ = json::array();
  crypto::Sha256Stream hash_;
  int64_t size_ = 0;
  bool committed_ = false;
};

SwiftObjectStore::SwiftObjectStore(Session& session, SwiftOptions options)
    : session_(session), options_(std::move(options)) {}

std::string SwiftObjectStore::ObjectPath(const std::string& key) const {
  return absl::StrCat("/", options_.container, "/", key);
}

absl::Status SwiftObjectStore::EnsureContainers() {
  absl::MutexLock lock(&mu_);
  if (containers_ready_) return absl::OkStatus();
  std::vector<std::string> containers = {options_.container};
  if (SegmentContainer() != options_.container) containers.push_back(SegmentContainer());
  for (const std::string& c : containers) {
    C2D_RETURN_IF_ERROR(session_.Call(kService, {.method = "PUT", .path = "/" + c}).status());
  }
  containers_ready_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> SwiftObjectStore::TempUrlKey() {
  C2D_RETURN_IF_ERROR(EnsureContainers());
  // Read at every signing, never cached: were two processes to set a key at
  // the same moment, the one Swift kept is what both sign with from then on.
  const std::string path = "/" + options_.container;
  for (int attempt = 0; attempt < 2; ++attempt) {
    C2D_ASSIGN_OR_RETURN(Reply head, session_.Call(kService, {.method = "HEAD", .path = path}));
    if (std::string key = head.Header(kTempUrlKeyHeader); !key.empty()) return key;
    if (attempt > 0) break;
    const std::string fresh = absl::BytesToHexString(crypto::RandomBytes(32));
    C2D_RETURN_IF_ERROR(
        session_
            .Call(kService,
                  {.method = "POST", .path = path, .headers = {{kTempUrlKeyHeader, fresh}}})
            .status());
  }
  return absl::FailedPreconditionError(
      "swift keeps no temp URL key on the container: is the tempurl middleware enabled?");
}

absl::StatusOr<std::string> SwiftObjectStore::ContainerUrl() {
  C2D_ASSIGN_OR_RETURN(std::string endpoint, session_.Endpoint(kService));
  return absl::StrCat(endpoint, "/", options_.container);
}

absl::StatusOr<SignedUrl> SwiftObjectStore::SignGet(const std::string& key, absl::Time expires) {
  C2D_RETURN_IF_ERROR(objstore::CheckKey(key));
  C2D_ASSIGN_OR_RETURN(std::string secret, TempUrlKey());
  C2D_ASSIGN_OR_RETURN(std::string container, ContainerUrl());
  const std::string url = absl::StrCat(container, "/", key);
  // Swift signs the path alone: "/v1/AUTH_<project>/<container>/<key>".
  const size_t scheme = url.find("://");
  const size_t path_at = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path_at == std::string::npos) {
    return absl::FailedPreconditionError("swift: the object-store endpoint has no path: " + url);
  }
  SignedUrl out{.expires = absl::ToUnixSeconds(expires)};
  out.signature =
      crypto::HmacSha256Hex(secret, absl::StrCat("GET\n", out.expires, "\n", url.substr(path_at)));
  out.url = absl::StrCat(url, "?temp_url_sig=", out.signature, "&temp_url_expires=", out.expires);
  return out;
}

absl::StatusOr<std::unique_ptr<objstore::ObjectWriter>> SwiftObjectStore::Create(
    const std::string& key) {
  C2D_RETURN_IF_ERROR(objstore::CheckKey(key));
  C2D_RETURN_IF_ERROR(EnsureContainers());
  return std::unique_ptr<objstore::ObjectWriter>(std::make_unique<SwiftWriter>(*this, key));
}

absl::StatusOr<objstore::ObjectInfo> SwiftObjectStore::Stat(const std::string& key) {
  C2D_RETURN_IF_ERROR(objstore::CheckKey(key));
  C2D_ASSIGN_OR_RETURN(Reply r,
                       session_.Call(kService, {.method = "HEAD", .path = ObjectPath(key)}));
  objstore::ObjectInfo info{.sha256 = r.Header("x-object-meta-sha256")};
  if (!absl::SimpleAtoi(r.Header("content-length"), &info.size)) {
    return absl::UnknownError(absl::StrCat("swift: HEAD ", key, " answered no length"));
  }
  return info;
}

absl::Status SwiftObjectStore::Get(const std::string& key,
                                   const std::function<absl::Status(absl::string_view)>& write) {
  C2D_ASSIGN_OR_RETURN(objstore::ObjectInfo info, Stat(key));
  const std::string path = ObjectPath(key);
  for (int64_t at = 0; at < info.size; at += options_.read_chunk) {
    const int64_t last = std::min(info.size, at + options_.read_chunk) - 1;
    C2D_ASSIGN_OR_RETURN(
        Reply r,
        session_.Call(kService, {.path = path,
                                 .headers = {{"Range", absl::StrCat("bytes=", at, "-", last)}},
                                 .parse_json = false}));
    const int64_t expected = last - at + 1;
    if (static_cast<int64_t>(r.raw.size()) != expected) {
      return absl::DataLossError(absl::StrCat("swift: ", key, " bytes ", at, "-", last, ": got ",
                                              r.raw.size(), " bytes (replaced meanwhile?)"));
    }
    C2D_RETURN_IF_ERROR(write(r.raw));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> SwiftObjectStore::SegmentsOf(const std::string& key) {
  const std::string path = ObjectPath(key);
  auto head = session_.Call(kService, {.method = "HEAD", .path = path});
  if (absl::IsNotFound(head.status())) return std::vector<std::string>();
  if (!head.ok()) return head.status();
  std::vector<std::string> out;
  if (absl::AsciiStrToLower(head->Header("x-static-large-object")) != "true") return out;
  C2D_ASSIGN_OR_RETURN(Reply manifest,
                       session_.Call(kService, {.path = path + "?multipart-manifest=get"}));
  // Swift lists a manifest's segments as {"name": "/container/object", ...}.
  for (const json& s : manifest.body) out.push_back(s.value("name", s.value("path", "")));
  return out;
}

absl::Status SwiftObjectStore::DeleteSegments(const std::vector<std::string>& paths,
                                              const std::vector<std::string>& keep) {
  for (const std::string& p : paths) {
    if (p.empty() || std::find(keep.begin(), keep.end(), p) != keep.end()) continue;
    auto r = session_.Call(kService, {.method = "DELETE", .path = p});
    if (!r.ok() && !absl::IsNotFound(r.status())) return r.status();
  }
  return absl::OkStatus();
}

absl::Status SwiftObjectStore::Delete(const std::string& key) {
  C2D_RETURN_IF_ERROR(objstore::CheckKey(key));
  C2D_ASSIGN_OR_RETURN(std::vector<std::string> segments, SegmentsOf(key));
  auto r = session_.Call(kService, {.method = "DELETE", .path = ObjectPath(key)});
  if (!r.ok() && !absl::IsNotFound(r.status())) return r.status();
  // The manifest first: a reader never meets a manifest without segments.
  return DeleteSegments(segments);
}

absl::StatusOr<std::vector<SwiftObjectStore::Listed>> SwiftObjectStore::List(
    const std::string& prefix) {
  std::vector<Listed> out;
  std::string marker;
  for (int page = 0; page < 100000; ++page) {
    auto r = session_.Call(
        kService, {.path = absl::StrCat("/", options_.container,
                                        "?format=json&limit=1000&prefix=", http::UrlEncode(prefix),
                                        "&marker=", http::UrlEncode(marker))});
    if (absl::IsNotFound(r.status())) return out;  // no container yet: nothing
    if (!r.ok()) return r.status();
    if (!r->body.is_array() || r->body.empty()) return out;
    for (const json& o : r->body) {
      out.push_back({.key = o.value("name", ""), .size = o.value("bytes", int64_t{0})});
    }
    marker = out.back().key;
  }
  return out;
}

}  // namespace c2d::cloud::openstack
