#include "libs/dns/resolver.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace c2d::dns {
namespace {

int TypeCode(const std::string& type) {
  if (type == "A") return ns_t_a;
  if (type == "AAAA") return ns_t_aaaa;
  if (type == "CNAME") return ns_t_cname;
  if (type == "TXT") return ns_t_txt;
  return -1;
}

// One answer record's data as text.
std::string RecordText(const ns_msg& msg, const ns_rr& rr, int type) {
  const unsigned char* data = ns_rr_rdata(rr);
  char text[NS_MAXDNAME];
  if (type == ns_t_a && ns_rr_rdlen(rr) == 4) return inet_ntop(AF_INET, data, text, sizeof text);
  if (type == ns_t_aaaa && ns_rr_rdlen(rr) == 16) {
    return inet_ntop(AF_INET6, data, text, sizeof text);
  }
  if (type == ns_t_cname) {
    if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), data, text, sizeof text) < 0)
      return "";
    return text;
  }
  std::string out;  // TXT: length-prefixed strings
  for (int i = 0; i < ns_rr_rdlen(rr);) {
    int n = data[i++];
    if (i + n > ns_rr_rdlen(rr)) break;
    out.append(reinterpret_cast<const char*>(data + i), n);
    i += n;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> Resolver::Lookup(const std::string& name,
                                                          const std::string& type) const {
  const int code = TypeCode(type);
  if (code < 0) return absl::InvalidArgumentError(absl::StrCat("unsupported type ", type));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  const size_t colon = server_.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(server_.substr(colon + 1), &port) ||
      port < 1 || port > 65535 ||
      inet_pton(AF_INET, server_.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("\"", server_, "\" is not ip:port"));
  }
  addr.sin_port = htons(static_cast<uint16_t>(port));
  struct __res_state state;
  std::memset(&state, 0, sizeof state);
  if (res_ninit(&state) != 0) return absl::InternalError("res_ninit failed");
  state.nscount = 1;
  state.nsaddr_list[0] = addr;
  state.retrans = std::max<int>(1, static_cast<int>(timeout_.count() / 1000));
  state.retry = 1;
  state.options &= ~(RES_DNSRCH | RES_DEFNAMES);
  unsigned char answer[NS_PACKETSZ * 4];
  const int len = res_nquery(&state, name.c_str(), ns_c_in, code, answer, sizeof answer);
  const int herr = state.res_h_errno;
  res_nclose(&state);
  if (len < 0) {
    if (herr == HOST_NOT_FOUND) return absl::NotFoundError(absl::StrCat(name, " does not exist"));
    if (herr == NO_DATA) return std::vector<std::string>{};
    return absl::UnavailableError(
        absl::StrCat("DNS server ", server_, " did not answer for ", name));
  }
  ns_msg msg;
  if (ns_initparse(answer, len, &msg) < 0) return absl::UnavailableError("malformed DNS answer");
  std::vector<std::string> out;
  for (int i = 0; i < ns_msg_count(msg, ns_s_an); ++i) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != code) continue;
    out.push_back(RecordText(msg, rr, code));
  }
  return out;
}

}  // namespace c2d::dns
