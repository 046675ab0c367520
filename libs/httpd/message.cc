#include "libs/httpd/message.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace c2d::httpd {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string Request::Header(absl::string_view name) const {
  // Names are stored in lower case; most callers already pass them so.
  auto it = headers.find(absl::AsciiStrToLower(name));
  return it == headers.end() ? std::string() : it->second;
}

std::string Request::Query(absl::string_view name) const {
  auto it = query.find(std::string(name));
  return it == query.end() ? std::string() : it->second;
}

Response JsonError(int status, absl::string_view code, absl::string_view message) {
  nlohmann::json body = {{"error", {{"code", code}, {"message", message}}}};
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  // Replacement instead of an exception: messages may quote client input.
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

std::string PercentDecode(absl::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      int hi = HexValue(text[i + 1]), lo = HexValue(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

void ParseTarget(absl::string_view target, std::string* path,
                 std::multimap<std::string, std::string>* query) {
  size_t q = target.find('?');
  *path = PercentDecode(target.substr(0, q), /*plus_is_space=*/false);
  query->clear();
  if (q == absl::string_view::npos) return;
  absl::string_view qs = target.substr(q + 1);
  // A fragment is never sent by conforming clients; drop it if one is.
  if (size_t h = qs.find('#'); h != absl::string_view::npos) qs = qs.substr(0, h);
  for (absl::string_view pair : absl::StrSplit(qs, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    query->emplace(PercentDecode(kv.first, true), PercentDecode(kv.second, true));
  }
}

}  // namespace c2d::httpd
