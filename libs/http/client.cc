#include "libs/http/client.h"

#include <curl/curl.h>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace c2d::http {
namespace {

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

struct Exchange {
  const Request* request;
  Response* response;
  bool aborted_by_callback = false;
  absl::Status read_error;  // what made body_reader stop the upload
};

size_t OnUpload(char* buf, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  auto got = ex->request->body_reader(buf, size * n);
  if (!got.ok()) {
    ex->read_error = got.status();
    return CURL_READFUNC_ABORT;
  }
  return *got;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const size_t len = size * n;
  if (ex->request->on_body) {
    if (!ex->request->on_body(absl::string_view(data, len))) {
      ex->aborted_by_callback = true;
      return 0;  // makes curl abort with CURLE_WRITE_ERROR
    }
  } else {
    ex->response->body.append(data, len);
  }
  return len;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    ex->response->headers.clear();  // a new response (after 100-continue or a redirect)
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    ex->response->headers.emplace(std::move(name), std::move(value));
  }
  return size * n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* ex = static_cast<Exchange*>(user);
  const auto* cancel = ex->request->cancel;
  return cancel != nullptr && cancel->load(std::memory_order_relaxed) ? 1 : 0;
}

using SlistPtr = std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)>;

// TLS trust and client identity, and addresses fixed for names; returns the
// CURLOPT_RESOLVE list, which must outlive the transfer.
SlistPtr SetTls(CURL* c, const Request& request) {
  if (!request.ca_file.empty() || !request.ca_pem.empty()) {
    if (!request.ca_pem.empty()) {
      curl_blob ca{const_cast<char*>(request.ca_pem.data()), request.ca_pem.size(), CURL_BLOB_COPY};
      curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
    } else {
      curl_easy_setopt(c, CURLOPT_CAINFO, request.ca_file.c_str());
    }
    // Only those CAs: the CA directory libcurl was built with would add the
    // system's CAs back.
    curl_easy_setopt(c, CURLOPT_CAPATH, nullptr);
  }
  if (!request.client_cert_pem.empty()) {
    curl_blob cert{const_cast<char*>(request.client_cert_pem.data()),
                   request.client_cert_pem.size(), CURL_BLOB_COPY};
    curl_blob key{const_cast<char*>(request.client_key_pem.data()), request.client_key_pem.size(),
                  CURL_BLOB_COPY};
    curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
    curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
  }
  curl_slist* resolve = nullptr;
  for (const std::string& entry : request.resolve) {
    resolve = curl_slist_append(resolve, entry.c_str());
  }
  if (resolve != nullptr) curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
  return SlistPtr(resolve, curl_slist_free_all);
}

}  // namespace

std::string Response::Header(absl::string_view name) const {
  auto it = headers.find(absl::AsciiStrToLower(name));
  return it == headers.end() ? std::string() : it->second;
}

absl::StatusOr<Response> Send(const Request& request) {
  static CurlGlobal global;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return absl::InternalError("curl_easy_init failed");
  CURL* c = curl.get();
  Response response;
  Exchange ex{&request, &response};
  char error[CURL_ERROR_SIZE] = {};

  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  if (request.method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (!request.unix_socket.empty()) {
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, request.unix_socket.c_str());
  }
  if (request.body_reader) {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);  // reads the body; CUSTOMREQUEST keeps the method
    curl_easy_setopt(c, CURLOPT_READFUNCTION, OnUpload);
    curl_easy_setopt(c, CURLOPT_READDATA, &ex);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body_size));
  } else if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
             request.method == "PATCH") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  }
  curl_slist* headers = nullptr;
  for (const auto& [k, v] : request.headers) {
    headers = curl_slist_append(headers, absl::StrCat(k, ": ", v).c_str());
  }
  // No "Expect: 100-continue" round trip for large bodies.
  headers = curl_slist_append(headers, "Expect:");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(headers,
                                                                          curl_slist_free_all);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  if (!request.user.empty()) {
    curl_easy_setopt(c, CURLOPT_USERNAME, request.user.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, request.password.c_str());
  }
  SlistPtr resolve = SetTls(c, request);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(request.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &ex);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &ex);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &ex);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);

  CURLcode rc = curl_easy_perform(c);
  const std::string what = absl::StrCat(request.method, " ", request.url);
  if (rc != CURLE_OK && !ex.read_error.ok()) {
    return absl::Status(ex.read_error.code(),
                        absl::StrCat(what, ": reading the body: ", ex.read_error.message()));
  }
  if (rc != CURLE_OK) {
    std::string detail = error[0] != '\0' ? error : curl_easy_strerror(rc);
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        return absl::DeadlineExceededError(absl::StrCat(what, ": timed out (", detail, ")"));
      case CURLE_ABORTED_BY_CALLBACK:
        return absl::CancelledError(absl::StrCat(what, ": cancelled"));
      case CURLE_WRITE_ERROR:
        if (ex.aborted_by_callback) return absl::CancelledError(absl::StrCat(what, ": stopped"));
        return absl::InternalError(absl::StrCat(what, ": ", detail));
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL:
        return absl::InvalidArgumentError(absl::StrCat(what, ": ", detail));
      default:
        return absl::UnavailableError(absl::StrCat(what, ": ", detail));
    }
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

bool LineSplitter::Feed(absl::string_view chunk) {
  pending_.append(chunk.data(), chunk.size());
  size_t start = 0;
  while (true) {
    size_t nl = pending_.find('\n', start);
    if (nl == std::string::npos) break;
    absl::string_view line(pending_.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!on_line_(line)) return false;
    start = nl + 1;
  }
  pending_.erase(0, start);
  return true;
}

bool LineSplitter::Finish() {
  if (pending_.empty()) return true;
  std::string last = std::move(pending_);
  pending_.clear();
  return on_line_(last);
}

std::string UrlEncode(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : text) {
    if (absl::ascii_isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      out.push_back(static_cast<char>(ch));
    } else {
      out.push_back('%');
      out.push_back(kHex[ch >> 4]);
      out.push_back(kHex[ch & 15]);
    }
  }
  return out;
}

std::string Base64(absl::string_view data) { return absl::Base64Escape(data); }
std::string Base64Url(absl::string_view data) {
  std::string out = absl::Base64Escape(data);
  for (char& ch : out) {
    if (ch == '+') ch = '-';
    if (ch == '/') ch = '_';
  }
  return out;
}

}  // namespace c2d::http
