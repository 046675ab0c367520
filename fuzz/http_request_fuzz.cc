// HTTP requests as the gateway's server reads them: Beast's parser with the
// server's limits (16 KiB of headers, 1 MiB of body), then the target split
// into path and query and percent-decoded as handlers see them. Never
// throws, never crashes.

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "libs/httpd/message.h"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 << 10);
  parser.body_limit(1 << 20);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_header_done()) return 0;
  const auto& req = parser.get();
  std::string path;
  std::multimap<std::string, std::string> query;
  c2d::httpd::ParseTarget(std::string(req.target()), &path, &query);
  for (const auto& field : req) {
    (void)c2d::httpd::PercentDecode(std::string(field.value()), true);
  }
  return 0;
}
